#pragma once
// The control plane's one way of waiting for a worker: with a deadline (admin.worker_timeout).

#include <chrono>
#include <future>
#include <optional>

namespace sluice {

// Waits for `future` until `deadline`; nullopt when it is late or its task never ran.
template <typename T>
std::optional<T> get_by(std::future<T>& future, std::chrono::steady_clock::time_point deadline) {
  if (future.wait_until(deadline) != std::future_status::ready) return std::nullopt;
  try {
    return future.get();
  } catch (const std::future_error&) {
    return std::nullopt;  // the worker finished without running it
  }
}

}  // namespace sluice
