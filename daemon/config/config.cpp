#include "sluice/config/config.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace sluice {
namespace {

// ---------------------------------------------------------------------------------------------
// Errors

// yaml-cpp marks are 0-based, and -1 when a node has no place (then the error has none either).
int one_based(int zero_based) { return zero_based >= 0 ? zero_based + 1 : 0; }

// Every error of one parse. Sections are checked in schema order, not file order, so the errors
// are sorted at the end; the sort is stable so errors at one place keep the order they were found.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& at, std::string message) {
    errors_.push_back({file_, one_based(at.line), one_based(at.column), std::move(message)});
  }
  void error_without_place(std::string message) { errors_.push_back({file_, 0, 0, std::move(message)}); }

  bool empty() const { return errors_.empty(); }

  std::vector<ConfigError> take_in_file_order() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(errors_);
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

// How a value reads in "expected X, got Y".
std::string describe(const YAML::Node& value) {
  switch (value.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "'" + value.Scalar() + "'";
    default:
      return "an empty value";
  }
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbours (the usual typing slip) each cost one. Three rows, not a matrix: names come from the
// file and may be long.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// Words longer than this get no hint: no one mistypes a 65-character name, and the distance costs
// the product of the lengths.
constexpr std::size_t kMaxHintLength = 64;

// "; did you mean 'x'?" when one candidate is close enough to be a typo of `word`, else "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  if (word.size() > kMaxHintLength) return "";
  std::size_t allowed = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  const std::string* best = nullptr;
  std::size_t best_distance = allowed + 1;
  for (const std::string& candidate : candidates) {
    // The distance is at least the difference of the lengths.
    if (candidate.size() > word.size() + allowed || word.size() > candidate.size() + allowed) continue;
    std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best != nullptr ? "; did you mean '" + *best + "'?" : "";
}

// ---------------------------------------------------------------------------------------------
// Value parsers: each turns one YAML value into a T, or returns nullopt and says why in `why`.
// The caller prefixes the key, so `why` reads "expected ..., got ..." or states the rule broken.

std::optional<std::string> string_value(const YAML::Node& value, std::string& why) {
  if (!value.IsScalar()) {
    why = "expected a string, got " + describe(value);
    return std::nullopt;
  }
  return value.Scalar();
}

std::optional<std::string> name_value(const YAML::Node& value, std::string& why) {
  auto name = string_value(value, why);
  if (name && name->empty()) {
    why = "must not be empty";
    return std::nullopt;
  }
  return name;
}

// Listener names end up in metric labels and log lines, so they are kept to a plain alphabet.
std::optional<std::string> listener_name_value(const YAML::Node& value, std::string& why) {
  auto name = name_value(value, why);
  auto is_allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  };
  if (name && !std::all_of(name->begin(), name->end(), is_allowed)) {
    why = "'" + *name + "' may only contain letters, digits, '_', '.' and '-'";
    return std::nullopt;
  }
  return name;
}

auto uint_value(std::uint32_t min, std::uint32_t max) {
  return [=](const YAML::Node& value, std::string& why) -> std::optional<std::uint32_t> {
    const std::string text = value.IsScalar() ? value.Scalar() : "";
    bool all_digits =
        !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!all_digits) {
      why = "expected a non-negative integer, got " + describe(value);
      return std::nullopt;
    }
    std::uint64_t number = 0;
    auto result = std::from_chars(text.data(), text.data() + text.size(), number);
    if (result.ec != std::errc{} || number < min || number > max) {
      why = text + " is out of range " + std::to_string(min) + ".." + std::to_string(max);
      return std::nullopt;
    }
    return static_cast<std::uint32_t>(number);
  };
}

// `workers`: a count, or `auto` (stored as 0) for one per core.
std::optional<std::uint32_t> workers_value(const YAML::Node& value, std::string& why) {
  if (value.IsScalar() && value.Scalar() == "auto") return 0;
  auto count = uint_value(1, Config::kMaxWorkers)(value, why);
  if (!count) why += " (or auto, one per core)";
  return count;
}

enum class Zero { allowed, refused };

