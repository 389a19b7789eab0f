#include "sluice/proxy/session.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include <spdlog/spdlog.h>

#include "sluice/log/access_log.hpp"
#include "sluice/balancing/backend.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

namespace {

Session* owner_of(void* data) { return static_cast<Session*>(data); }

// libuv reports a reset that arrives with the last bytes as UV_EOF; the socket's pending error
// tells the two apart, so that a truncated stream is not passed on as a complete one.
bool was_reset(uv_stream_t* stream) {
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(stream), &fd) != 0) return false;
  int error = 0;
  socklen_t length = sizeof error;
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == ECONNRESET;
}

int descriptor_of(uv_stream_t* stream) {
  uv_os_fd_t fd;
  return uv_fileno(reinterpret_cast<uv_handle_t*>(stream), &fd) == 0 ? fd : -1;
}

// Out of descriptors, memory or local ports here: not a fault of the backend.
bool is_local_error(int status) {
  return status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS || status == UV_ENOMEM ||
         status == UV_EADDRNOTAVAIL;  // no local port left towards that address
}

}  // namespace

Session::Session(Listener& listener)
    : listener_(listener), service_(listener.service()), resources_(listener.resources()) {
  upstream_.source = stream(client_);
  upstream_.sink = stream(backend_socket_);
  downstream_.source = stream(backend_socket_);
  downstream_.sink = stream(client_);
  resources_.link(this);
  listener_.session_opened();
  service_.attach();
}

Session::~Session() {
  for (Direction* direction : {&upstream_, &downstream_}) {
    if (direction->reading_into != nullptr) resources_.buffers.give_back(direction->reading_into);
    while (direction->waiting_head != nullptr) {
      Chunk* next = direction->waiting_head->next;
      resources_.buffers.give_back(direction->waiting_head);
      direction->waiting_head = next;
    }
    direction->pump.release(resources_.pipes);
  }
  if (access_log_enabled()) write_access_log();
  listener_.session_closed();
  service_.detach();
  resources_.unlink(this);
}

void Session::write_access_log() const {
  const std::uint64_t now = uv_hrtime();
  auto seconds_between = [](std::uint64_t from, std::uint64_t to) {
    return from == 0 || to < from ? -1.0 : static_cast<double>(to - from) * 1e-9;
  };
  const std::string client = sockaddr_to_string(client_address());
  AccessRecord record;
  record.client = client;
  record.listener = listener_.config().name;
  record.service = service_.name();
  if (served_by_ != nullptr) {
    record.backend = served_by_->config.name;
    record.node = served_by_->config.node;
  }
  record.queue_wait_seconds = seconds_between(arrived_ns, dispatched_ns);
  record.connect_seconds = seconds_between(connect_started_ns_, connected_ns_);
  record.duration_seconds = seconds_between(arrived_ns, now);
  record.bytes_from_client = upstream_.bytes_total;
  record.bytes_from_backend = downstream_.bytes_total;
  record.end_reason = end_reason_ != nullptr ? end_reason_ : "?";
  log_access(record);
}

Session* Session::accept(Listener& listener, int client_fd) {
  auto* session = new Session(listener);
  uv_loop_t* loop = session->resources_.loop;
  session->arrived_ns = uv_hrtime();
  uv_tcp_init(loop, &session->client_);
  session->client_.data = session;
  session->open_handles_ = 1;
  uv_timer_init(loop, &session->timer_);
  session->timer_.data = session;
  ++session->open_handles_;

  if (int rc = uv_tcp_open(&session->client_, client_fd); rc != 0) {
    spdlog::warn("accept failed listener={} error={}", listener.config().name, uv_err_name(rc));
    ::close(client_fd);
    session->finish("accept_failed");
    return nullptr;
  }
  uv_tcp_nodelay(&session->client_, 1);
  if (access_log_enabled()) session->client_address();  // asked now: the socket is gone by the log line
  return session;
}

