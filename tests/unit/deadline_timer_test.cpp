// DeadlineTimer: libuv's timer is moved only for an earlier deadline, yet the callback runs at
// the last deadline set, never before it and never after a stop or close.

#include <doctest/doctest.h>

#include "sluice/uv/deadline_timer.hpp"
#include "socket_pairs.hpp"

namespace {

struct Expiries {
  int count = 0;
  std::uint64_t at_ms = 0;  // loop time of the last one
  uv_loop_t* loop = nullptr;
};

void count_expiry(void* owner) {
  auto* expiries = static_cast<Expiries*>(owner);
  ++expiries->count;
  expiries->at_ms = uv_now(expiries->loop);
}

// A plain libuv timer that marks `ms` of loop time gone by (for "nothing ran until then").
struct Marker {
  sluice::Handle<uv_timer_t> timer;
  bool fired = false;
  void start(uv_loop_t* loop, std::uint64_t ms) {
    REQUIRE(timer.init(loop, this, uv_timer_init) == 0);
    REQUIRE(uv_timer_start(timer.get(), [](uv_timer_t* t) { sluice::owner<Marker>(t)->fired = true; }, ms, 0) == 0);
  }
};

}  // namespace

TEST_CASE("DeadlineTimer: an earlier deadline moves libuv's timer, a later one waits for it") {
  sluice::test::TestLoop loop;
  Expiries expiries;
  expiries.loop = loop.get();
  sluice::DeadlineTimer timer;
  REQUIRE(timer.init(loop.get(), &expiries, count_expiry) == 0);

  // Earlier: 60 s then 5 ms expires in 5 ms (the run is bounded well below 60 s).
  REQUIRE(timer.start(60000) == 0);
  REQUIRE(timer.start(5) == 0);
  CHECK(loop.run_until([&] { return expiries.count == 1; }, {}, std::chrono::milliseconds(20000)));

  // Later: 5 ms then 80 ms expires once, 80 ms after the second start, not at the first deadline.
  REQUIRE(timer.start(5) == 0);
  const std::uint64_t started = uv_now(loop.get());
  REQUIRE(timer.start(80) == 0);
  CHECK(loop.run_until([&] { return expiries.count == 2; }));
  CHECK(expiries.at_ms >= started + 80);

  // Zero: on a later loop turn, never inside start().
  REQUIRE(timer.start(0) == 0);
  CHECK(expiries.count == 2);
  CHECK(loop.run_until([&] { return expiries.count == 3; }));
  timer.close();
}

TEST_CASE("DeadlineTimer: nothing runs after stop or close, and a stopped timer starts again") {
  sluice::test::TestLoop loop;
  Expiries expiries;
  expiries.loop = loop.get();
  sluice::DeadlineTimer timer;
  REQUIRE(timer.init(loop.get(), &expiries, count_expiry) == 0);

  REQUIRE(timer.start(5) == 0);
  timer.stop();
  Marker marker;
  marker.start(loop.get(), 60);
  CHECK(loop.run_until([&] { return marker.fired; }));
  CHECK(expiries.count == 0);

  REQUIRE(timer.start(5) == 0);
  CHECK(loop.run_until([&] { return expiries.count == 1; }));

  REQUIRE(timer.start(5) == 0);
  timer.close();
  CHECK_FALSE(timer);
  CHECK(timer.start(5) != 0);
  Marker after_close;
  after_close.start(loop.get(), 60);
  CHECK(loop.run_until([&] { return after_close.fired; }));
  CHECK(expiries.count == 1);
}
