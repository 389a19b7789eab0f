#include "sluice/uv/deadline_timer.hpp"

#include <spdlog/spdlog.h>

namespace sluice {

int DeadlineTimer::init(uv_loop_t* loop, void* owner, Callback on_expired) {
  owner_ = owner;
  on_expired_ = on_expired;
  deadline_ms_ = due_ms_ = kNone;
  return timer_.init(loop, this, uv_timer_init);
}

int DeadlineTimer::start(std::uint64_t timeout_ms) {
  if (!timer_) return UV_EINVAL;
  const std::uint64_t now = uv_now(timer_.get()->loop);
  deadline_ms_ = timeout_ms > kNone - 1 - now ? kNone - 1 : now + timeout_ms;
  // libuv's timer fires first: on_fired starts it again for the rest.
  if (due_ms_ <= deadline_ms_) return 0;
  const int rc = uv_timer_start(timer_.get(), [](uv_timer_t* timer) { owner<DeadlineTimer>(timer)->on_fired(); },
                                deadline_ms_ - now, 0);
  if (rc == 0) due_ms_ = deadline_ms_;
  return rc;
}

void DeadlineTimer::close() {
  timer_.close();
  deadline_ms_ = due_ms_ = kNone;
}

void DeadlineTimer::on_fired() {
  due_ms_ = kNone;
  if (deadline_ms_ == kNone) return;  // stopped
  const std::uint64_t now = uv_now(timer_.get()->loop);
  if (now < deadline_ms_) {
    if (int rc = start(deadline_ms_ - now); rc != 0) spdlog::warn("deadline timer not restarted: {}", uv_err_name(rc));
    return;
  }
  deadline_ms_ = kNone;
  on_expired_(owner_);
}

}  // namespace sluice