const sockaddr* Session::client_address() const {
  if (client_address_.sin6_family == AF_UNSPEC) {
    int length = sizeof client_address_;
    uv_tcp_getpeername(&client_, reinterpret_cast<sockaddr*>(&client_address_), &length);
  }
  return reinterpret_cast<const sockaddr*>(&client_address_);
}

int Session::client_descriptor() const {
  uv_os_fd_t fd;
  return uv_fileno(reinterpret_cast<const uv_handle_t*>(&client_), &fd) == 0 ? fd : -1;
}

void Session::start() {
  last_activity_ms_ = uv_now(resources_.loop);
  // Client bytes are read at once but wait in chunks (bounded by the watermark) until the backend
  // is connected; reading also tells us at once when a waiting client resets.
  start_reading(upstream_);
  ask_for_backend();
}

void Session::refuse(const char* reason) { finish(reason); }

void Session::abort() { finish("shutdown"); }

void Session::turn_away(RejectReason reason, const char* end_reason) {
  listener_.reject(reason);
  finish(end_reason);
}

void Session::arm_timer(std::uint64_t timeout_ms) {
  uv_timer_start(&timer_, [](uv_timer_t* timer) { owner_of(timer->data)->on_timer(); }, timeout_ms, 0);
}

// --- waiting and connecting -------------------------------------------------------------------

void Session::ask_for_backend() {
  phase_ = Phase::waiting;
  const Service::Arrival arrival = service_.arrive(*this, uv_hrtime(), tried_);
  switch (arrival.outcome) {
    case Service::Outcome::dispatched:
      connect_to(*arrival.backend);
      return;
    case Service::Outcome::queued:
      arm_timer(static_cast<std::uint64_t>(service_.config().queue.timeout.count()));
      return;
    case Service::Outcome::queue_full:
      turn_away(RejectReason::queue_full, "queue_full");
      return;
    case Service::Outcome::no_backend:
      turn_away(RejectReason::no_backend, attempts_ == 0 ? "no_backend" : "connect_failed");
      return;
  }
}

void Session::on_dispatched(Backend& backend) {
  uv_timer_stop(&timer_);
  stop_watching_client();
  connect_to(backend);
}

void Session::watch_waiting_client() {
  if (client_watch_ != nullptr) return;
  // Only errors are of interest: epoll reports EPOLLERR/EPOLLHUP whatever was asked, and a reset
  // raises them. A queued client's reset must be seen even when descriptors run short.
  client_watch_ = open_watch(stream(client_), UV_PRIORITIZED, [](uv_poll_t* poll, int, int) {
    Session* self = owner_of(poll->data);
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(self->client_watch_->fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error == 0 && self->phase_ == Phase::waiting) return;
    self->stop_watching_client();
    if (self->phase_ == Phase::waiting) self->turn_away(RejectReason::abandoned, "abandoned");
  }, std::numeric_limits<int>::max());
}

void Session::stop_watching_client() { close_watch(client_watch_); }

Session::SocketWatch* Session::open_watch(uv_stream_t* socket, int events, uv_poll_cb on_event,
                                          int descriptor_ceiling) {
  const int fd = descriptor_of(socket);
  if (fd < 0) return nullptr;
  auto* watch = new SocketWatch{{}, fcntl(fd, F_DUPFD_CLOEXEC, 0)};
  if (watch->fd < 0 || watch->fd >= descriptor_ceiling ||
      uv_poll_init(resources_.loop, &watch->poll, watch->fd) != 0) {
    if (watch->fd >= 0) ::close(watch->fd);
    delete watch;
    return nullptr;
  }
  watch->poll.data = this;
  ++open_handles_;
  uv_poll_start(&watch->poll, events, on_event);
  return watch;
}

