#pragma once
// The YAML configuration: schema, defaults and validation. Knows nothing of libuv or sockets.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/net/cidr.hpp"
#include "sluice/config/dns_config.hpp"
#include "sluice/config/duration.hpp"
#include "sluice/config/status_range.hpp"
#include "sluice/net/endpoint.hpp"
#include "sluice/net/proxy_protocol.hpp"

namespace sluice {

// Limits that keep a config (and the state built from it) bounded; beyond them it is rejected.
inline constexpr std::size_t kMaxConfigBytes = 1 << 20;
inline constexpr std::size_t kMaxListeners = 256;
inline constexpr std::size_t kMaxServices = 256;
inline constexpr std::size_t kMaxBackendsPerService = 1024;

enum class PolicyKind { round_robin, least_connections };

struct BackendConfig {
  std::string name;
  Endpoint address;
  std::string node;              // the Kubernetes node this backend is pinned to ("" if unset)
  std::uint32_t weight = 1;      // 1..1000
  std::uint32_t max_connections = 0;  // slots: connections served at once; 0 = unlimited
  ProxyVersion send_proxy = ProxyVersion::off;  // its own `send_proxy`, else its set's, else the service's

  bool operator==(const BackendConfig&) const = default;
};

/// `backend_sets`: every A/AAAA record of `address`'s host is one backend (a Kubernetes headless
/// Service), re-resolved every `resolve_interval`. Each member takes this weight, slots and node.
struct BackendSetConfig {
  std::string name;
  Endpoint address;                   // host:port; the host is resolved (or an IP literal: one member)
  std::uint32_t max_backends = 64;    // members at most (1..1024); addresses beyond are refused, counted
  std::string node;                   // every member's node label ("" if unset)
  std::uint32_t weight = 1;           // 1..1000
  std::uint32_t max_connections = 0;  // each member's slots; 0 = unlimited
  ProxyVersion send_proxy = ProxyVersion::off;  // every member's; the service's unless the set says

  bool operator==(const BackendSetConfig&) const = default;
};

enum class QueueMode {
  shared,       // one FIFO for the service; the head takes the first free slot (M/M/c)
  per_backend,  // the policy chooses at arrival; the connection waits in that backend's FIFO
};

struct QueueConfig {
  QueueMode mode = QueueMode::shared;
  std::uint32_t max_length = 1000;  // waiting connections per FIFO; more are refused
  Millis timeout{5000};             // waited longer: closed and counted

  bool operator==(const QueueConfig&) const = default;
};

/// `health_check.http`: an active check is a GET whose response status must be in `expect`.
struct HttpCheckConfig {
  std::string path = "/";  // the request target: starts with '/', visible ASCII only
  std::string host;        // the Host header; empty: the backend's configured address
  StatusRange expect;      // 200-399 unless set

  bool operator==(const HttpCheckConfig&) const = default;
};

/// Active checks (TCP connects, or HTTP GETs) and passive checks (failed client connects), per service.
struct HealthCheckConfig {
  bool enabled = true;      // false: a backend is up whenever its address is known
  Millis interval{2000};    // between active checks
  Millis timeout{1000};     // an active check (connect, and with `http` the response's head) must finish within this
  std::uint32_t rise = 2;   // consecutive good checks that bring a down backend up
  std::uint32_t fall = 3;   // consecutive failures (checks or client connects) that take it down
  std::optional<HttpCheckConfig> http;  // absent: a check is a TCP connect

  bool operator==(const HealthCheckConfig&) const = default;
};

/// `scaling.target_quantile`: the p-quantile of the queue wait must not exceed `wait`.
struct QuantileTargetConfig {
  double p = 0.95;  // in (0, 1)
  Millis wait{0};

  bool operator==(const QuantileTargetConfig&) const = default;
};

/// A service's `scaling` section: the scaling signal (README "The scaling signal").
struct ScalingConfig {
  static constexpr std::uint32_t kMaxBackends = 100000;
  Millis window{60000};           // estimates are over this sliding window (10s..1h)
  Millis target_wait{0};          // the mean queue wait the recommendation must meet (> 0)
  std::optional<QuantileTargetConfig> target_quantile;
  std::uint32_t min_backends = 1;
  std::uint32_t max_backends = 64;
  // Slots (max_connections) one more backend brings; by default the backends' own when they agree.
  // 0 only when every backend is unlimited (max_connections 0): then there is no model.
  std::uint32_t slots_per_backend = 0;

