#pragma once
// Fixed-size I/O chunks recycled through a free list, so the data path does not call malloc per
// read. A chunk is taken when a socket is readable and returned once its bytes are written, so an
// idle connection holds none.

#include <cstddef>

#include <uv.h>

#include "sluice/proxy/free_list.hpp"

namespace sluice {

struct Chunk {
  static constexpr std::size_t kCapacity = 32 * 1024;  // bytes per read

  uv_write_t write_req;   // the write that carries this chunk to the other socket; data = the chunk
  void* writer = nullptr; // who wrote it (a Mover), for the write callback
  Chunk* next = nullptr;  // free list, or the queue of chunks waiting for a socket to connect
  std::size_t length = 0; // bytes of data held
  char data[kCapacity];
};

class BufferPool {
 public:
  /// Keeps at most `max_free` chunks for reuse; beyond that, returned chunks are freed.
  explicit BufferPool(std::size_t max_free = 512) : free_(max_free) {}

  Chunk* take();
  void give_back(Chunk* chunk);

  std::size_t in_use() const { return in_use_; }

 private:
  FreeList<Chunk> free_;
  std::size_t in_use_ = 0;  // chunks handed out and not yet returned
};

}  // namespace sluice