void Session::close_watch(SocketWatch*& watch) {
  if (watch == nullptr) return;
  SocketWatch* closing = watch;
  watch = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&closing->poll), [](uv_handle_t* closed) {
    auto* done = reinterpret_cast<SocketWatch*>(closed);  // poll is the first member
    Session* self = owner_of(closed->data);
    ::close(done->fd);
    delete done;
    self->on_handle_closed(nullptr);
  });
}

void Session::connect_to(Backend& backend) {
  phase_ = Phase::connecting;
  backend_ = &backend;
  served_by_ = &backend;
  ++attempts_;
  connect_started_ns_ = uv_hrtime();
  uv_tcp_init(resources_.loop, &backend_socket_);
  backend_socket_.data = this;
  backend_open_ = true;
  ++open_handles_;

  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, &backend_socket_,
                          reinterpret_cast<const sockaddr*>(&backend.address),
                          [](uv_connect_t* req, int status) {
                            if (status == UV_ECANCELED) return;  // we closed it: timeout or end
                            Session* self = owner_of(req->data);
                            if (status < 0) {
                              self->on_connect_failed(uv_err_name(status));
                            } else {
                              self->on_connected();
                            }
                          });
  if (rc != 0 && is_local_error(rc)) {
    // The proxy could not open a socket: counted against the listener, never the backend.
    spdlog::warn("connect_local_error service={} backend={} error={}", service_.name(), backend.config.name,
                 uv_err_name(rc));
    close_handle(reinterpret_cast<uv_handle_t*>(&backend_socket_), false);
    turn_away(RejectReason::max_connections, "local_error");
    return;
  }
  if (rc != 0) {
    on_connect_failed(uv_err_name(rc));
    return;
  }
  // Reading is asked for now, with the connect: libuv then registers the socket once for both,
  // instead of twice (and reports nothing readable before the connect callback).
  start_reading(downstream_);
  arm_timer(static_cast<std::uint64_t>(service_.config().connect_timeout.count()));
}

void Session::on_connect_failed(const char* error) {
  uv_timer_stop(&timer_);
  ++backend_->stats.connect_failures_total;
  spdlog::warn("connect_failed service={} backend={} address={} error={} attempt={}", service_.name(),
               backend_->config.name, backend_->address_text, error, attempts_);
  if (tried_.empty()) tried_.assign(service_.backends().size(), false);
  tried_[backend_->index] = true;
  service_.client_connect(*backend_, /*passed=*/false, error, uv_hrtime());
  // The next try needs the socket handle back, which libuv returns only in the close callback.
  downstream_.reading = false;  // that socket's read goes with it
  retry_after_close_ = attempts_ <= service_.config().retries;
  close_handle(reinterpret_cast<uv_handle_t*>(&backend_socket_), false);
  if (!retry_after_close_) turn_away(RejectReason::no_backend, "connect_failed");
}

void Session::on_connected() {
  uv_timer_stop(&timer_);
  phase_ = Phase::splicing;
  connected_ns_ = uv_hrtime();
  backend_->stats.connect_time.observe(static_cast<double>(connected_ns_ - connect_started_ns_) * 1e-9);
  service_.client_connect(*backend_, /*passed=*/true, "", connected_ns_);
  uv_tcp_nodelay(&backend_socket_, 1);

  Chunk* chunk = upstream_.waiting_head;
  upstream_.waiting_head = upstream_.waiting_tail = nullptr;
  while (chunk != nullptr && phase_ == Phase::splicing) {
    Chunk* next = chunk->next;
    chunk->next = nullptr;
    write(upstream_, chunk);
    chunk = next;
  }
  while (chunk != nullptr) {  // a write failed and closed the session: drop the rest
    Chunk* next = chunk->next;
    resources_.buffers.give_back(chunk);
    chunk = next;
  }
  if (phase_ != Phase::splicing) return;

  if (upstream_.eof) {
    pass_on_eof(upstream_);
  } else if (!upstream_.reading && upstream_.unsent_bytes <= kLowWatermarkBytes) {
    start_reading(upstream_);
  }
  start_reading(downstream_);
  last_activity_ms_ = uv_now(resources_.loop);
  arm_timer(static_cast<std::uint64_t>(listener_.config().idle_timeout.count()));
}

