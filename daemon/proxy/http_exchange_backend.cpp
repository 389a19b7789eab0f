// HttpExchange: the backend's side of one request. A slot, a pooled or new connection (connect
// failures retry other backends), the rebuilt request head out, the response read (under the
// front's or the buffer's watermark), a backend failing, the timers, and the end: the connection
// back to the pool or closed, the slot released.

#include <spdlog/spdlog.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/log/log_event.hpp"
#include "sluice/proxy/backend_side.hpp"
#include "sluice/proxy/http_exchange.hpp"
#include "sluice/proxy/http_session.hpp"
#include "sluice/proxy/mover.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

// --- a backend connection -----------------------------------------------------------------------

void HttpExchange::use_backend(Backend& backend) {
  slot_ = &backend;
  logged_backend_.reset(&backend);
  state_ = State::connecting;
  if (BackendConnection* pooled = session_.resources_.backend_pool.take(backend, session_)) {
    ++session_.connections_attached_;
    connection_ = pooled;
    connect_ns_ = 0;
    start_exchange();
    return;
  }
  connect_new(backend);
}

void HttpExchange::connect_new(Backend& backend) {
  ++attempts_;
  state_ = State::connecting;
  int error = 0;
  connection_ =
      BackendConnection::connect(session_.resources_.loop, backend, session_, &HttpExchange::on_connect, error);
  if (connection_ != nullptr) ++session_.connections_attached_;
  // A failure at once is reported from the timer, on a later loop turn: a retry must not reach
  // back into the service while it may be dispatching us.
  if (connection_ == nullptr) connect_error_ = error;
  arm_timer(connection_ == nullptr ? 0 : static_cast<std::uint64_t>(session_.service_.config().connect_timeout.count()));
}

void HttpExchange::on_connect(BackendConnection& connection, int status) {
  auto* session = static_cast<HttpSession*>(connection.user());
  HttpExchange* self = session->exchange_on(&connection);
  if (self == nullptr || self->state_ != State::connecting) return;
  if (status < 0) {
    self->connect_failed(uv_err_name(status));
    return;
  }
  self->connect_ns_ = connection.connected_ns() - connection.connect_started_ns();
  session->stats_.connected(*self->slot_, self->connect_ns_);
  session->service_.client_connect(*self->slot_, /*passed=*/true, "", connection.connected_ns());
  self->start_exchange();
}

void HttpExchange::connect_failed(const char* error) {
  Backend& backend = *slot_;
  Service& service = session_.service_;
  session_.stats_.connect_failed(backend);
  log_event(spdlog::level::warn, "connect_failed",
            {{"service", service.name()},
             {"backend", backend.config.name},
             {"address", backend.address_text},
             {"error", error},
             {"attempt", attempts_}});
  service.mark_tried(tried_, backend);
  service.client_connect(backend, /*passed=*/false, error, uv_hrtime());
  drop_connection(false);
  release_slot();
  if (attempts_ <= service.config().retries) {
    state_ = State::queued;
    ask_for_backend();
    return;
  }
  session_.stats_.rejected(RejectReason::no_backend);
  answer_error(HttpError::connect_failed, 503, "connect_failed", false);
}

void HttpExchange::connect_local_error(int error) {
  // The proxy could not open a socket: counted against the listener, never the backend, as a TCP
  // session does.
  log_event(spdlog::level::warn, "connect_local_error",
            {{"service", session_.service_.name()}, {"backend", slot_->config.name}, {"error", uv_err_name(error)}});
  release_slot();
  session_.stats_.rejected(RejectReason::max_connections);
  answer_error(HttpError::local_error, 503, "local_error", false);
}

void HttpExchange::drop_connection(bool reset) {
  if (connection_ == nullptr) return;
  // Its writes still queued come back cancelled to a session that no longer finds this exchange.
  backend_unsent_ = 0;
  backend_reading_ = false;
  std::exchange(connection_, nullptr)->close(reset);
}

