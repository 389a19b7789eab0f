// A service's backend sets: members that join and drain as their name's records change (README
// "Backends follow DNS and health"). The authority decides (resolve_set); followers copy
// (follow_view). Entries never move; a removed one is reused once nothing names it.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "sluice/balancing/service.hpp"
#include "sluice/log/log_event.hpp"
#include "sluice/net/sockaddr_text.hpp"

namespace sluice {

namespace {

bool is_member(const Backend& backend, const std::string& set) {
  return !backend.removed && !backend.draining && backend.set == set;
}

}  // namespace

std::size_t Service::set_index(std::string_view set_name) const {
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    if (sets_[i].config.name == set_name) return i;
  }
  return sets_.size();
}

void Service::mark_tried(std::vector<bool>& tried, const Backend& backend) const {
  if (tried.size() <= backend.index) tried.resize(backends_.size(), false);
  tried[backend.index] = true;
}

Backend& Service::new_member(std::size_t set, const sockaddr_storage& address, std::uint64_t now_ns) {
  const BackendSetConfig& config = sets_[set].config;
  const std::string text = sockaddr_to_string(as_sockaddr(&address));
  BackendConfig member{text, parse_endpoint(text).value_or(Endpoint{text, config.address.port}), config.node,
                       config.weight, config.max_connections, config.send_proxy};
  // A free entry that nothing names any more (not even an access log line still to be written).
  auto free_entry = std::find_if(backends_.begin(), backends_.end(), [](const Backend& backend) {
    return backend.removed && backend.holders == 0 && backend.active_connections() == 0;
  });
  Backend* backend = nullptr;
  if (free_entry != backends_.end()) {
    // Its per_backend queue is empty (emptied when it went down) and keeps referring to this entry's stats.
    *free_entry = Backend(std::move(member), free_entry->index, config_.health_check);
    backend = &*free_entry;
  } else {
    backend = &backends_.emplace_back(std::move(member), backends_.size(), config_.health_check);
    backend_queues_.push_back(std::make_unique<WaitQueue>(backend->stats.queue_length));
    loads_.resize(backends_.size());
  }
  backend->set = config.name;
  backend->has_address = true;
  backend->address = address;
  backend->address_text = text;
  backend->health.reset(false);
  backend->state_since_ns = now_ns;
  backend->state_reason = "joined";
  return *backend;
}

Service::SetChange Service::resolve_set(std::size_t index, const std::vector<sockaddr_storage>& addresses,
                                        std::uint64_t now_ns) {
  BackendSet& set = sets_[index];
  const bool at_start = !set.answered;
  set.answered = true;
  if (set.resolve_failing) {
    set.resolve_failing = false;
    log_event(spdlog::level::info, "backend_set_resolve_recovered",
              {{"service", name()}, {"set", set.config.name}, {"name", set.config.address.to_string()}});
  }
  // The first max_backends addresses, in the answer's stable order, are the members.
  const std::size_t kept = std::min<std::size_t>(addresses.size(), set.config.max_backends);
  const auto wanted = [&](const sockaddr_storage& address) {
    return std::any_of(addresses.begin(), addresses.begin() + static_cast<std::ptrdiff_t>(kept),
                       [&](const sockaddr_storage& a) { return same_address(a, address); });
  };
  SetChange change;
  // New members first: an entry drained below is then not reused before its view is published.
  for (std::size_t i = 0; i < kept; ++i) {
    Backend* member = nullptr;
    for (Backend& backend : backends_) {
      if (!backend.removed && backend.set == set.config.name && same_address(backend.address, addresses[i])) {
        member = &backend;
      }
    }
    if (member != nullptr && !member->draining) continue;
    if (member == nullptr) {
      member = &new_member(index, addresses[i], now_ns);
    } else {
      member->draining = false;  // still finishing its sessions: revived rather than doubled
      member->health.reset(false);
    }
    change.added.push_back(member);
    const bool up_now = at_start || !config_.health_check.enabled;
    log_event(spdlog::level::info, "backend_joined",
              {{"service", name()}, {"set", set.config.name}, {"backend", member->config.name}, {"state", up_now ? "up" : "down"}});
    if (up_now) {
      member->health.reset(true);
      set_state(*member, true, at_start ? "in the set's first answer" : "joined the set", now_ns,
                /*counted=*/false);
    } else {
      member->state_reason =
          "joined the set; waiting for " + std::to_string(config_.health_check.rise) + " passed health checks";
    }
  }
  for (Backend& backend : backends_) {
    if (!is_member(backend, set.config.name) || wanted(backend.address)) continue;
    change.drained.push_back(&backend);
    drain(backend, now_ns);
  }
  if (addresses.size() - kept != set.refused) {
    log_event(spdlog::level::warn, "backend_set_refused",
              {{"service", name()},
               {"set", set.config.name},
               {"name", set.config.address.to_string()},
               {"addresses", addresses.size()},
               {"max_backends", set.config.max_backends},
               {"refused", addresses.size() - kept}});
  }
  set.refused = addresses.size() - kept;
  set.refused_total += set.refused;  // per answer: its rate says how many addresses the bound leaves out
  set.size = static_cast<std::size_t>(std::count_if(
      backends_.begin(), backends_.end(), [&](const Backend& backend) { return is_member(backend, set.config.name); }));
  return change;
}

