#include "sluice/worker/pi_mutex.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sluice {

PiMutex::PiMutex() {
  pthread_mutexattr_t attr;
  int rc = pthread_mutexattr_init(&attr);
  if (rc == 0) rc = pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
  if (rc == 0) rc = pthread_mutex_init(&mutex_, &attr);
  if (rc == 0) {
    inherits_ = true;
  } else {
    // A kernel without PI futexes: a plain mutex, correct but open to priority inversion.
    spdlog::warn("priority-inheritance mutex refused ({}): a worker may wait for a lower-priority thread",
                 std::strerror(rc));
    if (const int plain = pthread_mutex_init(&mutex_, nullptr); plain != 0) {
      spdlog::critical("cannot create a mutex: {}", std::strerror(plain));
      std::abort();
    }
  }
  pthread_mutexattr_destroy(&attr);
}

PiMutex::~PiMutex() { pthread_mutex_destroy(&mutex_); }

void PiMutex::lock() {
  // Fails only on misuse (EDEADLK, EINVAL) or EAGAIN/ENOTRECOVERABLE, none of which can be waited out.
  if (const int rc = pthread_mutex_lock(&mutex_); rc != 0) {
    spdlog::critical("mutex lock failed: {}", std::strerror(rc));
    std::abort();
  }
}

bool PiMutex::try_lock() { return pthread_mutex_trylock(&mutex_) == 0; }

void PiMutex::unlock() { pthread_mutex_unlock(&mutex_); }

}  // namespace sluice