auto duration_value(Zero zero) {
  return [=](const YAML::Node& value, std::string& why) -> std::optional<Millis> {
    auto duration = value.IsScalar() ? parse_duration(value.Scalar()) : std::nullopt;
    if (!duration) {
      why = "expected a duration such as 250ms, 2s, 1m or 1h, got " + describe(value);
      return std::nullopt;
    }
    if (zero == Zero::refused && duration->count() == 0) {
      why = "must be greater than 0, got " + describe(value);
      return std::nullopt;
    }
    return duration;
  };
}

auto endpoint_value(Zero port_zero) {
  return [=](const YAML::Node& value, std::string& why) -> std::optional<Endpoint> {
    if (!value.IsScalar()) {
      why = "expected an address host:port, got " + describe(value);
      return std::nullopt;
    }
    auto endpoint = parse_endpoint(value.Scalar(), &why);
    if (endpoint && endpoint->port == 0 && port_zero == Zero::refused) {
      why = "port 0 is not allowed here; use 1..65535";
      return std::nullopt;
    }
    return endpoint;
  };
}

std::optional<bool> bool_value(const YAML::Node& value, std::string& why) {
  if (value.IsScalar() && (value.Scalar() == "true" || value.Scalar() == "false")) {
    return value.Scalar() == "true";
  }
  why = "expected true or false, got " + describe(value);
  return std::nullopt;
}

std::optional<Cidr> cidr_value(const YAML::Node& value, std::string& why) {
  if (!value.IsScalar()) {
    why = "expected an address range such as 10.0.0.0/8, got " + describe(value);
    return std::nullopt;
  }
  return Cidr::parse(value.Scalar(), &why);
}

template <class T>
auto one_of(std::vector<std::pair<std::string, T>> choices) {
  return [choices = std::move(choices)](const YAML::Node& value, std::string& why) -> std::optional<T> {
    std::vector<std::string> names;
    for (const auto& [name, result] : choices) {
      if (value.IsScalar() && value.Scalar() == name) return result;
      names.push_back(name);
    }
    std::string listed;
    for (const std::string& name : names) listed += (listed.empty() ? "" : ", ") + name;
    why = "expected one of " + listed + ", got " + describe(value);
    if (value.IsScalar()) why += did_you_mean(value.Scalar(), names);
    return std::nullopt;
  };
}

// ---------------------------------------------------------------------------------------------
// Maps

enum class Need { optional, required };

// Reads one YAML map. Every lookup records its key as part of the schema, so finish() can report
// all other keys as unknown (with a hint among the looked-up ones) without a second key list.
class KeyReader {
 public:
  struct Entry {
    YAML::Node key;
    YAML::Node value;

    // yaml-cpp places an empty value at the next token, often on the next line; point at the key.
    YAML::Mark where() const { return value.IsNull() ? key.Mark() : value.Mark(); }
  };

  // `context` names the map in messages ("service 'web'"); set_context() refines it once known.
  KeyReader(const YAML::Node& map, std::string context, Diagnostics& diag)
      : map_(map), context_(std::move(context)), diag_(diag) {
    for (auto it = map.begin(); it != map.end(); ++it) entries_.push_back({it->first, it->second});
  }

  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  // The first entry under `key`, or nullptr when absent (reported when the key is required).
  const Entry* find(std::string_view key, Need need = Need::optional) {
    if (std::find(schema_.begin(), schema_.end(), key) == schema_.end()) schema_.emplace_back(key);
    for (const Entry& entry : entries_) {
      if (entry.key.IsScalar() && entry.key.Scalar() == key) return &entry;
    }
    if (need == Need::required) {
      diag_.error(map_.Mark(), context_ + ": missing required key '" + std::string(key) + "'");
    }
    return nullptr;
  }

  // Parses the value under `key` into `out`; an absent optional key leaves `out` at its default.
  // Returns the entry when a value was read, nullptr when absent or rejected (and reported).
  template <class T, class Parser>
  const Entry* read(std::string_view key, T& out, Parser parse, Need need = Need::optional) {
    const Entry* entry = find(key, need);
    if (entry == nullptr) return nullptr;
    std::string why;
    auto parsed = parse(entry->value, why);
    if (!parsed) {
      diag_.error(entry->where(), std::string(key) + ": " + why);
      return nullptr;
    }
    out = std::move(*parsed);
    return entry;
  }

