// Time integrals, histograms and the Prometheus families built from them (README "Metrics").

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <unistd.h>
#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "sluice/metrics/histogram.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/metrics/metrics.hpp"
#include "sluice/metrics/metrics_merge.hpp"
#include "sluice/metrics/process_metrics.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/metrics/time_integral.hpp"
#include "sluice/worker/loop_resources.hpp"

using namespace sluice;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;  // the fake clock, in nanoseconds
constexpr std::uint64_t kMs = 1'000'000;

}  // namespace

TEST_CASE("TimeIntegral: a step function integrates exactly") {
  TimeIntegral count;
  count.set(1 * kSecond, 3);   // 3 during [1 s, 3 s)
  count.set(3 * kSecond, 1);   // 1 during [3 s, 4 s)
  count.add(4 * kSecond, -1);  // 0 from 4 s on
  CHECK(count.value() == 0);
  CHECK(count.seconds_total(10 * kSecond) == 7.0);
  CHECK(count.busy_seconds_total(10 * kSecond) == 3.0);
}

TEST_CASE("TimeIntegral: a reading brings the integral up to now without changing it") {
  TimeIntegral count;
  CHECK(count.seconds_total(5 * kSecond) == 0.0);  // nothing counted before the first change
  count.add(2 * kSecond, 2);
  CHECK(count.seconds_total(2 * kSecond) == 0.0);
  CHECK(count.seconds_total(5 * kSecond) == 6.0);
  CHECK(count.seconds_total(5 * kSecond) == 6.0);  // reading twice changes nothing
  CHECK(count.seconds_total(7 * kSecond) == 10.0);
  CHECK(count.busy_seconds_total(7 * kSecond) == 5.0);
  CHECK(count.value() == 2);
  count.add(8 * kSecond, -2);
  CHECK(count.seconds_total(100 * kSecond) == 12.0);
  CHECK(count.busy_seconds_total(100 * kSecond) == 6.0);
}

TEST_CASE("TimeIntegral: busy time counts time with at least one, whatever the count") {
  TimeIntegral count;
  count.set(0, 5);            // 5 for 2 s
  count.set(2 * kSecond, 0);  // idle for 1 s
  count.set(3 * kSecond, 1);  // 1 for 500 ms
  count.set(3 * kSecond + 500 * kMs, 0);
  CHECK(count.seconds_total(4 * kSecond) == 10.5);
  CHECK(count.busy_seconds_total(4 * kSecond) == 2.5);
}

TEST_CASE(
    "TimeIntegral: changes at one instant take no time and a stale clock reads nothing more") {
  TimeIntegral count;
  count.add(1 * kSecond, 1);
  count.add(1 * kSecond, 1);
  count.add(1 * kSecond, 1);
  CHECK(count.value() == 3);
  CHECK(count.seconds_total(1 * kSecond) == 0.0);
  CHECK(count.seconds_total(2 * kSecond) == 3.0);
  CHECK(count.seconds_total(500 * kMs) == 0.0);  // before the last change: no negative time
  CHECK(count.busy_seconds_total(500 * kMs) == 0.0);
}

TEST_CASE("TimeIntegral: many changes match an integer reference sum") {
  std::mt19937 random(42);  // fixed seed: the same walk every run
  std::uniform_int_distribution<std::uint64_t> step_ns(0, 5 * kMs);
  std::bernoulli_distribution up(0.55);
  TimeIntegral count;
  std::uint64_t now = 0;
  std::int64_t value = 0;
  std::uint64_t area_ns = 0;  // exact reference: count * nanoseconds
  std::uint64_t busy_ns = 0;
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t dt = step_ns(random);
    area_ns += static_cast<std::uint64_t>(value) * dt;
    if (value > 0) busy_ns += dt;
    now += dt;
    const std::int64_t delta = (up(random) || value == 0) ? 1 : -1;
    value += delta;
    count.add(now, delta);
  }
  REQUIRE(count.value() == value);
  const std::uint64_t later = now + 3 * kSecond;
  area_ns += static_cast<std::uint64_t>(value) * 3 * kSecond;
  busy_ns += value > 0 ? 3 * kSecond : 0;
  CHECK(count.seconds_total(later) ==
        doctest::Approx(static_cast<double>(area_ns) * 1e-9).epsilon(1e-12));
  CHECK(count.busy_seconds_total(later) ==
        doctest::Approx(static_cast<double>(busy_ns) * 1e-9).epsilon(1e-12));
}

