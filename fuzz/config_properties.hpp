#pragma once
// What must hold for every result of sluice::parse_config, whatever the input: checked by the fuzz
// target (fuzz/config_fuzzer.cpp, which aborts on a violation so libFuzzer keeps the input) and by
// the regression test (tests/unit/fuzz_regressions_test.cpp) on every saved input. Header-only so
// that both build it from the same text.

#include <algorithm>
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/config/config.hpp"

namespace sluice::fuzz {

/// all: every rule. skip_known: not the rules that reported, still unfixed daemon bugs break
/// (control characters in hosts, see fuzz/regressions/README.md), so a fuzz run looks for new ones.
enum class Checks { all, skip_known };

namespace detail {

inline bool listener_name_ok(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

// A host that reaches getaddrinfo/inet_pton/uv_ip*_addr as a C string must not be cut short there.
inline bool host_ok(const std::string& host) {
  return std::none_of(host.begin(), host.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// Printing an accepted endpoint and reading it again gives the same endpoint.
inline std::string endpoint_problem(const Endpoint& endpoint, const std::string& what, bool port_zero_ok,
                                    Checks checks) {
  if (endpoint.host.empty()) return what + ": empty host";
  if (checks == Checks::all && !host_ok(endpoint.host)) return what + ": host contains a control character (NUL?)";
  if (!port_zero_ok && endpoint.port == 0) return what + ": port 0 accepted";
  auto again = parse_endpoint(endpoint.to_string());
  if (!again || !(*again == endpoint)) return what + ": '" + endpoint.to_string() + "' does not parse back to itself";
  return "";
}

}  // namespace detail

/// "" when `result` (the parse of `input`) is consistent, else the first rule it breaks.
inline std::string check_properties(std::string_view input, const ConfigResult& result,
                                    const std::string& file_name, Checks checks = Checks::all) {
  using detail::endpoint_problem;
  // 1. A config exactly when there is no error.
  if (result.config.has_value() == !result.errors.empty()) {
    return result.config ? "a config was returned together with errors" : "no config and no error";
  }
  // 2. Errors: named after the file, placed inside the input (or not placed at all), in file order.
  std::pair<int, int> previous{0, 0};
  for (const ConfigError& error : result.errors) {
    if (error.file != file_name) return "error names file '" + error.file + "'";
    if (error.message.empty()) return "error without a message";
    if (error.line < 0 || error.column < 0 || (error.line == 0) != (error.column == 0)) {
      return "error place " + std::to_string(error.line) + ":" + std::to_string(error.column) + " is malformed";
    }
    // Every line break is at least one byte, and a column counts the bytes of a line after
    // yaml-cpp's transcoding to UTF-8: an input it takes for UTF-16 (a BOM, or zero bytes as in
    // "{\0") grows, 2 bytes becoming 3 (found by the fuzzer: 1:77 in 56 bytes), and a lone byte
    // it cannot decode becomes U+FFFD, 3 bytes (found by the fuzzer: 1:17 in 9 bytes). So at most
    // 3 bytes for each byte of input.
    const auto bound = static_cast<long long>(input.size()) * 3 + 2;
    if (error.line > bound || error.column > bound) return "error place beyond the end of the input";
    if (error.to_string().rfind(file_name, 0) != 0) return "ConfigError::to_string does not start with the file";
    const std::pair<int, int> place{error.line, error.column};
    if (place < previous) return "errors are not in file order";
    previous = place;
  }
  if (!result.config) return "";

  // 3. An accepted config keeps every rule of the schema (README "Configuration").
  const Config& config = *result.config;
  if (config.drain_timeout.count() < 0) return "negative drain_timeout";
  static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
  if (levels.count(config.log.level) == 0) return "log.level '" + config.log.level + "' accepted";
  if (config.admin.bind) {
    if (auto p = endpoint_problem(*config.admin.bind, "admin.bind", true, checks); !p.empty()) return p;
  }
  if (config.listeners.empty() || config.listeners.size() > kMaxListeners) return "listener count out of range";
  if (config.services.empty() || config.services.size() > kMaxServices) return "service count out of range";

  std::set<std::string> listener_names;
  for (const ListenerConfig& listener : config.listeners) {
    const std::string what = "listener '" + listener.name + "'";
    if (!detail::listener_name_ok(listener.name)) return what + ": name breaks the listener name alphabet";
    if (!listener_names.insert(listener.name).second) return what + ": duplicate name accepted";
    if (auto p = endpoint_problem(listener.bind, what + " bind", true, checks); !p.empty()) return p;
    if (config.find_service(listener.service) == nullptr) return what + ": unknown service accepted";
    if (listener.max_connections < 1) return what + ": max_connections 0 accepted";
    if (listener.backlog < 1 || listener.backlog > 65535) return what + ": backlog out of range";
    if (listener.idle_timeout.count() <= 0) return what + ": idle_timeout not positive";
    for (const Cidr& cidr : listener.allow) {
      auto again = Cidr::parse(cidr.to_string());
      if (!again || !(*again == cidr)) return what + ": allow '" + cidr.to_string() + "' does not parse back";
    }
  }

  std::set<std::string> service_names;
  for (const ServiceConfig& service : config.services) {
    const std::string what = "service '" + service.name + "'";
    if (service.name.empty()) return "empty service name accepted";
    if (!service_names.insert(service.name).second) return what + ": duplicate name accepted";
    if (service.connect_timeout.count() <= 0) return what + ": connect_timeout not positive";
    if (service.resolve_interval.count() <= 0) return what + ": resolve_interval not positive";
    if (service.retries > 100) return what + ": retries out of range";
    if (service.queue.timeout.count() <= 0) return what + ": queue.timeout not positive";
    if (service.queue.max_length > 1000000) return what + ": queue.max_length out of range";
    const HealthCheckConfig& check = service.health_check;
    if (check.interval.count() <= 0 || check.timeout.count() <= 0) return what + ": health_check duration not positive";
    if (check.timeout > check.interval) return what + ": health_check timeout longer than interval accepted";
    if (check.rise < 1 || check.rise > 100 || check.fall < 1 || check.fall > 100) return what + ": rise/fall out of range";
    std::size_t bound = service.backends.size();
    for (const BackendSetConfig& set : service.backend_sets) bound += set.max_backends;
    if ((service.backends.empty() && service.backend_sets.empty()) || bound > kMaxBackendsPerService) {
      return what + ": backend count out of range";
    }
    std::set<std::string> backend_names;
    for (const BackendSetConfig& set : service.backend_sets) {
      const std::string swhat = "backend set '" + set.name + "' of " + what;
      if (set.name.empty()) return what + ": empty backend set name accepted";
      if (!backend_names.insert(set.name).second) return swhat + ": duplicate name accepted";
      if (auto p = endpoint_problem(set.address, swhat + " address", false, checks); !p.empty()) return p;
      if (set.weight < 1 || set.weight > 1000) return swhat + ": weight out of range";
      if (set.max_backends < 1 || set.max_backends > kMaxBackendsPerService) return swhat + ": max_backends out of range";
    }
    for (const BackendConfig& backend : service.backends) {
      const std::string bwhat = "backend '" + backend.name + "' of " + what;
      if (backend.name.empty()) return what + ": empty backend name accepted";
      if (!backend_names.insert(backend.name).second) return bwhat + ": duplicate name accepted";
      if (auto p = endpoint_problem(backend.address, bwhat + " address", false, checks); !p.empty()) return p;
      if (backend.weight < 1 || backend.weight > 1000) return bwhat + ": weight out of range";
    }
  }
  return "";
}

}  // namespace sluice::fuzz
