#include "sluice/balancing/service.hpp"

#include <spdlog/spdlog.h>

#include "sluice/log/log_event.hpp"
#include "sluice/net/sockaddr_text.hpp"

namespace sluice {

namespace {

const std::vector<bool> kNoneTried;

std::string text_of(const sockaddr_storage& address) {
  return sockaddr_to_string(as_sockaddr(&address));
}

}  // namespace

Service::Service(ServiceConfig config, std::uint64_t now_ns)
    : config_(std::move(config)),
      policy_(make_policy(config_.policy, config_.backends.size())),
      loads_(config_.backends.size()) {
  for (const BackendSetConfig& set : config_.backend_sets) sets_.push_back(BackendSet{set});
  for (std::size_t i = 0; i < config_.backends.size(); ++i) {
    Backend& backend = backends_.emplace_back(config_.backends[i], i, config_.health_check);
    backend.state_since_ns = now_ns;
    if (auto address = numeric_address(backend.config.address)) {
      backend.has_address = true;
      backend.address = *address;
      backend.address_text = text_of(*address);
      backend.up = true;
      backend.state_reason = "started";
    } else {
      backend.health.reset(false);
      backend.state_reason = "name not resolved yet";
    }
  }
  // backends_ is a deque: these references into it stay valid as members join.
  for (Backend& backend : backends_) {
    backend_queues_.push_back(std::make_unique<WaitQueue>(backend.stats.queue_length));
  }
}

Service::Arrival Service::arrive(Waiter& waiter, std::uint64_t now_ns, const std::vector<bool>& tried) {
  const bool retry = !tried.empty();
  const std::uint32_t max_length = config_.queue.max_length;
  if (!retry) stats_.load.arrive(now_ns);

  if (config_.queue.mode == QueueMode::shared) {
    // Strict FIFO: a newcomer may not overtake connections already waiting.
    if (shared_queue_.empty() || retry) {
      if (Backend* backend = choose(tried, /*need_free_slot=*/true)) {
        take_slot(*backend, waiter, now_ns);
        return {Outcome::dispatched, backend};
      }
    }
    // A newcomer waits even when no backend is up: one may come back within the queue timeout.
    if (retry && !any_candidate(tried)) return {Outcome::no_backend};
    if (shared_queue_.length() >= max_length) return {Outcome::queue_full};
    retry ? shared_queue_.push_front(waiter, now_ns) : shared_queue_.push_back(waiter, now_ns);
    return {Outcome::queued};
  }

  Backend* backend = choose(tried, /*need_free_slot=*/false);
  if (backend == nullptr) {
    if (retry) return {Outcome::no_backend};
    // None up: held in the service FIFO until place_held() finds one.
    if (shared_queue_.length() >= max_length) return {Outcome::queue_full};
    shared_queue_.push_back(waiter, now_ns);
    return {Outcome::queued};
  }
  WaitQueue& queue = *backend_queues_[backend->index];
  if (queue.empty() && backend->has_free_slot()) {
    take_slot(*backend, waiter, now_ns);
    return {Outcome::dispatched, backend};
  }
  if (queue.length() >= max_length) return {Outcome::queue_full};
  retry ? queue.push_front(waiter, now_ns) : queue.push_back(waiter, now_ns);
  return {Outcome::queued};
}

void Service::leave_queue(Waiter& waiter, std::uint64_t now_ns) {
  if (waiter.queue != nullptr) waiter.queue->remove(waiter, now_ns);
}

void Service::release(Backend& backend, std::uint64_t now_ns, const Waiter* holder) {
  backend.stats.active.add(now_ns, -1);
  if (holder != nullptr && now_ns >= holder->slot_taken_ns) {
    stats_.load.complete(static_cast<double>(now_ns - holder->slot_taken_ns) * 1e-9);
  }
  if (loop_ == nullptr) {
    after_release(now_ns, &backend);
    return;
  }
  if (dispatch_turn_) return;  // one pending turn hands out every slot freed meanwhile
  // The handle lives only while a dispatch is pending, so an idle service holds none (and none
  // outlives its loop).
  int rc = dispatch_turn_.init(loop_, this, uv_idle_init);
  if (rc == 0) {
    rc = uv_idle_start(dispatch_turn_.get(), [](uv_idle_t* idle) { owner<Service>(idle)->dispatch_released(); });
  }
  if (rc != 0) {
    log_event(spdlog::level::warn, "dispatch_not_scheduled", {{"service", name()}, {"error", uv_err_name(rc)}});
    dispatch_turn_.close();
    after_release(now_ns, &backend);
  }
}

void Service::dispatch_released() {
  dispatch_turn_.close();
  after_release(uv_hrtime(), nullptr);
}

void Service::after_release(std::uint64_t now_ns, Backend* freed) {
  if (config_.queue.mode == QueueMode::per_backend && freed == nullptr) {
    for (Backend& backend : backends_) dispatch_waiting(now_ns, &backend);
  } else {
    dispatch_waiting(now_ns, freed);
  }
  remove_drained();
}

std::size_t Service::waiting() const {
  std::size_t total = shared_queue_.length();
  for (const auto& queue : backend_queues_) total += queue->length();
  return total;
}

bool Service::any_up() const { return any_candidate(kNoneTried); }

void Service::inherit_state(const Service& previous) {
  stats_.load = previous.stats().load;
  for (Backend& backend : backends_) {
    if (!backend.set.empty()) continue;
    for (const Backend& old : previous.backends()) {
      if (old.removed || !old.set.empty()) continue;
      if (old.config.name != backend.config.name || !(old.config.address == backend.config.address)) continue;
      backend.has_address = old.has_address;
      backend.address = old.address;
      backend.address_text = old.address_text;
      backend.resolve_failing = old.resolve_failing;
      backend.health.reset(old.health.up());  // this config's rise and fall, the old state
      backend.up = old.up;
      backend.state_since_ns = old.state_since_ns;
      backend.state_reason = old.state_reason;
    }
  }
  inherit_members(previous);
}

bool Service::address_resolved(Backend& backend, const sockaddr_storage& address, bool at_start,
                               std::uint64_t now_ns) {
  if (backend.resolve_failing) {
    backend.resolve_failing = false;
    log_event(spdlog::level::info, "backend_resolve_recovered",
              {{"service", name()}, {"backend", backend.config.name}, {"name", backend.config.address.to_string()}});
  }
  const bool first = !backend.has_address;
  if (!first && same_address(backend.address, address)) return false;
  const std::string previous = first ? "none" : backend.address_text;
  backend.has_address = true;
  backend.address = address;
  backend.address_text = text_of(address);
  log_event(spdlog::level::info, "backend_address",
            {{"service", name()},
             {"backend", backend.config.name},
             {"name", backend.config.address.to_string()},
             {"from", previous},
             {"to", backend.address_text}});
  if (first) {
    const bool up_now = at_start || !config_.health_check.enabled;
    backend.health.reset(up_now);
    if (up_now) {
      set_state(backend, true, at_start ? "resolved at start" : "resolved", now_ns, /*counted=*/!at_start);
    } else {
      backend.state_reason = "resolved; waiting for " + std::to_string(config_.health_check.rise) +
                             " passed health checks";
    }
  }
  return true;
}

void Service::resolve_failed(Backend& backend, std::string_view error, std::uint64_t /*now_ns*/) {
  ++backend.stats.resolve_failures_total;
  if (!backend.has_address) backend.state_reason = "name not resolved: " + std::string(error);
  if (backend.resolve_failing) return;
  backend.resolve_failing = true;
  log_event(spdlog::level::warn, "backend_resolve_failed",
            {{"service", name()},
             {"backend", backend.config.name},
             {"name", backend.config.address.to_string()},
             {"error", error},
             {"keeping", backend.has_address ? backend.address_text : "none"}});
}

void Service::record_health(Backend& backend, HealthEvidence evidence, std::string_view detail,
                            std::uint64_t now_ns) {
  if (!config_.health_check.enabled || !backend.has_address) return;
  if (!backend.health.record(evidence)) return;
  const HealthCheckConfig& check = config_.health_check;
  if (backend.health.up()) {
    set_state(backend, true, std::to_string(check.rise) + " health checks passed", now_ns);
    return;
  }
  const char* what = evidence == HealthEvidence::connect_failed ? "client connect" : "health check";
  set_state(backend, false,
            std::to_string(check.fall) + " failures in a row, the last a " + what + ": " + std::string(detail),
            now_ns);
}

void Service::client_connect(Backend& backend, bool passed, std::string_view detail, std::uint64_t now_ns) {
  const HealthEvidence evidence = passed ? HealthEvidence::connect_passed : HealthEvidence::connect_failed;
  if (!report_) {
    record_health(backend, evidence, detail, now_ns);
    return;
  }
  if (!config_.health_check.enabled || !backend.has_address) return;  // the monitor would drop it
  if (passed && !backend.report_passes) return;
  // After a failure this worker's own next pass must count, before the monitor's view says so.
  if (!passed) backend.report_passes = true;
  report_(HealthReport{name(), backend.config.name, backend.config.address, passed, std::string(detail)});
}

BackendView Service::view_of(const Backend& backend) const {
  return BackendView{name(),
                     backend.config.name,
                     backend.config.address,
                     backend.set,
                     backend.draining,
                     backend.has_address,
                     backend.address,
                     backend.address_text,
                     backend.resolve_failing,
                     backend.up,
                     backend.state_since_ns,
                     backend.state_reason,
                     backend.up && backend.health.run() > 0,
                     backend.stats.state_changes_total,
                     backend.stats.resolve_failures_total};
}

bool operator==(const BackendView& a, const BackendView& b) {
  return a.service == b.service && a.backend == b.backend && a.configured == b.configured && a.set == b.set &&
         a.draining == b.draining &&
         a.has_address == b.has_address && (!a.has_address || same_address(a.address, b.address)) &&
         a.address_text == b.address_text && a.resolve_failing == b.resolve_failing && a.up == b.up &&
         a.since_ns == b.since_ns && a.reason == b.reason && a.wants_passes == b.wants_passes &&
         a.state_changes_total == b.state_changes_total && a.resolve_failures_total == b.resolve_failures_total;
}

void Service::apply_view(Backend& backend, const BackendView& view, std::uint64_t now_ns) {
  backend.has_address = view.has_address;
  backend.address = view.address;
  backend.address_text = view.address_text;
  backend.resolve_failing = view.resolve_failing;
  backend.state_since_ns = view.since_ns;
  backend.state_reason = view.reason;
  backend.report_passes = view.wants_passes;
  backend.stats.state_changes_total = view.state_changes_total;    // a copy: /backends shows it,
  backend.stats.resolve_failures_total = view.resolve_failures_total;  // /metrics takes the monitor's
  backend.health.reset(view.up);
  if (backend.up == view.up) return;
  backend.up = view.up;
  move_waiters(backend, now_ns);
}

Backend* Service::find_backend(std::string_view backend_name, const Endpoint& address) {
  for (Backend& backend : backends_) {
    if (!backend.removed && backend.config.name == backend_name && backend.config.address == address) return &backend;
  }
  return nullptr;
}

void Service::set_state(Backend& backend, bool up, std::string reason, std::uint64_t now_ns, bool counted) {
  backend.state_reason = std::move(reason);
  if (backend.up == up) return;
  backend.up = up;
  backend.state_since_ns = now_ns;
  if (counted) ++backend.stats.state_changes_total;
  log_event(up ? spdlog::level::info : spdlog::level::warn, "backend_state",
            {{"service", name()},
             {"backend", backend.config.name},
             {"node", LogValue::text_or_null(backend.config.node)},
             {"state", up ? "up" : "down"},
             {"reason", backend.state_reason}});
  move_waiters(backend, now_ns);
}

void Service::move_waiters(Backend& backend, std::uint64_t now_ns) {
  const bool up = backend.up;
  if (config_.queue.mode == QueueMode::shared) {
    if (up) dispatch_waiting(now_ns, &backend);
    return;
  }
  if (!up) {
    // Its waiters go to the backends that are left (or wait for one in the service FIFO).
    WaitQueue& queue = *backend_queues_[backend.index];
    while (Waiter* waiter = queue.pop_front(now_ns)) shared_queue_.insert_by_arrival(*waiter, now_ns);
  }
  place_held(now_ns);
}

bool Service::is_candidate(const Backend& backend, const std::vector<bool>& tried) {
  // A member that joined after the connection's first try is not in `tried` yet.
  return backend.up && (backend.index >= tried.size() || !tried[backend.index]);
}

bool Service::any_candidate(const std::vector<bool>& tried) const {
  for (const Backend& backend : backends_) {
    if (is_candidate(backend, tried)) return true;
  }
  return false;
}

Backend* Service::choose(const std::vector<bool>& tried, bool need_free_slot) {
  const bool count_queued = config_.queue.mode == QueueMode::per_backend;
  for (std::size_t i = 0; i < backends_.size(); ++i) {
    const Backend& backend = backends_[i];
    std::uint32_t load = backend.active_connections();
    if (count_queued) load += static_cast<std::uint32_t>(backend_queues_[i]->length());
    loads_[i].weight = backend.config.weight;
    loads_[i].active_connections = load;
    loads_[i].eligible = is_candidate(backend, tried) && (!need_free_slot || backend.has_free_slot());
  }
  auto chosen = policy_->pick(loads_);
  return chosen ? &backends_[*chosen] : nullptr;
}

void Service::take_slot(Backend& backend, Waiter& waiter, std::uint64_t now_ns) {
  backend.stats.active.add(now_ns, 1);
  ++backend.stats.connections_total;
  waiter.slot_taken_ns = now_ns;
  if (waiter.dispatched_ns == 0) {
    waiter.dispatched_ns = now_ns;
    const double wait_seconds =
        now_ns > waiter.arrived_ns ? static_cast<double>(now_ns - waiter.arrived_ns) * 1e-9 : 0.0;
    stats_.queue_wait.observe(wait_seconds);
    backend.stats.queue_wait.observe(wait_seconds);
  }
}

void Service::dispatch_waiting(std::uint64_t now_ns, Backend* freed) {
  if (config_.queue.mode == QueueMode::per_backend) {
    if (freed == nullptr) return;
    WaitQueue& queue = *backend_queues_[freed->index];
    while (freed->up && freed->has_free_slot() && !queue.empty()) {
      Waiter* waiter = queue.pop_front(now_ns);
      take_slot(*freed, *waiter, now_ns);
      waiter->on_dispatched(*freed);
    }
    return;
  }
  while (!shared_queue_.empty()) {
    Backend* backend = choose(kNoneTried, /*need_free_slot=*/true);
    if (backend == nullptr) return;
    Waiter* waiter = shared_queue_.pop_front(now_ns);
    take_slot(*backend, *waiter, now_ns);
    waiter->on_dispatched(*backend);
  }
}

void Service::place_held(std::uint64_t now_ns) {
  while (!shared_queue_.empty()) {
    Backend* backend = choose(kNoneTried, /*need_free_slot=*/false);
    if (backend == nullptr) return;
    Waiter* waiter = shared_queue_.pop_front(now_ns);
    WaitQueue& queue = *backend_queues_[backend->index];
    if (queue.empty() && backend->has_free_slot()) {
      take_slot(*backend, *waiter, now_ns);
      waiter->on_dispatched(*backend);
    } else {
      queue.insert_by_arrival(*waiter, now_ns);
    }
  }
}

}  // namespace sluice