TEST_CASE("DurationHistogram: bounds are inclusive (le), beyond the last is +Inf") {
  constexpr auto& bounds = DurationHistogram::kBoundsSeconds;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    CAPTURE(bounds[i]);
    DurationHistogram exactly;
    exactly.observe(bounds[i]);
    CHECK(exactly.bucket_count(i) == 1);

    DurationHistogram just_above;
    just_above.observe(std::nextafter(bounds[i], std::numeric_limits<double>::infinity()));
    CHECK(just_above.bucket_count(i) == 0);
    CHECK(just_above.bucket_count(i + 1) == 1);
  }
  DurationHistogram histogram;
  histogram.observe(0.0);     // no wait at all: the first bucket
  histogram.observe(0.3);     // (0.25, 0.5]
  histogram.observe(3600.0);  // +Inf
  CHECK(histogram.bucket_count(0) == 1);
  CHECK(histogram.bucket_count(11) == 1);
  CHECK(histogram.bucket_count(bounds.size()) == 1);
  CHECK(histogram.count() == 3);
  CHECK(histogram.sum_seconds() == 3600.3);
}

namespace {

// One listener "web" on a service "web" of two backends, with stats set by hand. Listener needs
// a LoopResources and a loop; the loop is never run.
struct Fixture {
  Fixture() {
    uv_loop_init(&loop);
    ServiceConfig config;
    config.name = "web";
    config.backends = {BackendConfig{"node-a", Endpoint{"10.0.0.1", 8000}, "n1", 1, 8},
                       BackendConfig{"node-b", Endpoint{"10.0.0.2", 8000}, "n2", 1, 0}};
    service = std::make_unique<Service>(config, 0);
    ListenerConfig listener_config{};
    listener_config.name = "web-in";
    listener_config.service = "web";
    listener = std::make_unique<Listener>(worker, listener_config, *service);
  }
  ~Fixture() {
    listener.reset();
    uv_loop_close(&loop);
  }

  // The objects are not const: only their accessors are.
  ListenerStats& listener_stats() { return const_cast<ListenerStats&>(listener->stats()); }
  ServiceStats& service_stats() { return const_cast<ServiceStats&>(service->stats()); }
  BackendStats& backend_stats(std::size_t i) { return service->backends()[i].stats; }

  std::vector<MetricFamily> collect(std::uint64_t now_ns, DaemonStats daemon = {}) {
    const std::array<const Listener*, 1> listeners = {listener.get()};
    const std::array<const Service*, 1> services = {service.get()};
    return collect_metrics(listeners, services, daemon, now_ns);
  }

  uv_loop_t loop{};
  LoopResources worker{&loop};
  std::unique_ptr<Service> service;
  std::unique_ptr<Listener> listener;
};

using Labels = std::vector<ClientMetric::Label>;
const Labels kNodeA = {{"service", "web"}, {"backend", "node-a"}, {"node", "n1"}};
const Labels kNodeB = {{"service", "web"}, {"backend", "node-b"}, {"node", "n2"}};

const MetricFamily& family(const std::vector<MetricFamily>& families, const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return f;
  }
  FAIL("no family " << name);
  throw std::logic_error("unreachable");
}

const ClientMetric& sample(const MetricFamily& f, const Labels& labels) {
  for (const auto& m : f.metric) {
    if (m.label == labels) return m;
  }
  FAIL("no sample with these labels in " << f.name);
  throw std::logic_error("unreachable");
}

