#pragma once
// A service: its backends, their slots, the waiting queues and the policy that spreads
// connections over them. Bookkeeping over a clock passed in: no sockets, no timers; once sessions
// use it (dispatch_later_on), one idle handle while a dispatch is pending, so that a released slot
// reaches the next waiter on a later loop turn rather than from inside the session releasing it.
//
// Dispatch rule (README "Slots and queues"): the policy chooses among backends that are up and have a free
// slot. In `shared` mode a connection that finds none waits in the service FIFO and takes the
// first slot that frees. In `per_backend` mode the policy chooses among all healthy backends at
// arrival (least_connections then counts queued connections too) and the connection waits in
// that backend's FIFO. A newcomer that finds no backend up waits in the service FIFO (both modes)
// until one comes back or its queue timeout ends it.
//
// Every change of a backend's address or health goes through this class, so the up/down state,
// its counters and its log line cannot disagree. The process decides each backend's state once:
// the control plane's ServiceMonitor owns an *authority* Service (no sessions) that resolves,
// checks, logs and counts; every worker's Service is a *follower* (follow()) that reports its
// client connects to the monitor and takes each decision as a BackendView (apply_view()).
//
// Backend sets (README "Backends follow DNS and health"): the authority decides a set's members
// from each answer of its name (resolve_set()); a follower adds a member when a view names one it
// does not have, and drains one whose view says so (follow_view()). Backends live in a deque, so
// an entry never moves: sessions, exchanges and pooled connections keep their Backend*. A drained
// member is removed once no slot is held on it (on the loop turn after the last release) and its
// entry is reused for a later member once no BackendHold names it.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/balancing/backend.hpp"
#include "sluice/config/config.hpp"
#include "sluice/health/health_state.hpp"
#include "sluice/balancing/policy.hpp"
#include "sluice/metrics/stats.hpp"
#include "sluice/balancing/wait_queue.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

/// The part of a backend that the monitor owns, as it decided it: sent to every worker's follower
/// of the service after each change. The backend is named by service, name and configured address
/// (a reload may rebuild, reorder or drop it).
struct BackendView {
  std::string service;
  std::string backend;
  Endpoint configured;
  std::string set;        // the backend set it is a member of ("" for a fixed backend)
  bool draining = false;  // a set member whose address left the records: drain it, then remove it
  bool has_address = false;
  sockaddr_storage address{};
  std::string address_text;
  bool resolve_failing = false;
  bool up = false;
  std::uint64_t since_ns = 0;
  std::string reason;
  bool wants_passes = false;  // up with failures in a row pending: a passed client connect matters
  std::uint64_t state_changes_total = 0;
  std::uint64_t resolve_failures_total = 0;
};
bool operator==(const BackendView& a, const BackendView& b);

/// A worker's client connect to a backend, passed or failed, reported to the monitor.
struct HealthReport {
  std::string service;
  std::string backend;
  Endpoint configured;
  bool passed = false;
  std::string detail;  // what failed (for the log)
};

/// A backend set's state on the authority: what its last answers gave (README "Metrics").
struct BackendSet {
  BackendSetConfig config;
  bool answered = false;                 // its name has answered once (later members start down)
  bool resolve_failing = false;          // the last resolution failed: the members are kept
  std::size_t size = 0;                  // members now (not draining)
  std::size_t refused = 0;               // addresses beyond max_backends in the last answer
  std::uint64_t refused_total = 0;       // summed over answers
  std::uint64_t resolve_failures_total = 0;
};

class Service {
 public:
  enum class Outcome { dispatched, queued, queue_full, no_backend };
  struct Arrival {
    Outcome outcome;
    Backend* backend = nullptr;  // set when dispatched
  };

  /// Backends whose address is an IP literal start up; those with a DNS name start down, without
  /// an address, until address_resolved().
  Service(ServiceConfig config, std::uint64_t now_ns);
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  const ServiceConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  /// Every entry, removed ones included (skip Backend::removed); indexed by Backend::index.
  std::deque<Backend>& backends() { return backends_; }
  const std::deque<Backend>& backends() const { return backends_; }
  const std::vector<BackendSet>& sets() const { return sets_; }
  const ServiceStats& stats() const { return stats_; }

