// Backend sets: members join and drain as a name's records change, with slots and queues exact.
// Fake clock and fake waiters, as in service_test.cpp.

#include <doctest/doctest.h>

#include <netinet/in.h>

#include <string>
#include <vector>

#include "sluice/balancing/service.hpp"
#include "sluice/net/sockaddr_text.hpp"

namespace {

constexpr std::uint64_t kMs = 1'000'000;  // nanoseconds

struct FakeWaiter final : sluice::Waiter {
  void on_dispatched(sluice::Backend& backend) override {
    dispatched_to = backend.config.name;
    slot = &backend;
  }
  std::string dispatched_to;
  sluice::Backend* slot = nullptr;
};

// A service with one fixed backend "fixed" (one slot, 127.0.0.1:9000) unless `with_fixed` is
// false, and one set "pool" of one-slot members on port 8000.
sluice::ServiceConfig set_config(sluice::QueueMode mode, std::uint32_t max_backends, bool checks = true,
                                 bool with_fixed = true) {
  sluice::ServiceConfig config;
  config.name = "web";
  config.queue.mode = mode;
  if (with_fixed) config.backends.push_back({"fixed", {"127.0.0.1", 9000}, "", 1, 1});
  sluice::BackendSetConfig set;
  set.name = "pool";
  set.address = {"web-pool.test", 8000};
  set.max_backends = max_backends;
  set.max_connections = 1;
  config.backend_sets.push_back(set);
  config.health_check.enabled = checks;
  config.health_check.rise = 2;
  config.health_check.fall = 3;
  return config;
}

std::vector<sockaddr_storage> addresses(std::vector<std::string> hosts) {
  std::vector<sockaddr_storage> out;
  for (const std::string& host : hosts) out.push_back(*sluice::numeric_address({host, 8000}));
  return out;
}

sluice::Backend* member(sluice::Service& service, const std::string& name) {
  for (sluice::Backend& backend : service.backends()) {
    if (!backend.removed && backend.config.name == name) return &backend;
  }
  return nullptr;
}

const std::vector<bool> kNoneTried;

void pass_checks(sluice::Service& service, sluice::Backend& backend, int count, std::uint64_t now) {
  for (int i = 0; i < count; ++i) service.record_health(backend, sluice::HealthEvidence::check_passed, "", now);
}

}  // namespace

TEST_CASE("backend set: the first answer's members are up at once, later ones down until rise") {
  sluice::Service service(set_config(sluice::QueueMode::shared, 8), 0);
  auto change = service.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3"}), 1 * kMs);
  REQUIRE(change.added.size() == 2);
  CHECK(change.drained.empty());
  CHECK(member(service, "127.0.0.2:8000")->up);
  CHECK(member(service, "127.0.0.3:8000")->up);
  CHECK(member(service, "127.0.0.2:8000")->set == "pool");
  CHECK(member(service, "127.0.0.2:8000")->config.address == sluice::Endpoint{"127.0.0.2", 8000});
  CHECK(service.sets()[0].size == 2);

  change = service.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3", "127.0.0.4"}), 2 * kMs);
  REQUIRE(change.added.size() == 1);
  sluice::Backend& joined = *member(service, "127.0.0.4:8000");
  CHECK_FALSE(joined.up);
  CHECK(joined.state_reason == "joined the set; waiting for 2 passed health checks");
  pass_checks(service, joined, 1, 3 * kMs);
  CHECK_FALSE(joined.up);
  pass_checks(service, joined, 1, 4 * kMs);
  CHECK(joined.up);
  CHECK(service.sets()[0].size == 3);
}

TEST_CASE("backend set: with checks disabled a new member is up at once") {
  sluice::Service service(set_config(sluice::QueueMode::shared, 8, /*checks=*/false), 0);
  service.resolve_set(0, addresses({"127.0.0.2"}), 1 * kMs);
  service.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3"}), 2 * kMs);
  CHECK(member(service, "127.0.0.3:8000")->up);
}

TEST_CASE("backend set: a vanished member drains, gets no new client, is removed after its last session") {
  sluice::Service service(set_config(sluice::QueueMode::shared, 8, true, /*with_fixed=*/false), 0);
  service.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3"}), 1 * kMs);
  std::vector<FakeWaiter> waiters(4);
  REQUIRE(service.arrive(waiters[0], 2 * kMs, kNoneTried).outcome == sluice::Service::Outcome::dispatched);
  REQUIRE(service.arrive(waiters[1], 2 * kMs, kNoneTried).outcome == sluice::Service::Outcome::dispatched);
  sluice::Backend& leaving = *member(service, "127.0.0.2:8000");
  CHECK(leaving.active_connections() == 1);

  auto change = service.resolve_set(0, addresses({"127.0.0.3"}), 3 * kMs);
  REQUIRE(change.drained.size() == 1);
  CHECK(change.drained[0] == &leaving);
  CHECK(leaving.draining);
  CHECK_FALSE(leaving.up);
  CHECK_FALSE(leaving.removed);  // its session still runs
  CHECK(service.sets()[0].size == 1);

  // Both members' slots are taken: a newcomer waits; the draining one's released slot goes to no one.
  REQUIRE(service.arrive(waiters[2], 4 * kMs, kNoneTried).outcome == sluice::Service::Outcome::queued);
  service.release(leaving, 5 * kMs);
  CHECK(waiters[2].dispatched_to.empty());
  CHECK(leaving.removed);
  CHECK(member(service, "127.0.0.2:8000") == nullptr);
  // The remaining member's slot goes to the waiter.
  service.release(*member(service, "127.0.0.3:8000"), 6 * kMs);
  CHECK(waiters[2].dispatched_to == "127.0.0.3:8000");
}

