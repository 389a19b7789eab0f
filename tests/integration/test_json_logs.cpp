// log.format: json (issue 20, part 6): every line on stdout one JSON object of one schema, the
// application lines and the access lines (tcp and http mode) alike: time (RFC 3339 UTC,
// microseconds), level, event, then the fields with their types. Real peers: sluice-backend
// behind the daemon, curl in front of it; names with spaces, quotes and '=' survive the trip.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <csignal>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "http_backend.hpp"
#include "netns.hpp"  // run_command

#ifndef SLUICE_BACKEND_BINARY
#error "SLUICE_BACKEND_BINARY must name the sluice-backend executable"
#endif

using namespace sluice::it;
using nlohmann::ordered_json;

namespace {

// Written quoted in the YAML; they must come back whole in the JSON fields.
const std::string kOddService = R"(tcp "one" a=b)";
const std::string kOddBackend = R"(refused "x" y=z)";

std::string yaml_quoted(const std::string& text) { return "'" + text + "'"; }

void curl(const Address& proxy, const std::string& path) {
  const CommandResult result =
      run_command({"/usr/bin/curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                   "http://" + proxy.to_string() + path});
  INFO("curl output: " << result.output);
  CHECK(result.exit_code == 0);
  CHECK(result.output == "200");
}

std::vector<ordered_json> with(const std::vector<ordered_json>& lines, const std::string& key, const std::string& value) {
  std::vector<ordered_json> found;
  for (const auto& line : lines) {
    if (line.contains(key) && line[key] == value) found.push_back(line);
  }
  return found;
}

}  // namespace

TEST_CASE("logs, json: every line one object of one schema, application and access lines, tcp and http") {
  const RunningBackend backend = start_listening_process(
      Command{{SLUICE_BACKEND_BINARY, "--listen", "127.0.0.1:0", "--name", "good"}},
      "sluice-backend good listening on 127.0.0.1:", 5s);
  RefusedPort refused;
  ConfigSpec config{
      .listeners = {ListenerSpec{.name = "web", .service = yaml_quoted(kOddService)},
                    ListenerSpec{.name = "api", .service = "api", .mode = "http"},
                    ListenerSpec{.name = "down", .service = "down"},
                    ListenerSpec{.name = "closed", .service = "api", .allow = {"10.0.0.0/8"}}},
      .services = {{.name = yaml_quoted(kOddService), .backends = {{.name = "good", .address = backend.address, .node = "n1"}}},
                   {.name = "api", .backends = {{.name = "good", .address = backend.address}}},
                   {.name = "down", .retries = 0, .backends = {{.name = yaml_quoted(kOddBackend), .address = refused.address()}}}},
      .admin = true,
      .access_log = true,
      .log_format = "json"};
  DaemonProcess daemon(config.yaml());
  const auto listeners = daemon.wait_listening(4);
  wait_admin_address(daemon);

  curl(listeners.at("web"), "/tcp");
  curl(listeners.at("web"), "/tcp");
  curl(listeners.at("api"), "/http");
  curl(listeners.at("api"), "/http");
  for (int i = 0; i < 3; ++i) {  // refused: one connect_failed line, the others suppressed and summed up
    Client client = Client::connect(listeners.at("down"));
    CHECK(client.read_until_end(5s).data.empty());
  }
  Client turned_away = Client::connect(listeners.at("closed"));  // not allowed: never queued, no backend
  CHECK(turned_away.read_until_end(5s).data.empty());
  daemon.send_signal(SIGTERM);
  const auto code = daemon.wait_exit(sluice::test::scaled(10s));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(daemon.lines(Stream::err).empty());

  // Every line: an object whose first members are time, level and event.
  const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  const std::set<std::string> levels = {"trace", "debug", "info", "warning", "error", "critical"};
  std::vector<ordered_json> lines;
  for (const std::string& text : daemon.lines(Stream::out)) {
    INFO("line: " << text);
    const ordered_json line = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
    REQUIRE(line.is_object());
    REQUIRE(line.size() >= 3);
    auto member = line.items().begin();
    CHECK(member.key() == "time");
    CHECK(std::regex_match(member.value().get<std::string>(), rfc3339));
    ++member;
    CHECK(member.key() == "level");
    CHECK(levels.contains(member.value().get<std::string>()));
    ++member;
    CHECK(member.key() == "event");
    CHECK(std::regex_match(member.value().get<std::string>(), std::regex("[a-z0-9_]+")));
    lines.push_back(line);
  }

  // Access lines, tcp: the connection's fields with their types; the odd name whole.
  const auto access = with(lines, "event", "access");
  const auto tcp = with(access, "listener", "web");
  REQUIRE(tcp.size() == 2);
  for (const auto& line : tcp) {
    INFO("line: " << line.dump());
    CHECK(line["client"].get<std::string>().starts_with("127.0.0.1:"));
    CHECK(line["service"] == kOddService);
    CHECK(line["backend"] == "good");
    CHECK(line["node"] == "n1");
    CHECK(line["queue_wait_seconds"].is_number());
    CHECK(line["connect_seconds"].is_number());
    CHECK(line["duration_seconds"].is_number());
    CHECK(line["bytes_from_client"].is_number_unsigned());
    CHECK(line["bytes_from_client"].get<std::uint64_t>() > 0);
    CHECK(line["bytes_from_backend"].get<std::uint64_t>() > 0);
    CHECK(line["end"].is_string());
    CHECK_FALSE(line.contains("method"));
  }
  // http: one per request, with method, path and status; a node never set is null.
  const auto http = with(access, "listener", "api");
  REQUIRE(http.size() == 2);
  for (const auto& line : http) {
    INFO("line: " << line.dump());
    CHECK(line["method"] == "GET");
    CHECK(line["path"] == "/http");
    CHECK(line["status"] == 200);
    CHECK(line["node"].is_null());
    CHECK_FALSE(line.contains("bytes_from_client"));  // not counted per request: no 0 that reads as a figure
    CHECK((line["connect_seconds"].is_number() || line["connect_seconds"].is_null()));  // null: a pooled connection
  }
  CHECK(http[0]["connect_seconds"].is_number());  // the first request had to connect
  // Refused: no connect ever made is null.
  const auto down = with(access, "listener", "down");
  REQUIRE(down.size() == 3);
  for (const auto& line : down) CHECK(line["connect_seconds"].is_null());
  const auto closed = with(access, "listener", "closed");
  REQUIRE(closed.size() == 1);
  CHECK(closed[0]["end"] == "not_allowed");
  CHECK(closed[0]["backend"].is_null());
  CHECK(closed[0]["queue_wait_seconds"].is_null());

  // Application lines: fields as fields, typed.
  const auto listening = with(lines, "event", "listening");
  REQUIRE(listening.size() == 4);
  CHECK(with(listening, "listener", "web").at(0)["service"] == kOddService);
  CHECK(with(listening, "listener", "api").at(0)["workers"] == 1);
  const auto failed = with(lines, "event", "connect_failed");
  REQUIRE(failed.size() >= 1);
  CHECK(failed[0]["service"] == "down");
  CHECK(failed[0]["backend"] == kOddBackend);
  CHECK(failed[0]["error"] == "ECONNREFUSED");
  CHECK(failed[0]["attempt"].is_number_integer());
  std::uint64_t suppressed = 0;
  for (const auto& line : with(lines, "event", "log_suppressed")) {
    CHECK(line["key"] == R"(connect_failed service=down backend="refused \"x\" y=z")");  // as the text line has it
    suppressed += line["lines"].get<std::uint64_t>();
  }
  CHECK(failed.size() + suppressed == 3);
  // Prose keeps its text as the message, its first word as the event.
  const auto starting = with(lines, "event", "sluice");
  REQUIRE(starting.size() == 1);
  CHECK(starting[0]["message"].get<std::string>().find(" starting with ") != std::string::npos);
  CHECK(with(lines, "event", "admin").at(0)["message"].get<std::string>().starts_with("admin listening address="));
  const auto stopped = with(lines, "event", "stopped");
  REQUIRE(stopped.size() == 1);
  CHECK(stopped[0].size() == 3);  // no fields
}
