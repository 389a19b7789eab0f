// HttpSession: the backend's side of one request. A slot, a pooled or new connection, the rebuilt
// request head and body out, the response parsed and rebuilt towards the client, and the end of
// the exchange: the connection back to the pool or closed, the slot released.

#include <spdlog/spdlog.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/log/access_log.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/proxy/http_session.hpp"
#include "sluice/proxy/mover.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

namespace {
double seconds_since(std::uint64_t from_ns, std::uint64_t to_ns) {
  return from_ns == 0 || to_ns < from_ns ? -1 : static_cast<double>(to_ns - from_ns) * 1e-9;
}
}  // namespace

// --- a backend connection -----------------------------------------------------------------------

void HttpSession::use_backend(Backend& backend) {
  slot_ = &backend;
  state_ = State::connecting;
  if (BackendConnection* pooled = resources_.backend_pool.take(backend, *this)) {
    ++connections_attached_;
    connection_ = pooled;
    connect_ns_ = 0;
    start_exchange();
    return;
  }
  connect_new(backend);
}

void HttpSession::connect_new(Backend& backend) {
  ++attempts_;
  state_ = State::connecting;
  int error = 0;
  connection_ = BackendConnection::connect(resources_.loop, backend, *this, &HttpSession::on_connect, error);
  if (connection_ != nullptr) ++connections_attached_;
  // A failure at once is reported from the timer, on a later loop turn: a retry must not reach
  // back into the service while it may be dispatching us.
  if (connection_ == nullptr) connect_error_ = error;
  arm_timer(connection_ == nullptr ? 0 : static_cast<std::uint64_t>(service_.config().connect_timeout.count()));
}

void HttpSession::on_connect(BackendConnection& connection, int status) {
  auto* self = static_cast<HttpSession*>(connection.user());
  if (self->connection_ != &connection || self->state_ != State::connecting) return;
  if (status < 0) {
    self->connect_failed(uv_err_name(status));
    return;
  }
  self->connect_ns_ = connection.connected_ns() - connection.connect_started_ns();
  self->stats_.connected(*self->slot_, self->connect_ns_);
  self->service_.client_connect(*self->slot_, /*passed=*/true, "", connection.connected_ns());
  self->start_exchange();
}

void HttpSession::connect_failed(const char* error) {
  Backend& backend = *slot_;
  stats_.connect_failed(backend);
  spdlog::warn("connect_failed service={} backend={} address={} error={} attempt={}", service_.name(),
               backend.config.name, backend.address_text, error, attempts_);
  if (tried_.empty()) tried_.assign(service_.backends().size(), false);
  tried_[backend.index] = true;
  service_.client_connect(backend, /*passed=*/false, error, uv_hrtime());
  if (connection_ != nullptr) std::exchange(connection_, nullptr)->close(false);
  release_slot();
  if (attempts_ <= service_.config().retries) {
    state_ = State::queued;
    ask_for_backend();
    return;
  }
  stats_.rejected(RejectReason::no_backend);
  answer_error(HttpError::connect_failed, 503, "connect_failed", false);
}

void HttpSession::connect_local_error(int error) {
  // The proxy could not open a socket: counted against the listener, never the backend, as a TCP
  // session does.
  spdlog::warn("connect_local_error service={} backend={} error={}", service_.name(), slot_->config.name,
               uv_err_name(error));
  release_slot();
  stats_.rejected(RejectReason::max_connections);
  answer_error(HttpError::local_error, 503, "local_error", false);
}

void HttpSession::backend_connection_closed(BackendConnection&) {
  --connections_attached_;
  free_when_closed();
}

// --- the exchange ------------------------------------------------------------------------------

void HttpSession::start_exchange() {
  state_ = State::exchanging;
  exchange_ns_ = uv_hrtime();
  response_parser_.expect_response_to_head(request_.method == "HEAD");
  // Built for the backend it goes to: a request without Host gets that backend's address.
  if (!request_.header("Host")) forwarding_.host = slot_->config.address.to_string();
  write(false, http::request_head(request_, forwarding_));
  arm_timer(static_cast<std::uint64_t>(http_.response_timeout.count()));
  update_backend_reading();
  pump_request();  // the body, as far as the watermark lets it
}

void HttpSession::update_backend_reading() {
  // A 101 ends its response (response_done_) but the tunnel after it reads on.
  const bool want = connection_ != nullptr &&
                    ((state_ == State::exchanging && !response_done_) || (state_ == State::tunnel && !backend_eof_)) &&
                    client_unsent_ < Mover::kHighWatermarkBytes &&
                    backend_in_.size() < Mover::kHighWatermarkBytes;
  if (want == backend_reading_) return;
  backend_reading_ = want;
  if (connection_ != nullptr && connection_->read(want) != 0) backend_failed("read_failed");
}

