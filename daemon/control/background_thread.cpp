#include "sluice/control/background_thread.hpp"

#include <pthread.h>
#include <sched.h>

namespace sluice {

int run_as_background_thread() {
  const sched_param param{};  // SCHED_BATCH has the one priority 0
  return pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
}

}  // namespace sluice
