#pragma once
// A mutex with priority inheritance (PTHREAD_PRIO_INHERIT), for the one lock a data worker shares
// with other threads: its task queue (WorkerThread). The worker may run at real-time priority
// (chrt) while the control plane runs SCHED_BATCH at the launcher's nice; if the control plane is
// preempted while it holds the lock, a plain mutex leaves the worker asleep until that thread gets
// a CPU again (hundreds of ms on a loaded machine). With inheritance the kernel runs the holder at
// the waiter's priority until it unlocks. Meets Lockable, so std::lock_guard works.

#include <pthread.h>

namespace sluice {

class PiMutex {
 public:
  PiMutex();
  ~PiMutex();
  PiMutex(const PiMutex&) = delete;
  PiMutex& operator=(const PiMutex&) = delete;

  void lock();
  bool try_lock();
  void unlock();

  /// Whether the kernel accepted PTHREAD_PRIO_INHERIT (else a plain mutex, and a warning logged).
  bool inherits() const { return inherits_; }

 private:
  pthread_mutex_t mutex_;
  bool inherits_ = false;
};

}  // namespace sluice