// --- splicing ---------------------------------------------------------------------------------

void Session::start_reading(Direction& direction) {
  if (direction.reading || direction.eof || phase_ == Phase::closing) return;
  direction.reading = true;
  uv_read_start(
      direction.source,
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        Session* self = owner_of(handle->data);
        Direction& direction = self->direction_from(reinterpret_cast<uv_stream_t*>(handle));
        if (direction.transfer == Transfer::splice) {
          // No buffer: libuv reads nothing and reports UV_ENOBUFS, and the bytes are spliced.
          *buf = uv_buf_init(nullptr, 0);
          return;
        }
        direction.reading_into = self->resources_.buffers.take();
        *buf = uv_buf_init(direction.reading_into->data, Chunk::kCapacity);
      },
      [](uv_stream_t* source, ssize_t nread, const uv_buf_t*) {
        Session* self = owner_of(source->data);
        self->on_read(self->direction_from(source), nread);
      });
}

void Session::stop_reading(Direction& direction) {
  if (!direction.reading || phase_ == Phase::closing) return;
  direction.reading = false;
  uv_read_stop(direction.source);
}

void Session::on_read(Direction& direction, ssize_t nread) {
  if (nread == UV_ENOBUFS && direction.transfer == Transfer::splice) {
    on_readable_for_splice(direction);
    return;
  }
  Chunk* chunk = direction.reading_into;
  direction.reading_into = nullptr;
  if (nread > 0) {
    chunk->length = static_cast<std::size_t>(nread);
    // A full chunk says more is coming: bulk, worth the pipe's two extra descriptors.
    if (chunk->length == Chunk::kCapacity && !direction.splice_refused) direction.splice_wanted = true;
    direction.bytes_total += chunk->length;
    if (&direction == &downstream_) backend_->stats.received_bytes_total += chunk->length;
    direction.unsent_bytes += chunk->length;
    last_activity_ms_ = uv_now(resources_.loop);
    if (phase_ == Phase::splicing) {
      write(direction, chunk);
    } else {
      (direction.waiting_tail != nullptr ? direction.waiting_tail->next : direction.waiting_head) = chunk;
      direction.waiting_tail = chunk;
    }
    if (direction.unsent_bytes > kHighWatermarkBytes) {
      stop_reading(direction);
      if (phase_ == Phase::waiting) watch_waiting_client();
    }
    switch_to_splice_when_idle(direction);
    return;
  }
  if (chunk != nullptr) resources_.buffers.give_back(chunk);
  if (nread == 0) return;  // nothing this time (EAGAIN)
  if (nread == UV_EOF && !was_reset(direction.source)) {
    direction.reading = false;  // libuv stops reading at EOF by itself
    on_source_eof(direction);
    return;
  }
  if (phase_ == Phase::waiting) {
    // A client that gives up while queued leaves the queue at once.
    turn_away(RejectReason::abandoned, "abandoned");
    return;
  }
  // The source failed (ECONNRESET and the like): pass it on to the other side as a reset.
  finish("reset", tcp(direction.sink));
}

void Session::on_source_eof(Direction& direction) {
  direction.eof = true;
  if (end_reason_ == nullptr) end_reason_ = &direction == &upstream_ ? "client_close" : "backend_close";
  if (phase_ == Phase::splicing) pass_on_eof(direction);
  if (phase_ == Phase::waiting && &direction == &upstream_) {
    spdlog::debug("queued_client_eof listener={} service={}", listener_.config().name, service_.name());
    watch_waiting_client();
  }
}

