#include "sluice/worker/worker_thread.hpp"

#include <pthread.h>

#include <cstdlib>

#include <string>

#include <spdlog/spdlog.h>

namespace sluice {

WorkerThread::WorkerThread(const char* name) {
  // A worker without a loop or a wake-up could never run a task: nothing to fall back to.
  int rc = uv_loop_init(&loop_);
  if (rc == 0) rc = wake_.init(&loop_, this, uv_async_init, [](uv_async_t* async) { owner<WorkerThread>(async)->run_tasks(); });
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
}

void WorkerThread::post(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  if (!wake_) return;  // finished: the loop has ended or is ending, nobody would run it
  tasks_.push_back(std::move(task));
  if (const int rc = uv_async_send(wake_.get()); rc != 0) spdlog::error("worker wake-up failed: {}", uv_err_name(rc));
}

void WorkerThread::run_tasks() {
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
    wake_.close();
  });
  thread_.join();
}

}  // namespace sluice