double counter(const std::vector<MetricFamily>& families, const std::string& name,
               const Labels& labels) {
  const auto& f = family(families, name);
  REQUIRE(f.type == MetricType::Counter);
  return sample(f, labels).counter.value;
}

double gauge(const std::vector<MetricFamily>& families, const std::string& name,
             const Labels& labels) {
  const auto& f = family(families, name);
  REQUIRE(f.type == MetricType::Gauge);
  return sample(f, labels).gauge.value;
}

}  // namespace

TEST_CASE("collect_metrics: every family of the contract, in order, with its type") {
  Fixture fixture;
  const auto families = fixture.collect(0);
  const std::vector<std::pair<std::string, MetricType>> expected = {
      {"sluice_listener_connections_accepted_total", MetricType::Counter},
      {"sluice_listener_connections_rejected_total", MetricType::Counter},
      {"sluice_listener_connections_active", MetricType::Gauge},
      {"sluice_listener_spliced_bytes_total", MetricType::Counter},
      {"sluice_listener_http_requests_total", MetricType::Counter},
      {"sluice_http_errors_total", MetricType::Counter},
      {"sluice_service_queue_length", MetricType::Gauge},
      {"sluice_service_queue_wait_seconds", MetricType::Histogram},
      {"sluice_service_queue_length_seconds_total", MetricType::Counter},
      {"sluice_backend_up", MetricType::Gauge},
      {"sluice_backend_max_connections", MetricType::Gauge},
      {"sluice_backend_connections_active", MetricType::Gauge},
      {"sluice_backend_queue_length", MetricType::Gauge},
      {"sluice_backend_connections_total", MetricType::Counter},
      {"sluice_backend_connect_failures_total", MetricType::Counter},
      {"sluice_backend_resolve_failures_total", MetricType::Counter},
      {"sluice_backend_state_changes_total", MetricType::Counter},
      {"sluice_backend_queue_wait_seconds", MetricType::Histogram},
      {"sluice_backend_connect_seconds", MetricType::Histogram},
      {"sluice_backend_session_seconds", MetricType::Histogram},
      {"sluice_backend_connections_active_seconds_total", MetricType::Counter},
      {"sluice_backend_busy_seconds_total", MetricType::Counter},
      {"sluice_backend_queue_length_seconds_total", MetricType::Counter},
      {"sluice_backend_received_bytes_total", MetricType::Counter},
      {"sluice_backend_sent_bytes_total", MetricType::Counter},
      {"sluice_backend_pool_connections_open", MetricType::Gauge},
      {"sluice_backend_pool_connections_idle", MetricType::Gauge},
      {"sluice_backend_pool_reuses_total", MetricType::Counter},
      {"sluice_backend_http_responses_total", MetricType::Counter},
      {"sluice_config_reloads_total", MetricType::Counter},
      {"sluice_build_info", MetricType::Gauge},
  };
  REQUIRE(families.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(expected[i].first);
    CHECK(families[i].name == expected[i].first);
    CHECK(families[i].type == expected[i].second);
    CHECK(!families[i].help.empty());
    CHECK(families[i].help.find_first_of("\\\n") == std::string::npos);  // not escaped by 1.0.1
  }
  // Series per family: listener 1, rejected 8 reasons, service 1, backends 2.
  CHECK(family(families, "sluice_listener_connections_active").metric.size() == 1);
  CHECK(family(families, "sluice_listener_connections_rejected_total").metric.size() == 8);
  CHECK(family(families, "sluice_service_queue_length").metric.size() == 1);
  CHECK(family(families, "sluice_backend_sent_bytes_total").metric.size() == 2);
}


