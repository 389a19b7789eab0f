#include "sluice/balancing/wait_queue.hpp"

namespace sluice {

void WaitQueue::push_back(Waiter& waiter, std::uint64_t now_ns) { insert_after(tail_, waiter, now_ns); }

void WaitQueue::push_front(Waiter& waiter, std::uint64_t now_ns) { insert_after(nullptr, waiter, now_ns); }

void WaitQueue::insert_by_arrival(Waiter& waiter, std::uint64_t now_ns) {
  Waiter* before = tail_;  // the waiter goes after this one
  while (before != nullptr && before->arrived_ns > waiter.arrived_ns) before = before->prev_waiting;
  insert_after(before, waiter, now_ns);
}

void WaitQueue::insert_after(Waiter* before, Waiter& waiter, std::uint64_t now_ns) {
  Waiter* after = before != nullptr ? before->next_waiting : head_;
  waiter.queue = this;
  waiter.prev_waiting = before;
  waiter.next_waiting = after;
  (before != nullptr ? before->next_waiting : head_) = &waiter;
  (after != nullptr ? after->prev_waiting : tail_) = &waiter;
  ++length_count_;
  length_.add(now_ns, 1);
}

Waiter* WaitQueue::pop_front(std::uint64_t now_ns) {
  Waiter* waiter = head_;
  if (waiter != nullptr) remove(*waiter, now_ns);
  return waiter;
}

void WaitQueue::remove(Waiter& waiter, std::uint64_t now_ns) {
  if (waiter.queue != this) return;
  (waiter.prev_waiting != nullptr ? waiter.prev_waiting->next_waiting : head_) = waiter.next_waiting;
  (waiter.next_waiting != nullptr ? waiter.next_waiting->prev_waiting : tail_) = waiter.prev_waiting;
  waiter.queue = nullptr;
  waiter.prev_waiting = waiter.next_waiting = nullptr;
  --length_count_;
  length_.add(now_ns, -1);
}

}  // namespace sluice
