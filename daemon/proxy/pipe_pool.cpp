#include "sluice/proxy/pipe_pool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace sluice {

PipePool::PipePool(std::size_t max_free) : max_free_(max_free) {
  free_.reserve(max_free);  // no allocation on the data path
}

PipePool::~PipePool() {
  for (KernelPipe* pipe : free_) close_pipe(pipe);
}

KernelPipe* PipePool::take(int descriptor_ceiling) {
  if (!free_.empty()) {
    KernelPipe* pipe = free_.back();
    free_.pop_back();
    ++in_use_;
    return pipe;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return nullptr;
  // Descriptors are handed out lowest first: one at the ceiling means the reserve is in use.
  if (fds[0] >= descriptor_ceiling || fds[1] >= descriptor_ceiling) {
    ::close(fds[0]);
    ::close(fds[1]);
    errno = EMFILE;
    return nullptr;
  }
  // Where the larger size is refused (an unprivileged user past fs/pipe-user-pages-soft), the pipe
  // keeps the size it has.
  int capacity = fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(kCapacityBytes));
  if (capacity < 0) capacity = fcntl(fds[1], F_GETPIPE_SZ);
  ++in_use_;
  return new KernelPipe{fds[0], fds[1], capacity > 0 ? static_cast<std::size_t>(capacity) : 4096};
}

void PipePool::give_back(KernelPipe* pipe) {
  --in_use_;
  if (free_.size() >= max_free_) {
    close_pipe(pipe);
    return;
  }
  free_.push_back(pipe);
}

void PipePool::discard(KernelPipe* pipe) {
  --in_use_;
  close_pipe(pipe);
}

void PipePool::close_pipe(KernelPipe* pipe) {
  ::close(pipe->read_fd);
  ::close(pipe->write_fd);
  delete pipe;
}

}  // namespace sluice
