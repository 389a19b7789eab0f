#include "sluice/proxy/session_observer.hpp"

#include <string>

#include "sluice/balancing/service.hpp"
#include "sluice/log/access_log.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/worker/listener.hpp"

namespace sluice {

void StatsObserver::rejected(RejectReason reason) { listener_.reject(reason); }

void StatsObserver::spliced(std::size_t bytes) { listener_.count_spliced(bytes); }

bool AccessLogObserver::enabled() { return access_log_enabled(); }

void AccessLogObserver::closed(const SessionSummary& summary) {
  if (!access_log_enabled()) return;
  auto seconds_between = [](std::uint64_t from, std::uint64_t to) {
    return from == 0 || to < from ? -1.0 : static_cast<double>(to - from) * 1e-9;
  };
  const std::string client = sockaddr_to_string(summary.client);
  AccessRecord record;
  record.client = client;
  record.listener = listener_.config().name;
  record.service = service_.name();
  if (summary.backend != nullptr) {
    record.backend = summary.backend->config.name;
    record.node = summary.backend->config.node;
  }
  record.queue_wait_seconds = seconds_between(summary.arrived_ns, summary.dispatched_ns);
  record.connect_seconds = seconds_between(summary.connect_started_ns, summary.connected_ns);
  record.duration_seconds = seconds_between(summary.arrived_ns, summary.closed_ns);
  record.bytes_from_client = summary.bytes_from_client;
  record.bytes_from_backend = summary.bytes_from_backend;
  record.end_reason = summary.end_reason != nullptr ? summary.end_reason : "?";
  log_access(record);
}

}  // namespace sluice
