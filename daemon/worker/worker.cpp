#include "sluice/worker/worker.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "sluice/admin/backends_json.hpp"
#include "sluice/log/log_event.hpp"
#include "sluice/metrics/metrics_merge.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

Worker::Worker(uv_loop_t* loop, std::uint32_t number, int descriptor_ceiling, bool reuse_port,
               std::function<void(HealthReport)> report)
    : loop_(loop), number_(number), reuse_port_(reuse_port), report_(std::move(report)), resources_(loop) {
  resources_.descriptor_ceiling = descriptor_ceiling;
  if (const int rc = release_timer_.init(loop_, this, uv_timer_init); rc != 0) {
    spdlog::error("worker {}: no release timer ({}): replaced services are freed at exit", number_, uv_err_name(rc));
  }
}

Worker::~Worker() {
  pending_.reset();
  listeners_.clear();
  retired_listeners_.clear();
  services_.clear();
  retired_services_.clear();
}

bool Worker::start(const Config& config, std::string& why) {
  // Nothing here blocks on DNS: named backends start down and come up with their first answer.
  for (const ServiceConfig& service : config.services) services_[service.name] = make_service(service, nullptr);
  for (const ListenerConfig& listener_config : config.listeners) {
    auto listener = open_listener(listener_config, *services_.at(listener_config.service), why);
    if (!listener) return false;
    listeners_.push_back(std::move(listener));
  }
  return true;
}

void Worker::apply_view(const BackendView& view) {
  const std::uint64_t now = uv_hrtime();
  if (auto it = services_.find(view.service); it != services_.end()) it->second->follow_view(view, /*may_add=*/true, now);
  // A replaced service still has sessions and perhaps queued clients: it follows the same backends
  // (but takes no new set member: no new session comes to it).
  for (auto& service : retired_services_) {
    if (service->name() == view.service) service->follow_view(view, /*may_add=*/false, now);
  }
}

std::unique_ptr<Service> Worker::make_service(const ServiceConfig& config, const Service* previous) {
  auto service = std::make_unique<Service>(config, uv_hrtime());
  if (previous != nullptr) service->inherit_state(*previous);
  if (report_) service->follow(report_);
  // A draining backend gets no new request: its idle pooled connections are closed now.
  service->on_draining([this](Backend& backend) { resources_.backend_pool.forget(backend); });
  return service;
}

std::map<std::string, LoadSums> Worker::copy_load_sums() const {
  std::map<std::string, LoadSums> sums;
  for (const auto& [name, service] : services_) sums[name] = service->stats().load;
  return sums;
}

std::unique_ptr<Listener> Worker::open_listener(const ListenerConfig& config, Service& service, std::string& why) {
  // An IP literal or localhost (the config refuses other names): no DNS on a data loop.
  const auto bind = bind_address(config.bind, &why);
  if (!bind) {
    why = "listener " + config.name + ": " + why;
    return nullptr;
  }
  auto listener = std::make_unique<Listener>(resources_, config, service);
  if (!listener->start(as_sockaddr(&*bind), reuse_port_, why)) {
    why = "listener " + config.name + ": " + why;
    return nullptr;
  }
  listener->on_session_closed([this] {
    if (!retired_services_.empty() || !retired_listeners_.empty()) release_soon();
  });
  return listener;
}

std::vector<std::string> Worker::bound_addresses() const {
  std::vector<std::string> addresses;
  for (const auto& listener : listeners_) addresses.push_back(listener->bound_address());
  return addresses;
}

std::vector<std::uint16_t> Worker::bound_ports() const {
  std::vector<std::uint16_t> ports;
  for (const auto& listener : listeners_) ports.push_back(listener->bound_port());
  return ports;
}

std::vector<const Service*> Worker::service_list() const {
  std::vector<const Service*> services;
  for (const auto& [name, service] : services_) services.push_back(service.get());
  return services;
}

namespace {

// Adds the counters and histograms of `more` (a replaced service's) into `total`.
// Gauges are left out: what a replaced object holds now (its last sessions) is not the service's
// state, and its configured limits would count twice.
void add_totals(std::vector<prometheus::MetricFamily>& total, std::vector<prometheus::MetricFamily> more) {
  std::erase_if(more, [](const prometheus::MetricFamily& family) {
    return family.type != prometheus::MetricType::Counter && family.type != prometheus::MetricType::Histogram;
  });
  merge_metric_families(total, more);
}

}  // namespace