  // The items of the list under `key`. A required list must also have at least one item; a
  // list longer than `max_items` is reported and read no further.
  std::vector<YAML::Node> read_list(std::string_view key, Need need,
                                    std::size_t max_items = std::numeric_limits<std::size_t>::max()) {
    const Entry* entry = find(key, need);
    if (entry == nullptr) return {};
    if (!entry->value.IsSequence()) {
      diag_.error(entry->where(), std::string(key) + ": expected a list, got " + describe(entry->value));
      return {};
    }
    if (need == Need::required && entry->value.size() == 0) {
      diag_.error(entry->where(), std::string(key) + ": must have at least one item");
    }
    if (entry->value.size() > max_items) {
      diag_.error(entry->where(), std::string(key) + ": at most " + std::to_string(max_items) + " allowed, got " +
                                      std::to_string(entry->value.size()));
      return {};
    }
    return {entry->value.begin(), entry->value.end()};
  }

  // Reports keys that are repeated or that no lookup asked for. Call after all lookups.
  void finish() {
    std::unordered_map<std::string_view, int> first_lines;  // key -> 0-based line of its first entry
    for (const Entry& entry : entries_) {
      if (!entry.key.IsScalar()) {
        diag_.error(entry.key.Mark(),
                    "keys in " + context_ + " must be strings, got " + describe(entry.key));
        continue;
      }
      const std::string& key = entry.key.Scalar();
      auto [first, inserted] = first_lines.try_emplace(key, entry.key.Mark().line);
      if (!inserted) {
        diag_.error(entry.key.Mark(), "duplicate key '" + key + "' in " + context_ + " (first at line " +
                                          std::to_string(one_based(first->second)) + ")");
      } else if (std::find(schema_.begin(), schema_.end(), key) == schema_.end()) {
        diag_.error(entry.key.Mark(),
                    "unknown key '" + key + "' in " + context_ + did_you_mean(key, schema_));
      }
    }
  }

 private:
  YAML::Node map_;
  std::string context_;
  Diagnostics& diag_;
  std::vector<Entry> entries_;       // in file order, repeats included (yaml-cpp keeps them)
  std::vector<std::string> schema_;  // every key looked up, in lookup order
};

// Reports `value` unless it is a map; `what` names it in the message.
bool expect_map(const YAML::Node& value, const std::string& what, Diagnostics& diag) {
  if (!value.IsMap()) diag.error(value.Mark(), what + ": expected a map, got " + describe(value));
  return value.IsMap();
}

// Names that must be unique in one scope; a repeat is reported with the line of the first.
class UniqueNames {
 public:
  explicit UniqueNames(std::string kind) : kind_(std::move(kind)) {}

  void add(const std::string& name, const YAML::Mark& at, Diagnostics& diag) {
    auto [first, inserted] = first_lines_.try_emplace(name, one_based(at.line));
    if (!inserted) {
      diag.error(at, "duplicate " + kind_ + " name '" + name + "' (first defined at line " +
                         std::to_string(first->second) + ")");
    }
  }
  bool contains(const std::string& name) const { return first_lines_.count(name) != 0; }
  std::vector<std::string> names() const {
    std::vector<std::string> result;
    for (const auto& [name, line] : first_lines_) result.push_back(name);
    return result;
  }

 private:
  std::string kind_;
  std::map<std::string, int> first_lines_;
};

// ---------------------------------------------------------------------------------------------
// The schema (README "Configuration"), one function per section.

class ConfigParser {
 public:
  explicit ConfigParser(Diagnostics& diag) : diag_(diag) {}

