#pragma once
// The `dns` section (which servers the control plane's c-ares client asks, and for how long) and
// the rule for bind addresses, which are never looked up.

#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "sluice/config/duration.hpp"
#include "sluice/net/endpoint.hpp"

namespace sluice {

struct DnsConfig {
  std::vector<Endpoint> servers;  // IP literals with their port (53 unless given); empty: /etc/resolv.conf
  Millis timeout{5000};           // a lookup not answered this long fails as a timeout

  bool operator==(const DnsConfig&) const = default;
};

/// An item of `dns.servers`: "address" or "address:port" ("[v6]:port", or a bare IPv6 address),
/// an IP literal (a name server cannot be found by name). On failure `why` names the item.
std::optional<Endpoint> dns_server_value(const YAML::Node& item, std::string& why);

/// A listener's or the admin's `bind`: host:port whose host is an IP literal or localhost.
std::optional<Endpoint> bind_endpoint_value(const YAML::Node& value, std::string& why);

}  // namespace sluice