Worker::MetricsCopy Worker::copy_metrics() const {
  std::vector<const Listener*> listeners;
  for (const auto& listener : listeners_) listeners.push_back(listener.get());
  std::vector<const Service*> retired;
  for (const auto& service : retired_services_)
    if (never_committed_.count(service.get()) == 0) retired.push_back(service.get());
  return {take_snapshot(listeners, service_list()), take_snapshot({}, retired), freed_totals_,
          resources_.accepted_total};
}

std::vector<prometheus::MetricFamily> Worker::families_of(const MetricsCopy& copy, std::uint32_t worker_number,
                                                          std::uint64_t now_ns) {
  auto families = collect_metrics(copy.live, DaemonStats{}, now_ns, MetricsPart::workers);
  // A reload's rebuilt service starts from zero: the replaced one, still finishing its sessions or
  // already freed, carries the totals so far.
  if (!copy.retired.services.empty()) {
    add_totals(families, collect_metrics(copy.retired, DaemonStats{}, now_ns, MetricsPart::workers));
  }
  if (copy.freed_totals) add_totals(families, *copy.freed_totals);
  families.push_back(worker_accepted_family(worker_number, copy.accepted_total));
  return families;
}

std::string Worker::render_backends_json(std::uint64_t now_ns, double unix_now_seconds) const {
  return sluice::render_backends_json(service_list(), now_ns, unix_now_seconds);
}

// --- drain and shutdown -----------------------------------------------------------------------

void Worker::begin_drain(std::function<void()> on_drained) {
  for (auto& listener : listeners_) listener->stop_accepting();
  resources_.drain_sessions();
  if (resources_.session_count == 0) {
    on_drained();
    return;
  }
  resources_.on_last_session_closed = std::move(on_drained);
}

void Worker::close_handles() {
  abort_prepared();
  for (auto& listener : listeners_) listener->stop_accepting();
  resources_.backend_pool.close_all();
  release_timer_.close();
}

// --- live reload ------------------------------------------------------------------------------

bool Worker::prepare(const Config& next, std::string& why) {
  abort_prepared();  // a reload that was never committed or aborted (e.g. the control plane gave up)
  Pending pending;
  pending.config = next;
  // 1. Services: an unchanged one is kept as it is (queues, slots, counters); a changed or new
  //    one is built fresh, starting from the old backends' addresses and health.
  for (const ServiceConfig& config : next.services) {
    auto old = services_.find(config.name);
    if (old != services_.end() && old->second->config() == config) continue;
    pending.fresh[config.name] = make_service(config, old != services_.end() ? old->second.get() : nullptr);
  }
  auto service_for = [&](const std::string& name) -> Service& {
    auto it = pending.fresh.find(name);
    return it != pending.fresh.end() ? *it->second : *services_.at(name);
  };

  // 2. Listeners, matched by bind address: a kept one keeps its socket, so no client is refused.
  //    New sockets are bound now, before anything changes; if one fails, the reload is undone.
  pending.opened.resize(next.listeners.size());
  pending.reused.assign(next.listeners.size(), nullptr);
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    const ListenerConfig& config = next.listeners[i];
    for (auto& listener : listeners_) {
      if (listener->config().bind == config.bind &&
          std::find(pending.reused.begin(), pending.reused.end(), listener.get()) == pending.reused.end()) {
        pending.reused[i] = listener.get();
        break;
      }
    }
    if (pending.reused[i] != nullptr) continue;
    pending.opened[i] = open_listener(config, service_for(config.service), why);
    if (!pending.opened[i]) {
      pending_ = std::move(pending);
      abort_prepared();
      return false;
    }
  }
  pending_ = std::move(pending);
  return true;
}

std::vector<std::uint16_t> Worker::prepared_ports() const {
  std::vector<std::uint16_t> ports;
  if (!pending_) return ports;
  for (std::size_t i = 0; i < pending_->opened.size(); ++i) {
    ports.push_back(pending_->opened[i] ? pending_->opened[i]->bound_port() : pending_->reused[i]->bound_port());
  }
  return ports;
}