// --- the exchange ------------------------------------------------------------------------------

void HttpExchange::start_exchange() {
  state_ = State::exchanging;
  exchange_ns_ = uv_hrtime();
  response_parser_->expect_response_to_head(request_.method == "HEAD");
  // Built for the backend it goes to: an HTTP/1.0 request without Host may get that backend's address.
  if (!request_.header("Host")) forwarding_.host = slot_->config.address.to_string();
  if (const ProxyVersion version = slot_->config.send_proxy; version != ProxyVersion::off) {
    // Never pooled (end_backend), so this connection is new: its first bytes are the header.
    proxy_protocol::Buffer header;
    const std::size_t length =
        proxy_protocol::write_header(version, session_.client_.address(), session_.client_.local_address(), header);
    write_backend(std::string_view(header.data(), length));
  }
  write_backend(http::request_head(request_, forwarding_));
  arm_timer(static_cast<std::uint64_t>(session_.http_.response_timeout.count()));
  update_backend_reading();
  session_.pump_request();  // the body, as far as the watermark lets it
}

void HttpExchange::update_backend_reading() {
  // A 101 ends its response (response_done_) but the tunnel after it reads on.
  const bool want = connection_ != nullptr &&
                    ((state_ == State::exchanging && !response_done_) ||
                     (state_ == State::tunnel && !session_.backend_eof_)) &&
                    has_room() && backend_in_.size() < Mover::kHighWatermarkBytes;
  if (want == backend_reading_) return;
  backend_reading_ = want;
  if (connection_ != nullptr && connection_->read(want) != 0) backend_failed("read_failed");
}

uv_buf_t HttpExchange::backend_read_buffer() {
  if (backend_chunk_ == nullptr) backend_chunk_ = session_.resources_.buffers.take();
  return uv_buf_init(backend_chunk_->data, static_cast<unsigned>(Chunk::kCapacity));
}

void HttpExchange::on_backend_read(ssize_t nread) {
  if (nread > 0) {
    session_.last_activity_ms_ = uv_now(session_.resources_.loop);
    response_bytes_ = true;
    backend_in_.append(backend_chunk_->data, static_cast<std::size_t>(nread));
    if (slot_ != nullptr) session_.stats_.received_from_backend(*slot_, static_cast<std::size_t>(nread));
  }
  if (backend_chunk_ != nullptr) session_.resources_.buffers.give_back(std::exchange(backend_chunk_, nullptr));
  if (nread == 0) return;
  if (state_ == State::tunnel) {
    if (nread == UV_EOF) {
      session_.tunnel_eof(/*from_client=*/false);
    } else if (nread < 0) {
      session_.finish("reset", true);
      return;
    }
    session_.write_taking(backend_in_);
    update_backend_reading();
    return;
  }
  if (nread < 0) {
    backend_failed(nread == UV_EOF ? "backend_close" : "backend_reset");
    return;
  }
  pump_response();
}

void HttpExchange::on_backend_written(std::size_t bytes, int status) {
  backend_unsent_ -= bytes;
  if (status < 0 && status != UV_ECANCELED) {
    if (state_ == State::tunnel) {
      session_.finish("reset", true);
    } else {
      backend_failed("backend_reset");
    }
    return;
  }
  if (state_ == State::tunnel) {
    session_.update_reading();
    update_backend_reading();
    return;
  }
  session_.pump_request();  // a body waiting for the watermark
  if (state_ != State::exchanging) return;
  update_backend_reading();
  maybe_end();
}