  Config parse(const YAML::Node& root) {
    Config config;
    KeyReader keys(root, "top level", diag_);
    keys.read("workers", config.workers, workers_value);
    keys.read("drain_timeout", config.drain_timeout, duration_value(Zero::allowed));
    if (const auto* log = keys.find("log"); log != nullptr && expect_map(log->value, "log", diag_)) {
      config.log = parse_log(log->value);
    }
    if (const auto* admin = keys.find("admin"); admin != nullptr && expect_map(admin->value, "admin", diag_)) {
      config.admin = parse_admin(admin->value);
    }
    if (const auto* dns = keys.find("dns"); dns != nullptr && expect_map(dns->value, "dns", diag_)) {
      KeyReader dns_keys(dns->value, "dns", diag_);  // the values: config/dns_config.hpp
      for (const YAML::Node& item : dns_keys.read_list("servers", Need::optional)) {
        std::string why;  // each bad item at its own line
        if (auto server = dns_server_value(item, why)) config.dns.servers.push_back(*server);
        else diag_.error(item.Mark(), "servers: " + why);
      }
      dns_keys.read("timeout", config.dns.timeout, duration_value(Zero::refused));
      dns_keys.finish();
    }
    const auto listeners = keys.read_list("listeners", Need::required, kMaxListeners);
    for (std::size_t i = 0; i < listeners.size(); ++i) {
      std::string context = "listener #" + std::to_string(i + 1);
      if (expect_map(listeners[i], context, diag_)) {
        config.listeners.push_back(parse_listener(listeners[i], context));
      }
    }
    const auto services = keys.read_list("services", Need::required, kMaxServices);
    for (std::size_t i = 0; i < services.size(); ++i) {
      std::string context = "service #" + std::to_string(i + 1);
      if (expect_map(services[i], context, diag_)) {
        config.services.push_back(parse_service(services[i], context));
      }
    }
    keys.finish();
    check_service_references();
    return config;
  }

 private:
  // A listener's `service`, checked once every service name is known.
  struct ServiceReference {
    std::string listener_context;
    std::string service;
    YAML::Mark at;
  };

  LogConfig parse_log(const YAML::Node& map) {
    LogConfig log;
    KeyReader keys(map, "log", diag_);
    keys.read("level", log.level,
              one_of<std::string>({{"trace", "trace"},
                                   {"debug", "debug"},
                                   {"info", "info"},
                                   {"warn", "warn"},
                                   {"error", "error"}}));
    keys.read("format", log.format, one_of<LogFormat>({{"text", LogFormat::text}, {"json", LogFormat::json}}));
    keys.read("access_log", log.access_log, bool_value);
    keys.finish();
    return log;
  }

  AdminConfig parse_admin(const YAML::Node& map) {
    AdminConfig admin;
    KeyReader keys(map, "admin", diag_);
    Endpoint bind;
    if (keys.read("bind", bind, bind_endpoint_value, Need::required)) admin.bind = bind;
    keys.read("worker_timeout", admin.worker_timeout, duration_value(Zero::refused));
    keys.finish();
    return admin;
  }

  QueueConfig parse_queue(const YAML::Node& map, const std::string& service_context) {
    QueueConfig queue;
    KeyReader keys(map, "queue of " + service_context, diag_);
    keys.read("mode", queue.mode,
              one_of<QueueMode>({{"shared", QueueMode::shared}, {"per_backend", QueueMode::per_backend}}));
    keys.read("max_length", queue.max_length, uint_value(0, 1000000));
    keys.read("timeout", queue.timeout, duration_value(Zero::refused));
    keys.finish();
    return queue;
  }

  HealthCheckConfig parse_health_check(const YAML::Node& map, const std::string& service_context) {
    HealthCheckConfig check;
    KeyReader keys(map, "health_check of " + service_context, diag_);
    keys.read("enabled", check.enabled, bool_value);
    keys.read("interval", check.interval, duration_value(Zero::refused));
    const auto* timeout = keys.read("timeout", check.timeout, duration_value(Zero::refused));
    keys.read("rise", check.rise, uint_value(1, 100));
    keys.read("fall", check.fall, uint_value(1, 100));
    keys.finish();
    // One check at a time per backend: a check still running when the next is due would overlap.
    if (check.timeout > check.interval) {
      diag_.error(timeout != nullptr ? timeout->where() : map.Mark(),
                  "timeout: " + std::to_string(check.timeout.count()) + "ms is longer than interval " +
                      std::to_string(check.interval.count()) + "ms");
    }
    return check;
  }