void Session::write(Direction& direction, Chunk* chunk) {
  if (&direction == &upstream_) backend_->stats.sent_bytes_total += chunk->length;
  uv_buf_t buf = uv_buf_init(chunk->data, static_cast<unsigned>(chunk->length));
  if (uv_stream_get_write_queue_size(direction.sink) == 0) {
    // Nothing queued: most writes complete here, without a request or a callback.
    int written = uv_try_write(direction.sink, &buf, 1);
    if (written == static_cast<int>(chunk->length)) {
      direction.unsent_bytes -= chunk->length;
      resources_.buffers.give_back(chunk);
      return;
    }
    if (written > 0) {
      direction.unsent_bytes -= static_cast<std::size_t>(written);
      chunk->length -= static_cast<std::size_t>(written);
      buf = uv_buf_init(chunk->data + written, static_cast<unsigned>(chunk->length));
    } else if (written != UV_EAGAIN) {
      on_written(direction, chunk, written);
      return;
    }
  }
  chunk->write_req.data = this;
  int rc = uv_write(&chunk->write_req, direction.sink, &buf, 1, [](uv_write_t* req, int status) {
    Session* self = owner_of(req->data);
    Chunk* written = reinterpret_cast<Chunk*>(reinterpret_cast<char*>(req) - offsetof(Chunk, write_req));
    self->on_written(req->handle == self->upstream_.sink ? self->upstream_ : self->downstream_,
                     written, status);
  });
  if (rc != 0) on_written(direction, chunk, rc);
}

void Session::on_written(Direction& direction, Chunk* chunk, int status) {
  direction.unsent_bytes -= chunk->length;
  resources_.buffers.give_back(chunk);
  if (status == UV_ECANCELED) return;  // the session is closing
  if (status < 0) {
    // The sink's peer is gone: tell the source's peer with a reset rather than a clean close.
    finish("reset", tcp(direction.source));
    return;
  }
  switch_to_splice_when_idle(direction);
  if (!direction.reading && phase_ == Phase::splicing && direction.unsent_bytes <= kLowWatermarkBytes) {
    start_reading(direction);
  }
}

void Session::pass_on_eof(Direction& direction) {
  if (direction.shutdown_started) return;
  direction.shutdown_started = true;
  if (uv_stream_get_write_queue_size(direction.sink) == 0 && direction.pump.buffered_bytes() == 0) {
    // Every byte is already with the kernel (the usual case): the FIN can follow at once. This
    // spares uv_shutdown's writable watch, its extra loop turn and two epoll_ctl calls.
    const int fd = descriptor_of(direction.sink);
    int status = UV_EBADF;
    if (fd >= 0) status = ::shutdown(fd, SHUT_WR) == 0 ? 0 : uv_translate_sys_error(errno);
    on_shutdown(direction, status);
    return;
  }
  direction.shutdown_req.data = this;
  // uv_shutdown waits for the pending writes, so the FIN follows the last byte.
  int rc = uv_shutdown(&direction.shutdown_req, direction.sink, [](uv_shutdown_t* req, int status) {
    Session* self = owner_of(req->data);
    self->on_shutdown(req == &self->upstream_.shutdown_req ? self->upstream_ : self->downstream_,
                      status);
  });
  if (rc != 0) on_shutdown(direction, rc);
}

void Session::on_shutdown(Direction& direction, int status) {
  if (status == UV_ECANCELED) return;
  if (status < 0) {
    finish("reset", &direction == &upstream_ ? &client_ : &backend_socket_);
    return;
  }
  direction.done = true;
  if (upstream_.done && downstream_.done) finish(end_reason_);
}

// --- zero-copy: splice(2) through a kernel pipe -------------------------------------------------

void Session::switch_to_splice_when_idle(Direction& direction) {
  // Only with nothing in flight, so that no spliced byte can overtake a queued chunk.
  if (!direction.splice_wanted || direction.transfer == Transfer::splice || phase_ != Phase::splicing ||
      direction.unsent_bytes != 0 || direction.waiting_head != nullptr || !listener_.config().splice) {
    return;
  }
  direction.splice_wanted = false;
  direction.transfer = Transfer::splice;
}

