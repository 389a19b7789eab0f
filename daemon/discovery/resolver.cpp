#include "sluice/discovery/resolver.hpp"

#include <cstring>
#include <mutex>
#include <thread>

#include <netdb.h>

#include <system_error>

namespace sluice {

struct Resolver::Lookup {
  std::mutex mutex;
  uv_async_t* answered = nullptr;  // nullptr once the Resolver stopped: the thread must not touch it
  bool done = false;
  int status = 0;                  // getaddrinfo's return value
  sockaddr_storage address{};      // the first answer, when status is 0
};

Resolver::Resolver(uv_loop_t* loop, Endpoint endpoint, Millis interval, Callbacks callbacks)
    : endpoint_(std::move(endpoint)), interval_(interval), callbacks_(std::move(callbacks)) {
  uv_timer_init(loop, &timer_);
  uv_async_init(loop, &answered_, [](uv_async_t* async) { static_cast<Resolver*>(async->data)->on_answer(); });
  timer_.data = answered_.data = this;
  // The async handle would keep the loop alive on its own; only the timer should.
  uv_unref(reinterpret_cast<uv_handle_t*>(&answered_));
}

void Resolver::start() {
  const auto every = static_cast<std::uint64_t>(interval_.count());
  uv_timer_start(
      &timer_, [](uv_timer_t* timer) { static_cast<Resolver*>(timer->data)->query(); }, 0, every);
}

void Resolver::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (lookup_) {
    std::lock_guard lock(lookup_->mutex);
    lookup_->answered = nullptr;
  }
  lookup_.reset();
  auto on_closed = [](uv_handle_t* handle) { --static_cast<Resolver*>(handle->data)->open_handles_; };
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&answered_), on_closed);
}

void Resolver::query() {
  if (lookup_ || stopped_) return;  // a slow DNS server: never more than one lookup at a time
  lookup_ = std::make_shared<Lookup>();
  lookup_->answered = &answered_;
  try {
    std::thread([lookup = lookup_, host = endpoint_.host, port = std::to_string(endpoint_.port)] {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_NUMERICSERV;
      addrinfo* result = nullptr;
      const int status = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
      std::lock_guard lock(lookup->mutex);
      lookup->status = status;
      // The first answer, as the system resolver orders them (RFC 6724). A Kubernetes Service
      // name has one address, its ClusterIP.
      if (status == 0) std::memcpy(&lookup->address, result->ai_addr, result->ai_addrlen);
      if (result != nullptr) freeaddrinfo(result);
      lookup->done = true;
      if (lookup->answered != nullptr) uv_async_send(lookup->answered);
    }).detach();
  } catch (const std::system_error& e) {  // no thread to be had: try again next interval
    lookup_.reset();
    callbacks_.failed(e.what(), !answered_once_);
    answered_once_ = true;
  }
}

void Resolver::on_answer() {
  if (!lookup_) return;
  int status = 0;
  sockaddr_storage address{};
  {
    std::lock_guard lock(lookup_->mutex);
    if (!lookup_->done) return;
    status = lookup_->status;
    address = lookup_->address;
  }
  lookup_.reset();
  const bool first = !answered_once_;
  answered_once_ = true;
  if (status != 0) {
    callbacks_.failed(gai_strerror(status), first);
  } else {
    callbacks_.resolved(address, first);
  }
}

}  // namespace sluice
