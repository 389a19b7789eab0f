#include "sluice/proxy/buffer_pool.hpp"

namespace sluice {

Chunk* BufferPool::take() {
  ++in_use_;
  Chunk* chunk = free_.pop();
  if (chunk == nullptr) return new Chunk;
  chunk->length = 0;
  return chunk;
}

void BufferPool::give_back(Chunk* chunk) {
  --in_use_;
  free_.push(chunk);
}

}  // namespace sluice
