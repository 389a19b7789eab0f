#pragma once
// A bulk echo stream through the daemon, checked byte for byte: the client sends a seeded stream
// and reads the echo at the same time, then half-closes and reads to EOF.

#include <cstdint>
#include <string>
#include <vector>

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

/// `connections` stream_echo runs at once (seeds first_seed, first_seed + 1, ...), each on a thread.
std::vector<StreamOutcome> stream_echo_concurrently(const Address& proxy, int connections, std::uint64_t size,
                                                    std::uint64_t first_seed, Millis stall_timeout);

/// Checks (doctest) that every stream completed: `size` bytes each way, equal SHA-256 both ways.
void check_streams_intact(const std::vector<StreamOutcome>& outcomes, std::uint64_t size);

}  // namespace sluice::it
