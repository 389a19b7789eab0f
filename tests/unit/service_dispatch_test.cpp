// A worker's Service hands a released slot to the next waiter on a later loop turn, never from
// inside release() (whose caller is a session closing), and its queues stay exact FIFO meanwhile.

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "socket_pairs.hpp"
#include "sluice/balancing/service.hpp"

namespace {

struct Waiter final : sluice::Waiter {
  explicit Waiter(int id_, std::vector<int>& order_) : id(id_), order(order_) {}
  void on_dispatched(sluice::Backend&) override { order.push_back(id); }
  int id;
  std::vector<int>& order;
};

sluice::ServiceConfig config_of(sluice::QueueMode mode, std::uint32_t slots) {
  sluice::ServiceConfig config;
  config.name = "web";
  config.queue.mode = mode;
  config.queue.max_length = 100;
  sluice::BackendConfig backend;
  backend.name = "a";
  backend.address = {"127.0.0.1", 9000};
  backend.max_connections = slots;
  config.backends.push_back(backend);
  return config;
}

const std::vector<bool> kNoneTried;

}  // namespace

TEST_CASE("service on a loop: release() dispatches on a later turn, in FIFO order, newcomers behind") {
  for (const auto mode : {sluice::QueueMode::shared, sluice::QueueMode::per_backend}) {
    CAPTURE(static_cast<int>(mode));
    sluice::test::TestLoop loop;
    sluice::Service service(config_of(mode, 2), 0);
    service.dispatch_later_on(loop.get());
    std::vector<int> order;
    std::vector<std::unique_ptr<Waiter>> waiters;
    for (int i = 0; i < 5; ++i) waiters.push_back(std::make_unique<Waiter>(i, order));
    sluice::Backend& backend = service.backends()[0];

    for (int i = 0; i < 4; ++i) service.arrive(*waiters[i], 0, kNoneTried);  // 0, 1 dispatched; 2, 3 wait
    CHECK(service.waiting() == 2);
    service.release(backend, 1);
    service.release(backend, 1);
    CHECK(order.empty());  // not from inside release()
    CHECK(backend.active_connections() == 0);
    // A newcomer between the release and the dispatch may not overtake the waiters.
    CHECK(service.arrive(*waiters[4], 1, kNoneTried).outcome == sluice::Service::Outcome::queued);
    REQUIRE(loop.run_until([&] { return order.size() == 2; }));
    CHECK(order == std::vector<int>{2, 3});
    CHECK(service.waiting() == 1);
    CHECK(backend.active_connections() == 2);
    service.release(backend, 2);
    REQUIRE(loop.run_until([&] { return order.size() == 3; }));
    CHECK(order.back() == 4);
    CHECK(service.waiting() == 0);
  }
}

TEST_CASE("service on a loop: a service freed with a dispatch pending leaves nothing behind") {
  sluice::test::TestLoop loop;
  std::vector<int> order;
  Waiter first(0, order);
  Waiter second(1, order);
  {
    sluice::Service service(config_of(sluice::QueueMode::shared, 1), 0);
    service.dispatch_later_on(loop.get());
    service.arrive(first, 0, kNoneTried);
    service.arrive(second, 0, kNoneTried);
    service.release(service.backends()[0], 1);
    service.leave_queue(second, 1);
  }
  loop.turn(2);  // the pending turn's handle is closed with the service: no callback, no leak
  CHECK(order.empty());
}
