// HttpSession after a 101 Switching Protocols: both connections become a byte tunnel for the rest
// of the session, holding the request's slot (the upgrade request runs alone: no request is read
// ahead of or after it). Bytes are passed on as they come, under the same watermarks; an EOF is
// passed on as a FIN after the bytes before it while the other way flows on (a half-close, as a
// TCP session keeps it); the session ends once both ways have ended. A reset or a failed write
// ends both at once (on_written, on_*_read).

#include <spdlog/spdlog.h>

#include "sluice/proxy/http_session.hpp"
#include "sluice/worker/listener.hpp"

namespace sluice {

void HttpExchange::start_tunnel() {
  state_ = State::tunnel;
  session_.state_ = HttpSession::State::tunnel;
  // Quiet for the listener's idle_timeout: closed, as a TCP session would be (on_timer).
  arm_timer(static_cast<std::uint64_t>(session_.listener_.config().idle_timeout.count()));
  session_.write_taking(backend_in_);
  write_backend_taking(session_.client_in_);
  session_.update_reading();
  update_backend_reading();
}

void HttpSession::tunnel_eof(bool from_client) {
  HttpExchange& exchange = *exchanges_.front();
  if (tunnel_end_ == nullptr) tunnel_end_ = from_client ? "client_close" : "backend_close";
  if (!from_client) {
    backend_eof_ = true;
    exchange.update_backend_reading();
  }
  // uv_shutdown waits for the writes queued that way, so the FIN follows their last byte.
  uv_shutdown_t& request = from_client ? shutdown_to_backend_ : shutdown_to_client_;
  request.data = this;
  uv_stream_t* sink = from_client ? exchange.connection()->stream() : client_.stream();
  const int rc = uv_shutdown(&request, sink, [](uv_shutdown_t* req, int status) {
    owner<HttpSession>(req)->on_tunnel_shutdown(status);
  });
  if (rc != 0) {
    spdlog::debug("tunnel shutdown failed: {}", uv_err_name(rc));
    finish("reset", true);
    return;
  }
  ++shutdowns_pending_;
}

void HttpSession::on_tunnel_shutdown(int status) {
  --shutdowns_pending_;
  if (state_ != State::tunnel) return;  // the session closed its sockets (cancelled)
  if (status < 0) {
    finish("reset", true);
    return;
  }
  if (!client_eof_ || !backend_eof_ || shutdowns_pending_ != 0) return;
  // Both ways ended cleanly: no reset for the backend either.
  exchanges_.front()->close_backend();
  finish(tunnel_end_);
}

}  // namespace sluice
