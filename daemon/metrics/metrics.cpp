#include "sluice/metrics/metrics.hpp"

#include <array>
#include <limits>
#include <utility>


#include "sluice/worker/listener.hpp"
#include "sluice/balancing/service.hpp"

namespace sluice {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// One metric family of a kind of object: its name, help, type, and how one object's sample is
// filled in. The tables below read like the README's "Metrics" table.
template <typename Object>
struct Column {
  const char* name;
  const char* help;
  MetricType type;
  void (*fill)(ClientMetric& sample, const Object& object, std::uint64_t now_ns);
  bool monitor = false;  // the monitor's (MetricsPart::control_plane), not a worker's
};

bool wanted(MetricsPart part, bool monitor) {
  return part == MetricsPart::all || (part == MetricsPart::control_plane) == monitor;
}

void fill_histogram(ClientMetric& sample, const DurationHistogram& histogram) {
  auto& out = sample.histogram;
  out.bucket.reserve(DurationHistogram::kBoundsSeconds.size() + 1);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < DurationHistogram::kBoundsSeconds.size(); ++i) {
    cumulative += histogram.bucket_count(i);
    out.bucket.push_back({cumulative, DurationHistogram::kBoundsSeconds[i]});
  }
  cumulative += histogram.bucket_count(DurationHistogram::kBoundsSeconds.size());
  out.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  out.sample_count = histogram.count();
  out.sample_sum = histogram.sum_seconds();
}

double to_double(std::uint64_t count) { return static_cast<double>(count); }

// Appends one family per column, with one sample per (labels, object); empty families are left
// out, as the official clients do.
template <typename Object, std::size_t N>
void append(std::vector<MetricFamily>& out, const std::array<Column<Object>, N>& columns,
            const std::vector<std::pair<Labels, const Object*>>& objects, std::uint64_t now_ns,
            MetricsPart part) {
  if (objects.empty()) return;
  for (const auto& column : columns) {
    if (!wanted(part, column.monitor)) continue;
    MetricFamily family{column.name, column.help, column.type, {}};
    family.metric.reserve(objects.size());
    for (const auto& [labels, object] : objects) {
      ClientMetric sample;
      sample.label = labels;
      column.fill(sample, *object, now_ns);
      family.metric.push_back(std::move(sample));
    }
    out.push_back(std::move(family));
  }
}

const std::array<Column<ListenerSnapshot>, 1> kListenerColumnsBeforeRejected = {{
    {"sluice_listener_connections_accepted_total", "Clients accepted.", MetricType::Counter,
     [](ClientMetric& m, const ListenerSnapshot& l, std::uint64_t) {
       m.counter.value = to_double(l.stats().accepted_total);
     }},
}};

const std::array<Column<ListenerSnapshot>, 3> kListenerColumnsAfterRejected = {{
    {"sluice_listener_connections_active", "Clients connected now.", MetricType::Gauge,
     [](ClientMetric& m, const ListenerSnapshot& l, std::uint64_t) { m.gauge.value = l.stats().active; }},
    {"sluice_listener_spliced_bytes_total",
     "Bytes forwarded with splice(2) through a kernel pipe, without a copy (both directions).",
     MetricType::Counter,
     [](ClientMetric& m, const ListenerSnapshot& l, std::uint64_t) {
       m.counter.value = to_double(l.stats().spliced_bytes_total);
     }},
    {"sluice_listener_http_requests_total", "mode http: request heads read.", MetricType::Counter,
     [](ClientMetric& m, const ListenerSnapshot& l, std::uint64_t) {
       m.counter.value = to_double(l.stats().http_requests_total);
     }},
}};

const std::array<Column<ServiceSnapshot>, 3> kServiceColumns = {{
    {"sluice_service_queue_length", "Connections waiting in the shared queue now.",
     MetricType::Gauge,
     [](ClientMetric& m, const ServiceSnapshot& s, std::uint64_t) {
       m.gauge.value = static_cast<double>(s.stats().queue_length.value());
     }},
    {"sluice_service_queue_wait_seconds", "Time from accept to dispatch (0 for no wait).",
     MetricType::Histogram,
     [](ClientMetric& m, const ServiceSnapshot& s, std::uint64_t) {
       fill_histogram(m, s.stats().queue_wait);
     }},
    {"sluice_service_queue_length_seconds_total",
     "Integral of the shared queue length over time: its rate is the time-average queue length.",
     MetricType::Counter,
     [](ClientMetric& m, const ServiceSnapshot& s, std::uint64_t now_ns) {
       m.counter.value = s.stats().queue_length.seconds_total(now_ns);
     }},
}};