void Session::on_readable_for_splice(Direction& direction) {
  const SplicePump::Result result = direction.pump.pump(descriptor_of(direction.source), descriptor_of(direction.sink),
                                                        resources_.pipes, resources_.descriptor_ceiling);
  count_spliced(direction, result);
  // Readable, yet splice found nothing: urgent data (which splice stops at) or a stale event.
  if (result.outcome == SplicePump::Outcome::idle && result.bytes_in == 0) {
    read_one_chunk(direction);
    return;
  }
  act_on(direction, result);
}

void Session::on_sink_writable(Direction& direction, int status) {
  const SplicePump::Result result = direction.pump.drain(descriptor_of(direction.sink), resources_.pipes);
  count_spliced(direction, result);
  if (result.outcome == SplicePump::Outcome::sink_blocked) {
    // libuv stops a poll that reports an error; a sink that failed without splice saying so is
    // treated as gone.
    if (status < 0) finish("reset", tcp(direction.source));
    return;
  }
  close_watch(direction.sink_watch);
  act_on(direction, result);
  if (result.outcome == SplicePump::Outcome::idle) start_reading(direction);
}

void Session::count_spliced(Direction& direction, const SplicePump::Result& result) {
  // As the chunk path counts a read and a write; bytes in the pipe are unsent bytes.
  if (result.bytes_in > 0) {
    direction.bytes_total += result.bytes_in;
    direction.unsent_bytes += result.bytes_in;
    if (&direction == &downstream_) backend_->stats.received_bytes_total += result.bytes_in;
    last_activity_ms_ = uv_now(resources_.loop);
  }
  direction.unsent_bytes -= result.bytes_out;
  if (&direction == &upstream_) backend_->stats.sent_bytes_total += result.bytes_out;
  listener_.count_spliced(result.bytes_out);
}

void Session::act_on(Direction& direction, const SplicePump::Result& result) {
  using Outcome = SplicePump::Outcome;
  switch (result.outcome) {
    case Outcome::idle:
      return;
    case Outcome::sink_blocked:
      // The pipe is the buffer now (at most its 256 KiB): read no more until the sink took it all.
      stop_reading(direction);
      if (direction.sink_watch == nullptr) {
        direction.sink_watch = open_watch(direction.sink, UV_WRITABLE, [](uv_poll_t* poll, int status, int) {
          Session* self = owner_of(poll->data);
          const bool upstream = self->upstream_.sink_watch != nullptr && &self->upstream_.sink_watch->poll == poll;
          self->on_sink_writable(upstream ? self->upstream_ : self->downstream_, status);
        }, resources_.descriptor_ceiling);
      }
      if (direction.sink_watch == nullptr) spill_pipe(direction);
      return;
    case Outcome::source_eof:
      if (was_reset(direction.source)) {
        finish("reset", tcp(direction.sink));
        return;
      }
      stop_reading(direction);  // libuv did not see the EOF, so it would keep reporting it
      on_source_eof(direction);
      return;
    case Outcome::source_failed:
      finish("reset", tcp(direction.sink));
      return;
    case Outcome::sink_failed:
      finish("reset", tcp(direction.source));
      return;
    case Outcome::no_pipe:
      read_one_chunk(direction);
      return;
    case Outcome::unsupported:
      spdlog::debug("splice refused listener={} error={}: read/write for this direction", listener_.config().name,
                    result.error);
      direction.splice_refused = true;
      direction.splice_wanted = false;
      if (direction.pump.buffered_bytes() > 0) {
        stop_reading(direction);
        spill_pipe(direction);
      } else {
        direction.transfer = Transfer::chunks;
      }
      return;
  }
}

