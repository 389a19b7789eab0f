// HttpExchange: one request of a client connection, from its head to the end of its turn. Its
// backend side (slot, connection, reading) is in http_exchange_backend.cpp; here the request's
// start, its response rebuilt towards the client (streamed at the front, held in its buffer
// before that), its errors and the end of its turn.

#include "sluice/proxy/http_exchange.hpp"

#include <arpa/inet.h>

#include <spdlog/spdlog.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/log/access_log.hpp"
#include "sluice/log/log_event.hpp"
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

// The client's IP without the port, for X-Forwarded-For and Forwarded.
std::string client_ip(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) inet_ntop(AF_INET, &as_ipv4(address)->sin_addr, text, sizeof text);
  if (address->sa_family == AF_INET6) inet_ntop(AF_INET6, &as_ipv6(address)->sin6_addr, text, sizeof text);
  return text;
}

}  // namespace

HttpExchange::HttpExchange(HttpSession& session)
    : session_(session), response_parser_(std::in_place, http::Kind::response, response_reader_, http::Limits{64 * 1024}) {
  if (int rc = timer_.init(session.resources_.loop, this, [](void* self) { static_cast<HttpExchange*>(self)->on_timer(); }); rc != 0) {
    spdlog::warn("http exchange timer: {}", uv_err_name(rc));
  }
}

HttpExchange::~HttpExchange() {
  if (open_backend_ != nullptr) session_.resources_.writes.give_back(open_backend_);
  if (backend_chunk_ != nullptr) session_.resources_.buffers.give_back(backend_chunk_);
}

void HttpExchange::reset(const http::MessageHead& head, std::uint64_t head_ns) {
  state_ = State::waiting_turn;
  request_ = head;
  head_ns_ = head_ns;
  arrived_ns = head_ns;
  dispatched_ns = 0;
  request_done_ = body_started_ = false;
  client_keep_alive_ = head.keep_alive && !head.upgrade;
  slot_ = nullptr;
  logged_backend_.reset(nullptr);
  backend_in_.clear();
  backend_unsent_ = 0;
  tried_.clear();
  attempts_ = 0;
  connect_error_ = 0;
  retried_ = false;
  connect_ns_ = exchange_ns_ = 0;
  response_bytes_ = response_started_ = response_done_ = response_keep_alive_ = false;
  status_ = 0;
  body_out_ = http::BodyOut::none;
  held_.clear();
  end_reason_ = "done";
  close_after_ = reset_after_ = logged_ = false;
  // A parser an aborted exchange left in a message starts afresh.
  if (!response_parser_->idle() || response_parser_->error().kind != http::ErrorKind::none) {
    response_parser_.emplace(http::Kind::response, response_reader_, http::Limits{64 * 1024});
  }
  forwarding_ = http::RequestForwarding{};
  forwarding_.upgrade = request_.upgrade;
  forwarding_.forwarded = session_.http_.forwarded;
  if (forwarding_.forwarded) forwarding_.client_address = client_ip(session_.client_.address());
}

bool HttpExchange::may_run_ahead() const {
  const std::string& method = request_.method;
  const bool safe = method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE";
  return safe && request_.framing == http::Framing::none && !request_.upgrade && !request_.header("Expect");
}

bool HttpExchange::is_front() const { return session_.is_front(*this); }

void HttpExchange::dispatch() {
  state_ = State::queued;
  ask_for_backend();
}

void HttpExchange::ask_for_backend() {
  const Service::Arrival arrival = session_.service_.arrive(*this, uv_hrtime(), tried_);
  switch (arrival.outcome) {
    case Service::Outcome::dispatched:
      use_backend(*arrival.backend);
      return;
    case Service::Outcome::queued:
      arm_timer(static_cast<std::uint64_t>(session_.service_.config().queue.timeout.count()));
      return;
    case Service::Outcome::queue_full:
      session_.stats_.rejected(RejectReason::queue_full);
      answer_error(HttpError::queue_full, 503, "queue_full", false);
      return;
    case Service::Outcome::no_backend:
      session_.stats_.rejected(RejectReason::no_backend);
      if (attempts_ == 0) {
        answer_error(HttpError::no_backend, 503, "no_backend", false);
      } else {
        answer_error(HttpError::connect_failed, 503, "connect_failed", false);
      }
      return;
  }
}

