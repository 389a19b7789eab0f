#pragma once
// Everything an integration test needs: the daemon process, test backends, clients, payloads, and
// a small builder for the daemon's YAML config.

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/http/message.hpp"
#include "sluice/uv/handle.hpp"
#include "backends.hpp"
#include "client.hpp"
#include "daemon_process.hpp"
#include "data.hpp"
#include "net.hpp"

namespace sluice::it {

/// doctest prints enums as numbers; found by ADL, this prints End by name in failed checks.
inline doctest::String toString(End end) { return to_string(end); }

struct BackendSpec {
  std::string name{};
  Address address{};  // host may also be a DNS name: Address{"web.example", 80} is written as is
  std::uint32_t weight = 1;
  std::string node{};                 // empty: not written
  std::uint32_t max_connections = 0;  // slots; 0: not written (the daemon's default, unlimited)
};

/// A service's `queue:` map.
struct QueueSpec {
  std::string mode = "shared";  // shared | per_backend
  std::uint32_t max_length = 1000;
  std::string timeout = "5s";
};

/// A service's `health_check:` map.
struct HealthCheckSpec {
  bool enabled = true;
  std::string interval = "2s";
  std::string timeout = "1s";
  std::uint32_t rise = 2;
  std::uint32_t fall = 3;
  std::string http{};  // the `http:` map's entries in flow style ("path: /healthz"); empty: not written (TCP)
};

struct ServiceSpec {
  std::string name = "web";
  std::string policy = "round_robin";
  std::string connect_timeout = "2s";
  std::uint32_t retries = 2;
  std::vector<BackendSpec> backends{};
  std::optional<QueueSpec> queue{};                // nullopt: not written (the daemon's defaults)
  std::string resolve_interval{};                  // empty: not written
  // Off unless a test asks: test backends count their connections, and checks would add some.
  // nullopt: not written (the daemon's default, checks on).
  std::optional<HealthCheckSpec> health_check{HealthCheckSpec{.enabled = false}};
};

struct ListenerSpec {
  std::string name = "web";
  std::string bind = "127.0.0.1:0";
  std::string service = "web";
  std::string idle_timeout{};  // empty: the daemon's default
  std::uint32_t max_connections = 0;  // 0: not written (the daemon's default)
  std::vector<std::string> allow{};   // source CIDRs; empty: not written (everyone)
  std::optional<bool> splice{};       // nullopt: not written (the daemon's default, on)
  std::string mode{};                 // tcp | http; empty: not written (the daemon's default, tcp)
};

struct ConfigSpec {
  std::uint32_t workers = 1;        // written when not 1
  std::string drain_timeout = "5s";
  std::vector<ListenerSpec> listeners{};
  std::vector<ServiceSpec> services{};
  bool admin = false;               // `admin: { bind: 127.0.0.1:0 }`; see wait_admin_address
  std::string admin_bind = "127.0.0.1:0";  // the admin bind written when `admin` is set
  std::string admin_worker_timeout{};      // `admin.worker_timeout`; empty: not written
  bool access_log = false;          // `log: { access_log: true }`
  std::string log_format = "text";  // `log: { format: ... }`, written when not text
  std::string http{};               // the `http:` map in flow style ("{ request_timeout: 1s }"); empty: not written

  std::string yaml() const;
};

/// One listener "web" on 127.0.0.1:0 in front of `service`.
std::string single_service_config(const ServiceSpec& service, const ListenerSpec& listener = {});

/// The admin endpoint (with `admin.worker_timeout` when given) and one listener "web" in front of a
/// round-robin service of these name servers (each backend named as its server), on `workers`
/// event loops.
std::string name_servers_config(const std::vector<const NameServer*>& backends, std::uint32_t workers = 1,
                                const std::string& admin_worker_timeout = {});

/// The name a NameServer behind `proxy` answered one new connection with ("" if none answered).
std::string served_by(const Address& proxy);

/// Waits for `admin listening address=HOST:PORT` and returns the address. Throws when the deadline
/// passes or the daemon's output ends first.
Address wait_admin_address(DaemonProcess& daemon, Millis timeout = 10s);

// ---- HTTP and Prometheus text ----

struct HttpResponse {
  int status = 0;
  sluice::http::MessageHead head{};  // read by the daemon's HTTP parser
  std::string body{};                // de-chunked when the response was chunked
};

/// `GET path HTTP/1.1` with `Connection: close`; reads the response until the server closes.
/// Throws on a connect failure, a timeout or a malformed response.
HttpResponse http_get(const Address& server, const std::string& path, Millis timeout = 2s);

/// One response on a kept-alive connection, read byte by byte (nothing after it is consumed) with
/// the daemon's HTTP parser. Throws on EOF, a timeout or a malformed response.
sluice::http::Message read_response(Client& client, Millis timeout = 2s);

/// GET /metrics from the admin server; throws unless the status is 200.
std::string scrape(const Address& admin);

/// The value of one sample in Prometheus text: `series` is the metric name with its labels exactly
/// as the daemon writes them (`sluice_service_queue_length{service="web"}`), or a bare name for a
/// sample without labels. nullopt when absent.
std::optional<double> find_metric(std::string_view text, std::string_view series);
/// find_metric, throwing std::runtime_error naming the series when it is absent.
double metric(std::string_view text, std::string_view series);

/// Scrapes every few milliseconds until `done(text)` holds; returns that scrape, or nullopt when
/// the deadline passes (`last`, when given, receives the last scrape).
std::optional<std::string> wait_scrape(const Address& admin, const std::function<bool(const std::string&)>& done,
                                       Millis timeout, std::string* last = nullptr);
/// Scrapes until `series` has exactly `value`. False when the deadline passes; `seen` receives the
/// last value read (NaN when the series was absent).
bool wait_metric(const Address& admin, std::string_view series, double value, Millis timeout,
                 double* seen = nullptr);

/// An unsigned integer from the environment, or `fallback` when unset or not a number.
std::uint64_t env_or(const char* name, std::uint64_t fallback);

}  // namespace sluice::it
