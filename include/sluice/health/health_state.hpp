#pragma once
// The rise/fall hysteresis of one backend's health. Pure: fed with evidence, says when the state
// flips. Active checks and client connects share one run of consecutive failures (so a backend
// that refuses clients falls as fast as one that fails its checks), but only active checks bring
// a down backend back: no client is sent to it to find out.

#include <cstdint>

namespace sluice {

enum class HealthEvidence {
  check_passed,    // an active check connected
  check_failed,    // an active check was refused or timed out
  connect_passed,  // a client's connect to the backend succeeded
  connect_failed,  // a client's connect was refused or timed out
};

class HealthState {
 public:
  HealthState(std::uint32_t rise, std::uint32_t fall, bool up) : rise_(rise), fall_(fall), up_(up) {}

  bool up() const { return up_; }
  /// Consecutive failures while up / consecutive passed checks while down (what the next flip needs).
  std::uint32_t run() const { return run_; }

  /// Records one piece of evidence; returns true when it flipped the state.
  bool record(HealthEvidence evidence);

  /// Sets the state directly (a backend that lost or got its address) and forgets the run.
  void reset(bool up) {
    up_ = up;
    run_ = 0;
  }

 private:
  std::uint32_t rise_;
  std::uint32_t fall_;
  bool up_;
  std::uint32_t run_ = 0;
};

}  // namespace sluice