void HttpExchange::on_dispatched(Backend& backend) {
  stop_timer();
  use_backend(backend);
}

// --- the request's body --------------------------------------------------------------------------

bool HttpExchange::body_flowing() const {
  return state_ == State::exchanging && !request_done_ && backend_unsent_ < Mover::kHighWatermarkBytes;
}

void HttpExchange::on_request_body(std::string_view bytes) {
  body_started_ = true;
  if (request_.framing != http::Framing::chunked) {
    write_backend(bytes);
  } else if (std::string* out = open_backend_write()) {
    http::append_chunk(*out, bytes);
    send_backend();
  }
}

void HttpExchange::on_request_end(const std::vector<http::Header>& trailers) {
  if (request_done_) return;
  request_done_ = true;
  if (request_.framing == http::Framing::chunked) write_backend(http::last_chunk(trailers));
}

// --- the response towards the client ----------------------------------------------------------

std::string* HttpExchange::client_out() { return is_front() ? session_.open_write() : &held_; }

void HttpExchange::send_client() {
  if (is_front()) session_.send();
}

void HttpExchange::write_client(std::string_view bytes) {
  if (bytes.empty()) return;
  if (std::string* out = client_out()) {
    out->append(bytes);
    send_client();
  }
}

bool HttpExchange::has_room() const {
  return is_front() ? session_.client_unsent_ < Mover::kHighWatermarkBytes : held_.size() < kAheadBufferBytes;
}

void HttpExchange::pump_response() {
  while (!backend_in_.empty() && state_ == State::exchanging && !response_done_ && has_room()) {
    const bool front = is_front();
    session_.batching_client_ = front;
    const http::Fed fed = response_parser_->feed(backend_in_);
    backend_in_.erase(0, fed.consumed);
    if (front) session_.flush_client();  // the head and the body bytes parsed with it in one write
    if (state_ != State::exchanging) return;  // the write failed at once
    if (fed.stop == http::Stop::error) {
      log_event(spdlog::level::debug, "bad_response",
                {{"service", session_.service_.name()}, {"error", response_parser_->error().reason}});
      backend_failed("bad_response");
      return;
    }
    if (fed.stop == http::Stop::upgrade) {
      // Only a request that asked for it runs alone, at the front; a switch nobody asked for is not HTTP.
      if (!front) {
        backend_failed("bad_response");
      } else {
        start_tunnel();
      }
      return;
    }
    if (fed.stop == http::Stop::need_more) break;
  }
  if (state_ != State::exchanging) return;
  update_backend_reading();
  maybe_end();
}

http::Action HttpExchange::ResponseReader::on_head(const http::MessageHead& head) {
  HttpExchange& x = exchange;
  const int minor = x.request_.version_minor;
  if (head.status / 100 == 1 && head.status != 101) {
    // 100 Continue and other interim answers go on to an HTTP/1.1 client; the final one follows.
    std::string* out = minor >= 1 ? x.client_out() : nullptr;
    if (out != nullptr) {
      http::append_response_head(*out, head, http::BodyOut::none, true, minor, false);
      x.send_client();
    }
    return http::Action::proceed;
  }
  x.status_ = head.status;
  if (x.slot_ != nullptr && head.status >= 100 && head.status < 600) {
    ++x.slot_->stats.http_responses_total[static_cast<std::size_t>(head.status / 100 - 1)];
  }
  x.response_started_ = true;
  x.response_keep_alive_ = head.keep_alive;
  x.body_out_ = http::body_out(head, minor);
  // A request still being read when the answer comes cannot be followed by another.
  x.client_keep_alive_ = x.client_keep_alive_ && !x.session_.draining_ && x.request_done_ &&
                         x.body_out_ != http::BodyOut::until_close;
  if (std::string* out = x.client_out()) {
    http::append_response_head(*out, head, x.body_out_, x.client_keep_alive_, minor, x.request_.method == "HEAD");
    if (head.status == 101 && x.request_.upgrade) {
      // The hop-by-hop pair that makes the switch: passed on as the backend sent it.
      out->insert(out->size() - 2, "Upgrade: " + std::string(head.header("Upgrade").value_or("")) +
                                       "\r\nConnection: upgrade\r\n");
    }
    x.send_client();
  }
  x.arm_timer(static_cast<std::uint64_t>(x.session_.listener_.config().idle_timeout.count()));
  // The connection closes after this answer: the requests read after it will not be answered.
  if (!x.client_keep_alive_) x.session_.cut_after(x);
  return http::Action::proceed;
}

