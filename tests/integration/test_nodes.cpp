// Nodes that fail: network namespaces joined by a bridge, a sluice-backend in each, the daemon in
// the root namespace. Taking one node's link down must take its backend out of rotation within
// fall checks, and bringing it back must return the backend after rise checks, while clients keep
// being served. Needs root (see NetnsSupport); skipped otherwise.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "harness.hpp"
#include "netns.hpp"

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;

namespace {

// The health checks of the test config: quick, so that the test is.
constexpr Millis kInterval = 200ms;
constexpr Millis kCheckTimeout = 100ms;
constexpr int kRise = 2;
constexpr int kFall = 3;
// What the shared 2-core machine may add to a bound: the daemon's timers and the test's scrapes
// (every 5 ms) are scheduled late by other processes, the ASan daemon is several times slower.
const Millis kTolerance = sluice::test::scaled(300ms);  // the VM's and the sanitizers' slack

std::string backend_series(const std::string& metric, const std::string& label) {
  return metric + R"({service="web",backend=")" + label + R"(",node="node-)" + label + R"("})";
}

/// "b" from a sluice-backend body "backend=b node=node-b\n"; empty when the body is not one.
std::string served_by(const std::string& body) {
  static constexpr std::string_view key = "backend=";
  if (!body.starts_with(key)) return {};
  return body.substr(key.size(), body.find(' ') - key.size());
}

/// Short client connections (one HTTP GET each) through the daemon from a few threads, one after
/// the other with a short pause, until stopped. Every outcome is recorded.
class Traffic {
 public:
  struct Outcome {
    Clock::time_point start{};
    Clock::time_point end{};
    std::string backend{};  // who answered; empty when the client failed
    std::string error{};
  };

  Traffic(Address proxy, int threads) : proxy_(std::move(proxy)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~Traffic() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& thread : threads_)
      if (thread.joinable()) thread.join();
  }

  std::vector<Outcome> outcomes() const {
    std::lock_guard lock(mutex_);
    return outcomes_;
  }

  /// Waits until a client that started at or after `since` was served by `backend`.
  bool wait_served_by(const std::string& backend, Clock::time_point since, Millis timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      return std::any_of(outcomes_.begin(), outcomes_.end(),
                         [&](const Outcome& o) { return o.start >= since && o.backend == backend; });
    });
  }

  /// Waits until `count` clients that started at or after `since` have finished.
  bool wait_finished(std::size_t count, Clock::time_point since, Millis timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      return static_cast<std::size_t>(std::count_if(outcomes_.begin(), outcomes_.end(), [&](const Outcome& o) {
               return o.start >= since;
             })) >= count;
    });
  }

 private:
  void run() {
    for (;;) {
      Outcome outcome{.start = Clock::now()};
      try {
        const HttpResponse response = http_get(proxy_, "/", 1s);
        outcome.backend = served_by(response.body);
        if (outcome.backend.empty()) outcome.error = "unexpected body: " + response.body;
      } catch (const std::exception& e) {
        outcome.error = e.what();
      }
      outcome.end = Clock::now();
      std::unique_lock lock(mutex_);
      outcomes_.push_back(std::move(outcome));
      changed_.notify_all();
      if (changed_.wait_for(lock, 5ms, [&] { return stopping_; })) return;  // the pause between clients
    }
  }

  Address proxy_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Outcome> outcomes_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;  // last: joined before the members they use go
};

/// A node namespace per label with a sluice-backend on NODE_ADDRESS:8000 (named after the label,
/// NODE_NAME node-LABEL), and the daemon in the root namespace in front of them with quick checks.
/// Members are destroyed in reverse: the daemon, the backends, then the namespaces.
struct Nodes {
  NetnsNetwork network;
  std::vector<std::unique_ptr<DaemonProcess>> backends{};
  std::vector<BackendSpec> specs{};
  std::unique_ptr<DaemonProcess> daemon{};
  Address proxy{};
  Address admin{};

