#include "sluice/proxy/mover.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "sluice/log/log_event.hpp"
#include "sluice/worker/loop_resources.hpp"

namespace sluice {

Mover::Mover(LoopResources& resources, MoverEvents& events, const bool& splice_allowed)
    : resources_(resources), events_(events), splice_allowed_(splice_allowed) {}

Mover::~Mover() {
  if (reading_into_ != nullptr) resources_.buffers.give_back(reading_into_);
  while (held_head_ != nullptr) {
    Chunk* next = held_head_->next;
    resources_.buffers.give_back(held_head_);
    held_head_ = next;
  }
  pump_.release(resources_.pipes);
}

void Mover::set_source(uv_stream_t* source) {
  source_ = source;
  source_->data = this;
}

void Mover::set_sink(uv_stream_t* sink) {
  sink_ = sink;
  Chunk* chunk = held_head_;
  held_head_ = held_tail_ = nullptr;
  while (chunk != nullptr && !stopped_) {
    Chunk* next = chunk->next;
    chunk->next = nullptr;
    write(chunk);
    chunk = next;
  }
  while (chunk != nullptr) {  // a write failed and the owner is closing: drop the rest
    Chunk* next = chunk->next;
    unsent_ -= chunk->length;
    resources_.buffers.give_back(chunk);
    chunk = next;
  }
  if (stopped_) return;
  if (eof_) {
    pass_on_eof();
  } else {
    start();
  }
}

void Mover::start() {
  if (reading_ || eof_ || stopped_ || source_ == nullptr || unsent_ > kLowWatermarkBytes) return;
  reading_ = true;
  const int rc = uv_read_start(
      source_, [](uv_handle_t* handle, std::size_t, uv_buf_t* buf) { owner<Mover>(handle)->on_alloc(buf); },
      [](uv_stream_t* source, ssize_t nread, const uv_buf_t*) { owner<Mover>(source)->on_read(nread); });
  if (rc != 0) {
    log_event(spdlog::level::warn, "read_start_failed", {{"error", uv_err_name(rc)}});
    reading_ = false;
    fail(/*source_broken=*/true);
  }
}

void Mover::stop() {
  stopped_ = true;
  sink_watch_.close();
}

void Mover::forget_source() {
  reading_ = false;
  source_ = nullptr;
}

void Mover::stop_reading() {
  if (!reading_ || stopped_) return;
  reading_ = false;
  if (int rc = uv_read_stop(source_); rc != 0) log_event(spdlog::level::debug, "read_stop_failed", {{"error", uv_err_name(rc)}});
}

void Mover::on_alloc(uv_buf_t* buf) {
  if (transfer_ == Transfer::splice) {
    // No buffer: libuv reads nothing and reports UV_ENOBUFS, and the bytes are spliced.
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  reading_into_ = resources_.buffers.take();
  *buf = uv_buf_init(reading_into_->data, Chunk::kCapacity);
}

void Mover::on_read(ssize_t nread) {
  if (nread == UV_ENOBUFS && transfer_ == Transfer::splice) {
    on_readable_for_splice();
    return;
  }
  Chunk* chunk = reading_into_;
  reading_into_ = nullptr;
  if (nread > 0) {
    chunk->length = static_cast<std::size_t>(nread);
    on_chunk_read(chunk);
    return;
  }
  if (chunk != nullptr) resources_.buffers.give_back(chunk);
  if (nread == 0) return;  // nothing this time (EAGAIN)
  if (nread == UV_EOF && !was_reset(source_)) {
    reading_ = false;  // libuv stops reading at EOF by itself
    on_source_eof();
    return;
  }
  fail(/*source_broken=*/true);  // ECONNRESET and the like
}

void Mover::on_chunk_read(Chunk* chunk) {
  const std::size_t length = chunk->length;
  // A full chunk says more is coming: bulk, worth the pipe's two extra descriptors.
  if (length == Chunk::kCapacity && !splice_refused_) splice_wanted_ = true;
  bytes_total_ += length;
  unsent_ += length;
  events_.moved_in(*this, length);
  if (sink_ != nullptr) {
    write(chunk);
    if (stopped_) return;
  } else {
    hold(chunk);
  }
  if (unsent_ > kHighWatermarkBytes) {
    stop_reading();
    if (sink_ == nullptr) events_.held_full(*this);
  }
  switch_to_splice_when_idle();
}

void Mover::hold(Chunk* chunk) {
  (held_tail_ != nullptr ? held_tail_->next : held_head_) = chunk;
  held_tail_ = chunk;
}

void Mover::on_source_eof() {
  eof_ = true;
  events_.source_ended(*this);
  if (sink_ != nullptr && !stopped_) pass_on_eof();
}

void Mover::write(Chunk* chunk) {
  events_.moved_out(*this, chunk->length, /*spliced=*/false);
  uv_buf_t buf = uv_buf_init(chunk->data, static_cast<unsigned>(chunk->length));
  if (uv_stream_get_write_queue_size(sink_) == 0) {
    // Nothing queued: most writes complete here, without a request or a callback.
    const int written = uv_try_write(sink_, &buf, 1);
    if (written == static_cast<int>(chunk->length)) {
      unsent_ -= chunk->length;
      resources_.buffers.give_back(chunk);
      return;
    }
    if (written > 0) {
      unsent_ -= static_cast<std::size_t>(written);
      chunk->length -= static_cast<std::size_t>(written);
      buf = uv_buf_init(chunk->data + written, static_cast<unsigned>(chunk->length));
    } else if (written != UV_EAGAIN) {
      on_written(chunk, written);
      return;
    }
  }
  chunk->write_req.data = chunk;
  chunk->writer = this;
  const int rc = uv_write(&chunk->write_req, sink_, &buf, 1, [](uv_write_t* req, int status) {
    Chunk* written = owner<Chunk>(req);
    static_cast<Mover*>(written->writer)->on_written(written, status);
  });
  if (rc != 0) on_written(chunk, rc);
}

void Mover::on_written(Chunk* chunk, int status) {
  unsent_ -= chunk->length;
  resources_.buffers.give_back(chunk);
  if (status == UV_ECANCELED || stopped_) return;  // the owner is closing
  if (status < 0) {
    // The sink's peer is gone: the source's peer is told with a reset rather than a clean close.
    fail(/*source_broken=*/false);
    return;
  }
  switch_to_splice_when_idle();
  start();
}

void Mover::pass_on_eof() {
  if (shutdown_started_) return;
  shutdown_started_ = true;
  if (uv_stream_get_write_queue_size(sink_) == 0 && pump_.buffered_bytes() == 0) {
    // Every byte is already with the kernel (the usual case): the FIN can follow at once. This
    // spares uv_shutdown's writable watch, its extra loop turn and two epoll_ctl calls.
    const int fd = descriptor_of(sink_);
    int status = UV_EBADF;
    if (fd >= 0) status = ::shutdown(fd, SHUT_WR) == 0 ? 0 : uv_translate_sys_error(errno);
    on_shutdown(status);
    return;
  }
  shutdown_req_.data = this;
  // uv_shutdown waits for the pending writes, so the FIN follows the last byte.
  const int rc = uv_shutdown(&shutdown_req_, sink_,
                             [](uv_shutdown_t* req, int status) { owner<Mover>(req)->on_shutdown(status); });
  if (rc != 0) on_shutdown(rc);
}

void Mover::on_shutdown(int status) {
  if (status == UV_ECANCELED || stopped_) return;
  if (status < 0) {
    fail(/*source_broken=*/false);
    return;
  }
  done_ = true;
  events_.finished(*this);
}

void Mover::fail(bool source_broken) {
  events_.failed(*this, source_broken);
}

}  // namespace sluice
