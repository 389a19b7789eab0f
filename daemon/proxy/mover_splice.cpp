// The zero-copy half of Mover: splice(2) through a kernel pipe for a direction in bulk.

#include <spdlog/spdlog.h>

#include "sluice/proxy/mover.hpp"
#include "sluice/log/log_event.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

void Mover::switch_to_splice_when_idle() {
  // Only with nothing in flight, so that no spliced byte can overtake a queued chunk.
  if (!splice_wanted_ || transfer_ == Transfer::splice || sink_ == nullptr || stopped_ || unsent_ != 0 ||
      held_head_ != nullptr || !splice_allowed_) {
    return;
  }
  splice_wanted_ = false;
  transfer_ = Transfer::splice;
}

void Mover::on_readable_for_splice() {
  const SplicePump::Result result =
      pump_.pump(descriptor_of(source_), descriptor_of(sink_), resources_.pipes, resources_.descriptor_ceiling);
  count_spliced(result);
  // Readable, yet splice found nothing: urgent data (which splice stops at) or a stale event.
  if (result.outcome == SplicePump::Outcome::idle && result.bytes_in == 0) {
    read_one_chunk();
    return;
  }
  act_on(result);
}

void Mover::on_sink_writable(int status) {
  const SplicePump::Result result = pump_.drain(descriptor_of(sink_), resources_.pipes);
  count_spliced(result);
  if (result.outcome == SplicePump::Outcome::sink_blocked) {
    // libuv stops a poll that reports an error; a sink that failed without splice saying so is
    // treated as gone.
    if (status < 0) fail(/*source_broken=*/false);
    return;
  }
  sink_watch_.close();
  act_on(result);
  if (result.outcome == SplicePump::Outcome::idle) start();
}

void Mover::count_spliced(const SplicePump::Result& result) {
  // As the chunk path counts a read and a write; bytes in the pipe are unsent bytes.
  if (result.bytes_in > 0) {
    bytes_total_ += result.bytes_in;
    unsent_ += result.bytes_in;
    events_.moved_in(*this, result.bytes_in);
  }
  unsent_ -= result.bytes_out;
  if (result.bytes_out > 0) events_.moved_out(*this, result.bytes_out, /*spliced=*/true);
}

void Mover::act_on(const SplicePump::Result& result) {
  using Outcome = SplicePump::Outcome;
  switch (result.outcome) {
    case Outcome::idle:
      return;
    case Outcome::sink_blocked:
      // The pipe is the buffer now (at most its 256 KiB): read no more until the sink took it all.
      stop_reading();
      if (!sink_watch_.is_open()) {
        sink_watch_.open(
            resources_.loop, sink_, UV_WRITABLE,
            [](uv_poll_t* poll, int status, int) { owner<Mover>(poll)->on_sink_writable(status); }, this,
            resources_.descriptor_ceiling);
      }
      if (!sink_watch_.is_open()) spill_pipe();
      return;
    case Outcome::source_eof:
      if (was_reset(source_)) {
        fail(/*source_broken=*/true);
        return;
      }
      stop_reading();  // libuv did not see the EOF, so it would keep reporting it
      on_source_eof();
      return;
    case Outcome::source_failed:
      fail(/*source_broken=*/true);
      return;
    case Outcome::sink_failed:
      fail(/*source_broken=*/false);
      return;
    case Outcome::no_pipe:
      read_one_chunk();
      return;
    case Outcome::unsupported:
      log_event(spdlog::level::debug, "splice_refused", {{"error", uv_err_name(uv_translate_sys_error(result.error))}, {"fallback", "read_write"}});
      splice_refused_ = true;
      splice_wanted_ = false;
      if (pump_.buffered_bytes() > 0) {
        stop_reading();
        spill_pipe();
      } else {
        transfer_ = Transfer::chunks;
      }
      return;
  }
}

void Mover::spill_pipe() {
  // The pipe's bytes join libuv's write queue in order, as read bytes do; they stay counted as
  // unsent until written. Splice resumes once everything is written.
  transfer_ = Transfer::chunks;
  splice_wanted_ = !splice_refused_;
  while (pump_.buffered_bytes() > 0 && !stopped_) {
    Chunk* chunk = resources_.buffers.take();
    chunk->length = pump_.copy_out(chunk->data, Chunk::kCapacity, resources_.pipes);
    if (chunk->length == 0) {  // our own pipe unreadable: the stream cannot be kept whole
      resources_.buffers.give_back(chunk);
      fail(/*source_broken=*/false);
      return;
    }
    write(chunk);
  }
  start();
}

void Mover::read_one_chunk() {
  transfer_ = Transfer::chunks;
  splice_wanted_ = true;
}

}  // namespace sluice