void HttpExchange::ResponseReader::on_body(std::string_view bytes) {
  HttpExchange& x = exchange;
  if (x.body_out_ != http::BodyOut::chunked) {
    x.write_client(bytes);
  } else if (std::string* out = x.client_out()) {
    http::append_chunk(*out, bytes);
    x.send_client();
  }
}

void HttpExchange::ResponseReader::on_message_end(const std::vector<http::Header>& trailers) {
  HttpExchange& x = exchange;
  if (!x.response_started_) return;  // an interim (1xx) answer
  if (x.body_out_ == http::BodyOut::chunked) x.write_client(http::last_chunk(trailers));
  x.response_done_ = true;
}

// --- the end of its turn -----------------------------------------------------------------------

void HttpExchange::became_front() {
  if (!held_.empty()) session_.write_taking(held_);
  if (state_ == State::exchanging) {
    pump_response();
  } else {
    maybe_end();
  }
}

void HttpExchange::on_client_drained() {
  if (state_ == State::exchanging) {
    pump_response();
  } else {
    maybe_end();
  }
}

void HttpExchange::maybe_end() {
  const bool front = is_front();
  if (state_ == State::exchanging) {
    // At the front the slot is held until the response's last byte is written; before that, a
    // complete response frees its slot and its backend connection at once.
    if (!response_done_ || (front && session_.client_unsent_ != 0)) return;
    const bool reuse = connection_ != nullptr && response_keep_alive_ && request_done_ && backend_unsent_ == 0 &&
                       backend_in_.empty() && response_parser_->idle();
    if (front) log_request("done");
    logged_ = front;
    end_backend(reuse);
    state_ = State::answered;
    close_after_ = !client_keep_alive_ || !request_done_;
    if (front) session_.front_ended(close_after_, "done");
    return;
  }
  if (state_ != State::answered || !front || session_.client_unsent_ != 0) return;
  if (reset_after_) {
    // Its response broke off while it waited: never a short body that looks complete.
    log_request("response_aborted");
    session_.finish("response_aborted", true);
    return;
  }
  if (!logged_) log_request(end_reason_);
  session_.front_ended(close_after_, end_reason_);
}

void HttpExchange::answer_error(HttpError error, int status, const char* end_reason, bool close) {
  session_.listener_.count_http_error(error);
  session_.service_.leave_queue(*this, uv_hrtime());
  stop_timer();
  status_ = status;
  // A request whose body was not read cannot be followed by another on this connection.
  close = close || !request_done_ || !client_keep_alive_ || session_.draining_ || session_.client_eof_;
  // A HEAD's answer has no body, ours neither: the client would read it as the next response.
  write_client(http::error_response(status, close, status == 503 ? 1 : 0, request_.method == "HEAD"));
  log_request(end_reason);
  logged_ = true;
  drop_connection(true);
  release_slot();
  state_ = State::answered;
  end_reason_ = end_reason;
  close_after_ = close;
  if (close) session_.cut_after(*this);
  if (!is_front()) return;  // answered in its turn
  if (close) {
    session_.close_when_written(end_reason);
  } else {
    session_.front_ended(false, end_reason);
  }
}

void HttpExchange::abort() {
  if (state_ == State::ended) return;
  session_.service_.leave_queue(*this, uv_hrtime());
  drop_connection(true);  // mid-exchange: the backend hears a reset, not a clean end
  release_slot();
  if (timer_) stop_timer();
  state_ = State::ended;
}

void HttpExchange::log_request(const char* end) {
  if (!AccessLogObserver::enabled()) return;
  const std::uint64_t now = uv_hrtime();
  const std::string client = sockaddr_to_string(session_.client_.address());
  const Backend* backend = logged_backend_.get();
  AccessRecord record;
  record.client = client;
  record.listener = session_.listener_.config().name;
  record.service = session_.service_.name();
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
