#pragma once
// Socket addresses to and from text, for logs and for resolving configured endpoints. The one
// address helper of the daemon, the tools and the tests (with parse_endpoint for "host:port").

#include <optional>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "sluice/net/endpoint.hpp"

namespace sluice {

/// "1.2.3.4:80" or "[::1]:80".
std::string sockaddr_to_string(const sockaddr* address);
std::string sockaddr_to_string(const sockaddr_storage& address);

/// "1.2.3.4:80" or "[::1]:80" (an IP literal, no name) as a socket address; nullopt otherwise, and
/// `why` (when given) says what is wrong.
std::optional<sockaddr_storage> parse_ip_address(std::string_view text, std::string* why = nullptr);

/// The length bind(2) and connect(2) want for `address`: that of sockaddr_in or sockaddr_in6.
socklen_t sockaddr_length(const sockaddr_storage& address);

/// The address of an endpoint whose host is an IP literal; nullopt for a DNS name. Never blocks.
std::optional<sockaddr_storage> numeric_address(const Endpoint& endpoint);

/// Same family, address and port.
bool same_address(const sockaddr_storage& a, const sockaddr_storage& b);

/// Resolves `endpoint` (a literal or a DNS name) with a blocking getaddrinfo; for start-up only.
/// Returns false and sets `why` when it cannot.
bool resolve_blocking(const Endpoint& endpoint, sockaddr_storage& out, std::string& why);

}  // namespace sluice
