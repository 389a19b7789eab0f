#pragma once
// Socket addresses to and from text, for logs and for the addresses of configured endpoints.
// Nothing here looks a name up: DNS is the control plane's (discovery/dns_client.hpp).

#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "sluice/net/endpoint.hpp"

namespace sluice {

/// "1.2.3.4:80" or "[::1]:80".
std::string sockaddr_to_string(const sockaddr* address);

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
