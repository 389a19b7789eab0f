#include "sluice/health/health_state.hpp"

namespace sluice {

bool HealthState::record(HealthEvidence evidence) {
  const bool passed = evidence == HealthEvidence::check_passed || evidence == HealthEvidence::connect_passed;
  if (up_) {
    if (passed) {
      run_ = 0;
    } else if (++run_ >= fall_) {
      reset(false);
      return true;
    }
    return false;
  }
  // Down: only active checks count. A client connect seen now was begun before the backend fell.
  if (evidence == HealthEvidence::check_failed) {
    run_ = 0;
  } else if (evidence == HealthEvidence::check_passed && ++run_ >= rise_) {
    reset(true);
    return true;
  }
  return false;
}

}  // namespace sluice
