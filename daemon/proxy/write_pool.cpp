#include "sluice/proxy/write_pool.hpp"

namespace sluice {

StringWrite* WritePool::take() {
  StringWrite* write = free_.pop();
  if (write == nullptr) return new StringWrite;
  write->bytes.clear();
  write->sent = 0;
  return write;
}

void WritePool::give_back(StringWrite* write) {
  if (write->bytes.capacity() > kMaxKeptBytes) {
    delete write;
    return;
  }
  free_.push(write);
}

}  // namespace sluice