  explicit Nodes(const std::vector<std::string>& labels) : network(labels, 0) {
    for (const auto& node : network.nodes()) {
      const Address address{node.address, 8000};
      backends.push_back(std::make_unique<DaemonProcess>(
          Command{{SLUICE_BACKEND_BINARY, "--listen", address.to_string(), "--name", node.label}},
          network.launch(node.label, {"NODE_NAME=node-" + node.label})));
      specs.push_back({.name = node.label, .address = address, .node = "node-" + node.label});
    }
    for (std::size_t i = 0; i < backends.size(); ++i) {
      const std::string listening = "sluice-backend " + specs[i].name + " listening on " + specs[i].address.to_string();
      REQUIRE_MESSAGE(backends[i]->wait_for_line(listening, 5s).has_value(), "no line: " << listening);
      // Reachable from the root namespace across the bridge.
      REQUIRE(http_get(specs[i].address, "/").body == "backend=" + specs[i].name + " node=node-" + specs[i].name + "\n");
    }
    const ServiceSpec service{.policy = "round_robin",
                              .connect_timeout = "100ms",
                              .retries = 2,
                              .backends = specs,
                              .health_check = HealthCheckSpec{.interval = std::to_string(kInterval.count()) + "ms",
                                                              .timeout = std::to_string(kCheckTimeout.count()) + "ms",
                                                              .rise = kRise,
                                                              .fall = kFall}};
    daemon = std::make_unique<DaemonProcess>(
        ConfigSpec{.listeners = {ListenerSpec{}}, .services = {service}, .admin = true}.yaml());
    proxy = daemon->wait_listening_on("web");
    admin = wait_admin_address(*daemon);
    for (const auto& spec : specs) REQUIRE(wait_metric(admin, backend_series("sluice_backend_up", spec.name), 1, 2s));
  }
};

}  // namespace

TEST_CASE("nodes: a node whose link goes down leaves the rotation within fall checks and returns after rise checks") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  Nodes nodes({"a", "b", "c"});
  NetnsNetwork& network = nodes.network;
  DaemonProcess& daemon = *nodes.daemon;
  const Address& admin = nodes.admin;
  const auto& specs = nodes.specs;

  Traffic traffic(nodes.proxy, 2);
  const auto warmup = Clock::now();
  for (const auto& spec : specs) REQUIRE(traffic.wait_served_by(spec.name, warmup, 3s));

  // ---- B's link goes down ----
  // Bound: fall failed checks one interval apart, after up to one interval before the first one
  // starts (a failed check ends `timeout` after it starts, within that interval). Failed client
  // connects count too, so with traffic it is usually faster.
  const Millis detection_bound = kFall * kInterval + kInterval + kTolerance;
  const auto cut = Clock::now();
  network.set_link("b", false);
  std::string at_detection;
  const bool detected = wait_scrape(
                            admin,
                            [&](const std::string& text) {
                              return find_metric(text, backend_series("sluice_backend_up", "b")) == 0.0;
                            },
                            5s, &at_detection)
                            .has_value();
  const auto detected_at = Clock::now();
  const long long detection_ms = elapsed_ms(cut);
  REQUIRE_MESSAGE(detected, "sluice_backend_up for b still not 0 after 5 s");
  MESSAGE("link down -> sluice_backend_up{backend=b} 0 after " << detection_ms << " ms (bound "
                                                               << detection_bound.count() << " ms)");
  CHECK(detection_ms <= detection_bound.count());
  CHECK(metric(at_detection, backend_series("sluice_backend_up", "a")) == 1);
  CHECK(metric(at_detection, backend_series("sluice_backend_up", "c")) == 1);
  const double b_dispatched_at_detection = metric(at_detection, backend_series("sluice_backend_connections_total", "b"));

  // While B is down: clients keep coming, every one is served at once by A or C.
  REQUIRE(traffic.wait_finished(40, detected_at, 5s));
  const std::string before_restore = scrape(admin);
  CHECK(metric(before_restore, backend_series("sluice_backend_up", "b")) == 0);
  CHECK(metric(before_restore, backend_series("sluice_backend_connections_total", "b")) == b_dispatched_at_detection);

  // ---- B's link comes back ----
  // Bound: the first check after the link is up starts within one interval, and rise good checks
  // one interval apart follow. Lower bound: rise checks need (rise - 1) intervals between them (a
  // little less for the loop's cached clock).
  const Millis recovery_bound = kRise * kInterval + kInterval + kTolerance;
  const auto link_up = Clock::now();
  network.set_link("b", true);
  // The clock starts when B is reachable again, as this test sees it: a bridge port that comes
  // up can drop the first ARP request, and the kernel asks again only after its 1 s retransmit
  // time, which is the network's delay, not Sluice's (seen as recoveries of 1003 and 1016 ms).
  const auto reachable_deadline = Clock::now() + 3s;
  for (Client probe; Client::try_connect(specs[1].address, 20ms, probe) != 0;) {
    REQUIRE_MESSAGE(Clock::now() < reachable_deadline, "b not reachable 3 s after its link came up");
  }
  const auto restored = Clock::now();
  const bool recovered = wait_metric(admin, backend_series("sluice_backend_up", "b"), 1, 5s);
  const auto recovered_at = Clock::now();
  const long long recovery_ms = elapsed_ms(restored);
  REQUIRE_MESSAGE(recovered, "sluice_backend_up for b still not 1 after 5 s");
  MESSAGE("link up -> sluice_backend_up{backend=b} 1 after " << recovery_ms << " ms (bound "
                                                             << recovery_bound.count() << " ms)");
  CHECK(recovery_ms <= recovery_bound.count());
  // Not before rise checks, counted from the link's return.
  CHECK(std::chrono::duration_cast<Millis>(recovered_at - link_up) >= (kRise - 1) * kInterval - 50ms);
  CHECK(traffic.wait_served_by("b", recovered_at, 3s));
  REQUIRE(traffic.wait_finished(20, recovered_at, 5s));
  traffic.stop();

  // The clients, by when they started.
  int before_detection_failed = 0;
  int while_down = 0;
  int while_down_failed = 0;
  int while_down_to_b = 0;
  long long while_down_slowest_ms = 0;
  int after_recovery = 0;
  int after_recovery_failed = 0;
  for (const auto& outcome : traffic.outcomes()) {
    if (outcome.start < detected_at) {
      before_detection_failed += outcome.backend.empty();
    } else if (outcome.start < restored) {
      ++while_down;
      while_down_failed += outcome.backend.empty();
      while_down_to_b += outcome.backend == "b";
      while_down_slowest_ms = std::max<long long>(
          while_down_slowest_ms, std::chrono::duration_cast<Millis>(outcome.end - outcome.start).count());
      if (outcome.backend.empty()) MESSAGE("client failed while b was down: " << outcome.error);
    } else if (outcome.start >= recovered_at) {
      ++after_recovery;
      after_recovery_failed += outcome.backend.empty();
    }
  }
  MESSAGE(while_down << " clients while b was down, slowest " << while_down_slowest_ms << " ms; "
                     << before_detection_failed << " failed before detection (a session in flight when the "
                     << "link went down, not asserted)");
  CHECK(while_down >= 40);
  CHECK(while_down_failed == 0);
  CHECK(while_down_to_b == 0);
  CHECK(after_recovery >= 20);
  CHECK(after_recovery_failed == 0);

  const std::string final_text = scrape(admin);
  CHECK(metric(final_text, backend_series("sluice_backend_state_changes_total", "b")) == 2);
  CHECK(metric(final_text, backend_series("sluice_backend_state_changes_total", "a")) == 0);
  CHECK(metric(final_text, backend_series("sluice_backend_state_changes_total", "c")) == 0);
  CHECK(metric(final_text, backend_series("sluice_backend_connections_total", "b")) > b_dispatched_at_detection);
  const std::string down_line = "backend_state service=web backend=b node=node-b state=down reason=";
  const std::string up_line = "backend_state service=web backend=b node=node-b state=up reason=";
  CHECK_MESSAGE(daemon.wait_for_line(up_line, 2s).has_value(), "no line: " << up_line);
  CHECK(daemon.count_lines(down_line) == 1);
  CHECK(daemon.count_lines(up_line) == 1);
  CHECK(daemon.count_lines("backend_state service=web backend=a ") == 0);
  CHECK(daemon.count_lines("backend_state service=web backend=c ") == 0);
}

