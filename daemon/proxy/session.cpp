#include "sluice/proxy/session.hpp"

#include <unistd.h>

#include <cassert>

#include <spdlog/spdlog.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/log/log_event.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

Session::Session(Listener& listener)
    : listener_(listener),
      service_(listener.service()),
      resources_(listener.resources()),
      stats_(listener),
      access_log_(listener, listener.service()),
      backend_(*this),
      upstream_(resources_, *this, listener.config().splice),
      downstream_(resources_, *this, listener.config().splice) {
  resources_.link(this);
  listener_.session_opened();
  service_.attach();
  service_.dispatch_later_on(resources_.loop);  // its sessions' loop: releases dispatch on a later turn
}

Session::~Session() {
  if (AccessLogObserver::enabled()) {
    access_log_.closed(SessionSummary{client_.address(), served_by_.get(), arrived_ns, dispatched_ns,
                                      backend_.connect_started_ns(), backend_.connected_ns(), uv_hrtime(),
                                      upstream_.bytes_total(), downstream_.bytes_total(), end_reason_});
  }
  listener_.session_closed();
  service_.detach();
  resources_.unlink(this);
}

Session* Session::accept(Listener& listener, int client_fd) {
  auto* session = new Session(listener);
  session->arrived_ns = uv_hrtime();
  uv_loop_t* loop = session->resources_.loop;
  int rc = session->timer_.init(loop, session, uv_timer_init);
  if (rc == 0) {
    rc = session->client_.open(loop, client_fd);
  } else {
    ::close(client_fd);
  }
  if (session->client_.is_open()) ++session->open_sockets_;
  if (rc != 0) {
    log_event(spdlog::level::warn, "accept_failed", {{"listener", listener.config().name}, {"error", uv_err_name(rc)}});
    session->finish("accept_failed");
    return nullptr;
  }
  session->upstream_.set_source(session->client_.stream());
  session->downstream_.set_sink(session->client_.stream());
  if (AccessLogObserver::enabled()) session->client_address();  // asked now: the socket is gone by the log line
  return session;
}

void Session::start() {
  last_activity_ms_ = uv_now(resources_.loop);
  // Client bytes are read at once but held (within the watermark) until the backend is
  // connected; reading also tells us at once when a waiting client resets.
  upstream_.start();
  if (state_ == State::queued) ask_for_backend();
}

// --- the state machine ------------------------------------------------------------------------

void Session::enter(State next) {
  [[maybe_unused]] auto allowed = [](State from, State to) {
    switch (from) {
      case State::queued: return to == State::connecting || to == State::closing;
      case State::connecting: return to == State::proxying || to == State::reconnecting || to == State::closing;
      case State::reconnecting: return to == State::queued || to == State::closing;
      case State::proxying: return to == State::closing;
      case State::closing: return false;
    }
    return false;
  };
  assert(allowed(state_, next));
  state_ = next;
  check_invariants();
}

void Session::check_invariants() const {
  switch (state_) {
    case State::queued:
      assert(slot_ == nullptr && !backend_.is_open());
      break;
    case State::connecting:
    case State::reconnecting:
      assert(slot_ != nullptr && queue == nullptr);
      break;
    case State::proxying:
      assert(slot_ != nullptr && queue == nullptr && backend_.is_open() && client_.is_open());
      break;
    case State::closing:
      assert(queue == nullptr);
      break;
  }
}

void Session::arm_timer(std::uint64_t timeout_ms) {
  const int rc = uv_timer_start(timer_.get(), [](uv_timer_t* timer) { owner<Session>(timer)->on_timer(); },
                                timeout_ms, 0);
  if (rc != 0) spdlog::warn("session timer not started: {}", uv_err_name(rc));
}

void Session::stop_timer() {
  if (int rc = uv_timer_stop(timer_.get()); rc != 0) spdlog::warn("session timer not stopped: {}", uv_err_name(rc));
}

void Session::ask_for_backend() {
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
  // Called while the service walks its queue: nothing here calls back into it (a connect that
  // fails at once is reported on the next loop turn).
  stop_timer();
  client_.stop_watching();
  connect_to(backend);
}