TEST_CASE("collect_metrics: the workers' part and the control plane's part split the families, none in both") {
  Fixture fixture;
  const std::array<const Listener*, 1> listeners = {fixture.listener.get()};
  const std::array<const Service*, 1> services = {fixture.service.get()};
  std::set<std::string> all, workers, control_plane;
  for (const auto& f : collect_metrics(listeners, services, DaemonStats{}, 0)) all.insert(f.name);
  for (const auto& f : collect_metrics(listeners, services, DaemonStats{}, 0, MetricsPart::workers)) {
    workers.insert(f.name);
  }
  for (const auto& f : collect_metrics({}, services, DaemonStats{}, 0, MetricsPart::control_plane)) {
    control_plane.insert(f.name);
  }
  // Decided once per process: summed over workers they would be counted once per worker.
  CHECK(control_plane == std::set<std::string>{"sluice_backend_up", "sluice_backend_resolve_failures_total",
                                               "sluice_backend_state_changes_total", "sluice_config_reloads_total",
                                               "sluice_build_info"});
  for (const auto& name : control_plane) CHECK(workers.count(name) == 0);
  std::set<std::string> both = workers;
  both.insert(control_plane.begin(), control_plane.end());
  CHECK(both == all);
}
TEST_CASE("collect_metrics: listener counters, one rejected series per reason, zeros included") {
  Fixture fixture;
  fixture.listener_stats().accepted_total = 10;
  fixture.listener_stats().reject(RejectReason::queue_full);
  fixture.listener_stats().reject(RejectReason::queue_full);
  fixture.listener_stats().reject(RejectReason::abandoned);
  fixture.listener->session_opened();
  fixture.listener->session_opened();
  const auto families = fixture.collect(0);

  const Labels web = {{"listener", "web-in"}};
  CHECK(counter(families, "sluice_listener_connections_accepted_total", web) == 10);
  CHECK(gauge(families, "sluice_listener_connections_active", web) == 2);
  const std::array<std::pair<const char*, double>, 8> rejected = {{{"max_connections", 0},
                                                                   {"not_allowed", 0},
                                                                   {"no_backend", 0},
                                                                   {"queue_full", 2},
                                                                   {"queue_timeout", 0},
                                                                   {"abandoned", 1},
                                                                   {"accept_error", 0},
                                                                   {"bad_proxy_header", 0}}};
  for (const auto& entry : rejected) {  // not a structured binding: clang 14 cannot capture one
    const auto& [reason_name, value] = entry;
    const char* reason = reason_name;
    CAPTURE(reason);
    CHECK(counter(families, "sluice_listener_connections_rejected_total",
                  {{"listener", "web-in"}, {"reason", reason}}) == value);
  }
}

TEST_CASE("collect_metrics: service queue gauge, wait histogram and length integral") {
  Fixture fixture;
  fixture.service_stats().queue_length.add(1 * kSecond, 2);
  fixture.service_stats().queue_wait.observe(0.0);
  fixture.service_stats().queue_wait.observe(0.3);
  const auto families = fixture.collect(4 * kSecond);

  const Labels web = {{"service", "web"}};
  CHECK(gauge(families, "sluice_service_queue_length", web) == 2);
  CHECK(counter(families, "sluice_service_queue_length_seconds_total", web) == 6.0);

  const auto& f = family(families, "sluice_service_queue_wait_seconds");
  const auto& h = sample(f, web).histogram;
  CHECK(h.sample_count == 2);
  CHECK(h.sample_sum == 0.3);
  REQUIRE(h.bucket.size() == DurationHistogram::kBoundsSeconds.size() + 1);
  for (std::size_t i = 0; i < DurationHistogram::kBoundsSeconds.size(); ++i) {
    CAPTURE(i);
    CHECK(h.bucket[i].upper_bound == DurationHistogram::kBoundsSeconds[i]);
    CHECK(h.bucket[i].cumulative_count == (DurationHistogram::kBoundsSeconds[i] < 0.3 ? 1u : 2u));
  }
  CHECK(std::isinf(h.bucket.back().upper_bound));
  CHECK(h.bucket.back().cumulative_count == 2);
}

