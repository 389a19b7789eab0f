// Service dispatch, slots and FIFO queues, driven with a fake clock and fake waiters.

#include <doctest/doctest.h>

#include <netinet/in.h>

#include <string>
#include <vector>

#include "sluice/service.hpp"

namespace {

constexpr std::uint64_t kMs = 1'000'000;  // nanoseconds

struct FakeWaiter final : sluice::Waiter {
  explicit FakeWaiter(int id_) : id(id_) {}
  void on_dispatched(sluice::Backend& backend) override { dispatched_to = backend.config.name; }
  int id;
  std::string dispatched_to;
};

sluice::Service make_service(sluice::QueueMode mode, std::vector<std::uint32_t> slots,
                             std::uint32_t max_length = 1000,
                             sluice::PolicyKind policy = sluice::PolicyKind::round_robin) {
  sluice::ServiceConfig config;
  config.name = "web";
  config.policy = policy;
  config.queue.mode = mode;
  config.queue.max_length = max_length;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    sluice::BackendConfig backend;
    backend.name = std::string(1, static_cast<char>('a' + i));
    backend.address = {"127.0.0.1", static_cast<std::uint16_t>(9000 + i)};
    backend.max_connections = slots[i];
    config.backends.push_back(backend);
  }
  std::vector<sockaddr_storage> addresses(slots.size());
  for (auto& address : addresses) address.ss_family = AF_INET;
  return sluice::Service(config, addresses);
}

const std::vector<bool> kNoneTried;

}  // namespace

TEST_CASE("shared queue: one slot, arrivals wait and are served strictly in arrival order") {
  auto service = make_service(sluice::QueueMode::shared, {1});
  std::vector<FakeWaiter> waiters;
  for (int i = 0; i < 5; ++i) waiters.emplace_back(i);

  auto first = service.arrive(waiters[0], 0, kNoneTried);
  CHECK(first.outcome == sluice::Service::Outcome::dispatched);
  for (int i = 1; i < 5; ++i) {
    waiters[i].arrived_ns = static_cast<std::uint64_t>(i) * kMs;
    CHECK(service.arrive(waiters[i], waiters[i].arrived_ns, kNoneTried).outcome ==
          sluice::Service::Outcome::queued);
  }
  CHECK(service.stats().queue_length.value() == 4);
  sluice::Backend& backend = service.backends()[0];
  CHECK(backend.active_connections() == 1);

  // Each release at t = 10, 20, 30, 40 ms hands the slot to the oldest waiter.
  for (int i = 1; i < 5; ++i) {
    service.release(backend, static_cast<std::uint64_t>(10 * i) * kMs);
    for (int j = 1; j < 5; ++j) CHECK(waiters[j].dispatched_to == (j <= i ? "a" : ""));
    CHECK(backend.active_connections() == 1);
  }
  CHECK(service.waiting() == 0);
  // Waits: 10-1, 20-2, 30-3, 40-4 ms = 90 ms in all; plus the first connection's 0.
  CHECK(service.stats().queue_wait.count() == 5);
  CHECK(service.stats().queue_wait.sum_seconds() == doctest::Approx(0.090));
  // The integral of the queue length equals the sum of the waits (Little's law, exactly).
  CHECK(service.stats().queue_length.seconds_total(100 * kMs) == doctest::Approx(0.090));
  CHECK(backend.stats.connections_total == 5);
}

TEST_CASE("shared queue: beyond max_length arrivals are refused; unlimited slots never queue") {
  auto service = make_service(sluice::QueueMode::shared, {1}, 2);
  FakeWaiter a(0), b(1), c(2), d(3);
  CHECK(service.arrive(a, 0, kNoneTried).outcome == sluice::Service::Outcome::dispatched);
  CHECK(service.arrive(b, 0, kNoneTried).outcome == sluice::Service::Outcome::queued);
  CHECK(service.arrive(c, 0, kNoneTried).outcome == sluice::Service::Outcome::queued);
  CHECK(service.arrive(d, 0, kNoneTried).outcome == sluice::Service::Outcome::queue_full);

  auto unlimited = make_service(sluice::QueueMode::shared, {0});
  std::vector<FakeWaiter> many;
  for (int i = 0; i < 100; ++i) many.emplace_back(i);
  for (auto& waiter : many) {
    CHECK(unlimited.arrive(waiter, 0, kNoneTried).outcome == sluice::Service::Outcome::dispatched);
  }
  CHECK(unlimited.backends()[0].active_connections() == 100);
}

