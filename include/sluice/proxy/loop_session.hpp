#pragma once
// What a loop's list of live sessions holds: a TCP Session or an HttpSession. The worker ends them
// all at once (drain timeout, shutdown) and, when it starts draining, lets each close what is idle.

namespace sluice {

class LoopSession {
 public:
  /// Ends the session now: its sockets are closed and it frees itself.
  virtual void abort() = 0;
  /// The worker stopped accepting: an HTTP client connection between requests closes now, one
  /// in a request closes after its response. A TCP session carries on until it ends.
  virtual void drain() {}

  LoopSession* prev_in_worker = nullptr;  // LoopResources's intrusive list
  LoopSession* next_in_worker = nullptr;

 protected:
  ~LoopSession() = default;
};

}  // namespace sluice
