#pragma once
// Socket addresses to and from text, for logs and for the addresses of configured endpoints. The
// one address helper of the daemon, the tools and the tests (with parse_endpoint for "host:port").
// Nothing here looks a name up: DNS is the control plane's (discovery/dns_client.hpp).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

/// The address a listener (or the admin server) binds: an IP literal, or `localhost`, which is
/// 127.0.0.1. Any other name is refused (nullopt, `why` says so): a bind address is a local
/// interface's, and looking it up would mean DNS on a data loop or an asynchronous reload.
std::optional<sockaddr_storage> bind_address(const Endpoint& endpoint, std::string* why = nullptr);

/// Same family, address and port.
bool same_address(const sockaddr_storage& a, const sockaddr_storage& b);

/// Sorts `addresses` into a stable order (IPv4 before IPv6, then by address bytes and port) and
/// removes repeats, so that one set of DNS records always reads the same way whatever order the
/// server sent them in.
void sort_unique(std::vector<sockaddr_storage>& addresses);

}  // namespace sluice
