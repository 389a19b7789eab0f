#pragma once
// Test payloads: a cheap reproducible byte stream (xoshiro256**, seeded by splitmix64) and SHA-256.

#include <cstddef>
#include <cstdint>
#include <string>

struct evp_md_ctx_st;

namespace sluice::it {

/// Pseudo-random bytes, the same for the same seed.
class ByteStream {
 public:
  explicit ByteStream(std::uint64_t seed);
  void fill(char* out, std::size_t size);

 private:
  std::uint64_t next();
  std::uint64_t state_[4];
};

/// `size` bytes of ByteStream(seed).
std::string pattern(std::size_t size, std::uint64_t seed);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  /// Lowercase hex; ends the computation.
  std::string hex();

 private:
  evp_md_ctx_st* context_;
};

std::string sha256_hex(const std::string& data);

}  // namespace sluice::it
