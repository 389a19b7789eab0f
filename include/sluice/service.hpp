#pragma once
// A service: its backends, their slots, the waiting queues and the policy that spreads
// connections over them. Pure bookkeeping over a clock passed in: no sockets, no timers.
//
// Dispatch rule (DESIGN.md §3): the policy chooses among backends that are up and have a free
// slot. In `shared` mode a connection that finds none waits in the service FIFO and takes the
// first slot that frees. In `per_backend` mode the policy chooses among all healthy backends at
// arrival (least_connections then counts queued connections too) and the connection waits in
// that backend's FIFO.

#include <cstdint>
#include <memory>
#include <vector>

#include "sluice/backend.hpp"
#include "sluice/config.hpp"
#include "sluice/policy.hpp"
#include "sluice/stats.hpp"
#include "sluice/wait_queue.hpp"

namespace sluice {

class Service {
 public:
  enum class Outcome { dispatched, queued, queue_full, no_backend };
  struct Arrival {
    Outcome outcome;
    Backend* backend = nullptr;  // set when dispatched
  };

  /// `addresses` holds one resolved address per backend, in config order.
  Service(ServiceConfig config, const std::vector<sockaddr_storage>& addresses);
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  const ServiceConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  std::vector<Backend>& backends() { return backends_; }
  const std::vector<Backend>& backends() const { return backends_; }
  const ServiceStats& stats() const { return stats_; }

  /// A connection asks for a backend, skipping those marked in `tried` (indexed like backends();
  /// may be empty). A retry (`tried` not empty) that must wait goes to the front of its queue:
  /// it already waited its turn. When dispatched, the slot is taken and counted.
  Arrival arrive(Waiter& waiter, std::uint64_t now_ns, const std::vector<bool>& tried);

  /// The waiter leaves its queue without a slot (timeout, client gone, shutdown).
  void leave_queue(Waiter& waiter, std::uint64_t now_ns);

  /// A connection to `backend` is closed (or never connected): its slot frees and, if someone
  /// waits for it, goes at once to the head of the queue (Waiter::on_dispatched).
  void release(Backend& backend, std::uint64_t now_ns);

  /// Connections waiting now, over all of this service's queues.
  std::size_t waiting() const;

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

  ServiceConfig config_;
  std::vector<Backend> backends_;
  std::unique_ptr<Policy> policy_;
  ServiceStats stats_;
  WaitQueue shared_queue_{stats_.queue_length};
  std::vector<std::unique_ptr<WaitQueue>> backend_queues_;  // per_backend mode, like backends_
  std::vector<BackendLoad> loads_;  // scratch for the policy, reused to avoid an allocation per pick
};

}  // namespace sluice
