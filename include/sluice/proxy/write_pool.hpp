#pragma once
// Writes of `mode: http` (rebuilt heads, chunk framing, body spans) recycled through a per-loop free
// list with their strings, so that a request does not allocate a write and its bytes each time.
// Only small strings are kept: a body-sized one is freed when its write completes.

#include <cstddef>
#include <string>

#include <uv.h>

#include "sluice/proxy/free_list.hpp"

namespace sluice {

class HttpSession;
class BackendConnection;

struct StringWrite {
  uv_write_t req{};  // data: this StringWrite
  HttpSession* session = nullptr;
  BackendConnection* connection = nullptr;  // towards this backend connection (to_client false)
  std::string bytes;
  std::size_t sent = 0;  // the first bytes, written before the write was queued (uv_try_write)
  bool to_client = false;
  StringWrite* next = nullptr;  // free list
};

class WritePool {
 public:
  static constexpr std::size_t kMaxKeptBytes = 4096;  // a larger string is not kept for reuse

  explicit WritePool(std::size_t max_free = 256) : free_(max_free) {}

  /// A write with empty bytes (their capacity kept from an earlier use).
  StringWrite* take();
  void give_back(StringWrite* write);

 private:
  FreeList<StringWrite> free_;
};

}  // namespace sluice
