// The writes of `mode: http`. Bytes for a side are appended to that side's open write (a pooled
// StringWrite, LoopResources::writes) and sent at once: the client's is the session's, each
// backend connection's is its exchange's. While the front exchange's response is being parsed
// the client's bytes are held until the parser returns (flush_client), so that a response head
// and the body bytes that came with it leave in one write. A write's completion goes to the
// session, which hands one towards a backend to the exchange still using that connection.

#include "sluice/proxy/http_session.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

namespace {

StringWrite* take_write(LoopResources& resources, HttpSession* session, BackendConnection* connection) {
  StringWrite* write = resources.writes.take();
  write->to_client = connection == nullptr;
  write->session = session;
  write->connection = connection;
  return write;
}

// `bytes` moved onto the end of `out`: a tunnel's reads are as large as a read, handed over, not copied.
void append_taking(std::string& out, std::string& bytes) {
  if (out.empty()) {
    out.swap(bytes);
  } else {
    out.append(bytes);
  }
  bytes.clear();
}

// Sends `op` on `stream`: what the socket takes at once goes by uv_try_write (a reply's few hundred
// bytes nearly always), so no write request completes on a later loop turn, which libuv follows
// with an epoll_ctl. The rest, or an error, goes by uv_write, whose completion reaches the
// session's on_written. Returns the bytes left queued (0: all written, `op` given back), or a
// negative libuv code when uv_write refused (`op` still the caller's).
ssize_t start_write(LoopResources& resources, StringWrite* op, uv_stream_t* stream) {
  uv_buf_t buf = uv_buf_init(op->bytes.data(), static_cast<unsigned>(op->bytes.size()));
  const int written = uv_try_write(stream, &buf, 1);
  if (written == static_cast<int>(buf.len)) {
    resources.writes.give_back(op);
    return 0;
  }
  if (written > 0) {
    op->sent = static_cast<std::size_t>(written);
    buf = uv_buf_init(buf.base + written, buf.len - static_cast<unsigned>(written));
  }
  op->req.data = op;
  const int rc = uv_write(&op->req, stream, &buf, 1, [](uv_write_t* req, int status) {
    auto* queued = owner<StringWrite>(req);
    queued->session->on_written(queued, status);
  });
  return rc != 0 ? rc : static_cast<ssize_t>(buf.len);
}

}  // namespace

// --- towards the client ---------------------------------------------------------------------------

std::string* HttpSession::open_write() {
  if (state_ == State::closing) return nullptr;
  if (open_ == nullptr) open_ = take_write(resources_, this, nullptr);
  return &open_->bytes;
}

void HttpSession::write(std::string_view bytes) {
  if (bytes.empty()) return;
  if (std::string* out = open_write()) {
    out->append(bytes);
    send();
  }
}

void HttpSession::write_taking(std::string& bytes) {
  if (bytes.empty()) return;
  if (std::string* out = open_write()) {
    append_taking(*out, bytes);
    send();
  }
  bytes.clear();
}

void HttpSession::flush_client() {
  batching_client_ = false;
  send();
}

void HttpSession::send() {
  if (batching_client_) return;
  StringWrite* op = std::exchange(open_, nullptr);
  if (op == nullptr) return;
  if (op->bytes.empty() || state_ == State::closing) {
    resources_.writes.give_back(op);
    return;
  }
  const ssize_t queued = start_write(resources_, op, client_.stream());
  if (queued < 0) {
    client_unsent_ += op->bytes.size() - op->sent;  // as on_written takes it off
    on_written(op, static_cast<int>(queued));
  } else {
    client_unsent_ += static_cast<std::size_t>(queued);
  }
}

void HttpSession::on_written(StringWrite* op, int status) {
  const bool to_client = op->to_client;
  const std::size_t bytes = op->bytes.size() - op->sent;  // what was queued
  const BackendConnection* connection = op->connection;
  resources_.writes.give_back(op);
  if (!to_client) {
    // A write on a connection its exchange has given up (closed, cancelled) concerns no one.
    if (HttpExchange* exchange = exchange_on(connection); exchange != nullptr && state_ != State::closing) {
      exchange->on_backend_written(bytes, status);
    }
    return;
  }
  client_unsent_ -= bytes;
  if (status < 0 && status != UV_ECANCELED) {
    finish("reset", true);
    return;
  }
  if (state_ == State::closing) {
    if (client_unsent_ == 0) finish("done");
    return;
  }
  if (exchanges_.empty()) return;
  if (state_ == State::tunnel) {
    update_reading();
    exchanges_.front()->update_backend_reading();
    return;
  }
  exchanges_.front()->on_client_drained();
}

// --- towards an exchange's backend -----------------------------------------------------------------

std::string* HttpExchange::open_backend_write() {
  if (session_.state_ == HttpSession::State::closing || connection_ == nullptr) return nullptr;
  if (open_backend_ == nullptr) open_backend_ = take_write(session_.resources_, &session_, connection_);
  return &open_backend_->bytes;
}

void HttpExchange::write_backend(std::string_view bytes) {
  if (bytes.empty()) return;
  if (std::string* out = open_backend_write()) {
    out->append(bytes);
    send_backend();
  }
}

void HttpExchange::write_backend_taking(std::string& bytes) {
  if (bytes.empty()) return;
  if (std::string* out = open_backend_write()) {
    append_taking(*out, bytes);
    send_backend();
  }
  bytes.clear();
}

void HttpExchange::send_backend() {
  StringWrite* op = std::exchange(open_backend_, nullptr);
  if (op == nullptr) return;
  // The connection may have changed since the bytes were appended.
  if (op->bytes.empty() || session_.state_ == HttpSession::State::closing || connection_ == nullptr ||
      op->connection != connection_) {
    session_.resources_.writes.give_back(op);
    return;
  }
  if (slot_ != nullptr) session_.stats_.sent_to_backend(*slot_, op->bytes.size());
  const ssize_t queued = start_write(session_.resources_, op, connection_->stream());
  if (queued < 0) {
    backend_unsent_ += op->bytes.size() - op->sent;  // as on_written takes it off
    session_.on_written(op, static_cast<int>(queued));
  } else {
    backend_unsent_ += static_cast<std::size_t>(queued);
  }
}

}  // namespace sluice