TEST_CASE("backend set: waiting clients take a new member's slots as soon as it is up") {
  sluice::Service service(set_config(sluice::QueueMode::shared, 8, /*checks=*/true), 0);
  service.resolve_set(0, addresses({"127.0.0.2"}), 1 * kMs);
  std::vector<FakeWaiter> waiters(4);
  for (std::size_t i = 0; i < 4; ++i) {
    waiters[i].arrived_ns = 2 * kMs;
    service.arrive(waiters[i], 2 * kMs, kNoneTried);
  }
  CHECK(service.waiting() == 2);  // "fixed" and the first member took one each
  service.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3", "127.0.0.4"}), 3 * kMs);
  CHECK(service.waiting() == 2);  // the new ones are down until their checks pass
  pass_checks(service, *member(service, "127.0.0.3:8000"), 2, 4 * kMs);
  CHECK(service.waiting() == 1);
  CHECK(waiters[2].dispatched_to == "127.0.0.3:8000");
  pass_checks(service, *member(service, "127.0.0.4:8000"), 2, 5 * kMs);
  CHECK(service.waiting() == 0);
  CHECK(waiters[3].dispatched_to == "127.0.0.4:8000");
}

TEST_CASE("backend set: per_backend queues grow with the set and a drained member's waiters move") {
  sluice::Service service(set_config(sluice::QueueMode::per_backend, 8, /*checks=*/false, /*with_fixed=*/false), 0);
  service.resolve_set(0, addresses({"127.0.0.2"}), 1 * kMs);
  std::vector<FakeWaiter> waiters(6);
  for (std::size_t i = 0; i < 3; ++i) {
    waiters[i].arrived_ns = (1 + i) * kMs;
    service.arrive(waiters[i], waiters[i].arrived_ns, kNoneTried);
  }
  sluice::Backend& first = *member(service, "127.0.0.2:8000");
  CHECK(first.stats.queue_length.value() == 2);
  service.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3"}), 5 * kMs);
  sluice::Backend& second = *member(service, "127.0.0.3:8000");
  // A newcomer is placed on the new member (least loaded by round robin), which has a queue of its own.
  for (std::size_t i = 3; i < 6; ++i) {
    waiters[i].arrived_ns = (3 + i) * kMs;
    service.arrive(waiters[i], waiters[i].arrived_ns, kNoneTried);
  }
  CHECK(second.active_connections() == 1);
  CHECK(first.stats.queue_length.value() + second.stats.queue_length.value() == 4);
  // The first member leaves: its queued clients move to the second's queue, in arrival order.
  service.resolve_set(0, addresses({"127.0.0.3"}), 10 * kMs);
  CHECK(first.stats.queue_length.value() == 0);
  CHECK(second.stats.queue_length.value() == 4);
  service.release(second, 11 * kMs);
  CHECK(waiters[1].dispatched_to == "127.0.0.3:8000");  // the oldest waiter of all
}

TEST_CASE("backend set: addresses beyond max_backends are refused and counted per answer") {
  sluice::Service service(set_config(sluice::QueueMode::shared, 2), 0);
  service.resolve_set(0, addresses({"127.0.0.4", "127.0.0.2", "127.0.0.3"}), 1 * kMs);
  // The first two in the answer's (stable) order are kept.
  CHECK(member(service, "127.0.0.4:8000") != nullptr);
  CHECK(member(service, "127.0.0.2:8000") != nullptr);
  CHECK(member(service, "127.0.0.3:8000") == nullptr);
  CHECK(service.sets()[0].size == 2);
  CHECK(service.sets()[0].refused_total == 1);
  service.resolve_set(0, addresses({"127.0.0.4", "127.0.0.2", "127.0.0.3"}), 2 * kMs);
  CHECK(service.sets()[0].refused_total == 2);
  service.resolve_set(0, addresses({"127.0.0.4"}), 3 * kMs);
  CHECK(service.sets()[0].refused_total == 2);
  CHECK(service.sets()[0].size == 1);
}

