// The hand-off to a data worker (WorkerThread) and the lock it shares with the control plane
// (PiMutex). What the worker stalls of the http arm needed: a worker at real-time priority must
// never wait for a poster that the scheduler keeps off the CPU.

#include <doctest/doctest.h>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sluice/worker/pi_mutex.hpp"
#include "sluice/worker/worker_thread.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

pid_t this_tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

std::string proc_task_file(pid_t tid, const char* name) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The kernel's priority of a thread (field 18 of stat: negative for real-time, 20 + nice otherwise).
long kernel_priority(pid_t tid) {
  const std::string stat = proc_task_file(tid, "stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 18; ++i) fields >> field;
  return std::stol(field);
}

// The futex operation `tid` is blocked in (its syscall is futex, 202 on x86-64), or -1 when it is not.
long blocked_futex_op(pid_t tid) {
  std::istringstream syscall_line(proc_task_file(tid, "syscall"));
  long number = -1;
  std::string address, op;
  syscall_line >> number >> address >> op;
  if (number != SYS_futex) return -1;
  return std::stol(op, nullptr, 16) & 0x7f;  // without FUTEX_PRIVATE_FLAG
}

// Waits (bounded) until `waiter` sleeps in a futex, and returns the operation.
long wait_until_blocked(pid_t waiter) {
  const auto deadline = std::chrono::steady_clock::now() + sluice::test::scaled(10s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (const long op = blocked_futex_op(waiter); op >= 0) return op;
    std::this_thread::yield();
  }
  return -1;
}

constexpr long kFutexLockPi = 6;
constexpr long kFutexLockPi2 = 13;  // what glibc 2.35+ uses on kernels that have it

}  // namespace

TEST_CASE("PiMutex: a thread waiting for it sleeps in the kernel's priority-inheritance lock") {
  sluice::PiMutex mutex;
  CHECK(mutex.inherits());
  mutex.lock();
  std::promise<pid_t> waiter_tid;
  std::thread waiter([&] {
    waiter_tid.set_value(this_tid());
    std::lock_guard lock(mutex);
  });
  const long op = wait_until_blocked(waiter_tid.get_future().get());
  mutex.unlock();
  waiter.join();
  INFO("futex operation " << op);  // 0: FUTEX_WAIT, a plain mutex
  CHECK((op == kFutexLockPi || op == kFutexLockPi2));
  CHECK(mutex.try_lock());
  mutex.unlock();
}

TEST_CASE("PiMutex: a nice 19 holder runs at the real-time priority of the worker waiting for it") {
  sluice::PiMutex mutex;
  std::promise<pid_t> holder_tid;
  std::promise<void> release;
  std::atomic<bool> holding{false};
  std::thread holder([&] {
    // The control plane's place in the experiment: nice 19 (and SCHED_BATCH).
    CHECK(setpriority(PRIO_PROCESS, static_cast<id_t>(this_tid()), 19) == 0);
    std::lock_guard lock(mutex);
    holding = true;
    holder_tid.set_value(this_tid());
    release.get_future().wait();
  });
  const pid_t holder_id = holder_tid.get_future().get();
  const long unboosted = kernel_priority(holder_id);
  std::promise<pid_t> waiter_tid;
  std::promise<int> waiter_policy;
  std::thread waiter([&] {
    const sched_param param{.sched_priority = 10};  // the worker's, under chrt -f 10
    const int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
    waiter_policy.set_value(rc);
    waiter_tid.set_value(this_tid());
    if (rc != 0) return;
    std::lock_guard lock(mutex);
  });
  const int policy_rc = waiter_policy.get_future().get();
  const pid_t waiter_id = waiter_tid.get_future().get();
  long boosted = unboosted;
  if (policy_rc == 0 && wait_until_blocked(waiter_id) >= 0) boosted = kernel_priority(holder_id);
  release.set_value();
  holder.join();
  waiter.join();
  if (policy_rc != 0) SLUICE_SKIP("SCHED_FIFO refused (needs CAP_SYS_NICE): the boost cannot be seen");
  CHECK(holding);
  CHECK(unboosted == 39);  // 20 + nice 19
  CHECK(boosted == -11);   // -(1 + 10): real-time priority 10, inherited from the waiter
}

TEST_CASE("WorkerThread: every task posted from several threads runs once, in each poster's order") {
  constexpr int kPosters = 3;
  constexpr int kTasks = 5000;
  auto thread = std::make_unique<sluice::WorkerThread>("test-worker");
  std::vector<int> next(kPosters, 0);  // touched only on the worker thread
  std::atomic<int> out_of_order{0};
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      for (int i = 0; i < kTasks; ++i) {
        thread->post([&, p, i] {
          if (next[p] != i) ++out_of_order;
          next[p] = i + 1;
        });
      }
    });
  }
  for (auto& poster : posters) poster.join();
  // Queued behind every post above; a lost wake-up leaves it unrun.
  auto counts = thread->submit([&] { return next; });
  REQUIRE(counts.wait_for(sluice::test::scaled(30s)) == std::future_status::ready);
  CHECK(counts.get() == std::vector<int>(kPosters, kTasks));
  CHECK(out_of_order == 0);
  // After finish() a post is dropped, not run and not a crash.
  thread->finish();
  bool ran = false;
  thread->post([&] { ran = true; });
  thread.reset();
  CHECK_FALSE(ran);
}
