#pragma once
// The one owner type for libuv handles, and the only casts between libuv's (and the socket API's)
// C "base struct" types. Nothing else in Sluice writes reinterpret_cast.
//
// libuv frees nothing: a handle's memory must stay valid until its close callback, one loop turn
// after uv_close(). Handle<T> puts the uv struct on the heap and frees it in that callback, so the
// object that owns a Handle may be destroyed at once, in any callback, without waiting:
//
//   Handle<uv_timer_t> timer_;
//   timer_.init(loop, this, uv_timer_init);            // handle->data = this
//   uv_timer_start(timer_.get(), [](uv_timer_t* t) { owner<MyClass>(t)->tick(); }, 100, 100);
//   ...                                                // ~Handle closes: no callback after it
//
// After close() no callback of the handle runs, except that pending uv_write_t/uv_connect_t
// requests on a stream still complete with UV_ECANCELED: owners of such requests keep what their
// callbacks use alive (Session does, see proxy/session.hpp).

#include <sys/socket.h>

#include <netinet/in.h>
#include <uv.h>

#include <utility>

namespace sluice {

// --- casts between libuv's handle types, and socket address types ------------------------------

template <class T>
uv_handle_t* as_handle(T* handle) {
  return reinterpret_cast<uv_handle_t*>(handle);
}
template <class T>
uv_stream_t* as_stream(T* handle) {
  return reinterpret_cast<uv_stream_t*>(handle);
}
template <class T>
const sockaddr* as_sockaddr(const T* address) {
  return reinterpret_cast<const sockaddr*>(address);
}
template <class T>
sockaddr* as_sockaddr(T* address) {
  return reinterpret_cast<sockaddr*>(address);
}
inline const sockaddr_in* as_ipv4(const sockaddr* address) { return reinterpret_cast<const sockaddr_in*>(address); }
inline const sockaddr_in6* as_ipv6(const sockaddr* address) {
  return reinterpret_cast<const sockaddr_in6*>(address);
}

/// The object a handle or request was given as `data` (the container-of of this code base: every
/// owner stores itself there, so no pointer arithmetic is needed).
template <class Owner, class T>
Owner* owner(T* handle_or_request) {
  return static_cast<Owner*>(handle_or_request->data);
}

// --- the owner type ------------------------------------------------------------------------------

template <class T>
class Handle {
 public:
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~Handle() { close(); }

  /// Allocates and initialises the handle with `init(loop, handle, args...)` (uv_timer_init,
  /// uv_tcp_init, uv_poll_init, ...); `data` becomes `owner`. Returns libuv's code: on failure the
  /// handle is freed and this stays empty.
  template <class Owner, class Init, class... Args>
  int init(uv_loop_t* loop, Owner* owner, Init init_function, Args&&... args) {
    close();
    T* handle = new T{};
    const int rc = init_function(loop, handle, std::forward<Args>(args)...);
    if (rc != 0) {
      delete handle;
      return rc;
    }
    handle->data = owner;
    handle_ = handle;
    return 0;
  }

  /// Closes the handle (idempotent); its memory is freed in libuv's close callback. No callback of
  /// the handle runs after this returns.
  void close() {
    if (handle_ == nullptr) return;
    T* handle = std::exchange(handle_, nullptr);
    handle->data = nullptr;
    uv_close(as_handle(handle), [](uv_handle_t* closed) { delete reinterpret_cast<T*>(closed); });
  }

  T* get() const { return handle_; }
  uv_handle_t* handle() const { return as_handle(handle_); }
  explicit operator bool() const { return handle_ != nullptr; }
  bool active() const { return handle_ != nullptr && uv_is_active(as_handle(handle_)) != 0; }

 private:
  T* handle_ = nullptr;
};

}  // namespace sluice
