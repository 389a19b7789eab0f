// HttpSession: the client's side (reading and parsing requests, answering bytes that are no
// request), the ordered list of its exchanges, and the session's life. Each request's backend side
// is an HttpExchange (http_exchange.cpp, http_exchange_backend.cpp).

#include "sluice/proxy/http_session.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "sluice/balancing/service.hpp"
#include "sluice/log/log_event.hpp"
#include "sluice/proxy/buffer_pool.hpp"
#include "sluice/proxy/mover.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

HttpSession::HttpSession(Listener& listener)
    : listener_(listener),
      service_(listener.service()),
      resources_(listener.resources()),
      http_(listener.config().http),
      stats_(listener),
      request_parser_(http::Kind::request, request_reader_, http::Limits{http_.max_header_bytes}) {
  resources_.link(this);
  listener_.session_opened();
  service_.attach();
  service_.dispatch_later_on(resources_.loop);
}

HttpSession::~HttpSession() {
  if (open_ != nullptr) resources_.writes.give_back(open_);
  exchanges_.clear();
  spare_.clear();
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
    log_event(spdlog::level::warn, "accept_failed", {{"listener", listener.config().name}, {"error", uv_err_name(rc)}});
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
  add_exchange(http::MessageHead{}, 0).log_request(reason);
  finish(reason);
}

void HttpSession::drain() {
  draining_ = true;
  if (state_ == State::open && exchanges_.empty() && client_in_.empty() && request_parser_.idle()) finish("shutdown");
}

HttpExchange& HttpSession::add_exchange(const http::MessageHead& head, std::uint64_t head_ns) {
  std::unique_ptr<HttpExchange> exchange;
  if (spare_.empty()) {
    exchange = std::make_unique<HttpExchange>(*this);
  } else {
    exchange = std::move(spare_.back());
    spare_.pop_back();
  }
  exchange->reset(head, head_ns);
  exchanges_.push_back(std::move(exchange));
  return *exchanges_.back();
}

HttpExchange* HttpSession::exchange_on(const BackendConnection* connection) {
  for (const auto& exchange : exchanges_) {
    if (exchange->connection() == connection) return exchange.get();
  }
  return nullptr;
}

// A connection's reads go to the exchange using it. One that has none is not read further.
uv_buf_t HttpSession::backend_read_buffer(BackendConnection& connection) {
  HttpExchange* exchange = exchange_on(&connection);
  return exchange != nullptr ? exchange->backend_read_buffer() : uv_buf_init(nullptr, 0);
}

void HttpSession::backend_read(BackendConnection& connection, ssize_t nread) {
  if (HttpExchange* exchange = exchange_on(&connection)) {
    exchange->on_backend_read(nread);
  } else if (int rc = connection.read(false); rc != 0) {
    spdlog::debug("backend read stop: {}", uv_err_name(rc));
  }
}

void HttpSession::backend_connection_closed(BackendConnection&) {
  --connections_attached_;
  free_when_closed();
}

// --- reading the client -----------------------------------------------------------------------

void HttpSession::update_reading() {
  // Read unless the client ended, its bytes wait unparsed beyond the watermark, or the request
  // being sent has more than the watermark unsent to its backend (backpressure on a body).
  const bool body_blocked = !exchanges_.empty() && exchanges_.back()->backend_unsent() >= Mover::kHighWatermarkBytes;
  const bool want = state_ != State::closing && !client_eof_ && client_in_.size() < Mover::kHighWatermarkBytes &&
                    !body_blocked;
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
    if (state_ == State::tunnel) {
      tunnel_eof(/*from_client=*/true);
      return;
    }
    // Between requests, an EOF ends the connection; during one, the responses are still sent,
    // unless the client turns out to have closed both ways (its reset after our first answer).
    if (state_ != State::open) return;
    if (!exchanges_.empty()) {
      watch_closed_client();
      return;
    }
    if (client_in_.empty() && request_parser_.idle()) {
      finish("client_close");
      return;
    }
    pump_request();
    if (state_ == State::open && exchanges_.empty()) answer_error(HttpError::bad_request, 400, "bad_request");
    return;
  }
  if (nread < 0) {
    finish("reset", true);
    return;
  }
  if (state_ == State::tunnel) {
    exchanges_.front()->write_backend_taking(client_in_);
    update_reading();
    return;
  }
  pump_request();
}

void HttpSession::watch_closed_client() {
  client_.watch_for_reset(resources_.loop, [](uv_poll_t* poll, int, int) {
    auto* self = owner<HttpSession>(poll);
    if (!self->client_.has_error()) return;
    self->client_.stop_watching();
    self->finish("reset", true);  // the exchanges still in flight are aborted
  }, this);
}

bool HttpSession::may_parse() const {
  if (exchanges_.empty()) return true;
  const HttpExchange& back = *exchanges_.back();
  if (!back.request_done()) return back.body_flowing();
  // The next head, read ahead while the ones before it are in flight.
  return !parse_stopped_ && !draining_ && exchanges_.size() < http_.pipeline_depth && back.may_run_ahead() &&
         back.state() != HttpExchange::State::waiting_turn;
}