void Service::set_resolve_failed(std::size_t index, std::string_view error) {
  BackendSet& set = sets_[index];
  set.answered = true;  // members that come later start down, as after any first answer
  ++set.resolve_failures_total;
  if (set.resolve_failing) return;
  set.resolve_failing = true;
  log_event(spdlog::level::warn, "backend_set_resolve_failed",
            {{"service", name()},
             {"set", set.config.name},
             {"name", set.config.address.to_string()},
             {"error", error},
             {"keeping_members", set.size}});
}

void Service::drain(Backend& backend, std::uint64_t now_ns) {
  if (backend.draining || backend.removed) return;
  backend.draining = true;
  backend.report_passes = false;
  backend.state_reason = "draining: its address left the records of " + config_.name + "'s set " + backend.set;
  // The monitor's decision is logged once, by the authority; a worker's follower logs it at debug.
  log_event(report_ ? spdlog::level::debug : spdlog::level::info, "backend_draining",
            {{"service", name()}, {"set", backend.set}, {"backend", backend.config.name}, {"active", backend.active_connections()}});
  if (backend.up) {
    backend.up = false;
    backend.state_since_ns = now_ns;
    move_waiters(backend, now_ns);
  }
  if (on_draining_) on_draining_(backend);
  remove_drained();
}

void Service::remove_drained() {
  for (Backend& backend : backends_) {
    if (!backend.draining || backend.removed || backend.active_connections() != 0) continue;
    backend.removed = true;
    // Logged at info by each worker, once its last session on it ended; the authority holds none.
    log_event(report_ ? spdlog::level::info : spdlog::level::debug, "backend_removed",
              {{"service", name()}, {"set", backend.set}, {"backend", backend.config.name}});
  }
}

void Service::follow_view(const BackendView& view, bool may_add, std::uint64_t now_ns) {
  Backend* backend = find_backend(view.backend, view.configured);
  if (view.draining) {
    if (backend != nullptr) drain(*backend, now_ns);
    return;
  }
  if (backend == nullptr) {
    const std::size_t set = set_index(view.set);
    if (view.set.empty() || set == sets_.size() || !may_add || !view.has_address) return;
    backend = &new_member(set, view.address, now_ns);
  } else if (backend->draining) {
    backend->draining = false;
    log_event(spdlog::level::debug, "backend_revived", {{"service", name()}, {"backend", backend->config.name}});
  }
  apply_view(*backend, view, now_ns);
}

void Service::inherit_members(const Service& previous) {
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    BackendSet& set = sets_[i];
    const std::size_t old_index = previous.set_index(set.config.name);
    if (old_index == previous.sets_.size() || !(previous.sets_[old_index].config.address == set.config.address)) {
      continue;
    }
    const BackendSet& old_set = previous.sets_[old_index];
    set.answered = old_set.answered;
    set.resolve_failing = old_set.resolve_failing;
    set.refused = old_set.refused;
    set.refused_total = old_set.refused_total;
    set.resolve_failures_total = old_set.resolve_failures_total;
    for (const Backend& old : previous.backends_) {
      if (!is_member(old, old_set.config.name)) continue;
      Backend& member = new_member(i, old.address, old.state_since_ns);
      member.health.reset(old.health.up());
      member.up = old.up;
      member.state_reason = old.state_reason;
      ++set.size;
    }
  }
}

}  // namespace sluice