TEST_CASE("backend set: a failed resolution keeps the members, a removed entry is reused only when unheld") {
  sluice::Service service(set_config(sluice::QueueMode::shared, 8, false, false), 0);
  service.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3"}), 1 * kMs);
  service.set_resolve_failed(0, "timeout");
  service.set_resolve_failed(0, "timeout");
  CHECK(service.sets()[0].resolve_failures_total == 2);
  CHECK(service.sets()[0].size == 2);
  CHECK(member(service, "127.0.0.2:8000")->up);

  sluice::Backend* old = member(service, "127.0.0.2:8000");
  {
    sluice::BackendHold log_line;  // an access log line still to be written names it
    log_line.reset(old);
    service.resolve_set(0, addresses({"127.0.0.3"}), 2 * kMs);
    CHECK(old->removed);
    service.resolve_set(0, addresses({"127.0.0.3", "127.0.0.5"}), 3 * kMs);
    CHECK(member(service, "127.0.0.5:8000") != old);
    CHECK(log_line.get()->config.name == "127.0.0.2:8000");
  }
  service.resolve_set(0, addresses({"127.0.0.3", "127.0.0.5", "127.0.0.6"}), 4 * kMs);
  CHECK(member(service, "127.0.0.6:8000") == old);  // no one names it any more: reused
  CHECK(service.backends().size() == 3);
}

TEST_CASE("backend set: followers add members from views and drain them when told") {
  sluice::Service authority(set_config(sluice::QueueMode::shared, 8), 0);
  sluice::Service follower(set_config(sluice::QueueMode::shared, 8), 0);
  std::vector<sluice::HealthReport> reports;
  follower.follow([&](sluice::HealthReport report) { reports.push_back(std::move(report)); });

  FakeWaiter waiter;
  FakeWaiter fixed_user;
  follower.arrive(fixed_user, 0, kNoneTried);  // takes "fixed"
  REQUIRE(follower.arrive(waiter, 0, kNoneTried).outcome == sluice::Service::Outcome::queued);

  auto change = authority.resolve_set(0, addresses({"127.0.0.2"}), 1 * kMs);
  follower.follow_view(authority.view_of(*change.added[0]), /*may_add=*/true, 1 * kMs);
  sluice::Backend* copy = member(follower, "127.0.0.2:8000");
  REQUIRE(copy != nullptr);
  CHECK(copy->up);
  CHECK(waiter.dispatched_to == "127.0.0.2:8000");  // the waiting client took the new member's slot

  // A replaced service takes no new member.
  sluice::Service retired(set_config(sluice::QueueMode::shared, 8), 0);
  retired.follow_view(authority.view_of(*change.added[0]), /*may_add=*/false, 1 * kMs);
  CHECK(member(retired, "127.0.0.2:8000") == nullptr);

  change = authority.resolve_set(0, addresses({"127.0.0.3"}), 2 * kMs);
  REQUIRE(change.drained.size() == 1);
  CHECK(change.drained[0]->removed);  // the authority holds no sessions: removed at once
  follower.follow_view(authority.view_of(*change.drained[0]), true, 2 * kMs);
  CHECK(copy->draining);
  CHECK_FALSE(copy->removed);  // the waiter holds its slot
  follower.release(*copy, 3 * kMs);
  CHECK(copy->removed);
}

TEST_CASE("backend set: a reload keeps an unchanged set's members and their state, not a changed one's") {
  sluice::Service before(set_config(sluice::QueueMode::shared, 8), 0);
  before.resolve_set(0, addresses({"127.0.0.2"}), 1 * kMs);
  before.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3"}), 2 * kMs);  // .3 joins down
  before.set_resolve_failed(0, "timeout");

  sluice::ServiceConfig changed_weight = set_config(sluice::QueueMode::shared, 8);
  changed_weight.backend_sets[0].weight = 5;
  sluice::Service after(changed_weight, 3 * kMs);
  after.inherit_state(before);
  REQUIRE(member(after, "127.0.0.2:8000") != nullptr);
  CHECK(member(after, "127.0.0.2:8000")->up);
  CHECK(member(after, "127.0.0.2:8000")->config.weight == 5);
  CHECK_FALSE(member(after, "127.0.0.3:8000")->up);
  CHECK(after.sets()[0].size == 2);
  CHECK(after.sets()[0].resolve_failures_total == 1);
  // Its next answer is not a first one: a newcomer waits for its checks.
  after.resolve_set(0, addresses({"127.0.0.2", "127.0.0.3", "127.0.0.4"}), 4 * kMs);
  CHECK_FALSE(member(after, "127.0.0.4:8000")->up);

  sluice::ServiceConfig moved = set_config(sluice::QueueMode::shared, 8);
  moved.backend_sets[0].address = {"other-pool.test", 8000};
  sluice::Service elsewhere(moved, 3 * kMs);
  elsewhere.inherit_state(before);
  CHECK(member(elsewhere, "127.0.0.2:8000") == nullptr);
  CHECK(elsewhere.sets()[0].size == 0);
}
