// HttpSession: the client's side (reading requests, answering errors) and the session's life.
// The backend's side of each request is in http_exchange.cpp.

#include "sluice/proxy/http_session.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/proxy/backend_side.hpp"
#include "sluice/proxy/buffer_pool.hpp"
#include "sluice/proxy/mover.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

namespace {

// The client's IP without the port, for X-Forwarded-For and Forwarded.
std::string client_ip(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) inet_ntop(AF_INET, &as_ipv4(address)->sin_addr, text, sizeof text);
  if (address->sa_family == AF_INET6) inet_ntop(AF_INET6, &as_ipv6(address)->sin6_addr, text, sizeof text);
  return text;
}

}  // namespace

HttpSession::HttpSession(Listener& listener)
    : listener_(listener),
      service_(listener.service()),
      resources_(listener.resources()),
      http_(listener.config().http),
      stats_(listener),
      request_parser_(http::Kind::request, request_reader_, http::Limits{http_.max_header_bytes}),
      response_parser_(http::Kind::response, response_reader_, http::Limits{64 * 1024}) {
  resources_.link(this);
  listener_.session_opened();
  service_.attach();
  service_.dispatch_later_on(resources_.loop);
}

HttpSession::~HttpSession() {
  for (StringWrite* open : open_) {
    if (open != nullptr) resources_.writes.give_back(open);
  }
  listener_.session_closed();
  service_.detach();
  resources_.unlink(this);
}

HttpSession* HttpSession::accept(Listener& listener, int client_fd) {
  auto* session = new HttpSession(listener);
  uv_loop_t* loop = session->resources_.loop;
  int rc = session->timer_.init(loop, session, [](void* self) { static_cast<HttpSession*>(self)->on_timer(); });
  if (rc == 0) {
    rc = session->client_.open(loop, client_fd);
  } else {
    ::close(client_fd);
  }
  session->client_open_ = session->client_.is_open();
  if (rc != 0) {
    spdlog::warn("accept failed listener={} error={}", listener.config().name, uv_err_name(rc));
    session->finish("accept_failed");
    return nullptr;
  }
  session->client_.socket()->data = session;
  // The address is asked now when it will be needed: the socket may be gone by the log line.
  if (listener.config().http.forwarded || AccessLogObserver::enabled()) session->client_address();
  return session;
}

void HttpSession::start() {
  arm_timer(static_cast<std::uint64_t>(http_.request_timeout.count()));
  update_reading();
}

void HttpSession::refuse(const char* reason) {
  log_request(reason);
  finish(reason);
}

void HttpSession::drain() {
  draining_ = true;
  if (state_ == State::reading && client_in_.empty() && request_parser_.idle()) finish("shutdown");
}

// --- reading the client -----------------------------------------------------------------------

void HttpSession::update_reading() {
  // Read unless the client ended, its bytes wait unparsed beyond the watermark, or the backend
  // has more than the watermark unsent (backpressure on a request body).
  const bool want = state_ != State::closing && !client_eof_ && client_in_.size() < Mover::kHighWatermarkBytes &&
                    backend_unsent_ < Mover::kHighWatermarkBytes;
  if (want == client_reading_) return;
  client_reading_ = want;
  if (!want) {
    if (int rc = uv_read_stop(client_.stream()); rc != 0) spdlog::debug("client read stop: {}", uv_err_name(rc));
    return;
  }
  const int rc = uv_read_start(
      client_.stream(),
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        auto* self = owner<HttpSession>(handle);
        if (self->client_chunk_ == nullptr) self->client_chunk_ = self->resources_.buffers.take();
        *buf = uv_buf_init(self->client_chunk_->data, static_cast<unsigned>(Chunk::kCapacity));
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
        owner<HttpSession>(stream)->on_client_read(nread);
      });
  if (rc != 0) finish("reset");
}

