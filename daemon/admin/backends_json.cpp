#include "sluice/admin/backends_json.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

namespace sluice {

namespace {

// ordered: the keys stay in the order people read them in.
using json = nlohmann::ordered_json;

const char* queue_mode_name(QueueMode mode) { return mode == QueueMode::shared ? "shared" : "per_backend"; }

// Seconds to the millisecond: more digits would only be noise.
double milliseconds_precision(double seconds) { return std::round(seconds * 1000.0) / 1000.0; }

json backend_json(const Backend& backend, std::uint64_t now_ns, double unix_now_seconds) {
  const double in_state_seconds =
      now_ns > backend.state_since_ns ? static_cast<double>(now_ns - backend.state_since_ns) * 1e-9 : 0.0;
  const BackendStats& stats = backend.stats;
  return json{
      {"name", backend.config.name},
      {"set", backend.set.empty() ? json(nullptr) : json(backend.set)},
      {"node", backend.config.node.empty() ? json(nullptr) : json(backend.config.node)},
      {"address", backend.config.address.to_string()},
      {"resolved", backend.has_address ? json(backend.address_text) : json(nullptr)},
      {"state", backend.draining ? "draining" : backend.up ? "up" : "down"},
      {"reason", backend.state_reason},
      {"state_since_unix_seconds", milliseconds_precision(unix_now_seconds - in_state_seconds)},
      {"state_seconds", milliseconds_precision(in_state_seconds)},
      {"active_connections", backend.active_connections()},
      {"max_connections", backend.config.max_connections},
      {"queue_length", static_cast<std::uint64_t>(stats.queue_length.value())},
      {"weight", backend.config.weight},
      {"connections_total", stats.connections_total},
      {"connect_failures_total", stats.connect_failures_total},
      {"resolve_failures_total", stats.resolve_failures_total},
      {"state_changes_total", stats.state_changes_total},
      {"sent_bytes_total", stats.sent_bytes_total},
      {"received_bytes_total", stats.received_bytes_total},
  };
}

}  // namespace

std::string render_backends_json(std::span<const Service* const> services, std::uint64_t now_ns,
                                 double unix_now_seconds) {
  json list = json::array();
  for (const Service* service : services) {
    json backends = json::array();
    for (const Backend& backend : service->backends()) {
      if (backend.removed) continue;  // a drained member is gone
      backends.push_back(backend_json(backend, now_ns, unix_now_seconds));
    }
    list.push_back({{"name", service->name()},
                    {"policy", to_string(service->config().policy)},
                    {"queue_mode", queue_mode_name(service->config().queue.mode)},
                    {"queue_length", static_cast<std::uint64_t>(service->stats().queue_length.value())},
                    {"backends", std::move(backends)}});
  }
  // Names and reasons come from the config and the resolver: invalid UTF-8 becomes U+FFFD rather
  // than an exception or a document no parser accepts.
  return json{{"services", std::move(list)}}.dump(-1, ' ', false, json::error_handler_t::replace) +
         "\n";
}

}  // namespace sluice
