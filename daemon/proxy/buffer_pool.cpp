#include "sluice/proxy/buffer_pool.hpp"

namespace sluice {

BufferPool::~BufferPool() {
  while (free_ != nullptr) {
    Chunk* next = free_->next;
    delete free_;
    free_ = next;
  }
}

Chunk* BufferPool::take() {
  ++in_use_;
  if (free_ == nullptr) return new Chunk;
  Chunk* chunk = free_;
  free_ = chunk->next;
  --free_count_;
  chunk->next = nullptr;
  chunk->length = 0;
  return chunk;
}

void BufferPool::give_back(Chunk* chunk) {
  --in_use_;
  if (free_count_ >= max_free_) {
    delete chunk;
    return;
  }
  chunk->next = free_;
  free_ = chunk;
  ++free_count_;
}

}  // namespace sluice