void HttpSession::on_client_read(ssize_t nread) {
  if (nread > 0) {
    last_activity_ms_ = uv_now(resources_.loop);
    client_in_.append(client_chunk_->data, static_cast<std::size_t>(nread));
  }
  // Given back at once: an idle connection holds no buffer.
  if (client_chunk_ != nullptr) resources_.buffers.give_back(std::exchange(client_chunk_, nullptr));
  if (nread == UV_EOF) {
    client_eof_ = true;
    update_reading();
    // Between requests, an EOF ends the connection; during one, the response is still sent.
    if (state_ == State::reading && client_in_.empty() && request_parser_.idle()) {
      finish("client_close");
      return;
    }
    if (state_ == State::reading) {
      pump_request();
      if (state_ == State::reading) answer_error(HttpError::bad_request, 400, "bad_request", true);
      return;
    }
    if (state_ == State::tunnel) tunnel_eof(/*from_client=*/true);
    return;
  }
  if (nread < 0) {
    finish("reset", true);
    return;
  }
  if (state_ == State::tunnel) {
    write_taking(false, client_in_);
    update_reading();
    return;
  }
  pump_request();
}

void HttpSession::pump_request() {
  while (!client_in_.empty() || head_pending_) {
    const bool body_flowing = state_ == State::exchanging && !request_done_ &&
                              backend_unsent_ < Mover::kHighWatermarkBytes;
    if (head_pending_) {
      begin_request();
      if (state_ == State::closing) return;
      continue;
    }
    if (state_ != State::reading && !body_flowing) break;
    const http::Fed fed = request_parser_.feed(client_in_);
    client_in_.erase(0, fed.consumed);
    if (fed.stop == http::Stop::error) {
      const bool too_large = request_parser_.error().kind == http::ErrorKind::head_too_large;
      spdlog::debug("bad_request listener={} error={}", listener_.config().name, request_parser_.error().reason);
      answer_error(too_large ? HttpError::header_too_large : HttpError::bad_request, too_large ? 431 : 400,
                   too_large ? "header_too_large" : "bad_request", true);
      return;
    }
    if (fed.stop == http::Stop::upgrade) {
      request_done_ = true;  // what follows is another protocol: tunnelled after a 101
      continue;
    }
    if (fed.stop == http::Stop::need_more) break;
  }
  update_reading();
}

http::Action HttpSession::RequestReader::on_head(const http::MessageHead& head) {
  HttpSession& s = session;
  s.request_ = head;
  s.head_pending_ = true;
  s.request_done_ = false;
  s.body_started_ = false;
  s.head_ns_ = uv_hrtime();
  s.listener_.count_http_request();
  // A bodiless request is complete with its head; llhttp ends it in the same call.
  return head.framing == http::Framing::none ? http::Action::proceed : http::Action::pause;
}

void HttpSession::RequestReader::on_body(std::string_view bytes) {
  HttpSession& s = session;
  s.body_started_ = true;
  if (s.request_.framing != http::Framing::chunked) {
    s.write(false, bytes);
  } else if (std::string* out = s.open_write(false)) {
    http::append_chunk(*out, bytes);
    s.send(false);
  }
}

void HttpSession::RequestReader::on_message_end(const std::vector<http::Header>& trailers) {
  HttpSession& s = session;
  s.request_done_ = true;
  if (s.request_.framing == http::Framing::chunked) s.write(false, http::last_chunk(trailers));
}

void HttpSession::begin_request() {
  head_pending_ = false;
  timer_.stop();
  client_keep_alive_ = request_.keep_alive && !request_.upgrade;
  arrived_ns = head_ns_;
  dispatched_ns = 0;
  tried_.clear();
  attempts_ = 0;
  retried_ = false;
  response_bytes_ = response_started_ = response_done_ = false;
  status_ = 0;
  forwarding_ = http::RequestForwarding{};
  forwarding_.upgrade = request_.upgrade;
  forwarding_.forwarded = http_.forwarded;
  if (http_.forwarded) forwarding_.client_address = client_ip(client_.address());
  state_ = State::queued;
  ask_for_backend();
}

void HttpSession::ask_for_backend() {
  const Service::Arrival arrival = service_.arrive(*this, uv_hrtime(), tried_);
  switch (arrival.outcome) {
    case Service::Outcome::dispatched:
      use_backend(*arrival.backend);
      return;
    case Service::Outcome::queued:
      arm_timer(static_cast<std::uint64_t>(service_.config().queue.timeout.count()));
      return;
    case Service::Outcome::queue_full:
      stats_.rejected(RejectReason::queue_full);
      answer_error(HttpError::queue_full, 503, "queue_full", false);
      return;
    case Service::Outcome::no_backend:
      stats_.rejected(RejectReason::no_backend);
      if (attempts_ == 0) {
        answer_error(HttpError::no_backend, 503, "no_backend", false);
      } else {
        answer_error(HttpError::connect_failed, 503, "connect_failed", false);
      }
      return;
  }
}

