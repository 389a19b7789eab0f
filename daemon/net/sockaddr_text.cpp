#include "sluice/net/sockaddr_text.hpp"

#include <cstring>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include "sluice/uv/handle.hpp"

namespace sluice {

std::string sockaddr_to_string(const sockaddr* address) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET) {
    const auto* in = as_ipv4(address);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = as_ipv6(address);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return std::string("[").append(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

std::string sockaddr_to_string(const sockaddr_storage& address) { return sockaddr_to_string(as_sockaddr(&address)); }

std::optional<sockaddr_storage> numeric_address(const Endpoint& endpoint) {
  // Filled as the concrete type, then copied: sockaddr_storage is only ever read through the casts.
  sockaddr_in in{};
  sockaddr_in6 in6{};
  sockaddr_storage out{};
  if (inet_pton(AF_INET, endpoint.host.c_str(), &in.sin_addr) == 1) {
    in.sin_family = AF_INET;
    in.sin_port = htons(endpoint.port);
    std::memcpy(&out, &in, sizeof in);
    return out;
  }
  if (inet_pton(AF_INET6, endpoint.host.c_str(), &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(endpoint.port);
    std::memcpy(&out, &in6, sizeof in6);
    return out;
  }
  return std::nullopt;
}

std::optional<sockaddr_storage> parse_ip_address(std::string_view text, std::string* why) {
  const auto endpoint = parse_endpoint(text, why);
  if (!endpoint) return std::nullopt;
  auto address = numeric_address(*endpoint);
  if (!address && why != nullptr) *why = "'" + endpoint->host + "' is not an IP address";
  return address;
}

socklen_t sockaddr_length(const sockaddr_storage& address) {
  return address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const sockaddr_in& x = *as_ipv4(as_sockaddr(&a));
    const sockaddr_in& y = *as_ipv4(as_sockaddr(&b));
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const sockaddr_in6& x = *as_ipv6(as_sockaddr(&a));
    const sockaddr_in6& y = *as_ipv6(as_sockaddr(&b));
    return x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return false;
}

bool resolve_blocking(const Endpoint& endpoint, sockaddr_storage& out, std::string& why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(endpoint.port);
  int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) {
    why = gai_strerror(rc);
    return false;
  }
  std::memset(&out, 0, sizeof out);
  std::memcpy(&out, result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
  return true;
}

}  // namespace sluice