uv_buf_t HttpSession::backend_read_buffer() {
  if (backend_chunk_ == nullptr) backend_chunk_ = resources_.buffers.take();
  return uv_buf_init(backend_chunk_->data, static_cast<unsigned>(Chunk::kCapacity));
}

void HttpSession::backend_read(ssize_t nread) { on_backend_read(nread); }

void HttpSession::on_backend_read(ssize_t nread) {
  if (nread > 0) {
    last_activity_ms_ = uv_now(resources_.loop);
    response_bytes_ = true;
    backend_in_.append(backend_chunk_->data, static_cast<std::size_t>(nread));
    if (slot_ != nullptr) stats_.received_from_backend(*slot_, static_cast<std::size_t>(nread));
  }
  if (backend_chunk_ != nullptr) resources_.buffers.give_back(std::exchange(backend_chunk_, nullptr));
  if (nread == 0) return;
  if (state_ == State::tunnel) {
    if (nread == UV_EOF) {
      tunnel_eof(/*from_client=*/false);
    } else if (nread < 0) {
      finish("reset", true);
      return;
    }
    write_taking(true, backend_in_);
    update_backend_reading();
    return;
  }
  if (nread < 0) {
    backend_failed(nread == UV_EOF ? "backend_close" : "backend_reset");
    return;
  }
  pump_response();
}

void HttpSession::pump_response() {
  while (!backend_in_.empty() && state_ == State::exchanging && !response_done_ &&
         client_unsent_ < Mover::kHighWatermarkBytes) {
    batching_client_ = true;
    const http::Fed fed = response_parser_.feed(backend_in_);
    backend_in_.erase(0, fed.consumed);
    flush_client();  // the head and the body bytes parsed with it in one write
    if (state_ != State::exchanging) return;  // the write failed at once
    if (fed.stop == http::Stop::error) {
      spdlog::debug("bad_response service={} error={}", service_.name(), response_parser_.error().reason);
      backend_failed("bad_response");
      return;
    }
    if (fed.stop == http::Stop::upgrade) {
      start_tunnel();
      return;
    }
    if (fed.stop == http::Stop::need_more) break;
  }
  if (state_ != State::exchanging) return;
  // Ended first: a connection that goes back to the pool is handed over still read (backend_pool.hpp).
  maybe_end_exchange();
  update_backend_reading();
}

http::Action HttpSession::ResponseReader::on_head(const http::MessageHead& head) {
  HttpSession& s = session;
  const int minor = s.request_.version_minor;
  if (head.status / 100 == 1 && head.status != 101) {
    // 100 Continue and other interim answers go on to an HTTP/1.1 client; the final one follows.
    std::string* out = minor >= 1 ? s.open_write(true) : nullptr;
    if (out != nullptr) {
      http::append_response_head(*out, head, http::BodyOut::none, true, minor, false);
      s.send(true);
    }
    return http::Action::proceed;
  }
  s.status_ = head.status;
  if (s.slot_ != nullptr && head.status >= 100 && head.status < 600) {
    ++s.slot_->stats.http_responses_total[static_cast<std::size_t>(head.status / 100 - 1)];
  }
  s.response_started_ = true;
  s.response_keep_alive_ = head.keep_alive;
  s.body_out_ = http::body_out(head, minor);
  // A request still being read when the answer comes cannot be followed by another.
  s.client_keep_alive_ = s.client_keep_alive_ && !s.draining_ && s.request_done_ &&
                         s.body_out_ != http::BodyOut::until_close;
  if (std::string* out = s.open_write(true)) {
    http::append_response_head(*out, head, s.body_out_, s.client_keep_alive_, minor, s.request_.method == "HEAD");
    if (head.status == 101 && s.request_.upgrade) {
      // The hop-by-hop pair that makes the switch: passed on as the backend sent it.
      out->insert(out->size() - 2, "Upgrade: " + std::string(head.header("Upgrade").value_or("")) +
                                       "\r\nConnection: upgrade\r\n");
    }
    s.send(true);
  }
  s.arm_timer(static_cast<std::uint64_t>(s.listener_.config().idle_timeout.count()));
  return http::Action::proceed;
}

void HttpSession::ResponseReader::on_body(std::string_view bytes) {
  HttpSession& s = session;
  if (s.body_out_ != http::BodyOut::chunked) {
    s.write(true, bytes);
  } else if (std::string* out = s.open_write(true)) {
    http::append_chunk(*out, bytes);
    s.send(true);
  }
}