const std::array<Column<BackendSnapshot>, 19> kBackendColumns = {{
    {"sluice_backend_up", "1 healthy, 0 down.", MetricType::Gauge,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) { m.gauge.value = b.up ? 1 : 0; }, true},
    {"sluice_backend_max_connections", "Configured slots (0 = unlimited).", MetricType::Gauge,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.gauge.value = b.max_connections;
     }},
    {"sluice_backend_connections_active", "Connections in service at the backend now.",
     MetricType::Gauge,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.gauge.value = static_cast<double>(b.stats.active.value());
     }},
    {"sluice_backend_queue_length", "Connections waiting for this backend now (per_backend mode).",
     MetricType::Gauge,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.gauge.value = static_cast<double>(b.stats.queue_length.value());
     }},
    {"sluice_backend_connections_total", "Connections dispatched to the backend.",
     MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.counter.value = to_double(b.stats.connections_total);
     }},
    {"sluice_backend_connect_failures_total", "Failed or timed-out connects.", MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.counter.value = to_double(b.stats.connect_failures_total);
     }},
    {"sluice_backend_resolve_failures_total",
     "Failed DNS re-resolutions (the last good address is kept).", MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.counter.value = to_double(b.stats.resolve_failures_total);
     },
     true},
    {"sluice_backend_state_changes_total", "Up/down transitions.", MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.counter.value = to_double(b.stats.state_changes_total);
     },
     true},
    {"sluice_backend_queue_wait_seconds", "Queue wait of the connections the backend served.",
     MetricType::Histogram,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       fill_histogram(m, b.stats.queue_wait);
     }},
    {"sluice_backend_connect_seconds", "TCP connect time.", MetricType::Histogram,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       fill_histogram(m, b.stats.connect_time);
     }},
    {"sluice_backend_session_seconds", "Connected-to-closed time.", MetricType::Histogram,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       fill_histogram(m, b.stats.session_time);
     }},
    {"sluice_backend_connections_active_seconds_total",
     "Integral of active connections over time: rate is the time-average number in service.",
     MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t now_ns) {
       m.counter.value = b.stats.active.seconds_total(now_ns);
     }},
    {"sluice_backend_busy_seconds_total",
     "Time with at least one active connection: rate is the utilisation of a single-slot backend.",
     MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t now_ns) {
       m.counter.value = b.stats.active.busy_seconds_total(now_ns);
     }},
    {"sluice_backend_queue_length_seconds_total",
     "Integral of this backend's queue length over time.", MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t now_ns) {
       m.counter.value = b.stats.queue_length.seconds_total(now_ns);
     }},
    {"sluice_backend_received_bytes_total", "Bytes received from the backend.", MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.counter.value = to_double(b.stats.received_bytes_total);
     }},
    {"sluice_backend_sent_bytes_total", "Bytes sent to the backend.", MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.counter.value = to_double(b.stats.sent_bytes_total);
     }},
    {"sluice_backend_pool_connections_open", "mode http: connections to the backend open now (in use or idle).",
     MetricType::Gauge,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) { m.gauge.value = b.stats.pool_open; }},
    {"sluice_backend_pool_connections_idle", "mode http: of those, idle in the pool.", MetricType::Gauge,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) { m.gauge.value = b.stats.pool_idle; }},
    {"sluice_backend_pool_reuses_total", "mode http: requests sent on a reused pooled connection.",
     MetricType::Counter,
     [](ClientMetric& m, const BackendSnapshot& b, std::uint64_t) {
       m.counter.value = to_double(b.stats.pool_reuses_total);
     }},
}};