TEST_CASE("collect_metrics: backend gauges, counters, histograms and integrals") {
  Fixture fixture;
  fixture.service->backends()[1].up = false;
  BackendStats& a = fixture.backend_stats(0);
  a.active.add(1 * kSecond, 1);  // 1 during [1 s, 2 s), 2 from 2 s on
  a.active.add(2 * kSecond, 1);
  a.queue_length.add(1 * kSecond, 1);
  a.queue_length.set(3 * kSecond, 0);
  a.connections_total = 7;
  a.connect_failures_total = 1;
  a.resolve_failures_total = 2;
  a.state_changes_total = 3;
  a.received_bytes_total = 1000;
  a.sent_bytes_total = 2000;
  a.queue_wait.observe(0.0);
  a.connect_time.observe(0.001);
  a.session_time.observe(61);
  const auto families = fixture.collect(4 * kSecond, DaemonStats{2, 1});

  CHECK(gauge(families, "sluice_backend_up", kNodeA) == 1);
  CHECK(gauge(families, "sluice_backend_up", kNodeB) == 0);
  CHECK(gauge(families, "sluice_backend_max_connections", kNodeA) == 8);
  CHECK(gauge(families, "sluice_backend_max_connections", kNodeB) == 0);
  CHECK(gauge(families, "sluice_backend_connections_active", kNodeA) == 2);
  CHECK(gauge(families, "sluice_backend_queue_length", kNodeA) == 0);
  CHECK(counter(families, "sluice_backend_connections_total", kNodeA) == 7);
  CHECK(counter(families, "sluice_backend_connect_failures_total", kNodeA) == 1);
  CHECK(counter(families, "sluice_backend_resolve_failures_total", kNodeA) == 2);
  CHECK(counter(families, "sluice_backend_state_changes_total", kNodeA) == 3);
  CHECK(counter(families, "sluice_backend_received_bytes_total", kNodeA) == 1000);
  CHECK(counter(families, "sluice_backend_sent_bytes_total", kNodeA) == 2000);
  CHECK(counter(families, "sluice_backend_connections_active_seconds_total", kNodeA) == 5.0);
  CHECK(counter(families, "sluice_backend_busy_seconds_total", kNodeA) == 3.0);
  CHECK(counter(families, "sluice_backend_queue_length_seconds_total", kNodeA) == 2.0);
  CHECK(counter(families, "sluice_backend_connections_total", kNodeB) == 0);

  const auto& connect =
      sample(family(families, "sluice_backend_connect_seconds"), kNodeA).histogram;
  CHECK(connect.bucket[2].cumulative_count == 0);  // le=0.0005
  CHECK(connect.bucket[3].cumulative_count == 1);  // le=0.001: bounds are inclusive
  CHECK(connect.bucket.back().cumulative_count == 1);
  const auto& session =
      sample(family(families, "sluice_backend_session_seconds"), kNodeA).histogram;
  CHECK(session.bucket[DurationHistogram::kBoundsSeconds.size() - 1].cumulative_count == 0);
  CHECK(session.bucket.back().cumulative_count == 1);  // 61 s: only +Inf
  CHECK(session.sample_sum == 61.0);
  CHECK(sample(family(families, "sluice_backend_queue_wait_seconds"), kNodeA)
            .histogram.bucket[0]
            .cumulative_count == 1);

  CHECK(counter(families, "sluice_config_reloads_total", {{"result", "success"}}) == 2);
  CHECK(counter(families, "sluice_config_reloads_total", {{"result", "failure"}}) == 1);
  CHECK(gauge(families, "sluice_build_info", {{"version", SLUICE_VERSION}}) == 1);
}

