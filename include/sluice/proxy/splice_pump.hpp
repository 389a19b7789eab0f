#pragma once
// One direction's zero-copy path (Linux): bytes move from the source socket into a kernel pipe and
// from the pipe into the sink socket with splice(2), never through user space. The pipe is taken
// from the pool when bytes arrive and given back as soon as it is empty, so a quiet direction holds
// none. Knows nothing of libuv or sessions: it moves bytes and says what happened.

#include <sys/types.h>

#include <cstddef>

#include "sluice/proxy/pipe_pool.hpp"

namespace sluice {

class SplicePump {
 public:
  // Pipe-fulls moved per readiness event at most, so one busy connection cannot starve the others.
  static constexpr int kMaxRounds = 16;

  enum class Outcome {
    idle,           // the source has nothing more for now (or the pipe was emptied); pipe given back
    sink_blocked,   // bytes wait in the pipe: drain() once the sink is writable
    source_eof,     // splice read 0: FIN (or a reset the socket's error tells); the pipe is empty
    source_failed,  // reading the source failed: `error`
    sink_failed,    // writing the sink failed: `error`
    no_pipe,        // no pipe could be had (descriptors): nothing moved, use read/write
    unsupported,    // splice refused these descriptors (EINVAL, ENOSYS): use read/write for good
  };
  struct Result {
    Outcome outcome = Outcome::idle;
    std::size_t bytes_in = 0;   // taken from the source into the pipe
    std::size_t bytes_out = 0;  // given from the pipe to the sink
    int error = 0;              // errno, for source_failed, sink_failed, no_pipe, unsupported
  };

  SplicePump() = default;
  SplicePump(const SplicePump&) = delete;
  SplicePump& operator=(const SplicePump&) = delete;

  /// Moves what the source has to the sink, a pipe-full at a time, until the source has no more,
  /// the sink blocks, or kMaxRounds. Call only with an empty pipe (buffered_bytes() == 0).
  Result pump(int source_fd, int sink_fd, PipePool& pool, int descriptor_ceiling);
  /// Moves the pipe's bytes on to the sink: idle once it is empty (and given back).
  Result drain(int sink_fd, PipePool& pool);
  /// Reads up to `size` of the pipe's bytes into `out` (when they must take the read/write path
  /// after all); the pipe is given back once empty. Returns the count, 0 on failure.
  std::size_t copy_out(char* out, std::size_t size, PipePool& pool);
  /// At the session's end: an empty pipe goes back to the pool, one with bytes left is closed.
  void release(PipePool& pool);

  /// Bytes in the pipe: taken from the source, not yet given to the sink.
  std::size_t buffered_bytes() const { return buffered_; }

 private:
  /// pipe -> sink until the pipe is empty or the sink blocks; adds to `result`.
  void move_to_sink(int sink_fd, Result& result);
  void give_back_if_empty(PipePool& pool);

  KernelPipe* pipe_ = nullptr;  // only while bytes are in it (or during a pump)
  std::size_t buffered_ = 0;
};

}  // namespace sluice