TEST_CASE("nodes: without traffic, active checks alone take a cut node out after fall failed checks") {
  if (const std::string reason = NetnsSupport::check(); !reason.empty()) {
    SLUICE_SKIP(reason);
  }
  Nodes nodes({"a", "b"});
  // Bounds: the first check after the cut starts within one interval; the fall-th failure ends
  // (fall - 1) intervals and one check timeout after the first check starts. So at least
  // (fall - 1) x interval + timeout (less a little for the loop's cached clock), at most
  // fall x interval + interval.
  const Millis lower = (kFall - 1) * kInterval + kCheckTimeout - 50ms;
  const Millis upper = kFall * kInterval + kInterval + kTolerance;
  const auto cut = Clock::now();
  nodes.network.set_link("b", false);
  const bool detected = wait_metric(nodes.admin, backend_series("sluice_backend_up", "b"), 0, 5s);
  const long long detection_ms = elapsed_ms(cut);
  REQUIRE_MESSAGE(detected, "sluice_backend_up for b still not 0 after 5 s");
  MESSAGE("link down, no traffic -> sluice_backend_up{backend=b} 0 after " << detection_ms << " ms (bounds "
                                                                          << lower.count() << ".." << upper.count()
                                                                          << " ms)");
  CHECK(detection_ms >= lower.count());
  CHECK(detection_ms <= upper.count());
  const std::string text = scrape(nodes.admin);
  CHECK(metric(text, backend_series("sluice_backend_up", "a")) == 1);
  CHECK(metric(text, backend_series("sluice_backend_connections_total", "b")) == 0);  // no client was involved
  CHECK(metric(text, backend_series("sluice_backend_state_changes_total", "b")) == 1);
  const std::string down_line = "backend_state service=web backend=b node=node-b state=down reason=";
  CHECK_MESSAGE(nodes.daemon->wait_for_line(down_line, 2s).has_value(), "no line: " << down_line);
}