TEST_CASE("collect_metrics: no listener or service, only the daemon's families") {
  const auto families = collect_metrics({}, {}, DaemonStats{}, 0);
  REQUIRE(families.size() == 2);
  CHECK(families[0].name == "sluice_config_reloads_total");
  CHECK(families[1].name == "sluice_build_info");
}

TEST_CASE("collect_process_metrics: the standard process_* families with sane values") {
  const auto families = collect_process_metrics();
  CHECK(counter(families, "process_cpu_seconds_total", {}) >= 0);
  CHECK(gauge(families, "process_resident_memory_bytes", {}) > 0);
  CHECK(gauge(families, "process_virtual_memory_bytes", {}) >=
        gauge(families, "process_resident_memory_bytes", {}));
  const double open_fds = gauge(families, "process_open_fds", {});
  CHECK(open_fds >= 3);  // at least stdin, stdout, stderr
  CHECK(open_fds <= gauge(families, "process_max_fds", {}));
  // This process started moments ago (clock ticks are 10 ms; allow for a slow machine).
  const double start = gauge(families, "process_start_time_seconds", {});
  const double now = static_cast<double>(std::time(nullptr));
  CHECK(start <= now + 1);
  CHECK(start > now - 3600);
}

TEST_CASE("serialize_metrics: exact names (no doubled _total) and a clean promtool check") {
  Fixture fixture;
  fixture.backend_stats(0).connections_total = 7;
  fixture.backend_stats(0).connect_time.observe(0.001);
  auto families = fixture.collect(4 * kSecond, DaemonStats{2, 1});
  for (auto& f : collect_process_metrics()) families.push_back(std::move(f));
  const std::string text = serialize_metrics(families);

  CHECK(text.find("# TYPE sluice_backend_connections_total counter\n") != std::string::npos);
  CHECK(
      text.find("sluice_backend_connections_total{service=\"web\",backend=\"node-a\",node=\"n1\"} "
                "7\n") != std::string::npos);
  CHECK(text.find("sluice_listener_connections_rejected_total{listener=\"web-in\",reason="
                  "\"abandoned\"} 0\n") != std::string::npos);
  CHECK(text.find("sluice_backend_connect_seconds_bucket{service=\"web\",backend=\"node-a\","
                  "node=\"n1\",le=\"0.001\"} 1\n") != std::string::npos);
  CHECK(text.find("le=\"+Inf\"") != std::string::npos);
  CHECK(text.find("sluice_build_info{version=\"" SLUICE_VERSION "\"} 1\n") != std::string::npos);
  CHECK(text.find("# TYPE process_cpu_seconds_total counter\n") != std::string::npos);
  CHECK(text.find("_total_total") == std::string::npos);

  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) {
    SLUICE_SKIP("promtool not installed (Debian package prometheus)");
  }
  char path[] = "/tmp/sluice-metrics-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << text;
  const std::string command = std::string(promtool) + " check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  std::array<char, 512> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe) != nullptr) output += chunk.data();
  const int status = pclose(pipe);
  unlink(path);
  INFO("promtool said: " << output);
  CHECK(status == 0);
  CHECK(output.empty());
}

