#pragma once
// What a session reports as it goes, for the counters and the access log, so the session itself
// neither updates counters nor formats lines. StatsObserver (per-listener and per-backend
// counters and histograms) and AccessLogObserver (one line per finished connection) both take
// every event; the session holds them as their final types, so the per-chunk calls are direct.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "sluice/balancing/backend.hpp"
#include "sluice/metrics/stats.hpp"

namespace sluice {

class Listener;
class Service;

/// What a finished session did, for its access log line.
struct SessionSummary {
  const sockaddr* client = nullptr;
  const Backend* backend = nullptr;  // the last one tried, or none
  std::uint64_t arrived_ns = 0;
  std::uint64_t dispatched_ns = 0;       // 0: never had a slot
  std::uint64_t connect_started_ns = 0;  // the last connect
  std::uint64_t connected_ns = 0;        // 0: never connected
  std::uint64_t closed_ns = 0;
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_from_backend = 0;
  const char* end_reason = nullptr;
};

class SessionObserver {
 public:
  /// Turned away before reaching a backend.
  virtual void rejected(RejectReason) {}
  virtual void connected(Backend&, std::uint64_t /*connect_ns*/) {}
  virtual void connect_failed(Backend&) {}
  virtual void received_from_backend(Backend&, std::size_t /*bytes*/) {}
  virtual void sent_to_backend(Backend&, std::size_t /*bytes*/) {}
  /// Bytes written by splice(2), either direction.
  virtual void spliced(std::size_t /*bytes*/) {}
  /// The backend socket closed after `connected_for_ns` connected: its slot is free.
  virtual void backend_closed(Backend&, std::uint64_t /*connected_for_ns*/) {}
  virtual void closed(const SessionSummary&) {}

 protected:
  ~SessionObserver() = default;
};

class StatsObserver final : public SessionObserver {
 public:
  explicit StatsObserver(Listener& listener) : listener_(listener) {}
  void rejected(RejectReason reason) override;
  void connected(Backend& backend, std::uint64_t connect_ns) override {
    backend.stats.connect_time.observe(static_cast<double>(connect_ns) * 1e-9);
  }
  void connect_failed(Backend& backend) override { ++backend.stats.connect_failures_total; }
  void received_from_backend(Backend& backend, std::size_t bytes) override {
    backend.stats.received_bytes_total += bytes;
  }
  void sent_to_backend(Backend& backend, std::size_t bytes) override { backend.stats.sent_bytes_total += bytes; }
  void spliced(std::size_t bytes) override;
  void backend_closed(Backend& backend, std::uint64_t connected_for_ns) override {
    backend.stats.session_time.observe(static_cast<double>(connected_for_ns) * 1e-9);
  }

 private:
  Listener& listener_;
};

class AccessLogObserver final : public SessionObserver {
 public:
  AccessLogObserver(const Listener& listener, const Service& service) : listener_(listener), service_(service) {}
  /// Whether lines are written at all (log.access_log): the session asks the client's address at
  /// accept only then, since the socket is gone by the time of the line.
  static bool enabled();
  void closed(const SessionSummary& summary) override;

 private:
  const Listener& listener_;
  const Service& service_;
};

}  // namespace sluice
