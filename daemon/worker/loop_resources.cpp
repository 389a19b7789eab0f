#include "sluice/worker/loop_resources.hpp"

#include "sluice/proxy/loop_session.hpp"

namespace sluice {

void LoopResources::link(LoopSession* session) {
  session->next_in_worker = sessions;
  if (sessions != nullptr) sessions->prev_in_worker = session;
  sessions = session;
  ++session_count;
}

void LoopResources::unlink(LoopSession* session) {
  if (session->prev_in_worker != nullptr) {
    session->prev_in_worker->next_in_worker = session->next_in_worker;
  } else {
    sessions = session->next_in_worker;
  }
  if (session->next_in_worker != nullptr) session->next_in_worker->prev_in_worker = session->prev_in_worker;
  --session_count;
  if (session_count == 0 && on_last_session_closed) on_last_session_closed();
}

void LoopResources::abort_all_sessions() {
  // abort() only starts closing; sessions unlink themselves later, in their close callbacks.
  for (LoopSession* session = sessions; session != nullptr; session = session->next_in_worker) {
    session->abort();
  }
  backend_pool.close_all();
}

void LoopResources::drain_sessions() {
  backend_pool.close_all();
  // drain() may free the session at once (an idle HTTP connection): step on before calling it.
  for (LoopSession* session = sessions; session != nullptr;) {
    LoopSession* next = session->next_in_worker;
    session->drain();
    session = next;
  }
}

}  // namespace sluice
