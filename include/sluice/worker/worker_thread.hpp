#pragma once
// A thread with an event loop of its own, for one data worker's worker. The control plane talks to
// it only through tasks that run on its loop: post() queues one, submit() also hands back a future
// of its result (to wait on with a deadline), call() waits for it (start-up only). The loop runs
// until finish(), whatever else is on it, so a task can always be run before then.
//
// The hand-off never makes the worker wait for the poster. A worker may run at real-time priority
// while the control plane, which posts, runs SCHED_BATCH at a low nice. libuv 1.44's uv_async_t
// was that wait: its loop thread spins (sched_yield, which yields nothing to a lower class) until
// the sender finishes uv_async_send, and the sender, preempted by the very wake-up it wrote, did
// not get a CPU back until RT throttling (~1 s) let it: the worker stalls of the http arm. So the
// wake-up is an eventfd written after the queue is unlocked (one syscall, nothing to finish), and
// the queue's lock inherits the worker's priority (PiMutex).

#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include <uv.h>

#include "sluice/uv/handle.hpp"
#include "sluice/worker/pi_mutex.hpp"

namespace sluice {

class WorkerThread {
 public:
  /// Starts the thread; `name` is its name in `ps -L` / /proc (15 characters at most).
  explicit WorkerThread(const char* name);
  ~WorkerThread();  // finish() and join(), then closes the eventfd
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  /// The thread's loop: use it only from tasks run on the thread.
  uv_loop_t* loop() { return &loop_; }

  /// Runs `task` on the thread. Any thread. After finish() the task is dropped unrun.
  void post(std::function<void()> task);

  /// Runs `function` on the thread and returns its result; the caller waits as long as it takes.
  /// Not from the thread itself, and not after finish().
  template <typename Function>
  auto call(Function function) -> std::invoke_result_t<Function&> {
    std::packaged_task<std::invoke_result_t<Function&>()> task(std::move(function));
    auto result = task.get_future();
    post([&task] { task(); });
    return result.get();
  }

  /// Queues `function` and returns the future of its result. The caller may stop waiting (a
  /// deadline), so `function` must own everything it uses: capture by value, never a reference to
  /// the caller's locals. A task never run (the thread finished first) leaves a broken promise.
  template <typename Function>
  auto submit(Function function) -> std::future<std::invoke_result_t<Function&>> {
    auto task = std::make_shared<std::packaged_task<std::invoke_result_t<Function&>()>>(std::move(function));
    auto result = task->get_future();
    post([task] { (*task)(); });
    return result;
  }

  /// Lets the loop end once nothing else is open on it, and waits for the thread to exit.
  void finish();

 private:
  void run_tasks();

  uv_loop_t loop_;
  PiMutex mutex_;
  // post() writes to the eventfd after unlocking; it stays open until the destructor, after the
  // thread has ended, so a late write is harmless. The poll handle watching it is what keeps the
  // loop running; the thread closes it (and sets closed_) under mutex_.
  int wake_fd_ = -1;
  Handle<uv_poll_t> wake_;
  bool closed_ = false;                      // under mutex_
  std::deque<std::function<void()>> tasks_;  // under mutex_
  bool finished_ = false;
  std::thread thread_;
};

}  // namespace sluice