TEST_CASE("shared queue: a waiter that leaves (timeout or abandonment) frees its place at once") {
  auto service = make_service(sluice::QueueMode::shared, {1});
  FakeWaiter a(0), b(1), c(2), d(3);
  service.arrive(a, 0, kNoneTried);
  service.arrive(b, 0, kNoneTried);
  service.arrive(c, 0, kNoneTried);
  service.arrive(d, 0, kNoneTried);
  service.leave_queue(c, 50 * kMs);  // from the middle
  CHECK(service.stats().queue_length.value() == 2);
  CHECK(c.queue == nullptr);
  service.leave_queue(c, 60 * kMs);  // twice is harmless
  CHECK(service.stats().queue_length.value() == 2);

  service.release(service.backends()[0], 100 * kMs);
  CHECK(b.dispatched_to == "a");
  service.release(service.backends()[0], 200 * kMs);
  CHECK(d.dispatched_to == "a");
  CHECK(c.dispatched_to.empty());
  // 3 waiting for 50 ms, 2 until 100 ms, 1 until 200 ms: 0.15 + 0.1 + 0.1 = 0.35 s.
  CHECK(service.stats().queue_length.seconds_total(300 * kMs) == doctest::Approx(0.35));
}

TEST_CASE("shared queue: the head takes the first slot that frees on any backend") {
  auto service = make_service(sluice::QueueMode::shared, {1, 1, 1});
  std::vector<FakeWaiter> waiters;
  for (int i = 0; i < 5; ++i) waiters.emplace_back(i);
  for (auto& waiter : waiters) service.arrive(waiter, 0, kNoneTried);
  CHECK(service.waiting() == 2);
  service.release(service.backends()[2], kMs);
  CHECK(waiters[3].dispatched_to == "c");
  service.release(service.backends()[0], kMs);
  CHECK(waiters[4].dispatched_to == "a");
}

TEST_CASE("shared queue: a retry that must wait goes to the front, not the back") {
  auto service = make_service(sluice::QueueMode::shared, {1, 1});
  FakeWaiter a(0), b(1), retried(2), late(3);
  service.arrive(a, 0, kNoneTried);
  service.arrive(b, 0, kNoneTried);
  service.arrive(late, 0, kNoneTried);
  std::vector<bool> tried = {false, true};  // b failed for `retried`
  CHECK(service.arrive(retried, 0, tried).outcome == sluice::Service::Outcome::queued);
  service.release(service.backends()[0], kMs);
  CHECK(retried.dispatched_to == "a");
  CHECK(late.dispatched_to.empty());
  // Every backend tried: nothing left to try.
  std::vector<bool> all_tried = {true, true};
  FakeWaiter unlucky(4);
  CHECK(service.arrive(unlucky, 0, all_tried).outcome == sluice::Service::Outcome::no_backend);
}

TEST_CASE("per_backend queues: the policy chooses at arrival and each backend serves its own FIFO") {
  auto service = make_service(sluice::QueueMode::per_backend, {1, 1});
  std::vector<FakeWaiter> waiters;
  for (int i = 0; i < 6; ++i) waiters.emplace_back(i);
  for (auto& waiter : waiters) service.arrive(waiter, 0, kNoneTried);
  auto& a = service.backends()[0];
  auto& b = service.backends()[1];
  CHECK(a.stats.queue_length.value() == 2);
  CHECK(b.stats.queue_length.value() == 2);
  CHECK(service.stats().queue_length.value() == 0);  // the shared queue is unused
  service.release(a, kMs);
  CHECK(waiters[2].dispatched_to == "a");  // a's queue held 2 and 4
  service.release(a, kMs);
  CHECK(waiters[4].dispatched_to == "a");
  service.release(a, kMs);  // a's queue is empty: b's waiters stay with b
  CHECK(waiters[3].dispatched_to.empty());
  CHECK(b.stats.queue_length.value() == 2);
}

TEST_CASE("per_backend queues: least_connections counts waiting connections too") {
  auto service = make_service(sluice::QueueMode::per_backend, {1, 1}, 1000,
                              sluice::PolicyKind::least_connections);
  std::vector<FakeWaiter> waiters;
  for (int i = 0; i < 4; ++i) waiters.emplace_back(i);
  for (auto& waiter : waiters) service.arrive(waiter, 0, kNoneTried);
  // Now a: 1 active + 1 queued, b: 1 active + 1 queued; b's waiter leaves, so b has fewer.
  service.leave_queue(waiters[3], kMs);
  FakeWaiter next(9);
  service.arrive(next, kMs, kNoneTried);
  CHECK(next.queue != nullptr);
  CHECK(service.backends()[1].stats.queue_length.value() == 1);
}

TEST_CASE("a backend that is down is never chosen, and none up means no_backend") {
  auto service = make_service(sluice::QueueMode::shared, {0, 0});
  service.backends()[0].up = false;
  FakeWaiter a(0), b(1);
  CHECK(service.arrive(a, 0, kNoneTried).backend == &service.backends()[1]);
  service.backends()[1].up = false;
  CHECK(service.arrive(b, 0, kNoneTried).outcome == sluice::Service::Outcome::no_backend);
}