void HttpExchange::backend_failed(const char* why) {
  if (state_ != State::exchanging) return;
  const bool closed = std::string_view(why) == "backend_close";
  if (closed && response_started_ && !response_done_) {
    // A body delimited by the close ends here.
    if (response_parser_->finish().stop == http::Stop::message_end) {
      response_keep_alive_ = false;
      maybe_end();
      return;
    }
  }
  const bool retry_safe = connection_ != nullptr && connection_->reused() && !response_bytes_ && !retried_ &&
                          (closed || std::string_view(why) == "backend_reset") &&
                          (request_.framing == http::Framing::none || (!body_started_ && !request_done_));
  drop_connection(true);
  if (retry_safe) {
    // The backend had closed the pooled connection before our request reached it.
    retried_ = true;
    log_event(spdlog::level::debug, "retry",
              {{"service", session_.service_.name()}, {"backend", slot_->config.name}, {"reason", why}});
    connect_new(*slot_);
    return;
  }
  log_event(spdlog::level::debug, "backend_failed",
            {{"service", session_.service_.name()}, {"reason", why}, {"response_started", response_started_}});
  release_slot();
  if (!response_started_) {
    const bool timeout = std::string_view(why) == "response_timeout";
    answer_error(timeout ? HttpError::gateway_timeout : HttpError::bad_gateway, timeout ? 504 : 502,
                 timeout ? "response_timeout" : why, true);
    return;
  }
  session_.listener_.count_http_error(HttpError::response_aborted);
  // Never a short body that looks complete: the client's connection is reset (a later exchange's
  // in its turn, after the answers before it).
  if (is_front()) {
    log_request("response_aborted");
    session_.finish("response_aborted", true);
    return;
  }
  state_ = State::answered;
  reset_after_ = true;
  held_.clear();
  stop_timer();
  session_.cut_after(*this);
  maybe_end();
}

void HttpExchange::end_backend(bool reuse) {
  stop_timer();
  if (connection_ != nullptr) {
    BackendConnection* connection = std::exchange(connection_, nullptr);
    backend_reading_ = false;  // the pool reads it on, or it closes
    // A connection that began with a client's PROXY header is that client's: never pooled (nor one
    // whose backend, and so whether it sent a header, is no longer known).
    if (reuse && slot_ != nullptr && slot_->config.send_proxy == ProxyVersion::off) {
      --session_.connections_attached_;
      session_.resources_.backend_pool.put(connection, session_.http_.pool_max_idle, session_.http_.pool_idle_timeout);
    } else {
      connection->close(false);
    }
  }
  release_slot(/*keep_for_log=*/true);
}

void HttpExchange::release_slot(bool keep_for_log) {
  if (!keep_for_log) logged_backend_.reset(nullptr);
  if (slot_ == nullptr) return;
  Backend& released = *std::exchange(slot_, nullptr);
  const std::uint64_t now = uv_hrtime();
  // The slot time: the request's service time at the backend, from its head to its response's end.
  if (exchange_ns_ != 0) session_.stats_.backend_closed(released, now - exchange_ns_);
  exchange_ns_ = 0;
  session_.service_.release(released, now, this);
}

// --- timers -------------------------------------------------------------------------------------

void HttpExchange::arm_timer(std::uint64_t timeout_ms) {
  if (const int rc = timer_.start(timeout_ms); rc != 0) spdlog::warn("http exchange timer not started: {}", uv_err_name(rc));
}

void HttpExchange::stop_timer() { timer_.stop(); }

void HttpExchange::on_timer() {
  switch (state_) {
    case State::queued:
      if (session_.service_.any_up()) {
        session_.stats_.rejected(RejectReason::queue_timeout);
        answer_error(HttpError::queue_timeout, 503, "queue_timeout", false);
      } else {
        session_.stats_.rejected(RejectReason::no_backend);
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
      const auto idle_ms = static_cast<std::uint64_t>(session_.listener_.config().idle_timeout.count());
      const std::uint64_t quiet_ms = uv_now(session_.resources_.loop) - session_.last_activity_ms_;
      if (quiet_ms >= idle_ms) {
        session_.finish("idle_timeout", true);
      } else {
        arm_timer(idle_ms - quiet_ms);
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace sluice
