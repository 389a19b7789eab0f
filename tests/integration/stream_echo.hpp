#pragma once
// A bulk echo stream through the daemon, checked byte for byte: the client sends a seeded stream
// and reads the echo at the same time, then half-closes and reads to EOF.

#include <cstdint>
#include <string>

#include "net.hpp"

namespace sluice::it {

struct StreamOutcome {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::string sent_sha;
  std::string received_sha;
  std::string failure;  // empty when the stream completed with a clean EOF
};

/// Sends `size` bytes of ByteStream(seed) and reads the echo at the same time (poll), then shuts
/// down its write side and reads until EOF. Fails when nothing moves for `stall_timeout`.
StreamOutcome stream_echo(const Address& proxy, std::uint64_t size, std::uint64_t seed, Millis stall_timeout);

}  // namespace sluice::it
