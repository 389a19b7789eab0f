#pragma once
// A strict FIFO of connections waiting for a backend slot. Intrusive (the waiter carries its own
// links), so joining, leaving from the middle (a client that gives up) and dispatching the head are
// O(1) and allocate nothing. Every change of length updates the queue's time integral.

#include <cstddef>
#include <cstdint>

#include "sluice/metrics/time_integral.hpp"

namespace sluice {

class WaitQueue;
struct Backend;

/// A connection that may wait for a slot. The Session implements it.
class Waiter {
 public:
  /// Called when the waiter leaves its queue with a slot on `backend` (already counted there).
  virtual void on_dispatched(Backend& backend) = 0;

  std::uint64_t arrived_ns = 0;    // accepted by the listener: queue waits are measured from here
  std::uint64_t dispatched_ns = 0; // first given a slot (0 = not yet); its wait is measured then
  std::uint64_t slot_taken_ns = 0; // the slot it holds (or last held) was taken: its slot time starts

  // Links, owned by the WaitQueue it is in.
  WaitQueue* queue = nullptr;
  Waiter* prev_waiting = nullptr;
  Waiter* next_waiting = nullptr;

 protected:
  ~Waiter() = default;
};

class WaitQueue {
 public:
  /// `length` is the integral (and gauge) this queue keeps up to date.
  explicit WaitQueue(TimeIntegral& length) : length_(length) {}
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  void push_back(Waiter& waiter, std::uint64_t now_ns);
  /// For a connection that already waited its turn and lost its slot (a failed connect).
  void push_front(Waiter& waiter, std::uint64_t now_ns);
  /// For a waiter moved from another queue: placed after every waiter that arrived no later, so
  /// the queue stays in arrival order. O(number of later arrivals).
  void insert_by_arrival(Waiter& waiter, std::uint64_t now_ns);
  /// The oldest waiter, removed; nullptr when empty.
  Waiter* pop_front(std::uint64_t now_ns);
  /// Removes `waiter` from anywhere in the queue (timeout, client gone).
  void remove(Waiter& waiter, std::uint64_t now_ns);

  std::size_t length() const { return length_count_; }
  bool empty() const { return head_ == nullptr; }
  const Waiter* head() const { return head_; }

 private:
  /// Links `waiter` in after `before` (nullptr: at the front).
  void insert_after(Waiter* before, Waiter& waiter, std::uint64_t now_ns);

  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  std::size_t length_count_ = 0;
  TimeIntegral& length_;
};

}  // namespace sluice