void HttpSession::pump_request() {
  while (state_ == State::open) {
    if (head_pending_) {
      start_pending();
      if (head_pending_) break;  // it waits until the exchanges before it have ended
      continue;
    }
    if (client_in_.empty() || !may_parse()) break;
    const http::Fed fed = request_parser_.feed(client_in_);
    client_in_.erase(0, fed.consumed);
    if (fed.stop == http::Stop::error) {
      const bool too_large = request_parser_.error().kind == http::ErrorKind::head_too_large;
      log_event(spdlog::level::debug, "bad_request",
                {{"listener", listener_.config().name}, {"error", request_parser_.error().reason}});
      answer_error(too_large ? HttpError::header_too_large : HttpError::bad_request, too_large ? 431 : 400,
                   too_large ? "header_too_large" : "bad_request");
      return;
    }
    if (fed.stop == http::Stop::upgrade) {
      // What follows is another protocol: tunnelled after a 101.
      exchanges_.back()->on_request_end({});
      continue;
    }
    if (fed.stop == http::Stop::need_more) break;
  }
  // A head partly read ahead while others are in flight has request_timeout to complete.
  if (state_ == State::open && !exchanges_.empty() && !head_pending_ && exchanges_.back()->request_done() &&
      !request_parser_.idle() && !timer_.active()) {
    arm_timer(static_cast<std::uint64_t>(http_.request_timeout.count()));
  }
  update_reading();
}

http::Action HttpSession::RequestReader::on_head(const http::MessageHead& head) {
  HttpSession& s = session;
  const std::uint64_t head_ns = uv_hrtime();
  s.listener_.count_http_request();
  s.timer_.stop();
  s.add_exchange(head, head_ns);
  s.head_pending_ = true;
  // Nothing is read after a request that ends the connection or switches protocols.
  if (!head.keep_alive || head.upgrade) s.parse_stopped_ = true;
  // A bodiless request is complete with its head; llhttp ends it in the same call.
  return head.framing == http::Framing::none ? http::Action::proceed : http::Action::pause;
}

void HttpSession::RequestReader::on_body(std::string_view bytes) { session.exchanges_.back()->on_request_body(bytes); }

void HttpSession::RequestReader::on_message_end(const std::vector<http::Header>& trailers) {
  session.exchanges_.back()->on_request_end(trailers);
}

void HttpSession::start_pending() {
  HttpExchange& exchange = *exchanges_.back();
  if (exchanges_.size() > 1 && !exchange.may_run_ahead()) return;
  head_pending_ = false;
  exchange.dispatch();
}

// --- errors, timers and the end ---------------------------------------------------------------

void HttpSession::answer_error(HttpError error, int status, const char* end_reason) {
  parse_stopped_ = true;
  head_pending_ = false;
  // A request whose body was being read gets the answer; otherwise the bytes were no request.
  const bool in_body = !exchanges_.empty() && !exchanges_.back()->request_done();
  HttpExchange& exchange = in_body ? *exchanges_.back() : add_exchange(http::MessageHead{}, 0);
  exchange.answer_error(error, status, end_reason, true);
}

void HttpSession::arm_timer(std::uint64_t timeout_ms) {
  if (const int rc = timer_.start(timeout_ms); rc != 0) spdlog::warn("http session timer not started: {}", uv_err_name(rc));
}

void HttpSession::on_timer() {
  if (state_ != State::open) return;
  const bool idle = client_in_.empty() && request_parser_.idle();
  if (exchanges_.empty() && idle && served_ > 0) {
    finish("keepalive_timeout");  // an idle keep-alive connection: closed without a word
  } else if (exchanges_.empty() || !request_parser_.idle()) {
    answer_error(HttpError::request_timeout, 408, "request_timeout");
  }
}

void HttpSession::front_ended(bool close, const char* reason) {
  ++served_;
  spare_.push_back(std::move(exchanges_.front()));
  exchanges_.pop_front();
  if (close) {
    finish(reason);
    return;
  }
  if (exchanges_.empty()) {
    next_request();
    return;
  }
  exchanges_.front()->became_front();
  pump_request();  // one fewer in flight: a request may be read ahead, or one waiting for its turn run
}

void HttpSession::close_when_written(const char* reason) {
  state_ = State::closing;  // finish() once the answer is written (on_written)
  update_reading();
  if (client_unsent_ == 0) finish(reason);
}

void HttpSession::cut_after(const HttpExchange& exchange) {
  parse_stopped_ = true;
  head_pending_ = false;
  while (exchanges_.back().get() != &exchange) {
    std::unique_ptr<HttpExchange> later = std::move(exchanges_.back());
    exchanges_.pop_back();
    later->abort();
    spare_.push_back(std::move(later));
  }
}

void HttpSession::next_request() {
  if (client_eof_ && client_in_.empty()) {
    finish("client_close");
    return;
  }
  // A head already partly read ahead keeps the time it had.
  if (request_parser_.idle() || !timer_.active()) arm_timer(static_cast<std::uint64_t>(http_.request_timeout.count()));
  pump_request();  // a pipelined request may be waiting
}

void HttpSession::finish(const char* reason, bool reset_client) {
  if (state_ == State::closing && !client_open_ && connections_attached_ == 0) return;
  for (const auto& exchange : exchanges_) exchange->abort();
  state_ = State::closing;
  timer_.close();
  if (client_open_) {
    log_event(spdlog::level::trace, "http_session_end", {{"listener", listener_.config().name}, {"reason", reason}});
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