const std::array<Column<BackendSetSnapshot>, 3> kBackendSetColumns = {{
    {"sluice_backend_set_size", "Members of the backend set now (draining ones not counted).", MetricType::Gauge,
     [](ClientMetric& m, const BackendSetSnapshot& s, std::uint64_t) { m.gauge.value = static_cast<double>(s.size); },
     true},
    {"sluice_backend_set_refused_total",
     "Addresses of the set's name beyond max_backends, summed over its answers (not made backends).",
     MetricType::Counter,
     [](ClientMetric& m, const BackendSetSnapshot& s, std::uint64_t) { m.counter.value = to_double(s.refused_total); },
     true},
    {"sluice_backend_set_resolve_failures_total",
     "Failed resolutions of the set's name (its members are kept).", MetricType::Counter,
     [](ClientMetric& m, const BackendSetSnapshot& s, std::uint64_t) {
       m.counter.value = to_double(s.resolve_failures_total);
     },
     true},
}};

// One series per (listener, reason), zeros included, so that rate() and absent() work from the
// first scrape on.
MetricFamily rejected_family(const std::vector<ListenerSnapshot>& listeners) {
  MetricFamily family{"sluice_listener_connections_rejected_total",
                      "Clients refused, by reason (abandoned: left while queued).",
                      MetricType::Counter,
                      {}};
  for (const ListenerSnapshot& listener : listeners) {
    const auto& rejected = listener.stats().rejected_total;
    for (std::size_t reason = 0; reason < kRejectReasonNames.size(); ++reason) {
      ClientMetric sample;
      sample.label = {{"listener", listener.name}, {"reason", kRejectReasonNames[reason]}};
      sample.counter.value = to_double(rejected[reason]);
      family.metric.push_back(std::move(sample));
    }
  }
  return family;
}

// mode http: requests Sluice answered itself, one series per (listener, reason), zeros included.
MetricFamily http_errors_family(const std::vector<ListenerSnapshot>& listeners) {
  MetricFamily family{"sluice_http_errors_total",
                      "mode http: requests answered by Sluice itself (400, 408, 431, 502, 503, 504) or cut short, by reason.",
                      MetricType::Counter,
                      {}};
  for (const ListenerSnapshot& listener : listeners) {
    for (std::size_t reason = 0; reason < kHttpErrorNames.size(); ++reason) {
      ClientMetric sample;
      sample.label = {{"listener", listener.name}, {"reason", kHttpErrorNames[reason]}};
      sample.counter.value = to_double(listener.stats().http_errors_total[reason]);
      family.metric.push_back(std::move(sample));
    }
  }
  return family;
}

// mode http: responses per backend by status class.
MetricFamily http_responses_family(const std::vector<ServiceSnapshot>& services) {
  static constexpr std::array<const char*, 5> kClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  MetricFamily family{"sluice_backend_http_responses_total",
                      "mode http: responses from the backend, by status class.", MetricType::Counter, {}};
  for (const ServiceSnapshot& service : services) {
    for (const BackendSnapshot& backend : service.backends) {
      for (std::size_t c = 0; c < kClasses.size(); ++c) {
        ClientMetric sample;
        sample.label = {{"service", service.name}, {"backend", backend.name}, {"node", backend.node},
                        {"code", kClasses[c]}};
        sample.counter.value = to_double(backend.stats.http_responses_total[c]);
        family.metric.push_back(std::move(sample));
      }
    }
  }
  return family;
}

MetricFamily daemon_family(const DaemonStats& daemon) {
  MetricFamily family{
      "sluice_config_reloads_total", "Configuration reloads, by result.", MetricType::Counter, {}};
  for (auto [result, count] : {std::pair{"success", daemon.reloads_success},
                               std::pair{"failure", daemon.reloads_failure}}) {
    ClientMetric sample;
    sample.label = {{"result", result}};
    sample.counter.value = to_double(count);
    family.metric.push_back(std::move(sample));
  }
  return family;
}

MetricFamily build_info_family() {
  ClientMetric sample;
  sample.label = {{"version", SLUICE_VERSION}};
  sample.gauge.value = 1;
  return {"sluice_build_info",
          "Always 1; the version label says which build runs.",
          MetricType::Gauge,
          {std::move(sample)}};
}

}  // namespace

