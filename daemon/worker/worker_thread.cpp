#include "sluice/worker/worker_thread.hpp"

#include <pthread.h>

#include <string>

namespace sluice {

WorkerThread::WorkerThread(const char* name) {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &wake_, [](uv_async_t* async) { static_cast<WorkerThread*>(async->data)->run_tasks(); });
  wake_.data = this;
  thread_ = std::thread([this, thread_name = std::string(name)] {
    pthread_setname_np(pthread_self(), thread_name.c_str());
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

WorkerThread::~WorkerThread() {
  finish();
  uv_loop_close(&loop_);
}

void WorkerThread::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  uv_async_send(&wake_);
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
  post([this] { uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr); });
  thread_.join();
}

}  // namespace sluice
