// `sluice --check`, and a daemon started on a bad config: errors as FILE:LINE:COL: message, exit 1.

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <initializer_list>

#include "harness.hpp"

using namespace sluice::it;

namespace {

/// The stderr line `FILE:LINE:COL: message` for `line` whose message mentions one of `words`.
std::optional<std::string> find_error(const std::vector<std::string>& lines, const std::string& file, int line,
                                      std::initializer_list<std::string_view> words) {
  const std::string prefix = file + ":" + std::to_string(line) + ":";
  for (const auto& text : lines) {
    if (!text.starts_with(prefix)) continue;
    std::size_t i = prefix.size();
    const std::size_t column_start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == column_start || text.compare(i, 2, ": ") != 0) continue;
    for (const auto word : words)
      if (text.find(word, i) != std::string::npos) return text;
  }
  return std::nullopt;
}

std::vector<std::string> lines_starting_with(const std::vector<std::string>& lines, const std::string& prefix) {
  std::vector<std::string> result;
  std::copy_if(lines.begin(), lines.end(), std::back_inserter(result),
               [&](const std::string& line) { return line.starts_with(prefix); });
  return result;
}

std::string join(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

}  // namespace

TEST_CASE("check accepts a good config with exit 0") {
  RefusedPort backend;  // a real reserved port; --check must not connect anyway
  const TempConfig config(single_service_config(ServiceSpec{.backends = {{"a", backend.address()}}}));
  DaemonProcess check(config, {"--check"});
  const auto code = check.wait_exit(10s);
  REQUIRE_MESSAGE(code.has_value(), "sluice --check did not exit within 10 s");
  CHECK(*code == 0);
  CHECK(!check.lines(Stream::out).empty());
  CHECK(lines_starting_with(check.lines(Stream::err), config.path() + ":").empty());
}

TEST_CASE("check and start both reject a bad config with FILE LINE COL errors and exit 1") {
  RefusedPort backend;
  const TempConfig config(
      "drain_timeout: 5s\n"                    // 1
      "log: { level: info }\n"                 // 2
      "bogus_key: 1\n"                         // 3  unknown key
      "listeners:\n"                           // 4
      "  - name: web\n"                        // 5
      "    bind: \"127.0.0.1:0\"\n"            // 6
      "    idle_timeout: 5 parsecs\n"          // 7  bad duration
      "    service: web\n"                     // 8
      "services:\n"                            // 9
      "  - name: web\n"                        // 10
      "    policy: round_robin\n"              // 11
      "    connect_timeout: 2s\n"              // 12
      "    retries: 2\n"                       // 13
      "    backends:\n"                        // 14
      "      - { name: a, address: \"" + backend.address().to_string() + "\", weight: 1 }\n");  // 15

  DaemonProcess check(config, {"--check"});
  const auto check_code = check.wait_exit(10s);
  REQUIRE_MESSAGE(check_code.has_value(), "sluice --check did not exit within 10 s");
  CHECK(*check_code == 1);
  const auto check_errors = check.lines(Stream::err);
  INFO("stderr of --check:\n" << join(check_errors));
  CHECK(find_error(check_errors, config.path(), 3, {"bogus_key"}).has_value());
  CHECK(find_error(check_errors, config.path(), 7, {"duration", "idle_timeout", "parsecs"}).has_value());

  DaemonProcess start(config);
  const auto start_code = start.wait_exit(10s);
  REQUIRE_MESSAGE(start_code.has_value(), "sluice on a bad config did not exit within 10 s");
  CHECK(*start_code == 1);
  const auto start_errors = start.lines(Stream::err);
  INFO("stderr of the daemon:\n" << join(start_errors));
  const std::string prefix = config.path() + ":";
  CHECK(!lines_starting_with(check_errors, prefix).empty());
  CHECK(lines_starting_with(start_errors, prefix) == lines_starting_with(check_errors, prefix));
}

TEST_CASE("every example in config/ passes --check") {
  std::vector<std::string> examples;
  const std::filesystem::path directory = std::filesystem::path(SLUICE_SOURCE_DIR) / "config";
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.path().extension() == ".yaml") examples.push_back(entry.path().string());
  }
  CHECK(examples.size() >= 2);  // demo.yaml, minikube.yaml
  for (const std::string& path : examples) {
    DaemonProcess check(Command{{sluice_binary(), "--check", "--config", path}});
    const auto code = check.wait_exit(10s);
    REQUIRE_MESSAGE(code.has_value(), path << ": sluice --check did not exit within 10 s");
    CHECK_MESSAGE(*code == 0, path << ":\n" << check.transcript());
  }
}