  /// A connection asks for a backend, skipping those marked in `tried` (indexed like backends();
  /// may be empty). A retry (`tried` not empty) that must wait goes to the front of its queue:
  /// it already waited its turn. When dispatched, the slot is taken and counted. A first ask
  /// (not a retry) is an arrival of the scaling signal (ServiceStats::load).
  Arrival arrive(Waiter& waiter, std::uint64_t now_ns, const std::vector<bool>& tried);

  /// The waiter leaves its queue without a slot (timeout, client gone, shutdown).
  void leave_queue(Waiter& waiter, std::uint64_t now_ns);

  /// A connection to `backend` is closed (or never connected): its slot frees and, if someone
  /// waits for it, goes to the head of the queue (Waiter::on_dispatched): on a later turn of the
  /// loop given to dispatch_later_on(), else at once. Never re-entrant with a loop: the caller
  /// (a closing session) is not called back from inside. `holder`: the job that held the slot,
  /// whose slot time (from take_slot) is counted as one completion for the scaling signal;
  /// nullptr counts none.
  void release(Backend& backend, std::uint64_t now_ns, const Waiter* holder = nullptr);
  /// Released slots are handed to waiters on a later turn of `loop`, the loop of the sessions
  /// that use the service (each sets it). The queues stay FIFO meanwhile: a newcomer finds the
  /// queue not empty and waits behind.
  void dispatch_later_on(uv_loop_t* loop) { loop_ = loop; }

  /// Connections waiting now, over all of this service's queues.
  std::size_t waiting() const;

  /// Whether some backend is up.
  bool any_up() const;

  /// Sessions that refer to this service (to its backends) count themselves here, so that a
  /// service replaced by a reload is freed only once none is left.
  void attach() { ++sessions_; }
  void detach() { --sessions_; }
  bool in_use() const { return sessions_ > 0; }

  /// After a reload: each backend that `previous` had under the same name and address starts
  /// from its address, health and state instead of from scratch; the scaling signal's sums carry
  /// on from the previous ones (so they never go backwards while the service exists).
  void inherit_state(const Service& previous);

  /// Makes this a worker's follower: client connects are handed to `report` (see
  /// client_connect()) instead of being decided here, and state comes only from apply_view().
  void follow(std::function<void(HealthReport)> report) { report_ = std::move(report); }
  /// A client's connect to `backend` passed or failed. A follower reports a failure, and a pass
  /// only while the monitor wants one (Backend::report_passes); a service that follows no one
  /// (unit tests) records it itself.
  void client_connect(Backend& backend, bool passed, std::string_view detail, std::uint64_t now_ns);
  /// Followers: the monitor's decision about `backend`; moves waiting connections like a state
  /// change decided here.
  void apply_view(Backend& backend, const BackendView& view, std::uint64_t now_ns);
  /// The monitor's side: `backend` as a view to publish.
  BackendView view_of(const Backend& backend) const;
  /// The backend named `name` with configured `address`, or nullptr (removed entries are not found).
  Backend* find_backend(std::string_view name, const Endpoint& address);
  /// Marks `backend` as tried by a connection whose `tried` list (see arrive()) may predate it.
  void mark_tried(std::vector<bool>& tried, const Backend& backend) const;

  // --- backend sets (service_members.cpp) ---
  struct SetChange {
    std::vector<Backend*> added;    // new members (or draining ones revived)
    std::vector<Backend*> drained;  // members whose address left the answer
  };
  /// The authority (and a service that follows no one): set `set`'s name answered `addresses`
  /// (DnsClient's stable order). The first max_backends are the members: a new one is up at once
  /// in the set's first answer or with checks disabled, else down until `rise` checks pass; a
  /// member not in them drains. The rest are refused and counted.
  SetChange resolve_set(std::size_t set, const std::vector<sockaddr_storage>& addresses, std::uint64_t now_ns);
  /// Set `set`'s name did not answer (error, timeout, no record): the members are kept; counted,
  /// logged when it starts failing.
  void set_resolve_failed(std::size_t set, std::string_view error);
  /// Followers: the monitor's decision about a backend, by name. A set member not here yet is
  /// added when `may_add` (a running service; a replaced one only finishes its sessions); a
  /// draining view drains it; a draining member named again is revived.
  void follow_view(const BackendView& view, bool may_add, std::uint64_t now_ns);
  /// No new connection or request goes to `backend`; it is removed once no slot is held on it.
  void drain(Backend& backend, std::uint64_t now_ns);
  /// Called when a backend starts draining (a worker closes its idle pooled connections to it).
  void on_draining(std::function<void(Backend&)> hook) { on_draining_ = std::move(hook); }