void Session::spill_pipe(Direction& direction) {
  // The pipe's bytes join libuv's write queue in order, as read bytes do; they stay counted as
  // unsent until written. Splice resumes once everything is written.
  direction.transfer = Transfer::chunks;
  direction.splice_wanted = !direction.splice_refused;
  while (direction.pump.buffered_bytes() > 0 && phase_ == Phase::splicing) {
    Chunk* chunk = resources_.buffers.take();
    chunk->length = direction.pump.copy_out(chunk->data, Chunk::kCapacity, resources_.pipes);
    if (chunk->length == 0) {  // our own pipe unreadable: the stream cannot be kept whole
      resources_.buffers.give_back(chunk);
      finish("reset", tcp(direction.source));
      return;
    }
    write(direction, chunk);
  }
  if (phase_ == Phase::splicing && direction.unsent_bytes <= kLowWatermarkBytes) start_reading(direction);
}

void Session::read_one_chunk(Direction& direction) {
  direction.transfer = Transfer::chunks;
  direction.splice_wanted = true;
}

void Session::on_timer() {
  if (phase_ == Phase::waiting) {
    // Waiting out the timeout with no backend up is a client no backend could take.
    if (service_.any_up()) {
      turn_away(RejectReason::queue_timeout, "queue_timeout");
    } else {
      turn_away(RejectReason::no_backend, "no_backend");
    }
    return;
  }
  if (phase_ == Phase::connecting) {
    on_connect_failed("timeout");
    return;
  }
  if (phase_ != Phase::splicing) return;
  // Activity only stamps a time; the timer is re-armed here, not on every read.
  const std::uint64_t idle_ms = static_cast<std::uint64_t>(listener_.config().idle_timeout.count());
  const std::uint64_t quiet_ms = uv_now(resources_.loop) - last_activity_ms_;
  if (quiet_ms >= idle_ms) {
    finish("idle_timeout");
    return;
  }
  arm_timer(idle_ms - quiet_ms);
}

// --- teardown ---------------------------------------------------------------------------------

void Session::finish(const char* reason, uv_tcp_t* reset_socket) {
  if (phase_ == Phase::closing) return;
  phase_ = Phase::closing;
  end_reason_ = reason;
  service_.leave_queue(*this, uv_hrtime());
  stop_watching_client();
  close_watch(upstream_.sink_watch);
  close_watch(downstream_.sink_watch);
  close_handle(reinterpret_cast<uv_handle_t*>(&timer_), false);
  close_handle(reinterpret_cast<uv_handle_t*>(&client_), reset_socket == &client_);
  if (backend_open_) {
    close_handle(reinterpret_cast<uv_handle_t*>(&backend_socket_), reset_socket == &backend_socket_);
  }
}

void Session::close_handle(uv_handle_t* handle, bool reset) {
  if (uv_is_closing(handle)) return;
  auto on_closed = [](uv_handle_t* closed) { owner_of(closed->data)->on_handle_closed(closed); };
  // A reset needs a socket and no shutdown in progress; otherwise fall back to a plain close.
  if (reset && uv_tcp_close_reset(reinterpret_cast<uv_tcp_t*>(handle), on_closed) == 0) return;
  uv_close(handle, on_closed);
}

void Session::on_handle_closed(uv_handle_t* handle) {
  --open_handles_;
  if (handle == reinterpret_cast<uv_handle_t*>(&backend_socket_)) {
    backend_open_ = false;
    // The slot is held until the backend socket is closed: that is the backend's real occupancy.
    const std::uint64_t now = uv_hrtime();
    if (connected_ns_ != 0) backend_->stats.session_time.observe(static_cast<double>(now - connected_ns_) * 1e-9);
    Backend& released = *backend_;
    backend_ = nullptr;
    service_.release(released, now);
    if (retry_after_close_ && phase_ != Phase::closing) {
      retry_after_close_ = false;
      ask_for_backend();
      return;
    }
  }
  if (open_handles_ == 0) delete this;
}

}  // namespace sluice
