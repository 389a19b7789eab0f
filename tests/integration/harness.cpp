#include "harness.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::it {

std::string ConfigSpec::yaml() const {
  std::ostringstream out;
  if (workers != 1) out << "workers: " << workers << "\n";
  out << "drain_timeout: " << drain_timeout << "\n"
      << "log: { level: info";
  if (log_format != "text") out << ", format: " << log_format;
  if (access_log) out << ", access_log: true";
  out << " }\n";
  if (admin) {
    out << "admin: { bind: \"" << admin_bind << "\"";
    if (!admin_worker_timeout.empty()) out << ", worker_timeout: " << admin_worker_timeout;
    out << " }\n";
  }
  if (!http.empty()) out << "http: " << http << "\n";
  out << "listeners:\n";
  for (const auto& listener : listeners) {
    out << "  - name: " << listener.name << "\n"
        << "    bind: \"" << listener.bind << "\"\n"
        << "    service: " << listener.service << "\n";
    if (!listener.idle_timeout.empty()) out << "    idle_timeout: " << listener.idle_timeout << "\n";
    if (listener.max_connections != 0) out << "    max_connections: " << listener.max_connections << "\n";
    if (listener.splice) out << "    splice: " << (*listener.splice ? "true" : "false") << "\n";
    if (!listener.mode.empty()) out << "    mode: " << listener.mode << "\n";
    if (!listener.allow.empty()) {
      out << "    allow: [";
      for (std::size_t i = 0; i < listener.allow.size(); ++i) out << (i ? ", \"" : "\"") << listener.allow[i] << "\"";
      out << "]\n";
    }
  }
  out << "services:\n";
  for (const auto& service : services) {
    out << "  - name: " << service.name << "\n"
        << "    policy: " << service.policy << "\n"
        << "    connect_timeout: " << service.connect_timeout << "\n"
        << "    retries: " << service.retries << "\n";
    if (service.queue)
      out << "    queue: { mode: " << service.queue->mode << ", max_length: " << service.queue->max_length
          << ", timeout: " << service.queue->timeout << " }\n";
    if (!service.resolve_interval.empty()) out << "    resolve_interval: " << service.resolve_interval << "\n";
    if (const auto& check = service.health_check)
      out << "    health_check: { enabled: " << (check->enabled ? "true" : "false") << ", interval: " << check->interval
          << ", timeout: " << check->timeout << ", rise: " << check->rise << ", fall: " << check->fall
          << (check->http.empty() ? "" : ", http: { " + check->http + " }") << " }\n";
    out << "    backends:\n";
    for (const auto& backend : service.backends) {
      out << "      - { name: " << backend.name << ", address: \"" << backend.address.to_string()
          << "\", weight: " << backend.weight;
      if (!backend.node.empty()) out << ", node: " << backend.node;
      if (backend.max_connections != 0) out << ", max_connections: " << backend.max_connections;
      out << " }\n";
    }
  }
  return out.str();
}

std::string single_service_config(const ServiceSpec& service, const ListenerSpec& listener) {
  ListenerSpec front = listener;
  front.service = service.name;
  return ConfigSpec{.listeners = {front}, .services = {service}}.yaml();
}

std::string name_servers_config(const std::vector<const NameServer*>& backends, std::uint32_t workers,
                                const std::string& admin_worker_timeout) {
  ConfigSpec spec;
  spec.workers = workers;
  spec.admin = true;
  spec.admin_worker_timeout = admin_worker_timeout;
  spec.listeners = {ListenerSpec{}};
  ServiceSpec service;
  for (const NameServer* backend : backends) service.backends.push_back({backend->name(), backend->address()});
  spec.services = {service};
  return spec.yaml();
}

std::string served_by(const Address& proxy) {
  Client client = Client::connect(proxy);
  std::string data = client.read_until_end(2s).data;
  return data.empty() ? "" : data.substr(0, data.size() - 1);
}

