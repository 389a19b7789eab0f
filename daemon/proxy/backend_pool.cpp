#include "sluice/proxy/backend_pool.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/proxy/socket_watch.hpp"

namespace sluice {

namespace {
// Idle connections are looked at this often: a connection lives at most this much past its
// pool_idle_timeout (keep the timeout that far below the backend's own keep-alive timeout).
constexpr std::uint64_t kSweepMs = 250;
}  // namespace

BackendConnection* BackendConnection::connect(uv_loop_t* loop, Backend& backend, User& user,
                                              ConnectCallback on_connect, int& error) {
  auto* connection = new BackendConnection();
  connection->backend_ = &backend;
  connection->user_ = &user;
  connection->on_connect_ = on_connect;
  connection->requests_ = 1;
  connection->connect_started_ns_ = uv_hrtime();
  if (error = uv_tcp_init(loop, &connection->socket_); error != 0) {
    delete connection;
    return nullptr;
  }
  connection->socket_.data = connection;
  ++backend.stats.pool_open;
  connection->connect_req_.data = connection;
  error = uv_tcp_connect(&connection->connect_req_, &connection->socket_, as_sockaddr(&backend.address),
                         [](uv_connect_t* req, int status) {
                           auto* self = owner<BackendConnection>(req);
                           if (status == UV_ECANCELED || self->closing_) return;  // we closed it
                           if (status == 0) {
                             self->connected_ns_ = uv_hrtime();
                             if (int rc = uv_tcp_nodelay(&self->socket_, 1); rc != 0) {
                               spdlog::debug("backend nodelay failed: {}", uv_err_name(rc));
                             }
                           }
                           self->on_connect_(*self, status);
                         });
  if (error != 0) {
    connection->user_ = nullptr;  // the caller hears of it from the return value
    connection->close(false);
    return nullptr;
  }
  return connection;
}

void BackendConnection::close(bool reset) {
  if (closing_) return;
  closing_ = true;
  if (backend_ != nullptr) --backend_->stats.pool_open;
  backend_ = nullptr;  // counted off now: the backend may be gone by the close callback
  close_socket(&socket_, reset, this, [](uv_handle_t* handle) { owner<BackendConnection>(handle)->on_closed(); });
}

int BackendConnection::read(bool want) {
  user_reads_ = want;
  if (want == reading_) return 0;
  if (!want) {
    reading_ = false;
    return uv_read_stop(stream());
  }
  return start_reading();
}

int BackendConnection::start_reading() {
  const int rc = uv_read_start(
      stream(), [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) { owner<BackendConnection>(handle)->on_alloc(buf); },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t*) { owner<BackendConnection>(stream)->on_read(nread); });
  reading_ = rc == 0;
  return rc;
}

void BackendConnection::on_alloc(uv_buf_t* buf) {
  if (user_ == nullptr) {
    *buf = uv_buf_init(&idle_byte_, 1);  // idle in the pool: any byte drops it
  } else if (user_reads_) {
    *buf = user_->backend_read_buffer(*this);
  } else {
    *buf = uv_buf_init(nullptr, 0);  // taken, and not read by its user yet: left unread (UV_ENOBUFS)
  }
}

void BackendConnection::on_read(ssize_t nread) {
  if (user_ == nullptr) {
    if (nread == 0) return;
    // A byte the backend sends unasked, its EOF or an error: the connection is not reusable.
    if (pool_ != nullptr) pool_->drop(this);
    close(nread < 0 && nread != UV_EOF);
    return;
  }
  if (!user_reads_) {
    // The bytes wait in the socket until the user reads.
    if (int rc = read(false); rc != 0) spdlog::debug("backend read stop: {}", uv_err_name(rc));
    return;
  }
  user_->backend_read(*this, nread);
}

void BackendConnection::on_closed() {
  if (user_ != nullptr) user_->backend_connection_closed(*this);
  delete this;
}

// --- the pool -----------------------------------------------------------------------------------

BackendConnection* BackendPool::take(Backend& backend, BackendConnection::User& user) {
  // The most recent one: the least likely to have been closed by the backend meanwhile.
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
    BackendConnection* connection = *it;
    if (connection->backend_ != &backend) continue;
    drop(connection);
    // Still read (by nobody) until its user says: no stop and start again (header).
    connection->user_ = &user;
    connection->user_reads_ = false;
    connection->count_request();
    ++backend.stats.pool_reuses_total;
    return connection;
  }
  return nullptr;
}

void BackendPool::put(BackendConnection* connection, std::uint32_t max_idle, Millis idle_timeout) {
  Backend* backend = connection->backend_;
  connection->user_ = nullptr;
  if (closed_ || backend == nullptr || backend->draining || backend->stats.pool_idle >= max_idle) {
    connection->close(false);
    return;
  }
  connection->user_reads_ = false;
  if (!connection->reading_ && connection->start_reading() != 0) {
    connection->close(false);
    return;
  }
  connection->pool_ = this;
  connection->idle_deadline_ms_ = uv_now(loop_) + static_cast<std::uint64_t>(idle_timeout.count());
  ++backend->stats.pool_idle;
  idle_.push_back(connection);
  arm_sweep();
}

void BackendPool::drop(BackendConnection* connection) {
  auto it = std::find(idle_.begin(), idle_.end(), connection);
  if (it == idle_.end()) return;
  idle_.erase(it);
  if (connection->backend_ != nullptr) --connection->backend_->stats.pool_idle;
}

void BackendPool::forget(const Service& service) {
  for (const Backend& backend : service.backends()) forget(backend);
}

void BackendPool::forget(const Backend& backend) {
  std::vector<BackendConnection*> doomed;
  for (BackendConnection* connection : idle_) {
    if (connection->backend_ == &backend) doomed.push_back(connection);
  }
  for (BackendConnection* connection : doomed) {
    drop(connection);
    connection->close(false);
  }
}

void BackendPool::close_all() {
  closed_ = true;
  while (!idle_.empty()) {
    BackendConnection* connection = idle_.back();
    drop(connection);
    connection->close(false);
  }
  sweep_.close();
}

void BackendPool::arm_sweep() {
  if (sweep_.active()) return;
  if (!sweep_ && sweep_.init(loop_, this, uv_timer_init) != 0) return;  // idle ones then wait for a reuse or EOF
  const int rc = uv_timer_start(sweep_.get(), [](uv_timer_t* timer) { owner<BackendPool>(timer)->on_sweep(); },
                                kSweepMs, kSweepMs);
  if (rc != 0) spdlog::warn("pool sweep timer not started: {}", uv_err_name(rc));
}

void BackendPool::on_sweep() {
  const std::uint64_t now = uv_now(loop_);
  // Oldest first: the expired ones are at the front.
  while (!idle_.empty() && idle_.front()->idle_deadline_ms_ <= now) {
    BackendConnection* connection = idle_.front();
    drop(connection);
    connection->close(false);
  }
  if (idle_.empty()) sweep_.close();
}

}  // namespace sluice
