#include "sluice/admin/backends_json.hpp"

#include <spdlog/fmt/fmt.h>

#include "sluice/log/access_log.hpp"

namespace sluice {

namespace {

std::string quoted(std::string_view text) {
  std::string out(1, '"');
  out += json_escape(text);
  out += '"';
  return out;
}

const char* queue_mode_name(QueueMode mode) { return mode == QueueMode::shared ? "shared" : "per_backend"; }

void append_backend(std::string& out, const Backend& backend, std::uint64_t now_ns, double unix_now_seconds) {
  const double in_state_seconds =
      now_ns > backend.state_since_ns ? static_cast<double>(now_ns - backend.state_since_ns) * 1e-9 : 0.0;
  const BackendStats& stats = backend.stats;
  out += fmt::format(
      R"({{"name":{},"node":{},"address":{},"resolved":{},"state":"{}","reason":{},)"
      R"("state_since_unix_seconds":{:.3f},"state_seconds":{:.3f},)"
      R"("active_connections":{},"max_connections":{},"queue_length":{},"weight":{},)"
      R"("connections_total":{},"connect_failures_total":{},"resolve_failures_total":{},)"
      R"("state_changes_total":{},"sent_bytes_total":{},"received_bytes_total":{}}})",
      quoted(backend.config.name), backend.config.node.empty() ? "null" : quoted(backend.config.node),
      quoted(backend.config.address.to_string()),
      backend.has_address ? quoted(backend.address_text) : "null", backend.up ? "up" : "down",
      quoted(backend.state_reason), unix_now_seconds - in_state_seconds, in_state_seconds,
      backend.active_connections(), backend.config.max_connections,
      static_cast<std::uint64_t>(stats.queue_length.value()), backend.config.weight, stats.connections_total,
      stats.connect_failures_total, stats.resolve_failures_total, stats.state_changes_total,
      stats.sent_bytes_total, stats.received_bytes_total);
}

}  // namespace

std::string render_backends_json(std::span<const Service* const> services, std::uint64_t now_ns,
                                 double unix_now_seconds) {
  std::string out = R"({"services":[)";
  for (std::size_t s = 0; s < services.size(); ++s) {
    const Service& service = *services[s];
    if (s > 0) out += ',';
    out += fmt::format(R"({{"name":{},"policy":"{}","queue_mode":"{}","queue_length":{},"backends":[)",
                       quoted(service.name()), to_string(service.config().policy),
                       queue_mode_name(service.config().queue.mode),
                       static_cast<std::uint64_t>(service.stats().queue_length.value()));
    for (std::size_t b = 0; b < service.backends().size(); ++b) {
      if (b > 0) out += ',';
      append_backend(out, service.backends()[b], now_ns, unix_now_seconds);
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace sluice
