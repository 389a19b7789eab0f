#pragma once
// Per-loop state: everything a session needs that is shared by the sessions of one event loop.
// Nothing here is locked: one loop, one thread.

#include <cstddef>
#include <cstdint>
#include <functional>

#include <uv.h>

#include "sluice/proxy/buffer_pool.hpp"
#include "sluice/proxy/backend_pool.hpp"
#include "sluice/proxy/pipe_pool.hpp"
#include "sluice/proxy/write_pool.hpp"

namespace sluice {

class LoopSession;

struct LoopResources {
  explicit LoopResources(uv_loop_t* event_loop) : loop(event_loop) {}

  uv_loop_t* loop;
  BufferPool buffers;
  PipePool pipes;  // for splice(2); its descriptors count against descriptor_ceiling
  BackendPool backend_pool{loop};  // idle keep-alive backend connections of `mode: http`
  WritePool writes;                // the writes of `mode: http`

  // A client whose descriptor number reaches this is refused (descriptors are handed out lowest
  // first, so all below it are in use): the rest are kept for backend sockets and the admin. The
  // daemon sets it from RLIMIT_NOFILE.
  int descriptor_ceiling = 1 << 30;

  std::uint64_t accepted_total = 0;  // clients this loop accepted, over all its listeners ever

  LoopSession* sessions = nullptr;   // intrusive list of live sessions
  std::size_t session_count = 0;
  std::function<void()> on_last_session_closed;  // set while draining

  void link(LoopSession* session);
  void unlink(LoopSession* session);

  /// Ends every live session at once (drain timeout, fast shutdown).
  void abort_all_sessions();
  /// The drain began: HTTP connections between requests close, idle pooled backend connections too.
  void drain_sessions();
};

}  // namespace sluice
