#pragma once
// One direction of a proxied connection: bytes read from `source` are written to `sink`, in
// pooled 32 KiB chunks, or with splice(2) through a pooled kernel pipe once a read fills a whole
// chunk (bulk). When the bytes not yet written pass the high watermark, reading stops until they
// drain to the low one. EOF becomes a shutdown of the sink after the last byte; a reset or a failed
// write is reported, and the owner passes it on as a reset. Until the sink is set (a backend still
// connecting), read bytes are held, within the same watermark.
//
// Knows nothing of services, slots or logs: it tells its owner what happened through MoverEvents,
// one virtual call per chunk at most.

#include <cstddef>
#include <cstdint>

#include <uv.h>

#include "sluice/proxy/buffer_pool.hpp"
#include "sluice/proxy/socket_watch.hpp"
#include "sluice/proxy/splice_pump.hpp"

namespace sluice {

struct LoopResources;
class Mover;

class MoverEvents {
 public:
  /// Bytes read from the source (activity: the idle timer).
  virtual void moved_in(Mover& mover, std::size_t bytes) = 0;
  /// Bytes handed to the sink; `spliced`: by splice(2), without a copy.
  virtual void moved_out(Mover& mover, std::size_t bytes, bool spliced) = 0;
  /// Reading stopped at the high watermark while no sink is set (its owner may watch the source).
  virtual void held_full(Mover& mover) = 0;
  /// The source sent FIN (before it is passed on).
  virtual void source_ended(Mover& mover) = 0;
  /// The FIN was passed on: the sink is shut down after the last byte. This direction is done.
  virtual void finished(Mover& mover) = 0;
  /// The source was reset (`source_broken`) or the sink failed: the owner closes both, and passes
  /// a reset on to the other end.
  virtual void failed(Mover& mover, bool source_broken) = 0;

 protected:
  ~MoverEvents() = default;
};

class Mover {
 public:
  static constexpr std::size_t kHighWatermarkBytes = 256 * 1024;  // stop reading the source above
  static constexpr std::size_t kLowWatermarkBytes = 64 * 1024;    // resume reading at or below

  /// `splice_allowed` is read at each switch (a listener's `splice`, which a reload may change):
  /// it must outlive the mover.
  Mover(LoopResources& resources, MoverEvents& events, const bool& splice_allowed);
  ~Mover();  // gives back held chunks and the pipe
  Mover(const Mover&) = delete;
  Mover& operator=(const Mover&) = delete;

  /// The stream read from; its `data` becomes this mover (libuv's read callbacks find it there).
  void set_source(uv_stream_t* source);
  /// The stream written to: held bytes are written, a FIN already read is passed on, reading
  /// resumes. Until then, read bytes are held.
  void set_sink(uv_stream_t* sink);
  /// Starts (or resumes) reading the source, unless it ended, the watermark holds or stop() ran.
  void start();
  /// The owner closes the sockets: nothing is read, written or passed on any more. Writes already
  /// queued come back cancelled (their chunks are given back then).
  void stop();
  /// The source's socket is closed (a failed connect): its read goes with it.
  void forget_source();

  uv_stream_t* source() const { return source_; }
  uv_stream_t* sink() const { return sink_; }
  std::uint64_t bytes_total() const { return bytes_total_; }  // read from the source
  std::size_t unsent_bytes() const { return unsent_; }        // read, not yet written (chunks and pipe)
  bool reading() const { return reading_; }
  bool source_ended() const { return eof_; }
  bool finished() const { return done_; }
  bool splicing() const { return transfer_ == Transfer::splice; }

 private:
  enum class Transfer {
    chunks,  // read into pooled chunks, written with uv_write
    splice,  // splice(2) source -> kernel pipe -> sink; libuv only says when the source is readable
  };

  void resume_if_drained();
  void stop_reading();
  void on_alloc(uv_buf_t* buf);
  void on_read(ssize_t nread);
  void on_chunk_read(Chunk* chunk);
  void on_source_eof();
  void hold(Chunk* chunk);
  void write(Chunk* chunk);
  void on_written(Chunk* chunk, int status);
  void pass_on_eof();
  void on_shutdown(int status);
  void fail(bool source_broken);

  // splice(2)
  void switch_to_splice_when_idle();
  void on_readable_for_splice();
  void on_sink_writable(int status);
  void count_spliced(const SplicePump::Result& result);
  /// What a pump outcome means: wait, fall back, end of stream or a reset.
  void act_on(const SplicePump::Result& result);
  /// Sends the pipe's bytes through the read/write path when the sink cannot be waited for.
  void spill_pipe();
  /// The next read goes into a chunk; splice resumes once it is written.
  void read_one_chunk();

  LoopResources& resources_;
  MoverEvents& events_;
  uv_stream_t* source_ = nullptr;
  uv_stream_t* sink_ = nullptr;
  Chunk* reading_into_ = nullptr;  // chunk handed to libuv by the alloc callback
  Chunk* held_head_ = nullptr;     // read before the sink was set, not yet written
  Chunk* held_tail_ = nullptr;
  std::size_t unsent_ = 0;
  std::uint64_t bytes_total_ = 0;
  bool reading_ = false;
  bool eof_ = false;               // the source sent FIN
  bool shutdown_started_ = false;  // FIN passed on to the sink (after pending writes)
  bool done_ = false;              // the shutdown completed
  bool stopped_ = false;           // the owner is closing the sockets
  uv_shutdown_t shutdown_req_;

  Transfer transfer_ = Transfer::chunks;
  const bool& splice_allowed_;
  bool splice_wanted_ = false;   // bulk seen: switch to splice once nothing is in flight
  bool splice_refused_ = false;  // splice(2) failed on these sockets: chunks for good
  SplicePump pump_;              // holds a pipe only while bytes are in it
  SocketWatch sink_watch_;       // while the pipe waits for the sink to be writable
};

}  // namespace sluice