std::vector<MetricFamily> config_state_families(const DaemonStats& daemon) {
  auto gauge = [](const char* name, const char* help, double value) {
    ClientMetric sample;
    sample.gauge.value = value;
    return MetricFamily{name, help, MetricType::Gauge, {std::move(sample)}};
  };
  return {gauge("sluice_config_generation",
                "The running configuration: 1 at start, one more for each reload applied.",
                to_double(daemon.generation)),
          gauge("sluice_config_last_reload_successful",
                "0 after a rejected reload (the previous configuration still runs), 1 otherwise.",
                daemon.last_reload_successful ? 1 : 0)};
}

MetricFamily worker_accepted_family(std::uint32_t worker_number, std::uint64_t accepted_total) {
  ClientMetric sample;
  sample.label = {{"worker", std::to_string(worker_number)}};
  sample.counter.value = to_double(accepted_total);
  return {"sluice_worker_connections_accepted_total", "Clients accepted by this worker's event loop.",
          MetricType::Counter, {std::move(sample)}};
}

MetricsSnapshot take_snapshot(std::span<const Listener* const> listeners, std::span<const Service* const> services) {
  MetricsSnapshot snapshot;
  snapshot.listeners.reserve(listeners.size());
  for (const Listener* listener : listeners) snapshot.listeners.push_back({listener->config().name, listener->stats()});
  snapshot.services.reserve(services.size());
  for (const Service* service : services) {
    ServiceSnapshot& copy = snapshot.services.emplace_back();
    copy.name = service->name();
    copy.counters = service->stats();
    copy.backends.reserve(service->backends().size());
    for (const Backend& backend : service->backends()) {
      if (backend.removed) continue;  // a drained member's series go with it
      copy.backends.push_back(
          {backend.config.name, backend.config.node, backend.config.max_connections, backend.up, backend.stats});
    }
    for (const BackendSet& set : service->sets()) {
      copy.sets.push_back({set.config.name, set.size, set.refused_total, set.resolve_failures_total});
    }
  }
  return snapshot;
}

std::vector<MetricFamily> collect_metrics(const MetricsSnapshot& snapshot, const DaemonStats& daemon,
                                          std::uint64_t now_ns, MetricsPart part) {
  std::vector<std::pair<Labels, const ListenerSnapshot*>> listener_rows;
  for (const ListenerSnapshot& listener : snapshot.listeners) {
    listener_rows.push_back({{{"listener", listener.name}}, &listener});
  }
  std::vector<std::pair<Labels, const ServiceSnapshot*>> service_rows;
  std::vector<std::pair<Labels, const BackendSnapshot*>> backend_rows;
  std::vector<std::pair<Labels, const BackendSetSnapshot*>> set_rows;
  for (const ServiceSnapshot& service : snapshot.services) {
    service_rows.push_back({{{"service", service.name}}, &service});
    for (const BackendSetSnapshot& set : service.sets) set_rows.push_back({{{"service", service.name}, {"set", set.name}}, &set});
    for (const BackendSnapshot& backend : service.backends) {
      backend_rows.push_back(
          {{{"service", service.name}, {"backend", backend.name}, {"node", backend.node}}, &backend});
    }
  }

  std::vector<MetricFamily> families;
  families.reserve(4 + kServiceColumns.size() + kBackendColumns.size() + 2);
  append(families, kListenerColumnsBeforeRejected, listener_rows, now_ns, part);
  if (!snapshot.listeners.empty() && wanted(part, false)) families.push_back(rejected_family(snapshot.listeners));
  append(families, kListenerColumnsAfterRejected, listener_rows, now_ns, part);
  if (!snapshot.listeners.empty() && wanted(part, false)) families.push_back(http_errors_family(snapshot.listeners));
  append(families, kServiceColumns, service_rows, now_ns, part);
  append(families, kBackendColumns, backend_rows, now_ns, part);
  append(families, kBackendSetColumns, set_rows, now_ns, part);
  if (!backend_rows.empty() && wanted(part, false)) families.push_back(http_responses_family(snapshot.services));
  if (wanted(part, true)) {
    families.push_back(daemon_family(daemon));
    families.push_back(build_info_family());
  }
  return families;
}

std::vector<MetricFamily> collect_metrics(std::span<const Listener* const> listeners,
                                          std::span<const Service* const> services,
                                          const DaemonStats& daemon, std::uint64_t now_ns, MetricsPart part) {
  return collect_metrics(take_snapshot(listeners, services), daemon, now_ns, part);
}

}  // namespace sluice