void HttpSession::on_dispatched(Backend& backend) {
  timer_.stop();
  use_backend(backend);
}

// --- errors, timers and the end ---------------------------------------------------------------

void HttpSession::answer_error(HttpError error, int status, const char* end_reason, bool close) {
  listener_.count_http_error(error);
  service_.leave_queue(*this, uv_hrtime());
  status_ = status;
  // A request whose body was not read cannot be followed by another on this connection.
  close = close || !request_done_ || !client_keep_alive_ || draining_ || client_eof_;
  // A HEAD's answer has no body, ours neither: the client would read it as the next response.
  write(true, http::error_response(status, close, status == 503 ? 1 : 0, request_.method == "HEAD"));
  log_request(end_reason);
  if (close) {
    state_ = State::closing;  // finish() once the answer is written (on_written)
    update_reading();
    if (client_unsent_ == 0) finish(end_reason);
    return;
  }
  ++served_;
  next_request();
}

void HttpSession::arm_timer(std::uint64_t timeout_ms) {
  const int rc = timer_.start(timeout_ms);
  if (rc != 0) spdlog::warn("http session timer not started: {}", uv_err_name(rc));
}

void HttpSession::on_timer() {
  switch (state_) {
    case State::reading:
      if (client_in_.empty() && request_parser_.idle() && served_ > 0) {
        finish("keepalive_timeout");  // an idle keep-alive connection: closed without a word
      } else {
        answer_error(HttpError::request_timeout, 408, "request_timeout", true);
      }
      return;
    case State::queued:
      if (service_.any_up()) {
        stats_.rejected(RejectReason::queue_timeout);
        answer_error(HttpError::queue_timeout, 503, "queue_timeout", false);
      } else {
        stats_.rejected(RejectReason::no_backend);
        answer_error(HttpError::no_backend, 503, "no_backend", false);
      }
      return;
    case State::connecting:
      if (is_local_connect_error(connect_error_)) {
        connect_local_error(std::exchange(connect_error_, 0));
      } else {
        connect_failed(connect_error_ != 0 ? uv_err_name(std::exchange(connect_error_, 0)) : "timeout");
      }
      return;
    case State::exchanging:
    case State::tunnel: {
      if (!response_started_ && state_ == State::exchanging) {
        backend_failed("response_timeout");
        return;
      }
      const auto idle_ms = static_cast<std::uint64_t>(listener_.config().idle_timeout.count());
      const std::uint64_t quiet_ms = uv_now(resources_.loop) - last_activity_ms_;
      if (quiet_ms >= idle_ms) {
        finish("idle_timeout", true);
      } else {
        arm_timer(idle_ms - quiet_ms);
      }
      return;
    }
    case State::closing:
      return;
  }
}

void HttpSession::next_request() {
  state_ = State::reading;
  // Nothing of the last request may describe the next one (an access line for a 400 before its head).
  request_.clear();
  status_ = 0;
  head_ns_ = 0;
  if (client_eof_ && client_in_.empty()) {
    finish("client_close");
    return;
  }
  arm_timer(static_cast<std::uint64_t>(http_.request_timeout.count()));
  pump_request();  // a pipelined request may be waiting
}

void HttpSession::finish(const char* reason, bool reset_client) {
  if (state_ == State::closing && !client_open_ && connections_attached_ == 0) return;
  service_.leave_queue(*this, uv_hrtime());
  if (connection_ != nullptr) {
    BackendConnection* connection = std::exchange(connection_, nullptr);
    connection->close(true);  // mid-exchange: the backend hears a reset, not a clean end
  }
  release_slot();
  state_ = State::closing;
  timer_.close();
  if (client_open_) {
    spdlog::trace("http session end listener={} reason={}", listener_.config().name, reason);
    client_.close(reset_client, this, [](uv_handle_t* handle) {
      auto* self = owner<HttpSession>(handle);
      self->client_.closed();
      self->client_open_ = false;
      self->free_when_closed();
    });
  }
  free_when_closed();
}

void HttpSession::free_when_closed() {
  if (state_ == State::closing && !client_open_ && connections_attached_ == 0) delete this;
}

}  // namespace sluice