Address wait_admin_address(DaemonProcess& daemon, Millis timeout) {
  static constexpr std::string_view key = "admin listening address=";
  const auto line = daemon.wait_for_line(key, timeout);
  if (!line) throw std::runtime_error("no `admin listening address=` line from sluice");
  const auto begin = line->find(key) + key.size();
  const auto end = line->find_first_of(" \"", begin);
  return Address::parse(std::string_view(*line).substr(begin, end == std::string::npos ? end : end - begin));
}

// ---- HTTP and Prometheus text ----

HttpResponse http_get(const Address& server, const std::string& path, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  Client client = Client::connect(server, timeout);
  client.send_all("GET " + path + " HTTP/1.1\r\nHost: " + server.to_string() +
                  "\r\nUser-Agent: sluice-integration-tests\r\nConnection: close\r\n\r\n");
  const ReadResult result =
      client.read_until_end(std::chrono::duration_cast<Millis>(deadline - Clock::now()));
  if (result.end != End::eof)
    throw std::runtime_error("http GET " + path + " from " + server.to_string() + ": ended with " +
                             to_string(result.end) + " after " + std::to_string(result.data.size()) + " bytes");
  std::string why;
  auto message = sluice::http::read_whole_message(sluice::http::Kind::response, result.data, &why);
  if (!message)
    throw std::runtime_error("http GET " + path + ": malformed response (" + why + "): " + result.data.substr(0, 200));
  HttpResponse response;
  response.status = message->head.status;
  response.head = std::move(message->head);
  response.body = std::move(message->body);
  return response;
}

sluice::http::Message read_response(Client& client, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  sluice::http::MessageReader reader(sluice::http::Kind::response);
  while (reader.messages().empty()) {
    const auto left = std::max(Millis(1), std::chrono::duration_cast<Millis>(deadline - Clock::now()));
    if (reader.feed(client.read_exact(1, left)).stop == sluice::http::Stop::error)
      throw std::runtime_error("http: malformed response: " + reader.parser().error().reason);
  }
  return std::move(reader.messages().front());
}

std::string scrape(const Address& admin) {
  HttpResponse response = http_get(admin, "/metrics");
  if (response.status != 200)
    throw std::runtime_error("GET /metrics: status " + std::to_string(response.status) + ": " + response.body);
  return std::move(response.body);
}

std::optional<double> find_metric(std::string_view text, std::string_view series) {
  while (!text.empty()) {
    const auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (line.empty() || line.front() == '#') continue;
    // The series ends at the closing brace of its labels, or at the first space without labels.
    const auto brace = line.find('{');
    const auto space = line.find(' ');
    std::size_t series_end = space;
    if (brace != std::string_view::npos && brace < space) {
      const auto close = line.rfind('}');
      if (close == std::string_view::npos) continue;
      series_end = close + 1;
    }
    if (series_end == std::string_view::npos || line.substr(0, series_end) != series) continue;
    const std::string value(line.substr(series_end));
    char* end = nullptr;
    const double parsed = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) return std::nullopt;
    return parsed;
  }
  return std::nullopt;
}

double metric(std::string_view text, std::string_view series) {
  if (auto value = find_metric(text, series)) return *value;
  throw std::runtime_error("no sample " + std::string(series) + " in the scrape");
}

std::optional<std::string> wait_scrape(const Address& admin, const std::function<bool(const std::string&)>& done,
                                       Millis timeout, std::string* last) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::string text = scrape(admin);
    const bool satisfied = done(text);
    if (last) *last = text;
    if (satisfied) return text;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);  // the polling period, not a wait for the daemon
  }
}

bool wait_metric(const Address& admin, std::string_view series, double value, Millis timeout, double* seen) {
  double last = std::numeric_limits<double>::quiet_NaN();
  const bool reached = wait_scrape(
                           admin,
                           [&](const std::string& text) {
                             last = find_metric(text, series).value_or(std::numeric_limits<double>::quiet_NaN());
                             return last == value;
                           },
                           timeout)
                           .has_value();
  if (seen) *seen = last;
  return reached;
}

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  return *end == '\0' ? value : fallback;
}

}  // namespace sluice::it