void Session::watch_waiting_client() {
  client_.watch_for_reset(resources_.loop, [](uv_poll_t* poll, int, int) {
    Session* self = owner<Session>(poll);
    if (!self->client_.has_error() && self->state_ == State::queued) return;
    self->client_.stop_watching();
    if (self->state_ == State::queued) self->turn_away(RejectReason::abandoned, "abandoned");
  }, this);
}

void Session::connect_to(Backend& backend) {
  slot_ = &backend;
  served_by_.reset(&backend);
  ++attempts_;
  enter(State::connecting);
  const int rc = backend_.connect(resources_.loop, backend);
  if (backend_.is_open()) ++open_sockets_;
  if (rc != 0 && is_local_connect_error(rc)) {
    // The proxy could not open a socket: counted against the listener, never the backend.
    log_event(spdlog::level::warn, "connect_local_error",
              {{"service", service_.name()}, {"backend", backend.config.name}, {"error", uv_err_name(rc)}});
    if (!backend_.is_open()) release_slot();
    turn_away(RejectReason::max_connections, "local_error");
    return;
  }
  if (rc != 0) {
    // Reported from the timer, on a later loop turn: a retry or a health change must not reach
    // back into the service while it may be dispatching us.
    connect_error_ = rc;
    arm_timer(0);
    return;
  }
  // Reading is asked for now, with the connect: libuv then registers the socket once for both,
  // instead of twice (and reports nothing readable before the connect callback).
  downstream_.set_source(backend_.stream());
  downstream_.start();
  arm_timer(static_cast<std::uint64_t>(service_.config().connect_timeout.count()));
}

void Session::connect_done(int status) {
  if (status < 0) {
    on_connect_failed(uv_err_name(status));
  } else {
    on_connected();
  }
}

void Session::on_connect_failed(const char* error) {
  stop_timer();
  connect_error_ = 0;
  stats_.connect_failed(*slot_);
  log_event(spdlog::level::warn, "connect_failed",
            {{"service", service_.name()},
             {"backend", slot_->config.name},
             {"address", slot_->address_text},
             {"error", error},
             {"attempt", attempts_}});
  service_.mark_tried(tried_, *slot_);
  service_.client_connect(*slot_, /*passed=*/false, error, uv_hrtime());
  // The next try needs the socket handle back, which libuv returns only in the close callback.
  downstream_.forget_source();
  if (attempts_ <= service_.config().retries) {
    enter(State::reconnecting);
    backend_.close(/*reset=*/false);
    return;
  }
  turn_away(RejectReason::no_backend, "connect_failed");
}

void Session::on_connected() {
  stop_timer();
  enter(State::proxying);
  backend_.mark_connected();
  stats_.connected(*slot_, backend_.connected_ns() - backend_.connect_started_ns());
  service_.client_connect(*slot_, /*passed=*/true, "", backend_.connected_ns());
  if (slot_->config.send_proxy != ProxyVersion::off && !send_proxy_header()) return;
  upstream_.set_sink(backend_.stream());  // the bytes held meanwhile go first
  if (state_ != State::proxying) return;  // a write failed and closed the session
  last_activity_ms_ = uv_now(resources_.loop);
  arm_timer(static_cast<std::uint64_t>(listener_.config().idle_timeout.count()));
}

bool Session::send_proxy_header() {
  // Before any byte of the client's. A new connection's empty send buffer takes these few bytes
  // whole, so they are written now, needing no buffer that outlives this call.
  proxy_protocol::Buffer header;
  const std::size_t length =
      proxy_protocol::write_header(slot_->config.send_proxy, client_.address(), client_.local_address(), header);
  uv_buf_t buffer = uv_buf_init(header.data(), static_cast<unsigned>(length));
  const int written = uv_try_write(backend_.stream(), &buffer, 1);
  if (written == static_cast<int>(length)) return true;
  log_event(spdlog::level::warn, "proxy_header_not_sent",
            {{"service", service_.name()},
             {"backend", slot_->config.name},
             {"error", written < 0 ? uv_err_name(written) : "short write"}});
  finish("reset", Reset::backend);
  return false;
}

