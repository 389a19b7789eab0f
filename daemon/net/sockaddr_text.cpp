#include "sluice/net/sockaddr_text.hpp"

#include <algorithm>
#include <cstring>
#include <tuple>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "sluice/uv/handle.hpp"

namespace sluice {

namespace {

// Family, address bytes and port in network order: compares the way sort_unique sorts.
std::tuple<int, std::string, std::uint16_t> sort_key(const sockaddr_storage& address) {
  const sockaddr* plain = as_sockaddr(&address);
  if (address.ss_family == AF_INET) {
    const sockaddr_in* in = as_ipv4(plain);
    const auto* bytes = static_cast<const char*>(static_cast<const void*>(&in->sin_addr));
    return {0, std::string(bytes, sizeof in->sin_addr), ntohs(in->sin_port)};
  }
  if (address.ss_family == AF_INET6) {
    const sockaddr_in6* in6 = as_ipv6(plain);
    const auto* bytes = static_cast<const char*>(static_cast<const void*>(&in6->sin6_addr));
    return {1, std::string(bytes, sizeof in6->sin6_addr), ntohs(in6->sin6_port)};
  }
  return {2, std::string(), 0};
}

}  // namespace

std::string sockaddr_to_string(const sockaddr* address) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET) {
    const sockaddr_in* in = as_ipv4(address);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    const sockaddr_in6* in6 = as_ipv6(address);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return std::string("[").append(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

std::optional<sockaddr_storage> numeric_address(const Endpoint& endpoint) {
  sockaddr_storage out{};
  sockaddr_in in{};
  sockaddr_in6 in6{};
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

std::optional<sockaddr_storage> bind_address(const Endpoint& endpoint, std::string* why) {
  if (endpoint.host == "localhost") return numeric_address({"127.0.0.1", endpoint.port});
  auto address = numeric_address(endpoint);
  if (!address && why != nullptr) {
    *why = "host name '" + endpoint.host + "' cannot be bound: use an IP address (or localhost)";
  }
  return address;
}

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET6 && as_ipv6(as_sockaddr(&a))->sin6_scope_id != as_ipv6(as_sockaddr(&b))->sin6_scope_id) {
    return false;
  }
  return (a.ss_family == AF_INET || a.ss_family == AF_INET6) && sort_key(a) == sort_key(b);
}

void sort_unique(std::vector<sockaddr_storage>& addresses) {
  std::stable_sort(addresses.begin(), addresses.end(),
                   [](const sockaddr_storage& a, const sockaddr_storage& b) { return sort_key(a) < sort_key(b); });
  addresses.erase(std::unique(addresses.begin(), addresses.end(), same_address), addresses.end());
}

}  // namespace sluice
