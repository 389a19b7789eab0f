#include "sluice/worker/worker_thread.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace sluice {

WorkerThread::WorkerThread(const char* name) {
  // A worker without a loop or a wake-up could never run a task: nothing to fall back to.
  int rc = uv_loop_init(&loop_);
  if (rc == 0) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) rc = -errno;
  }
  if (rc == 0) rc = wake_.init(&loop_, this, uv_poll_init, wake_fd_);
  if (rc == 0) {
    rc = uv_poll_start(wake_.get(), UV_READABLE, [](uv_poll_t* poll, int status, int) {
      if (status < 0) spdlog::error("worker wake-up poll failed: {}", uv_err_name(status));
      owner<WorkerThread>(poll)->run_tasks();
    });
  }
  if (rc != 0) {
    spdlog::critical("{}: cannot create its event loop: {}", name, uv_err_name(rc));
    std::abort();
  }
  thread_ = std::thread([this, thread_name = std::string(name)] {
    pthread_setname_np(pthread_self(), thread_name.c_str());
    if (uv_run(&loop_, UV_RUN_DEFAULT) != 0) spdlog::warn("{}: loop stopped with handles still open", thread_name);
  });
}

WorkerThread::~WorkerThread() {
  finish();
  if (const int rc = uv_loop_close(&loop_); rc != 0) spdlog::warn("worker loop closed busy: {}", uv_err_name(rc));
  if (wake_fd_ >= 0 && close(wake_fd_) != 0) spdlog::warn("worker wake-up close failed: {}", std::strerror(errno));
}

void WorkerThread::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;  // finished: the loop has ended or is ending, nobody would run it
    tasks_.push_back(std::move(task));
  }
  // Outside the lock: the write wakes the worker, which may preempt this thread at once.
  const std::uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) {
    spdlog::error("worker wake-up failed: {}", std::strerror(errno));
  }
}

void WorkerThread::run_tasks() {
  // Reset the counter first: a post after this read writes again, and its task is either in the
  // swap below or wakes the loop once more.
  std::uint64_t count = 0;
  if (read(wake_fd_, &count, sizeof count) < 0 && errno != EAGAIN) {
    spdlog::error("worker wake-up read failed: {}", std::strerror(errno));
  }
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard lock(mutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
}

void WorkerThread::finish() {
  if (finished_) return;
  finished_ = true;
  // The wake handle is what keeps the loop running; closing it (on the thread) lets it end.
  post([this] {
    std::lock_guard lock(mutex_);
    closed_ = true;
    wake_.close();
  });
  thread_.join();
}

}  // namespace sluice