void Session::on_timer() {
  switch (state_) {
    case State::queued:
      // Waiting out the timeout with no backend up is a client no backend could take.
      if (service_.any_up()) {
        turn_away(RejectReason::queue_timeout, "queue_timeout");
      } else {
        turn_away(RejectReason::no_backend, "no_backend");
      }
      return;
    case State::connecting:
      on_connect_failed(connect_error_ != 0 ? uv_err_name(connect_error_) : "timeout");
      return;
    case State::proxying: {
      // Activity only stamps a time; the timer is re-armed here, not on every read.
      const std::uint64_t idle_ms = static_cast<std::uint64_t>(listener_.config().idle_timeout.count());
      const std::uint64_t quiet_ms = uv_now(resources_.loop) - last_activity_ms_;
      if (quiet_ms >= idle_ms) {
        finish("idle_timeout");
        return;
      }
      arm_timer(idle_ms - quiet_ms);
      return;
    }
    case State::reconnecting:
    case State::closing:
      return;
  }
}

// --- what the movers report -------------------------------------------------------------------

void Session::moved_in(Mover& mover, std::size_t bytes) {
  last_activity_ms_ = uv_now(resources_.loop);
  if (&mover == &downstream_) stats_.received_from_backend(*slot_, bytes);
}

void Session::moved_out(Mover& mover, std::size_t bytes, bool spliced) {
  if (&mover == &upstream_) stats_.sent_to_backend(*slot_, bytes);
  if (spliced) stats_.spliced(bytes);
}

void Session::held_full(Mover&) {
  if (state_ == State::queued) watch_waiting_client();
}

void Session::source_ended(Mover& mover) {
  const bool from_client = &mover == &upstream_;
  if (end_reason_ == nullptr) end_reason_ = from_client ? "client_close" : "backend_close";
  if (state_ == State::queued && from_client) {
    log_event(spdlog::level::debug, "queued_client_eof", {{"listener", listener_.config().name}, {"service", service_.name()}});
    watch_waiting_client();
  }
}

void Session::finished(Mover&) {
  if (upstream_.finished() && downstream_.finished()) finish(end_reason_);
}

void Session::failed(Mover& mover, bool source_broken) {
  if (state_ == State::queued) {
    // A client that gives up while queued leaves the queue at once.
    turn_away(RejectReason::abandoned, "abandoned");
    return;
  }
  // The other end hears a reset: the client when the backend's side broke, and the reverse.
  const bool client_hears = (&mover == &upstream_) != source_broken;
  finish("reset", client_hears ? Reset::client : Reset::backend);
}

// --- the end ----------------------------------------------------------------------------------

void Session::turn_away(RejectReason reason, const char* end_reason) {
  stats_.rejected(reason);
  finish(end_reason);
}

void Session::finish(const char* reason, Reset reset) {
  if (state_ == State::closing) return;
  service_.leave_queue(*this, uv_hrtime());
  enter(State::closing);
  end_reason_ = reason;
  upstream_.stop();
  downstream_.stop();
  timer_.close();
  client_.close(reset == Reset::client, this, [](uv_handle_t* handle) { owner<Session>(handle)->on_client_closed(); });
  backend_.close(reset == Reset::backend);
  free_when_closed();
}

void Session::release_slot() {
  if (slot_ == nullptr) return;
  Backend& released = *slot_;
  slot_ = nullptr;
  // The next waiter gets it on a later loop turn (Service), never from inside this call.
  service_.release(released, uv_hrtime(), this);
}

void Session::backend_closed(Backend& backend) {
  // The slot is held until the backend socket is closed: that is the backend's real occupancy.
  assert(&backend == slot_);
  --open_sockets_;
  if (backend_.connected_ns() != 0) stats_.backend_closed(backend, uv_hrtime() - backend_.connected_ns());
  release_slot();
  if (state_ == State::reconnecting) {
    enter(State::queued);
    ask_for_backend();
    return;
  }
  free_when_closed();
}

void Session::on_client_closed() {
  client_.closed();
  --open_sockets_;
  free_when_closed();
}

void Session::free_when_closed() {
  if (state_ == State::closing && open_sockets_ == 0) delete this;
}

}  // namespace sluice