  ListenerConfig parse_listener(const YAML::Node& map, std::string context) {
    ListenerConfig listener;
    KeyReader keys(map, std::move(context), diag_);
    if (const auto* name = keys.read("name", listener.name, listener_name_value, Need::required)) {
      keys.set_context("listener '" + listener.name + "'");
      listener_names_.add(listener.name, name->value.Mark(), diag_);
    }
    keys.read("bind", listener.bind, bind_endpoint_value, Need::required);
    if (const auto* service = keys.read("service", listener.service, name_value, Need::required)) {
      service_references_.push_back({keys.context(), listener.service, service->value.Mark()});
    }
    keys.read("max_connections", listener.max_connections,
              uint_value(1, std::numeric_limits<std::uint32_t>::max()));
    for (const YAML::Node& item : keys.read_list("allow", Need::optional)) {
      std::string why;
      if (auto cidr = cidr_value(item, why)) {
        listener.allow.push_back(*cidr);
      } else {
        diag_.error(item.Mark(), "allow: " + why);
      }
    }
    keys.read("idle_timeout", listener.idle_timeout, duration_value(Zero::refused));
    keys.read("backlog", listener.backlog, uint_value(1, 65535));
    keys.read("splice", listener.splice, bool_value);
    keys.finish();
    return listener;
  }

  ServiceConfig parse_service(const YAML::Node& map, std::string context) {
    ServiceConfig service;
    KeyReader keys(map, std::move(context), diag_);
    if (const auto* name = keys.read("name", service.name, name_value, Need::required)) {
      keys.set_context("service '" + service.name + "'");
      service_names_.add(service.name, name->value.Mark(), diag_);
    }
    keys.read("policy", service.policy,
              one_of<PolicyKind>({{"round_robin", PolicyKind::round_robin},
                                  {"least_connections", PolicyKind::least_connections}}));
    keys.read("connect_timeout", service.connect_timeout, duration_value(Zero::refused));
    keys.read("retries", service.retries, uint_value(0, 100));
    keys.read("resolve_interval", service.resolve_interval, duration_value(Zero::refused));
    if (const auto* queue = keys.find("queue");
        queue != nullptr && expect_map(queue->value, "queue of " + keys.context(), diag_)) {
      service.queue = parse_queue(queue->value, keys.context());
    }
    if (const auto* check = keys.find("health_check");
        check != nullptr && expect_map(check->value, "health_check of " + keys.context(), diag_)) {
      service.health_check = parse_health_check(check->value, keys.context());
    }
    UniqueNames backend_names("backend");
    const auto backends = keys.read_list("backends", Need::required, kMaxBackendsPerService);
    for (std::size_t i = 0; i < backends.size(); ++i) {
      std::string backend_context = "backend #" + std::to_string(i + 1) + " in " + keys.context();
      if (expect_map(backends[i], backend_context, diag_)) {
        service.backends.push_back(
            parse_backend(backends[i], backend_context, keys.context(), backend_names));
      }
    }
    keys.finish();
    return service;
  }

  BackendConfig parse_backend(const YAML::Node& map, std::string context, const std::string& service_context,
                              UniqueNames& backend_names) {
    BackendConfig backend;
    KeyReader keys(map, std::move(context), diag_);
    if (const auto* name = keys.read("name", backend.name, name_value, Need::required)) {
      keys.set_context("backend '" + backend.name + "' in " + service_context);
      backend_names.add(backend.name, name->value.Mark(), diag_);
    }
    keys.read("address", backend.address, endpoint_value(Zero::refused), Need::required);
    keys.read("node", backend.node, string_value);
    keys.read("weight", backend.weight, uint_value(1, 1000));
    keys.read("max_connections", backend.max_connections,
              uint_value(0, std::numeric_limits<std::uint32_t>::max()));
    keys.finish();
    return backend;
  }

