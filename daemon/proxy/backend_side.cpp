#include "sluice/proxy/backend_side.hpp"

#include <spdlog/spdlog.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/proxy/socket_watch.hpp"

namespace sluice {

bool is_local_connect_error(int status) {
  return status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS || status == UV_ENOMEM ||
         status == UV_EADDRNOTAVAIL;  // no local port left towards that address
}

int BackendSide::connect(uv_loop_t* loop, Backend& backend) {
  backend_ = &backend;
  connect_started_ns_ = uv_hrtime();
  connected_ns_ = 0;
  if (int rc = uv_tcp_init(loop, &socket_); rc != 0) return rc;
  open_ = true;
  connect_req_.data = this;
  return uv_tcp_connect(&connect_req_, &socket_, as_sockaddr(&backend.address), [](uv_connect_t* req, int status) {
    if (status == UV_ECANCELED) return;  // we closed it: timeout or end
    owner<BackendSide>(req)->events_.connect_done(status);
  });
}

void BackendSide::mark_connected() {
  connected_ns_ = uv_hrtime();
  if (int rc = uv_tcp_nodelay(&socket_, 1); rc != 0) spdlog::debug("backend nodelay failed: {}", uv_err_name(rc));
}

void BackendSide::close(bool reset) {
  if (!open_) return;
  close_socket(&socket_, reset, this, [](uv_handle_t* handle) { owner<BackendSide>(handle)->on_closed(); });
}

void BackendSide::on_closed() {
  open_ = false;
  events_.backend_closed(*backend_);
}

}  // namespace sluice