void HttpSession::ResponseReader::on_message_end(const std::vector<http::Header>& trailers) {
  HttpSession& s = session;
  if (!s.response_started_) return;  // an interim (1xx) answer
  if (s.body_out_ == http::BodyOut::chunked) s.write(true, http::last_chunk(trailers));
  s.response_done_ = true;
}

void HttpSession::backend_failed(const char* why) {
  if (state_ != State::exchanging) return;
  const bool closed = std::string_view(why) == "backend_close";
  if (closed && response_started_ && !response_done_) {
    // A body delimited by the close ends here.
    if (response_parser_.finish().stop == http::Stop::message_end) {
      response_keep_alive_ = false;
      maybe_end_exchange();
      return;
    }
  }
  const bool retry_safe = connection_ != nullptr && connection_->reused() && !response_bytes_ && !retried_ &&
                          (closed || std::string_view(why) == "backend_reset") &&
                          (request_.framing == http::Framing::none || (!body_started_ && !request_done_));
  if (connection_ != nullptr) std::exchange(connection_, nullptr)->close(true);
  backend_reading_ = false;
  if (retry_safe) {
    // The backend had closed the pooled connection before our request reached it.
    retried_ = true;
    spdlog::debug("retry service={} backend={} reason={}", service_.name(), slot_->config.name, why);
    connect_new(*slot_);
    return;
  }
  spdlog::debug("backend_failed service={} reason={} response_started={}", service_.name(), why, response_started_);
  release_slot();
  if (!response_started_) {
    const bool timeout = std::string_view(why) == "response_timeout";
    answer_error(timeout ? HttpError::gateway_timeout : HttpError::bad_gateway, timeout ? 504 : 502,
                 timeout ? "response_timeout" : why, true);
    return;
  }
  // Never a short body that looks complete: the client's connection is reset.
  listener_.count_http_error(HttpError::response_aborted);
  log_request("response_aborted");
  finish("response_aborted", true);
}

void HttpSession::maybe_end_exchange() {
  if (state_ != State::exchanging || !response_done_ || client_unsent_ != 0) return;
  const bool reuse = connection_ != nullptr && response_keep_alive_ && request_done_ && backend_unsent_ == 0 &&
                     backend_in_.empty() && response_parser_.idle();
  end_exchange(reuse);
}

void HttpSession::end_exchange(bool reuse) {
  log_request("done");
  if (connection_ != nullptr) {
    BackendConnection* connection = std::exchange(connection_, nullptr);
    backend_reading_ = false;  // the pool reads it on, or it closes
    if (reuse) {
      --connections_attached_;
      resources_.backend_pool.put(connection, http_.pool_max_idle, http_.pool_idle_timeout);
    } else {
      connection->close(false);
    }
  }
  release_slot();
  ++served_;
  if (!client_keep_alive_ || !request_done_) {
    finish("done");
    return;
  }
  next_request();
}

void HttpSession::release_slot() {
  if (slot_ == nullptr) return;
  Backend& released = *std::exchange(slot_, nullptr);
  const std::uint64_t now = uv_hrtime();
  // The slot time: the request's service time at the backend, from its head to its response's end.
  if (exchange_ns_ != 0) stats_.backend_closed(released, now - exchange_ns_);
  exchange_ns_ = 0;
  service_.release(released, now);
}

void HttpSession::log_request(const char* end) {
  if (!AccessLogObserver::enabled()) return;
  const std::uint64_t now = uv_hrtime();
  const std::string client = sockaddr_to_string(client_.address());
  const Backend* backend = slot_;
  AccessRecord record;
  record.client = client;
  record.listener = listener_.config().name;
  record.service = service_.name();
  record.backend = backend != nullptr ? std::string_view(backend->config.name) : std::string_view();
  record.node = backend != nullptr ? std::string_view(backend->config.node) : std::string_view();
  record.http = true;
  // Before a head was read (a 400, 408 or 431 for it, a refused connection): no method or path.
  record.method = request_.method.empty() ? std::string_view("-") : std::string_view(request_.method);
  record.path = request_.method.empty() ? std::string_view("-") : request_.path();
  record.status = status_;
  record.queue_wait_seconds = seconds_since(arrived_ns, dispatched_ns);
  record.connect_seconds = connect_ns_ == 0 ? -1 : static_cast<double>(connect_ns_) * 1e-9;
  record.duration_seconds = seconds_since(head_ns_, now);
  record.end_reason = end;
  log_access(record);
}

}  // namespace sluice
