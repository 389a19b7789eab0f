#include "hr_timer.hpp"
#include "sluice/uv/handle.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sluice::tools {

namespace {
constexpr std::uint64_t kLeadStepNs = 2'000;    // per wake-up: ~100 wake-ups move the median 200 us
constexpr std::uint64_t kMaxLeadNs = 1'000'000;  // never wake more than 1 ms early
}  // namespace

struct HrTimerQueue::Handle {
  uv_poll_t poll{};
  int fd = -1;
  HrTimerQueue* owner = nullptr;  // null once the owner closed it
};

HrTimerQueue::HrTimerQueue(uv_loop_t* loop) {
  const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("timerfd_create: ") + std::strerror(errno));
  auto* handle = new Handle;
  handle->fd = fd;
  handle->owner = this;
  handle->poll.data = handle;
  int rc = uv_poll_init(loop, &handle->poll, fd);
  if (rc < 0) {
    ::close(fd);
    delete handle;
    throw std::runtime_error(std::string("uv_poll_init(timerfd): ") + uv_strerror(rc));
  }
  handle_ = handle;
  rc = uv_poll_start(&handle->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    close();
    throw std::runtime_error(std::string("uv_poll_start(timerfd): ") + uv_strerror(rc));
  }
}

HrTimerQueue::~HrTimerQueue() { close(); }

void HrTimerQueue::close() {
  entries_.clear();
  deadline_of_.clear();
  if (handle_ == nullptr) return;
  handle_->owner = nullptr;
  uv_close(sluice::as_handle(&handle_->poll), [](uv_handle_t* h) {
    auto* handle = static_cast<Handle*>(h->data);
    ::close(handle->fd);  // after uv_close: libuv must stop watching the fd before it is reused
    delete handle;
  });
  handle_ = nullptr;
}

std::uint64_t HrTimerQueue::schedule(std::uint64_t deadline_ns, Callback callback) {
  const std::uint64_t id = next_id_++;
  entries_.emplace(std::make_pair(deadline_ns, id), std::move(callback));
  deadline_of_.emplace(id, deadline_ns);
  arm();
  return id;
}

bool HrTimerQueue::cancel(std::uint64_t id) {
  const auto found = deadline_of_.find(id);
  if (found == deadline_of_.end()) return false;
  entries_.erase(std::make_pair(found->second, id));
  deadline_of_.erase(found);
  arm();
  return true;
}

// Arms the timerfd for the earliest deadline if it is not armed for exactly that one already.
void HrTimerQueue::arm() {
  if (handle_ == nullptr) return;
  const std::uint64_t wanted = entries_.empty() ? 0 : std::max<std::uint64_t>(entries_.begin()->first.first, 1);
  if (wanted == armed_deadline_ns_) return;
  // 0 disarms, so the earliest expiry is 1 ns (an absolute time in the past fires at once).
  const std::uint64_t expiry = wanted == 0 ? 0 : std::max<std::uint64_t>(wanted > lead_ns_ ? wanted - lead_ns_ : 1, 1);
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(expiry / 1'000'000'000ULL);
  spec.it_value.tv_nsec = static_cast<long>(expiry % 1'000'000'000ULL);
  if (timerfd_settime(handle_->fd, TFD_TIMER_ABSTIME, &spec, nullptr) < 0) {
    throw std::runtime_error(std::string("timerfd_settime: ") + std::strerror(errno));
  }
  armed_deadline_ns_ = wanted;
  armed_expiry_ns_ = expiry;
  armed_in_future_ = expiry > uv_hrtime();
}

void HrTimerQueue::on_readable(uv_poll_t* poll, int status, int) {
  auto* handle = static_cast<Handle*>(poll->data);
  std::uint64_t expirations = 0;
  while (::read(handle->fd, &expirations, sizeof expirations) < 0 && errno == EINTR) {
  }
  HrTimerQueue* queue = handle->owner;
  if (queue == nullptr || status < 0) return;
  if (queue->armed_deadline_ns_ != 0 && queue->armed_in_future_) {
    const std::uint64_t now = uv_hrtime();
    const std::uint64_t latency = now > queue->armed_expiry_ns_ ? now - queue->armed_expiry_ns_ : 0;
    if (latency > queue->lead_ns_) {
      queue->lead_ns_ = std::min(queue->lead_ns_ + kLeadStepNs, kMaxLeadNs);
    } else if (latency < queue->lead_ns_) {
      queue->lead_ns_ = queue->lead_ns_ > kLeadStepNs ? queue->lead_ns_ - kLeadStepNs : 0;
    }
  }
  queue->armed_deadline_ns_ = 0;  // the timerfd is one-shot: it is disarmed now
  queue->run_due();
}

void HrTimerQueue::run_due() {
  // Entries that come due while earlier callbacks run are taken in the same pass.
  while (handle_ != nullptr && !entries_.empty()) {
    const auto first = entries_.begin();
    // Due once its (lead-adjusted) expiry has passed; re-arming for an expiry already past would spin.
    if (first->first.first > uv_hrtime() + lead_ns_) break;
    Callback callback = std::move(first->second);
    deadline_of_.erase(first->first.second);
    entries_.erase(first);
    callback();
  }
  arm();
}

}  // namespace sluice::tools