  /// The backend's name resolved to `address`. Returns true when that is a new address (new
  /// connections go there; established ones are untouched). A backend's first address makes it
  /// up at once when it came `at_start` (like an IP literal) or checks are disabled; otherwise
  /// it stays down until `rise` checks pass.
  bool address_resolved(Backend& backend, const sockaddr_storage& address, bool at_start,
                        std::uint64_t now_ns);
  /// A resolution failed: counted; logged when it starts failing; the last address is kept.
  void resolve_failed(Backend& backend, std::string_view error, std::uint64_t now_ns);
  /// An active check's or a client connect's outcome; `detail` says what failed, for the log.
  void record_health(Backend& backend, HealthEvidence evidence, std::string_view detail,
                     std::uint64_t now_ns);

 private:
  /// Policy choice among up backends not in `tried`; with `need_free_slot` only those with one.
  Backend* choose(const std::vector<bool>& tried, bool need_free_slot);
  /// Up and not in `tried` (indexed like backends(); empty = none tried).
  static bool is_candidate(const Backend& backend, const std::vector<bool>& tried);
  /// Whether some backend is a candidate; unlike choose(), moves no policy state.
  bool any_candidate(const std::vector<bool>& tried) const;
  void take_slot(Backend& backend, Waiter& waiter, std::uint64_t now_ns);
  /// Hands freed slots to queue heads while both exist.
  void dispatch_waiting(std::uint64_t now_ns, Backend* freed);
  /// The later loop turn after release(): every free slot goes to a waiter.
  void dispatch_released();
  /// per_backend mode: gives the connections in the service FIFO (held while no backend was up)
  /// to the backends the policy chooses.
  void place_held(std::uint64_t now_ns);
  /// Flips `up`, counts and logs the change (`counted` false: the start-up resolution, which
  /// completes the initial state rather than changing it), and moves waiting connections.
  void set_state(Backend& backend, bool up, std::string reason, std::uint64_t now_ns, bool counted = true);
  /// After `backend.up` flipped: hands it waiting connections (up) or moves its waiters (down).
  void move_waiters(Backend& backend, std::uint64_t now_ns);
  /// After a release: freed slots to waiters, drained members removed.
  void after_release(std::uint64_t now_ns, Backend* freed);
  /// A down entry for a member of `set` at `address`: a free entry reused, or a new one.
  Backend& new_member(std::size_t set, const sockaddr_storage& address, std::uint64_t now_ns);
  /// Draining members that hold no slot any more become removed entries.
  void remove_drained();
  /// inherit_state() for the members of the sets `previous` had under the same name and address.
  void inherit_members(const Service& previous);
  std::size_t set_index(std::string_view set_name) const;

  ServiceConfig config_;
  std::deque<Backend> backends_;  // a deque: entries never move (Backend* stays valid)
  std::vector<BackendSet> sets_;  // like config_.backend_sets
  std::function<void(Backend&)> on_draining_;
  std::unique_ptr<Policy> policy_;
  ServiceStats stats_;
  WaitQueue shared_queue_{stats_.queue_length};
  std::vector<std::unique_ptr<WaitQueue>> backend_queues_;  // per_backend mode, like backends_
  std::vector<BackendLoad> loads_;
  std::function<void(HealthReport)> report_;  // set on a worker's follower
  uv_loop_t* loop_ = nullptr;         // set: releases dispatch on a later loop turn
  Handle<uv_idle_t> dispatch_turn_;   // only while a dispatch is pending
  std::uint64_t sessions_ = 0;  // scratch for the policy, reused to avoid an allocation per pick
};

}  // namespace sluice
