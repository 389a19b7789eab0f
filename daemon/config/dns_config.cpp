#include "sluice/config/dns_config.hpp"

#include <arpa/inet.h>

#include "sluice/net/sockaddr_text.hpp"

namespace sluice {

namespace {

constexpr std::uint16_t kDnsPort = 53;

}  // namespace

std::optional<Endpoint> dns_server_value(const YAML::Node& item, std::string& why) {
  if (!item.IsScalar()) {
    why = "expected a name server address such as 10.96.0.10 or 10.96.0.10:53";
    return std::nullopt;
  }
  const std::string& text = item.Scalar();
  in6_addr ipv6{};
  if (inet_pton(AF_INET6, text.c_str(), &ipv6) == 1) return Endpoint{text, kDnsPort};  // "::1", no brackets
  const bool has_port = text.starts_with('[') || text.find(':') != std::string::npos;
  std::string reason;
  auto server = parse_endpoint(has_port ? text : text + ":" + std::to_string(kDnsPort), &reason);
  if (!server) {
    why = "'" + text + "': " + reason;
    return std::nullopt;
  }
  if (!numeric_address(*server)) {
    why = "'" + text + "' is not an IP address (a name server cannot be given by name)";
    return std::nullopt;
  }
  if (server->port == 0) {
    why = "'" + text + "': port 0 is not allowed here; use 1..65535";
    return std::nullopt;
  }
  return server;
}

std::optional<Endpoint> bind_endpoint_value(const YAML::Node& value, std::string& why) {
  if (!value.IsScalar()) {
    why = "expected an address host:port";
    return std::nullopt;
  }
  auto endpoint = parse_endpoint(value.Scalar(), &why);
  if (endpoint && !bind_address(*endpoint, &why)) return std::nullopt;
  return endpoint;
}

}  // namespace sluice
