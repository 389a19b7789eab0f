#pragma once
// Socket addresses to and from text, for logs and for resolving configured endpoints.

#include <string>

#include <sys/socket.h>

#include "sluice/endpoint.hpp"

namespace sluice {

/// "1.2.3.4:80" or "[::1]:80".
std::string sockaddr_to_string(const sockaddr* address);

/// Resolves `endpoint` (a literal or a DNS name) with a blocking getaddrinfo; for start-up only.
/// Returns false and sets `why` when it cannot.
bool resolve_blocking(const Endpoint& endpoint, sockaddr_storage& out, std::string& why);

}  // namespace sluice
