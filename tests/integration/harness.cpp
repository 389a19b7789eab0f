#include "harness.hpp"

#include <cstdlib>
#include <sstream>

namespace sluice::it {

std::string ConfigSpec::yaml() const {
  std::ostringstream out;
  out << "drain_timeout: " << drain_timeout << "\n"
      << "log: { level: info }\n"
      << "listeners:\n";
  for (const auto& listener : listeners) {
    out << "  - name: " << listener.name << "\n"
        << "    bind: \"" << listener.bind << "\"\n"
        << "    service: " << listener.service << "\n";
    if (!listener.idle_timeout.empty()) out << "    idle_timeout: " << listener.idle_timeout << "\n";
  }
  out << "services:\n";
  for (const auto& service : services) {
    out << "  - name: " << service.name << "\n"
        << "    policy: " << service.policy << "\n"
        << "    connect_timeout: " << service.connect_timeout << "\n"
        << "    retries: " << service.retries << "\n"
        << "    backends:\n";
    for (const auto& backend : service.backends)
      out << "      - { name: " << backend.name << ", address: \"" << backend.address.to_string()
          << "\", weight: " << backend.weight << " }\n";
  }
  return out.str();
}

std::string single_service_config(const ServiceSpec& service, const ListenerSpec& listener) {
  ListenerSpec front = listener;
  front.service = service.name;
  return ConfigSpec{.listeners = {front}, .services = {service}}.yaml();
}

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  return *end == '\0' ? value : fallback;
}

}  // namespace sluice::it
