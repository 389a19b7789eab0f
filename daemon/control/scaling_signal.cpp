#include "sluice/control/scaling_signal.hpp"

#include <utility>

namespace sluice {

void ScalingSignal::configure(const Config& config) {
  std::map<std::string, Entry> next;
  for (const ServiceConfig& service : config.services) {
    if (!service.scaling) continue;
    auto old = entries_.find(service.name);
    if (old != entries_.end() && old->second.estimator.window() == service.scaling->window) {
      old->second.config = *service.scaling;
      next.emplace(service.name, std::move(old->second));
    } else {
      next.emplace(service.name, Entry{*service.scaling, scaling::Estimator(service.scaling->window)});
    }
  }
  entries_ = std::move(next);
}

void ScalingSignal::add(std::uint64_t now_ns, const std::map<std::string, LoadSums>& totals) {
  for (auto& [name, entry] : entries_) {
    if (auto it = totals.find(name); it != totals.end()) entry.estimator.add(now_ns, it->second);
  }
}

std::vector<scaling::Assessment> ScalingSignal::assess(
    std::uint32_t workers, const std::function<scaling::Capacity(const std::string&)>& capacity) const {
  std::vector<scaling::Assessment> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) {
    out.push_back(scaling::assess(name, entry.config, entry.estimator.estimate(), workers, capacity(name)));
  }
  return out;
}

}  // namespace sluice
