#pragma once
// One event loop's share of the daemon: its services, its listeners, its sessions, and the
// live-reload swap of all three. With `workers: N` the daemon runs N workers, each on a loop and
// thread of its own with its own SO_REUSEPORT listeners, so nothing in an worker is shared or
// locked. Every method runs on the worker's loop thread. Backends are resolved and checked once
// for the process by the control plane's ServiceMonitors: an worker's services follow them
// (apply_view) and report their client connects to them (the `report` callback).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>
#include <uv.h>

#include "sluice/config/config.hpp"
#include "sluice/worker/listener.hpp"
#include "sluice/metrics/metrics.hpp"
#include "sluice/balancing/service.hpp"
#include "sluice/uv/handle.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

class Worker {
 public:
  /// `number`: the worker's number, 1..N. `reuse_port`: listeners set SO_REUSEPORT, so that the
  /// workers of one process share a port. `report`: where the services send their client connects
  /// (called on this loop: it hands them to the control plane); empty: each decides for itself.
  Worker(uv_loop_t* loop, std::uint32_t number, int descriptor_ceiling, bool reuse_port,
         std::function<void(HealthReport)> report = {});
  ~Worker();  // after the loop has ended
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Builds the services and binds the listeners of `config`; false with `why` on the first
  /// listener that cannot bind (the caller then closes everything).
  bool start(const Config& config, std::string& why);
  /// The monitor's decision about a backend: applied to the running service of that name and to
  /// the replaced ones still finishing their sessions.
  void apply_view(const BackendView& view);

  /// Live reload, in two phases so that every worker takes a config or none does. prepare()
  /// builds the changed services and binds the new listeners' sockets without changing anything
  /// that runs; false with `why` (and nothing kept) when a socket cannot be bound. Then exactly one
  /// of commit_prepared() (swap it in) or abort_prepared() (drop it). A new prepare() drops a
  /// prepared config that was neither.
  bool prepare(const Config& next, std::string& why);
  /// The port each listener of the prepared config has, in its config order (empty without one).
  std::vector<std::uint16_t> prepared_ports() const;
  void commit_prepared();
  void abort_prepared();

  /// "ip:port" actually bound by each listener, in config order (the real port when 0 was asked).
  std::vector<std::string> bound_addresses() const;
  /// The port each listener bound, in config order.
  std::vector<std::uint16_t> bound_ports() const;

  /// Stops accepting; `on_drained` runs (on this loop) once no session is left, perhaps at once.
  void begin_drain(std::function<void()> on_drained);
  /// Ends every session now.
  void abort_sessions() { resources_.abort_all_sessions(); }
  std::size_t session_count() const { return resources_.session_count; }

  /// Drops a prepared reload and closes the handles, so the loop can end once the sessions have.
  void close_handles();

  /// What a scrape takes from a worker: copied on its loop (nothing is built there, so a scrape
  /// holds a data loop up for microseconds), made into families on the control plane.
  struct MetricsCopy {
    MetricsSnapshot live;     // listeners and services that run
    MetricsSnapshot retired;  // replaced services still finishing their sessions
    std::shared_ptr<const std::vector<prometheus::MetricFamily>> freed_totals;  // see freed_totals_
    std::uint64_t accepted_total = 0;
  };
  /// On this worker's loop.
  MetricsCopy copy_metrics() const;
  /// Any thread: the worker's families (MetricsPart::workers) with the retired and freed services'
  /// totals added, and its own sluice_worker_connections_accepted_total{worker}.
  static std::vector<prometheus::MetricFamily> families_of(const MetricsCopy& copy, std::uint32_t worker_number,
                                                           std::uint64_t now_ns);
  /// On this loop: each running service's cumulative LoadSums (the scaling signal's input).
  std::map<std::string, LoadSums> copy_load_sums() const;
  /// The GET /backends document of this worker's services.
  std::string render_backends_json(std::uint64_t now_ns, double unix_now_seconds) const;

 private:
  using Services = std::map<std::string, std::unique_ptr<Service>>;
  // A prepared reload: the config, its new services, and for each of its listeners either a new
  // bound socket or the running listener it keeps.
  struct Pending {
    Config config;
    Services fresh;
    std::vector<std::unique_ptr<Listener>> opened;
    std::vector<Listener*> reused;
  };

  std::unique_ptr<Service> make_service(const ServiceConfig& config, const Service* previous);
  /// Binds a listener for `config` in front of `service`; nullptr with `why` on failure.
  std::unique_ptr<Listener> open_listener(const ListenerConfig& config, Service& service, std::string& why);
  std::vector<const Service*> service_list() const;

  // A replaced service or listener is retired: kept while sessions refer to it, and freed on the
  // loop turn after its last one ends (each session's end wakes release_soon while any is retired).
  void retire(std::unique_ptr<Service> service);
  void retire(std::unique_ptr<Listener> listener);
  /// Frees the retired objects no session refers to on the next loop turn: not from inside the
  /// closing session, which still holds its listener and service.
  void release_soon();
  void release_retired();

  uv_loop_t* loop_;
  std::uint32_t number_;
  bool reuse_port_;
  std::function<void(HealthReport)> report_;
  LoopResources resources_;
  Services services_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Service>> retired_services_;
  std::vector<std::unique_ptr<Listener>> retired_listeners_;
  // The final counters and histograms of rebuilt services already freed: added to every
  // collection, so that no counter in /metrics goes backwards across a reload. Dropped with the
  // service's name when a reload removes it. Replaced, never changed, once published: a scrape
  // shares it with the control plane.
  std::shared_ptr<const std::vector<prometheus::MetricFamily>> freed_totals_ =
      std::make_shared<const std::vector<prometheus::MetricFamily>>();
  std::set<const Service*> never_committed_;  // retired by an aborted reload: never served
  std::optional<Pending> pending_;
  Handle<uv_timer_t> release_timer_;  // one-shot, armed by release_soon
};

}  // namespace sluice
