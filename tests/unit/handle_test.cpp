// Handle<T>: the owner may be destroyed at once, even inside the handle's own callback, and the
// handle's memory is freed by libuv's close callback (the ASan run of this test sees a leak or a
// use after free otherwise).

#include <doctest/doctest.h>

#include <memory>

#include "sluice/uv/handle.hpp"

namespace {

struct Ticker {
  sluice::Handle<uv_timer_t> timer;
  int ticks = 0;
  std::unique_ptr<Ticker>* self = nullptr;  // destroys itself on the third tick
};

int open_loop_handles(uv_loop_t* loop) {
  int open = 0;
  uv_walk(loop, [](uv_handle_t*, void* count) { ++*static_cast<int*>(count); }, &open);
  return open;
}

}  // namespace

TEST_CASE("Handle: the owner is destroyed inside the handle's callback, the handle is freed on close") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  auto ticker = std::make_unique<Ticker>();
  ticker->self = &ticker;
  REQUIRE(ticker->timer.init(&loop, ticker.get(), uv_timer_init) == 0);
  CHECK(sluice::owner<Ticker>(ticker->timer.get()) == ticker.get());
  REQUIRE(uv_timer_start(
              ticker->timer.get(),
              [](uv_timer_t* timer) {
                Ticker* owner = sluice::owner<Ticker>(timer);
                REQUIRE(owner != nullptr);
                if (++owner->ticks == 3) owner->self->reset();
              },
              1, 1) == 0);
  CHECK(ticker->timer.active());
  uv_run(&loop, UV_RUN_DEFAULT);  // returns once the closed timer is freed: nothing else is alive
  CHECK(ticker == nullptr);
  CHECK(open_loop_handles(&loop) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Handle: a failed init leaves it empty, close and move are safe") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  sluice::Handle<uv_poll_t> poll;
  int owner = 0;
  CHECK(poll.init(&loop, &owner, uv_poll_init, -1) != 0);  // a bad descriptor
  CHECK_FALSE(poll);
  poll.close();

  sluice::Handle<uv_timer_t> first;
  REQUIRE(first.init(&loop, &owner, uv_timer_init) == 0);
  sluice::Handle<uv_timer_t> second = std::move(first);
  CHECK_FALSE(first);
  CHECK(second);
  second.close();
  second.close();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