  void check_service_references() {
    for (const ServiceReference& reference : service_references_) {
      if (!service_names_.contains(reference.service)) {
        diag_.error(reference.at, reference.listener_context + " refers to unknown service '" +
                                      reference.service + "'" +
                                      did_you_mean(reference.service, service_names_.names()));
      }
    }
  }

  Diagnostics& diag_;
  UniqueNames listener_names_{"listener"};
  UniqueNames service_names_{"service"};
  std::vector<ServiceReference> service_references_;
};

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// The whole file, or nullopt with errno's text in `error`.
std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char chunk[8192];
  // One byte past the limit is enough for parse_config to reject it (and /dev/zero ends here).
  while (text.size() <= kMaxConfigBytes) {
    const std::size_t n = std::fread(chunk, 1, sizeof chunk, file.get());
    if (n == 0) break;
    text.append(chunk, n);
  }
  if (std::ferror(file.get())) {  // e.g. EISDIR: fopen succeeds on a directory, reading fails
    error = std::strerror(errno);
    return std::nullopt;
  }
  return text;
}

// yaml-cpp 0.7's LoadAll never returns on a ',' at document level (e.g. "{...}," a flow-style
// config with a trailing comma): SingleDocParser emits an empty document without consuming the
// token, so each HandleNextDocument starts another at the same place and memory grows without
// bound. The documents are walked with the event parser first (no nodes are built); the place
// where a document starts where the previous one did is returned.
std::optional<YAML::Mark> stray_token_at(const std::string& text) {
  struct DocumentStarts : YAML::EventHandler {
    std::optional<YAML::Mark> previous;
    std::optional<YAML::Mark> stalled;
    void OnDocumentStart(const YAML::Mark& mark) override {
      if (previous && previous->pos == mark.pos) stalled = mark;
      previous = mark;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  };
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  while (!starts.stalled && parser.HandleNextDocument(starts)) {
  }
  return starts.stalled;  // a syntax error throws, as LoadAll would
}

}  // namespace

const ServiceConfig* Config::find_service(std::string_view name) const {
  auto it =
      std::find_if(services.begin(), services.end(), [&](const ServiceConfig& s) { return s.name == name; });
  return it != services.end() ? &*it : nullptr;
}

std::string ConfigError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ConfigResult parse_config(std::string_view yaml_text, const std::string& file_name) {
  Diagnostics diag(file_name);
  Config config;
  if (yaml_text.size() > kMaxConfigBytes) {
    diag.error_without_place("config is " + std::to_string(yaml_text.size()) + " bytes; at most " +
                             std::to_string(kMaxConfigBytes) + " are allowed");
    ConfigResult result;
    result.errors = diag.take_in_file_order();
    return result;
  }
  try {
    const std::string text(yaml_text);
    std::vector<YAML::Node> documents;
    if (auto at = stray_token_at(text)) {
      diag.error(*at, "YAML syntax error: unexpected ',' outside a flow collection");
    } else {
      documents = YAML::LoadAll(text);
    }
    if (!diag.empty()) {
      // the stray token is the one error
    } else if (documents.empty() || documents.front().IsNull()) {
      diag.error_without_place("config is empty");
    } else if (documents.size() > 1) {
      diag.error(documents[1].Mark(), "only one YAML document is allowed; remove the second '---'");
    } else if (expect_map(documents.front(), "top level", diag)) {
      config = ConfigParser(diag).parse(documents.front());
    }
  } catch (const YAML::ParserException& e) {
    diag.error(e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {  // not expected from the calls above; never let one escape
    diag.error(e.mark, "YAML error: " + e.msg);
  }

  ConfigResult result;
  if (diag.empty()) result.config = std::move(config);
  result.errors = diag.take_in_file_order();
  return result;
}

ConfigResult load_config(const std::string& path) {
  std::string error;
  std::optional<std::string> text = read_file(path, error);
  if (!text) {
    ConfigResult result;
    result.errors.push_back({path, 0, 0, "cannot read config: " + error});
    return result;
  }
  return parse_config(*text, path);
}

}  // namespace sluice
