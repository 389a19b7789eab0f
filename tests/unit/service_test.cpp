// Service dispatch, slots and FIFO queues, driven with a fake clock and fake waiters.

#include <doctest/doctest.h>

#include <netinet/in.h>

#include <string>
#include <vector>

#include "sluice/balancing/service.hpp"
#include "sluice/net/sockaddr_text.hpp"

namespace {

constexpr std::uint64_t kMs = 1'000'000;  // nanoseconds

struct FakeWaiter final : sluice::Waiter {
  explicit FakeWaiter(int id_) : id(id_) {}
  void on_dispatched(sluice::Backend& backend) override { dispatched_to = backend.config.name; }
  int id;
  std::string dispatched_to;
};

sluice::ServiceConfig make_config(sluice::QueueMode mode, std::vector<std::uint32_t> slots,
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
  config.health_check.rise = 2;
  config.health_check.fall = 3;
  return config;
}

sluice::Service make_service(sluice::QueueMode mode, std::vector<std::uint32_t> slots,
                             std::uint32_t max_length = 1000,
                             sluice::PolicyKind policy = sluice::PolicyKind::round_robin) {
  return sluice::Service(make_config(mode, std::move(slots), max_length, policy), 0);
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

TEST_CASE("shared queue: beyond max_length arrivals are refused, unlimited slots never queue") {
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

TEST_CASE("a backend that is down is never chosen, with none up a newcomer waits, a retry is refused") {
  auto service = make_service(sluice::QueueMode::shared, {0, 0});
  service.backends()[0].up = false;
  FakeWaiter a(0), b(1), c(2);
  CHECK(service.arrive(a, 0, kNoneTried).backend == &service.backends()[1]);
  service.backends()[1].up = false;
  CHECK_FALSE(service.any_up());
  CHECK(service.arrive(b, 0, kNoneTried).outcome == sluice::Service::Outcome::queued);
  CHECK(service.arrive(c, 0, {true, false}).outcome == sluice::Service::Outcome::no_backend);
}

// ---- health and addresses ----

namespace {

void fail(sluice::Service& service, sluice::Backend& backend, int times, std::uint64_t now_ns,
          sluice::HealthEvidence evidence = sluice::HealthEvidence::check_failed) {
  for (int i = 0; i < times; ++i) service.record_health(backend, evidence, "ECONNREFUSED", now_ns);
}

void pass(sluice::Service& service, sluice::Backend& backend, int times, std::uint64_t now_ns) {
  for (int i = 0; i < times; ++i) service.record_health(backend, sluice::HealthEvidence::check_passed, "", now_ns);
}

sockaddr_storage address_of(const char* ip, std::uint16_t port) {
  return *sluice::numeric_address({ip, port});
}

}  // namespace

TEST_CASE("health: fall failures take a backend down, rise checks bring it back, each change counted") {
  auto service = make_service(sluice::QueueMode::shared, {1, 1});
  sluice::Backend& a = service.backends()[0];
  fail(service, a, 2, 10 * kMs);
  CHECK(a.up);
  fail(service, a, 1, 20 * kMs, sluice::HealthEvidence::connect_failed);
  CHECK_FALSE(a.up);
  CHECK(a.state_since_ns == 20 * kMs);
  CHECK(a.state_reason == "3 failures in a row, the last a client connect: ECONNREFUSED");
  CHECK(a.stats.state_changes_total == 1);

  FakeWaiter w(0);
  CHECK(service.arrive(w, 30 * kMs, kNoneTried).backend == &service.backends()[1]);
  pass(service, a, 1, 40 * kMs);
  CHECK_FALSE(a.up);
  pass(service, a, 1, 50 * kMs);
  CHECK(a.up);
  CHECK(a.state_reason == "2 health checks passed");
  CHECK(a.stats.state_changes_total == 2);
}

TEST_CASE("health: shared queue, clients waiting while no backend is up are served when one comes back") {
  auto service = make_service(sluice::QueueMode::shared, {1});
  sluice::Backend& a = service.backends()[0];
  fail(service, a, 3, 0);
  REQUIRE_FALSE(a.up);
  FakeWaiter w1(1), w2(2);
  CHECK(service.arrive(w1, kMs, kNoneTried).outcome == sluice::Service::Outcome::queued);
  CHECK(service.arrive(w2, 2 * kMs, kNoneTried).outcome == sluice::Service::Outcome::queued);
  pass(service, a, 2, 100 * kMs);
  CHECK(w1.dispatched_to == "a");
  CHECK(w2.dispatched_to.empty());  // one slot
  CHECK(service.waiting() == 1);
}

TEST_CASE("health: per_backend, a down backend's waiters move to the others, none up holds them") {
  auto service = make_service(sluice::QueueMode::per_backend, {1, 1});
  sluice::Backend& a = service.backends()[0];
  sluice::Backend& b = service.backends()[1];
  std::vector<FakeWaiter> waiters;
  for (int i = 0; i < 4; ++i) waiters.emplace_back(i);
  for (std::size_t i = 0; i < waiters.size(); ++i) {  // a, b, a (queued), b (queued)
    waiters[i].arrived_ns = i * kMs / 10;
    service.arrive(waiters[i], waiters[i].arrived_ns, kNoneTried);
  }
  CHECK(a.stats.queue_length.value() == 1);
  CHECK(b.stats.queue_length.value() == 1);

  fail(service, a, 3, kMs);
  CHECK(a.stats.queue_length.value() == 0);
  CHECK(b.stats.queue_length.value() == 2);
  CHECK(waiters[2].queue != nullptr);

  fail(service, b, 3, 2 * kMs);
  CHECK(service.stats().queue_length.value() == 2);  // held in the service FIFO
  FakeWaiter late(9);
  late.arrived_ns = 3 * kMs;
  CHECK(service.arrive(late, 3 * kMs, kNoneTried).outcome == sluice::Service::Outcome::queued);
  CHECK(service.stats().queue_length.value() == 3);

  // a comes back with its one slot still held by waiters[0]: the held ones queue at a.
  pass(service, a, 2, 4 * kMs);
  CHECK(service.stats().queue_length.value() == 0);
  CHECK(a.stats.queue_length.value() == 3);
  service.release(a, 5 * kMs);
  CHECK(waiters[2].dispatched_to == "a");  // still in arrival order after two moves
  CHECK(waiters[3].dispatched_to.empty());
  service.release(a, 6 * kMs);
  CHECK(waiters[3].dispatched_to == "a");
  CHECK(late.dispatched_to.empty());
}

TEST_CASE("addresses: a literal starts up, a name starts down until it resolves") {
  auto config = make_config(sluice::QueueMode::shared, {1, 1});
  config.backends[1].address = {"web-b.default.svc.cluster.local", 8000};
  sluice::Service service(config, 0);
  sluice::Backend& named = service.backends()[1];
  CHECK(service.backends()[0].up);
  CHECK_FALSE(named.up);
  CHECK_FALSE(named.has_address);
  CHECK(named.state_reason == "name not resolved yet");

  // The answer at start makes it up at once, as a literal would be; not counted as a change.
  CHECK(service.address_resolved(named, address_of("10.1.2.3", 8000), /*at_start=*/true, kMs));
  CHECK(named.up);
  CHECK(named.address_text == "10.1.2.3:8000");
  CHECK(named.stats.state_changes_total == 0);

  // Same answer: nothing changes. New answer: new address, state kept.
  CHECK_FALSE(service.address_resolved(named, address_of("10.1.2.3", 8000), false, 2 * kMs));
  CHECK(service.address_resolved(named, address_of("10.9.9.9", 8000), false, 3 * kMs));
  CHECK(named.address_text == "10.9.9.9:8000");
  CHECK(named.up);

  // Failures keep the last good address and are counted.
  service.resolve_failed(named, "unknown node or service", 4 * kMs);
  service.resolve_failed(named, "unknown node or service", 5 * kMs);
  CHECK(named.resolve_failing);
  CHECK(named.stats.resolve_failures_total == 2);
  CHECK(named.address_text == "10.9.9.9:8000");
  CHECK(named.up);
  service.address_resolved(named, address_of("10.9.9.9", 8000), false, 6 * kMs);
  CHECK_FALSE(named.resolve_failing);
}

TEST_CASE("addresses: a name that resolves only later waits for rise checks (or none when checks are off)") {
  auto config = make_config(sluice::QueueMode::shared, {1});
  config.backends[0].address = {"late.example", 8000};
  sluice::Service service(config, 0);
  sluice::Backend& late = service.backends()[0];
  service.resolve_failed(late, "unknown node or service", kMs);
  CHECK(late.state_reason == "name not resolved: unknown node or service");
  FakeWaiter w(0);
  CHECK(service.arrive(w, kMs, kNoneTried).outcome == sluice::Service::Outcome::queued);

  service.address_resolved(late, address_of("10.0.0.7", 8000), /*at_start=*/false, 2 * kMs);
  CHECK_FALSE(late.up);
  pass(service, late, 2, 3 * kMs);
  CHECK(late.up);
  CHECK(late.stats.state_changes_total == 1);
  CHECK(w.dispatched_to == "a");

  config.health_check.enabled = false;
  sluice::Service unchecked(config, 0);
  sluice::Backend& b = unchecked.backends()[0];
  unchecked.address_resolved(b, address_of("10.0.0.7", 8000), false, kMs);
  CHECK(b.up);
  fail(unchecked, b, 10, 2 * kMs);  // checks off: failures change nothing
  CHECK(b.up);
}

TEST_CASE("wait queue: a moved waiter is placed by its arrival time") {
  sluice::TimeIntegral length;
  sluice::WaitQueue queue(length);
  std::vector<FakeWaiter> waiters;
  for (int i = 0; i < 4; ++i) waiters.emplace_back(i);
  waiters[0].arrived_ns = 10;
  waiters[1].arrived_ns = 30;
  waiters[2].arrived_ns = 20;
  waiters[3].arrived_ns = 5;
  queue.push_back(waiters[0], 0);
  queue.push_back(waiters[1], 0);
  queue.insert_by_arrival(waiters[2], 0);  // between
  queue.insert_by_arrival(waiters[3], 0);  // first
  CHECK(queue.length() == 4);
  CHECK(length.value() == 4);
  for (int expected : {3, 0, 2, 1}) CHECK(static_cast<FakeWaiter*>(queue.pop_front(0))->id == expected);
  CHECK(queue.empty());
}

// ---- one monitor, many followers ----

TEST_CASE("followers: a worker's service reports client connects and takes the monitor's decisions as views") {
  const auto config = make_config(sluice::QueueMode::shared, {1});
  sluice::Service monitor(config, 0);  // the control plane's authority
  sluice::Service follower(config, 0);
  std::vector<sluice::HealthReport> reports;
  follower.follow([&](sluice::HealthReport report) { reports.push_back(std::move(report)); });
  sluice::Backend& decided = monitor.backends()[0];
  sluice::Backend& a = follower.backends()[0];

  // A pass is not reported while the monitor has no failure pending; a failure is, and so is this
  // worker's next pass. The follower decides nothing itself.
  follower.client_connect(a, /*passed=*/true, "", kMs);
  CHECK(reports.empty());
  follower.client_connect(a, /*passed=*/false, "ECONNREFUSED", kMs);
  follower.client_connect(a, /*passed=*/true, "", kMs);
  REQUIRE(reports.size() == 2);
  CHECK(reports[0].service == "web");
  CHECK(reports[0].backend == "a");
  CHECK(reports[0].configured == config.backends[0].address);
  CHECK_FALSE(reports[0].passed);
  CHECK(reports[0].detail == "ECONNREFUSED");
  CHECK(reports[1].passed);
  CHECK(a.up);
  CHECK(a.stats.state_changes_total == 0);

  // The monitor's side: a failure pending asks for passes; the third takes it down.
  fail(monitor, decided, 1, 2 * kMs, sluice::HealthEvidence::connect_failed);
  CHECK(monitor.view_of(decided).wants_passes);
  fail(monitor, decided, 2, 3 * kMs);
  const sluice::BackendView down = monitor.view_of(decided);
  CHECK_FALSE(down.up);
  CHECK_FALSE(down.wants_passes);
  CHECK(down.state_changes_total == 1);

  // Applied to the follower: down, with the monitor's reason, time and count; a client now waits.
  sluice::Backend* found = follower.find_backend(down.backend, down.configured);
  REQUIRE(found == &a);
  follower.apply_view(a, down, 4 * kMs);
  CHECK_FALSE(a.up);
  CHECK(a.state_reason == "3 failures in a row, the last a health check: ECONNREFUSED");
  CHECK(a.state_since_ns == 3 * kMs);
  CHECK(a.stats.state_changes_total == 1);
  FakeWaiter w(0);
  CHECK(follower.arrive(w, 5 * kMs, kNoneTried).outcome == sluice::Service::Outcome::queued);

  // Up again: the queued client takes the slot, as a change decided here would have done it.
  pass(monitor, decided, 2, 6 * kMs);
  follower.apply_view(a, monitor.view_of(decided), 7 * kMs);
  CHECK(a.up);
  CHECK(w.dispatched_to == "a");
  CHECK(a.stats.state_changes_total == 2);
  CHECK(follower.find_backend("a", {"127.0.0.1", 1}) == nullptr);  // another backend of that name
}

TEST_CASE("scaling sums: a first ask is an arrival, a retry is not; each release counts its slot time") {
  auto service = make_service(sluice::QueueMode::shared, {1, 1});
  FakeWaiter a(0), b(1), c(2);
  service.arrive(a, 10 * kMs, kNoneTried);  // dispatched at 10 ms
  service.arrive(b, 30 * kMs, kNoneTried);  // dispatched at 30 ms
  service.arrive(c, 35 * kMs, kNoneTried);  // queued
  const sluice::LoadSums& load = service.stats().load;
  CHECK(load.arrivals == 3);
  CHECK(load.gaps == 2);
  CHECK(load.gap_seconds == doctest::Approx(0.025));
  CHECK(load.gap_squares == doctest::Approx(0.020 * 0.020 + 0.005 * 0.005));

  // a's connect failed at 12 ms: its slot (2 ms) is a completion, its retry no arrival.
  service.release(service.backends()[0], 12 * kMs, &a);
  std::vector<bool> tried{true, false};
  service.arrive(a, 12 * kMs, tried);
  CHECK(load.arrivals == 3);
  // b ends at 70 ms (40 ms held); a release without a holder (none known) counts nothing.
  service.release(service.backends()[1], 70 * kMs, &b);
  service.release(service.backends()[0], 80 * kMs);
  CHECK(load.completions == 2);
  CHECK(load.slot_seconds == doctest::Approx(0.042));
  CHECK(load.slot_squares == doctest::Approx(0.002 * 0.002 + 0.040 * 0.040));

  // A reload's rebuilt service carries the sums on.
  sluice::Service rebuilt(make_config(sluice::QueueMode::shared, {1, 1}), 90 * kMs);
  rebuilt.inherit_state(service);
  CHECK(rebuilt.stats().load.arrivals == 3);
  CHECK(rebuilt.stats().load.completions == 2);
}
