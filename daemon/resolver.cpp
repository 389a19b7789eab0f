#include "sluice/resolver.hpp"

#include <cstring>

#include <netdb.h>

namespace sluice {

Resolver::Resolver(uv_loop_t* loop, Endpoint endpoint, Millis interval, Callbacks callbacks)
    : loop_(loop),
      endpoint_(std::move(endpoint)),
      port_(std::to_string(endpoint_.port)),
      interval_(interval),
      callbacks_(std::move(callbacks)) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  request_.data = this;
}

Resolver::~Resolver() = default;

void Resolver::start() {
  const auto every = static_cast<std::uint64_t>(interval_.count());
  uv_timer_start(
      &timer_, [](uv_timer_t* timer) { static_cast<Resolver*>(timer->data)->query(); }, 0, every);
}

void Resolver::stop() {
  if (stopped_) return;
  stopped_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
           [](uv_handle_t* handle) { static_cast<Resolver*>(handle->data)->timer_open_ = false; });
  if (in_flight_) uv_cancel(reinterpret_cast<uv_req_t*>(&request_));
}

void Resolver::query() {
  if (in_flight_ || stopped_) return;  // a slow DNS server: never more than one query at a time
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  auto on_answer = [](uv_getaddrinfo_t* request, int status, addrinfo* result) {
    static_cast<Resolver*>(request->data)->on_answer(status, result);
  };
  int rc = uv_getaddrinfo(loop_, &request_, on_answer, endpoint_.host.c_str(), port_.c_str(), &hints);
  if (rc != 0) {
    callbacks_.failed(uv_strerror(rc), !answered_);
    answered_ = true;
    return;
  }
  in_flight_ = true;
}

void Resolver::on_answer(int status, addrinfo* result) {
  in_flight_ = false;
  const bool first = !answered_;
  answered_ = true;
  if (stopped_ || status == UV_ECANCELED) {
    uv_freeaddrinfo(result);
    return;
  }
  if (status != 0 || result == nullptr) {
    callbacks_.failed(status != 0 ? uv_strerror(status) : "no address", first);
  } else {
    // The first answer, as the system resolver orders them (RFC 6724). A Kubernetes Service name
    // has one address, its ClusterIP.
    sockaddr_storage address{};
    std::memcpy(&address, result->ai_addr, result->ai_addrlen);
    callbacks_.resolved(address, first);
  }
  uv_freeaddrinfo(result);
}

}  // namespace sluice
