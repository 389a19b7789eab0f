#pragma once
// One proxied connection, as a small state machine: it waits for a slot on a backend (queued),
// connects (retrying elsewhere on failure), then proxies until both directions are done, an end
// is reset or the idle timeout, and frees itself once its sockets are closed. It composes:
//   - ClientSide and BackendSide, the two ends (apart, so that a client may outlive a backend
//     connection: the request-level HTTP mode);
//   - two Movers, client -> backend and backend -> client, which move the bytes (watermarks,
//     splice(2), half-close, resets);
//   - the slot on the backend, held from dispatch until the backend socket is closed;
//   - StatsObserver and AccessLogObserver, which count and log what it reports.
// States change only in enter(), which checks the transition and the state's invariants in
// builds with assertions (the ASan build of the daemon and the unit tests).

#include <cstdint>
#include <vector>

#include <netinet/in.h>
#include <uv.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/wait_queue.hpp"
#include "sluice/proxy/backend_side.hpp"
#include "sluice/proxy/client_side.hpp"
#include "sluice/proxy/loop_session.hpp"
#include "sluice/proxy/mover.hpp"
#include "sluice/proxy/session_observer.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class Listener;
class Service;
struct Backend;
struct LoopResources;

class Session final : public LoopSession, public Waiter, private MoverEvents, private BackendSide::Events {
 public:
  /// Takes over `client_fd`, a client the listener accepted. Returns nullptr (having closed what it
  /// opened) if libuv cannot. The session owns itself from here on and frees itself once closed.
  static Session* accept(Listener& listener, int client_fd);

  /// The client's address (AF_INET or AF_INET6), asked at accept only when the access log is on.
  const sockaddr* client_address() const { return client_.address(); }
  /// accept_proxy: the client and the address it connected to, as the PROXY header gave them.
  void use_proxied_addresses(const sockaddr_storage& client, const sockaddr_storage& local) {
    client_.set_addresses(client, local);
  }

  /// Asks the service for a backend (waiting in its queue if need be) and starts proxying.
  void start();

  /// From the service's queue: a slot on `backend` is ours (already counted).
  void on_dispatched(Backend& backend) override;

  /// Closes an accepted client that the listener does not admit.
  void refuse(const char* reason) { finish(reason); }

  /// Ends the session now (drain timeout, shutdown): both sockets are closed.
  void abort() override { finish("shutdown"); }

 private:
  enum class State {
    queued,        // no slot: asking the service, or in its queue (timer: queue timeout)
    connecting,    // a slot; the TCP connect is under way (timer: connect timeout)
    reconnecting,  // the connect failed: its socket closes (and the slot goes back), then a retry
    proxying,      // both ends open, the movers carry the bytes (timer: idle timeout)
    closing,       // sockets closing; the session frees itself when both are closed
  };
  enum class Reset { none, client, backend };  // which socket a close resets

  explicit Session(Listener& listener);
  ~Session();

  /// The one place the state changes.
  void enter(State next);
  void check_invariants() const;

  void ask_for_backend();
  void connect_to(Backend& backend);
  void on_connected();
  void on_connect_failed(const char* error);
  /// send_proxy: the PROXY header, first on the backend connection. False: it could not be, and
  /// the session is closing.
  bool send_proxy_header();
  void on_timer();
  void arm_timer(std::uint64_t timeout_ms);
  void stop_timer();
  void watch_waiting_client();
  /// Ends a session that never reached a backend, counted against the listener.
  void turn_away(RejectReason reason, const char* end_reason);
  /// Closes both sockets, the one named by `reset` with a RST.
  void finish(const char* reason, Reset reset = Reset::none);
  void release_slot();
  void on_client_closed();
  void free_when_closed();

  // MoverEvents
  void moved_in(Mover& mover, std::size_t bytes) override;
  void moved_out(Mover& mover, std::size_t bytes, bool spliced) override;
  void held_full(Mover& mover) override;
  void source_ended(Mover& mover) override;
  void finished(Mover& mover) override;
  void failed(Mover& mover, bool source_broken) override;
  // BackendSide::Events
  void connect_done(int status) override;
  void backend_closed(Backend& backend) override;

  Listener& listener_;
  Service& service_;
  LoopResources& resources_;
  State state_ = State::queued;
  Backend* slot_ = nullptr;          // the backend whose slot we hold
  BackendHold served_by_;  // the last backend tried, for the access log
  std::vector<bool> tried_;          // backends that failed to connect for this session (lazy)
  std::uint32_t attempts_ = 0;       // connects started
  int connect_error_ = 0;            // a connect that failed at once, reported on the next turn
  int open_sockets_ = 0;
  std::uint64_t last_activity_ms_ = 0;  // loop time of the last byte in either direction
  const char* end_reason_ = nullptr;   // first EOF, or what ended the session

  StatsObserver stats_;
  AccessLogObserver access_log_;
  Handle<uv_timer_t> timer_;  // queue timeout, then connect timeout, then idle timeout
  // The sockets are plain members, closed before the session deletes itself in the last close
  // callback: writes still queued on them complete (cancelled) into the movers, which must live.
  ClientSide client_;
  BackendSide backend_;
  Mover upstream_;    // client -> backend
  Mover downstream_;  // backend -> client
};

}  // namespace sluice
