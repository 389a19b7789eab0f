#pragma once
// Everything an integration test needs: the daemon process, test backends, clients, payloads, and
// a small builder for the daemon's YAML config.

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

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
  Address address{};
  std::uint32_t weight = 1;
};

struct ServiceSpec {
  std::string name = "web";
  std::string policy = "round_robin";
  std::string connect_timeout = "2s";
  std::uint32_t retries = 2;
  std::vector<BackendSpec> backends{};
};

struct ListenerSpec {
  std::string name = "web";
  std::string bind = "127.0.0.1:0";
  std::string service = "web";
  std::string idle_timeout{};  // empty: the daemon's default
};

struct ConfigSpec {
  std::string drain_timeout = "5s";
  std::vector<ListenerSpec> listeners{};
  std::vector<ServiceSpec> services{};

  std::string yaml() const;
};

/// One listener "web" on 127.0.0.1:0 in front of `service`.
std::string single_service_config(const ServiceSpec& service, const ListenerSpec& listener = {});

/// An unsigned integer from the environment, or `fallback` when unset or not a number.
std::uint64_t env_or(const char* name, std::uint64_t fallback);

}  // namespace sluice::it
