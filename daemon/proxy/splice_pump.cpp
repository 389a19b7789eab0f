#include "sluice/proxy/splice_pump.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace sluice {

namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

// splice(2) cannot join these descriptors (a kernel without it, a socket type it does not know):
// the read/write path works where this does not.
bool is_unsupported(int error) { return error == EINVAL || error == ENOSYS || error == EOPNOTSUPP; }

}  // namespace

SplicePump::Result SplicePump::pump(int source_fd, int sink_fd, PipePool& pool, int descriptor_ceiling) {
  Result result;
  if (pipe_ == nullptr) pipe_ = pool.take(descriptor_ceiling);
  if (pipe_ == nullptr) return {Outcome::no_pipe, 0, 0, errno};
  // At most a pipe-full at a time: what a direction holds stays within the pipe's capacity.
  const std::size_t ask = pipe_->capacity_bytes;
  for (int round = 0; round < kMaxRounds; ++round) {
    // The pipe is empty here, so EAGAIN can only mean that the source has nothing to give.
    const ssize_t in = splice(source_fd, nullptr, pipe_->write_fd, nullptr, ask, kSpliceFlags);
    if (in == 0) {
      result.outcome = Outcome::source_eof;
      break;
    }
    if (in < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        result.outcome = is_unsupported(errno) ? Outcome::unsupported : Outcome::source_failed;
        result.error = errno;
      }
      break;
    }
    buffered_ += static_cast<std::size_t>(in);
    result.bytes_in += static_cast<std::size_t>(in);
    move_to_sink(sink_fd, result);
    if (result.outcome != Outcome::idle) break;
    // A short splice, like a short read, says the socket is empty for now; level-triggered epoll
    // calls again if more came meanwhile.
    if (static_cast<std::size_t>(in) < ask) break;
  }
  give_back_if_empty(pool);
  return result;
}

SplicePump::Result SplicePump::drain(int sink_fd, PipePool& pool) {
  Result result;
  move_to_sink(sink_fd, result);
  give_back_if_empty(pool);
  return result;
}

void SplicePump::move_to_sink(int sink_fd, Result& result) {
  while (buffered_ > 0) {
    const ssize_t out = splice(pipe_->read_fd, nullptr, sink_fd, nullptr, buffered_, kSpliceFlags);
    if (out > 0) {
      buffered_ -= static_cast<std::size_t>(out);
      result.bytes_out += static_cast<std::size_t>(out);
      continue;
    }
    if (out < 0 && errno == EINTR) continue;
    if (out < 0 && errno == EAGAIN) {
      result.outcome = Outcome::sink_blocked;
      return;
    }
    // 0 from a pipe that holds bytes would be a kernel fault; treat it as a broken sink.
    const int error = out < 0 ? errno : EPIPE;
    result.outcome = is_unsupported(error) ? Outcome::unsupported : Outcome::sink_failed;
    result.error = error;
    return;
  }
}

std::size_t SplicePump::copy_out(char* out, std::size_t size, PipePool& pool) {
  if (pipe_ == nullptr || buffered_ == 0) return 0;
  ssize_t n;
  do {
    n = ::read(pipe_->read_fd, out, size < buffered_ ? size : buffered_);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return 0;
  buffered_ -= static_cast<std::size_t>(n);
  give_back_if_empty(pool);
  return static_cast<std::size_t>(n);
}

void SplicePump::release(PipePool& pool) {
  if (pipe_ == nullptr) return;
  if (buffered_ > 0) {
    pool.discard(pipe_);
  } else {
    pool.give_back(pipe_);
  }
  pipe_ = nullptr;
  buffered_ = 0;
}

void SplicePump::give_back_if_empty(PipePool& pool) {
  if (pipe_ != nullptr && buffered_ == 0) {
    pool.give_back(pipe_);
    pipe_ = nullptr;
  }
}

}  // namespace sluice