  bool operator==(const ScalingConfig&) const = default;
};

struct ServiceConfig {
  std::string name;
  PolicyKind policy = PolicyKind::round_robin;
  Millis connect_timeout{2000};
  std::uint32_t retries = 2;     // further backends tried after a failed connect
  Millis resolve_interval{10000};  // backend host names are resolved again this often
  ProxyVersion send_proxy = ProxyVersion::off;  // a PROXY header first on every backend connection
  QueueConfig queue;
  HealthCheckConfig health_check;
  std::vector<BackendConfig> backends;
  std::vector<BackendSetConfig> backend_sets;
  std::optional<ScalingConfig> scaling;  // absent: no scaling signal for this service

  bool operator==(const ServiceConfig&) const = default;
};

/// How a listener treats its clients' bytes.
enum class ListenerMode {
  tcp,   // one connection is one job: a backend is chosen per connection and bytes are spliced
  http,  // HTTP/1.x: each request is one job, over pooled keep-alive backend connections
};

/// The top-level `http` section: limits and timeouts of `mode: http` listeners.
struct HttpConfig {
  Millis request_timeout{10000};    // no complete request head this long after it began: 408
  Millis response_timeout{60000};   // no response head this long after the request was sent: 504
  std::uint32_t max_header_bytes = 16384;  // request line + headers; more: 431
  Millis pool_idle_timeout{4000};   // an idle pooled backend connection is closed after this
  std::uint32_t pool_max_idle = 64; // idle pooled connections per backend per worker (HAProxy keeps any number, nginx what `keepalive` says)
  bool forwarded = false;           // add X-Forwarded-For, X-Forwarded-Proto and Forwarded
  std::uint32_t pipeline_depth = 1; // requests of one client connection in flight at once (1..64)

  bool operator==(const HttpConfig&) const = default;
};

struct ListenerConfig {
  std::string name;
  Endpoint bind;
  std::string service;                 // name of a ServiceConfig
  std::uint32_t max_connections = 10000;  // concurrent clients; more are refused
  std::vector<Cidr> allow;             // empty means everyone
  Millis idle_timeout{300000};         // no byte either way for this long closes the session
  std::uint32_t backlog = 511;
  bool splice = true;                  // bulk transfers zero-copy with splice(2); false: read/write only
  ListenerMode mode = ListenerMode::tcp;
  HttpConfig http;                     // a copy of the top-level `http` section (used in http mode)
  bool accept_proxy = false;           // clients' first bytes are a PROXY header (v1 or v2), else closed
  Millis accept_proxy_timeout{5000};   // the whole header must arrive within this
  std::vector<Cidr> accept_proxy_from; // accept_proxy: the peers trusted to send a header; empty: any

  bool operator==(const ListenerConfig&) const = default;
};

enum class LogFormat { text, json };

struct LogConfig {
  std::string level = "info";    // trace | debug | info | warn | error
  LogFormat format = LogFormat::text;
  bool access_log = false;       // one line per finished connection

  bool operator==(const LogConfig&) const = default;
};

struct AdminConfig {
  std::optional<Endpoint> bind;  // GET /metrics, /healthz; absent = no admin listener
  // How long the control plane waits for a worker's answer (a scrape, a reload); a worker that
  // leaves a ping unanswered this long makes /healthz fail.
  Millis worker_timeout{5000};

  bool operator==(const AdminConfig&) const = default;
};

struct Config {
  static constexpr std::uint32_t kMaxWorkers = 64;
  std::uint32_t workers = 1;     // event loops, each with SO_REUSEPORT listeners; 0 = auto (one per core)
  Millis drain_timeout{25000};   // on SIGTERM: sessions get this long to finish
  LogConfig log;
  AdminConfig admin;
  DnsConfig dns;                 // applied at start; a reload keeps the running one
  HttpConfig http;               // also copied into every listener (ListenerConfig::http)
  std::vector<ListenerConfig> listeners;
  std::vector<ServiceConfig> services;

  const ServiceConfig* find_service(std::string_view name) const;
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error is not tied to a place in the file
  int column = 0;  // 1-based
  std::string message;

  /// "FILE:LINE:COL: message" (or "FILE: message" without a place).
  std::string to_string() const;
};

struct ConfigResult {
  std::optional<Config> config;    // set only when errors is empty
  std::vector<ConfigError> errors; // every error found, in file order
};

/// Parses and validates YAML text; `file_name` is used in error messages only.
ConfigResult parse_config(std::string_view yaml_text, const std::string& file_name);

/// Reads `path` and parses it; an unreadable file is one error naming the path and the reason.
ConfigResult load_config(const std::string& path);

}  // namespace sluice
