#include "sluice/service.hpp"

#include "sluice/sockaddr_text.hpp"

namespace sluice {

Service::Service(ServiceConfig config, const std::vector<sockaddr_storage>& addresses)
    : config_(std::move(config)),
      policy_(make_policy(config_.policy, config_.backends.size())),
      loads_(config_.backends.size()) {
  backends_.reserve(config_.backends.size());
  for (std::size_t i = 0; i < config_.backends.size(); ++i) {
    Backend backend;
    backend.config = config_.backends[i];
    backend.index = i;
    backend.address = addresses.at(i);
    backend.address_text = sockaddr_to_string(reinterpret_cast<const sockaddr*>(&backend.address));
    backends_.push_back(std::move(backend));
  }
  // backends_ never grows again, so these references into it stay valid.
  for (Backend& backend : backends_) {
    backend_queues_.push_back(std::make_unique<WaitQueue>(backend.stats.queue_length));
  }
}

Service::Arrival Service::arrive(Waiter& waiter, std::uint64_t now_ns, const std::vector<bool>& tried) {
  const bool retry = !tried.empty();
  const std::uint32_t max_length = config_.queue.max_length;

  if (config_.queue.mode == QueueMode::shared) {
    // Strict FIFO: a newcomer may not overtake connections already waiting.
    if (shared_queue_.empty() || retry) {
      if (Backend* backend = choose(tried, /*need_free_slot=*/true)) {
        take_slot(*backend, waiter, now_ns);
        return {Outcome::dispatched, backend};
      }
    }
    if (!any_candidate(tried)) return {Outcome::no_backend};
    if (shared_queue_.length() >= max_length) return {Outcome::queue_full};
    retry ? shared_queue_.push_front(waiter, now_ns) : shared_queue_.push_back(waiter, now_ns);
    return {Outcome::queued};
  }

  Backend* backend = choose(tried, /*need_free_slot=*/false);
  if (backend == nullptr) return {Outcome::no_backend};
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

void Service::release(Backend& backend, std::uint64_t now_ns) {
  backend.stats.active.add(now_ns, -1);
  dispatch_waiting(now_ns, &backend);
}

std::size_t Service::waiting() const {
  std::size_t total = shared_queue_.length();
  for (const auto& queue : backend_queues_) total += queue->length();
  return total;
}

bool Service::is_candidate(const Backend& backend, const std::vector<bool>& tried) {
  return backend.up && (tried.empty() || !tried[backend.index]);
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
    WaitQueue& queue = *backend_queues_[freed->index];
    if (!freed->up || !freed->has_free_slot()) return;
    if (Waiter* waiter = queue.pop_front(now_ns)) {
      take_slot(*freed, *waiter, now_ns);
      waiter->on_dispatched(*freed);
    }
    return;
  }
  static const std::vector<bool> kNoneTried;
  while (!shared_queue_.empty()) {
    Backend* backend = choose(kNoneTried, /*need_free_slot=*/true);
    if (backend == nullptr) return;
    Waiter* waiter = shared_queue_.pop_front(now_ns);
    take_slot(*backend, *waiter, now_ns);
    waiter->on_dispatched(*backend);
  }
}

}  // namespace sluice