void Worker::abort_prepared() {
  if (!pending_) return;
  for (auto& listener : pending_->opened) {
    if (listener) retire(std::move(listener));
  }
  for (auto& [name, service] : pending_->fresh) {
    never_committed_.insert(service.get());  // served no one: nothing of it belongs in /metrics
    retire(std::move(service));
  }
  pending_.reset();
}

void Worker::commit_prepared() {
  if (!pending_) return;
  Pending pending = std::move(*pending_);
  pending_.reset();
  const Config& next = pending.config;
  auto service_for = [&](const std::string& name) -> Service& {
    auto it = pending.fresh.find(name);
    return it != pending.fresh.end() ? *it->second : *services_.at(name);
  };
  // Sessions already open keep the listener and service they started with.
  std::vector<std::unique_ptr<Listener>> listeners;
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    if (pending.opened[i]) {
      listeners.push_back(std::move(pending.opened[i]));
      continue;
    }
    auto it = std::find_if(listeners_.begin(), listeners_.end(),
                           [&](const auto& listener) { return listener.get() == pending.reused[i]; });
    (*it)->reconfigure(next.listeners[i], service_for(next.listeners[i].service));
    listeners.push_back(std::move(*it));
  }
  for (auto& listener : listeners_) {
    if (listener) retire(std::move(listener));
  }
  listeners_ = std::move(listeners);

  for (auto& [name, service] : services_) {
    if (pending.fresh.count(name) != 0 || next.find_service(name) == nullptr) retire(std::move(service));
  }
  std::erase_if(services_, [](const auto& item) { return !item.second; });
  // The control plane's monitors publish their views after this commit (see Daemon::apply).
  for (auto& [name, service] : pending.fresh) services_[name] = std::move(service);
  // A service the config no longer has takes its carried-over totals with it (in a new copy: a
  // scrape may be reading the old one).
  if (freed_totals_->empty()) return;
  auto totals = *freed_totals_;
  for (auto& family : totals) {
    std::erase_if(family.metric, [&](const prometheus::ClientMetric& sample) {
      const auto label = std::find_if(sample.label.begin(), sample.label.end(),
                                      [](const prometheus::ClientMetric::Label& l) { return l.name == "service"; });
      return label != sample.label.end() && services_.count(label->value) == 0;
    });
  }
  freed_totals_ = std::make_shared<const std::vector<prometheus::MetricFamily>>(std::move(totals));
}

void Worker::retire(std::unique_ptr<Service> service) {
  retired_services_.push_back(std::move(service));
  release_soon();
}

void Worker::retire(std::unique_ptr<Listener> listener) {
  listener->stop_accepting();
  retired_listeners_.push_back(std::move(listener));
  release_soon();
}

void Worker::release_soon() {
  if (!release_timer_ || release_timer_.active()) return;
  const int rc = uv_timer_start(release_timer_.get(), [](uv_timer_t* timer) { owner<Worker>(timer)->release_retired(); }, 0, 0);
  if (rc != 0) spdlog::error("worker {}: cannot schedule a release ({}): replaced services wait", number_, uv_err_name(rc));
}

void Worker::release_retired() {
  // A freed service whose name still runs (it was rebuilt) keeps counting in freed_totals_.
  std::vector<const Service*> services;
  for (const auto& service : retired_services_) {
    if (service->in_use()) continue;
    if (never_committed_.erase(service.get()) == 0 && services_.count(service->name()) != 0)
      services.push_back(service.get());
    log_event(spdlog::level::debug, "retired_service_freed", {{"service", service->name()}});
  }
  if (!services.empty()) {
    auto totals = *freed_totals_;  // a new copy: a scrape may be reading the old one
    add_totals(totals, sluice::collect_metrics({}, services, DaemonStats{}, uv_hrtime(), MetricsPart::workers));
    freed_totals_ = std::make_shared<const std::vector<prometheus::MetricFamily>>(std::move(totals));
  }
  std::erase_if(retired_listeners_, [](const auto& listener) { return !listener->in_use(); });
  for (const auto& service : retired_services_) {
    if (!service->in_use()) resources_.backend_pool.forget(*service);  // its idle connections go with it
  }
  std::erase_if(retired_services_, [](const auto& service) { return !service->in_use(); });
}

}  // namespace sluice