TEST_CASE("merge_metric_families: workers' counters, integrals and histograms add up, up is the minimum") {
  // Two workers with the same config and different traffic, as two workers would report them.
  Fixture one;
  Fixture two;
  one.listener_stats().accepted_total = 5;
  two.listener_stats().accepted_total = 7;
  one.listener_stats().reject(RejectReason::queue_full);
  two.listener_stats().reject(RejectReason::queue_full);
  two.listener_stats().reject(RejectReason::queue_full);
  one.backend_stats(0).connections_total = 3;
  two.backend_stats(0).connections_total = 4;
  one.backend_stats(0).active.set(0, 2);  // 2 busy for 1 s
  two.backend_stats(0).active.set(0, 1);  // 1 busy for 1 s
  one.backend_stats(0).queue_wait.observe(0.3);
  two.backend_stats(0).queue_wait.observe(0.3);
  two.backend_stats(0).queue_wait.observe(30.0);
  two.service->backends()[1].up = false;  // worker two's checks took node-b down

  auto total = one.collect(1'000'000'000, DaemonStats{2, 1});
  merge_metric_families(total, two.collect(1'000'000'000));

  CHECK(counter(total, "sluice_listener_connections_accepted_total", {{"listener", "web-in"}}) == 12);
  CHECK(counter(total, "sluice_listener_connections_rejected_total",
                {{"listener", "web-in"}, {"reason", "queue_full"}}) == 3);
  CHECK(counter(total, "sluice_backend_connections_total", kNodeA) == 7);
  CHECK(gauge(total, "sluice_backend_connections_active", kNodeA) == 3);
  CHECK(counter(total, "sluice_backend_connections_active_seconds_total", kNodeA) == doctest::Approx(3.0));
  CHECK(counter(total, "sluice_backend_busy_seconds_total", kNodeA) == doctest::Approx(2.0));
  CHECK(gauge(total, "sluice_backend_max_connections", kNodeA) == 16);  // 8 slots in each worker
  CHECK(gauge(total, "sluice_backend_up", kNodeA) == 1);
  CHECK(gauge(total, "sluice_backend_up", kNodeB) == 0);
  CHECK(counter(total, "sluice_config_reloads_total", {{"result", "success"}}) == 2);
  CHECK(gauge(total, "sluice_build_info", {{"version", SLUICE_VERSION}}) == 1);

  const auto& waits = sample(family(total, "sluice_backend_queue_wait_seconds"), kNodeA).histogram;
  CHECK(waits.sample_count == 3);
  CHECK(waits.sample_sum == doctest::Approx(30.6));
  CHECK(waits.bucket.back().cumulative_count == 3);     // +Inf
  CHECK(waits.bucket.front().cumulative_count == 0);    // nothing at 0 s

  // Each family is still there once, and samples a worker alone has are kept.
  std::set<std::string> names;
  for (const auto& f : total) CHECK(names.insert(f.name).second);
  std::vector<MetricFamily> extra = {{"sluice_test_only_total", "t", MetricType::Counter, {}}};
  extra[0].metric.resize(1);
  extra[0].metric[0].counter.value = 4;
  merge_metric_families(total, extra);
  CHECK(counter(total, "sluice_test_only_total", {}) == 4);
  CHECK(serialize_metrics(total).find("sluice_backend_connections_total{service=\"web\",backend=\"node-a\",node=\"n1\"} 7") !=
        std::string::npos);
}

TEST_CASE("merge_metric_families: samples listed in another order or only by one worker still add by label set") {
  // The usual case (same samples, same order) adds sample i to sample i; anything else must still
  // match by labels, never by position.
  auto sample_of = [](const std::string& backend, double value) {
    ClientMetric sample;
    sample.label = {{"backend", backend}};
    sample.counter.value = value;
    return sample;
  };
  std::vector<MetricFamily> total = {{"sluice_x_total", "x", MetricType::Counter, {sample_of("a", 1), sample_of("b", 2)}}};
  merge_metric_families(total, {{"sluice_x_total", "x", MetricType::Counter, {sample_of("b", 20), sample_of("a", 10)}}});
  CHECK(counter(total, "sluice_x_total", {{"backend", "a"}}) == 11);
  CHECK(counter(total, "sluice_x_total", {{"backend", "b"}}) == 22);
  merge_metric_families(total, {{"sluice_x_total", "x", MetricType::Counter, {sample_of("c", 5), sample_of("a", 100)}}});
  CHECK(counter(total, "sluice_x_total", {{"backend", "a"}}) == 111);
  CHECK(counter(total, "sluice_x_total", {{"backend", "b"}}) == 22);
  CHECK(counter(total, "sluice_x_total", {{"backend", "c"}}) == 5);
  CHECK(total[0].metric.size() == 3);
}
