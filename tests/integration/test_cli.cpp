// The command line: --version, --help (the README's usage block), --log-level, and what is refused.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace sluice::it;
using sluice::test::scaled;

namespace {

struct Run {
  std::optional<int> code;
  std::vector<std::string> out;
  std::vector<std::string> err;
};

/// Runs `sluice ARGS...` to its exit.
Run run_sluice(std::vector<std::string> args) {
  args.insert(args.begin(), sluice_binary());
  DaemonProcess process(Command{std::move(args)});
  Run run;
  run.code = process.wait_exit(scaled(Millis(10s)));
  run.out = process.lines(Stream::out);
  run.err = process.lines(Stream::err);
  return run;
}

std::string read_source(const std::string& relative) {
  std::ifstream file(std::filesystem::path(SLUICE_SOURCE_DIR) / relative);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

/// The project's version, from `project(sluice VERSION X.Y.Z` in CMakeLists.txt.
std::string project_version() {
  std::smatch match;
  const std::string text = read_source("CMakeLists.txt");
  if (!std::regex_search(text, match, std::regex(R"(project\(sluice VERSION ([0-9.]+))")))
    throw std::runtime_error("no project version in CMakeLists.txt");
  return match[1];
}

/// The lines of the first ``` block after "## Running" in the README.
std::vector<std::string> readme_usage() {
  std::istringstream readme(read_source("README.md"));
  std::vector<std::string> block;
  bool in_section = false, in_block = false;
  for (std::string line; std::getline(readme, line);) {
    if (line == "## Running") in_section = true;
    else if (in_section && !in_block && line.starts_with("```")) in_block = true;
    else if (in_block && line.starts_with("```")) break;
    else if (in_block) block.push_back(line);
  }
  return block;
}

std::string join(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

/// Two loopback addresses free right now (bound, read, closed): for a daemon that announces nothing.
std::pair<Address, Address> free_addresses() {
  const Fd first = bind_tcp_socket(Address::loopback(AF_INET));
  const Fd second = bind_tcp_socket(Address::loopback(AF_INET));
  return {local_address(first.get()), local_address(second.get())};
}

/// Connects until `address` accepts; the daemon announces nothing at log level error.
bool wait_accepting(const Address& address, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    Client client;
    if (Client::try_connect(address, 500ms, client) == 0) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);  // the polling period
  }
}

/// A config with a listener on `proxy`, the admin on `admin` and log.level `level`.
std::string fixed_config(const NameServer& backend, const Address& proxy, const Address& admin,
                         const std::string& level) {
  ConfigSpec spec{.listeners = {ListenerSpec{.bind = proxy.to_string()}},
                  .services = {{.backends = {{backend.name(), backend.address()}}}},
                  .admin = true};
  spec.admin_bind = admin.to_string();
  std::string yaml = spec.yaml();
  const auto at = yaml.find("level: info");
  REQUIRE(at != std::string::npos);
  return yaml.replace(at, 11, "level: " + level);
}

std::size_t lines_with(const std::vector<std::string>& lines, const std::string& text) {
  std::size_t count = 0;
  for (const auto& line : lines) count += line.find(text) != std::string::npos;
  return count;
}

}  // namespace

TEST_CASE("cli: --version and -V print the project version and exit 0") {
  const std::string expected = "sluice " + project_version();
  for (const std::string flag : {"--version", "-V"}) {
    INFO(flag);
    const Run run = run_sluice({flag});
    REQUIRE(run.code.has_value());
    CHECK(*run.code == 0);
    CHECK(join(run.out) == expected + "\n");
    CHECK(join(run.err) == "");
  }
}

TEST_CASE("cli: --help and -h print the README's usage block, every option in it works, exit 0") {
  const std::vector<std::string> usage = readme_usage();
  REQUIRE(usage.size() >= 8);
  REQUIRE(usage.front().starts_with("sluice "));

  const Run help = run_sluice({"--help"});
  REQUIRE(help.code.has_value());
  CHECK(*help.code == 0);
  CHECK(join(help.err) == "");
  REQUIRE(!help.out.empty());
  CHECK(help.out.front() == "sluice " + project_version() + ": a TCP and HTTP/1.1 load balancer");
  // The README block is the help from its Usage line on, without "Usage: ".
  const auto at = std::find_if(help.out.begin(), help.out.end(),
                               [](const std::string& line) { return line.starts_with("Usage: "); });
  REQUIRE(at != help.out.end());
  std::vector<std::string> from_usage(at, help.out.end());
  from_usage.front().erase(0, 7);
  from_usage.resize(std::min(from_usage.size(), usage.size()));
  CHECK(join(from_usage) == join(usage));

  const Run short_help = run_sluice({"-h"});
  CHECK(short_help.code == 0);
  CHECK(join(short_help.out) == join(help.out));

  // Every option the block names is one the binary takes (and only those are named).
  std::set<std::string> named;
  const std::string block = join(usage);
  const std::regex option(R"((^|[ \[,])(--?[a-zA-Z][a-z-]*))");
  for (std::sregex_iterator it(block.begin(), block.end(), option), end; it != end; ++it) named.insert((*it)[2]);
  std::string named_text;
  for (const auto& name : named) named_text += name + " ";
  CHECK(named_text == "--check --config --help --log-level --version -V -c -h -l ");
  NameServer backend("a");
  const TempConfig config(single_service_config(ServiceSpec{.backends = {{"a", backend.address()}}}));
  const std::vector<std::vector<std::string>> uses = {
      {"--config", config.path(), "--check"},
      {"-c", config.path(), "--check"},
      {"--check", "--log-level", "warn", "--config", config.path()},
      {"--check", "-l", "warn", "-c", config.path()},
  };
  for (const auto& args : uses) {
    INFO(join(args));
    const Run run = run_sluice(args);
    CHECK(run.code == 0);
    CHECK(join(run.out) == config.path() + ": configuration ok\n");
    CHECK(join(run.err) == "");
  }
}

/// The OPTIONS section of the man page (packaging/sluice.1.in), troff's "\-" read as "-".
std::string man_options_section() {
  std::istringstream man(read_source("packaging/sluice.1.in"));
  std::string section;
  bool in_options = false;
  for (std::string line; std::getline(man, line);) {
    if (line.starts_with(".SH")) in_options = line == ".SH OPTIONS";
    else if (in_options) section += line + "\n";
  }
  return std::regex_replace(section, std::regex(R"(\\-)"), "-");
}

TEST_CASE("cli: the man page describes every option of --help, and its version is the project's") {
  const Run help = run_sluice({"--help"});
  REQUIRE(help.code == 0);
  const std::string text = join(help.out);
  const std::string options = man_options_section();
  REQUIRE_MESSAGE(!options.empty(), "packaging/sluice.1.in has no .SH OPTIONS section");
  std::set<std::string> named;
  const std::regex option(R"((^|[ \[,])(--?[a-zA-Z][a-z-]*))");
  for (std::sregex_iterator it(text.begin(), text.end(), option), end; it != end; ++it) named.insert((*it)[2]);
  CHECK(named.size() >= 9);
  for (const auto& name : named) {
    // An item line: ".B --check" or ".BR -c \", \" --config ..." (after unescaping).
    const std::regex item("(^|\\n)\\.(B|BR|I|IR) [^\\n]*" + name + "([^a-z-]|$)");
    CHECK_MESSAGE(std::regex_search(options, item), "the man page's OPTIONS lack " << name);
  }
  CHECK(read_source("packaging/sluice.1.in").find(R"("sluice @PROJECT_VERSION@")") != std::string::npos);
}

TEST_CASE("cli: --log-level error hides info lines, also after a reload that sets log.level, and keeps error lines") {
  NameServer backend("a");
  const auto [proxy, admin] = free_addresses();
  TempConfig config(fixed_config(backend, proxy, admin, "info"));
  DaemonProcess daemon(config, {"--log-level", "error"});
  REQUIRE(wait_accepting(admin, scaled(Millis(10s))));  // the admin is bound last
  CHECK(served_by(proxy) == "a");

  // A valid reload that asks for debug: the flag still wins.
  config.write(fixed_config(backend, proxy, admin, "debug"));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_scrape(
      admin, [](const std::string& t) { return find_metric(t, R"(sluice_config_reloads_total{result="success"})") >= 1; },
      scaled(Millis(5s))));
  CHECK(served_by(proxy) == "a");
  // An invalid one: its error is shown.
  config.write("listeners: 1\n");
  daemon.send_signal(SIGHUP);
  const auto rejected = daemon.wait_for_line("config: reload rejected", scaled(Millis(5s)));
  REQUIRE(rejected);
  CHECK(rejected->find(" error config: reload rejected") != std::string::npos);

  daemon.send_signal(SIGTERM);
  CHECK(daemon.wait_exit(scaled(Millis(5s))) == 0);
  const auto out = daemon.lines(Stream::out);
  INFO("stdout:\n" << join(out));
  CHECK(lines_with(out, " info ") == 0);
  for (const char* text : {"starting with", "listening listener=", "admin listening", "config: reloading",
                           "config: reload applied", "draining", "stopped"})
    CHECK_MESSAGE(lines_with(out, text) == 0, text);
}

TEST_CASE("cli: --log-level debug shows the info lines that log.level error hides") {
  NameServer backend("a");
  const auto [proxy, admin] = free_addresses();
  const TempConfig config(fixed_config(backend, proxy, admin, "error"));
  {
    DaemonProcess quiet(config);  // the config alone: no info line
    REQUIRE(wait_accepting(admin, scaled(Millis(10s))));
    CHECK(served_by(proxy) == "a");
    quiet.send_signal(SIGTERM);
    CHECK(quiet.wait_exit(scaled(Millis(5s))) == 0);
    CHECK(lines_with(quiet.lines(Stream::out), " info ") == 0);
  }
  DaemonProcess verbose(config, {"--log-level", "debug"});
  CHECK(verbose.wait_listening_on("web", scaled(Millis(10s))).port == proxy.port);
  CHECK(wait_admin_address(verbose, scaled(Millis(5s))).port == admin.port);
  CHECK(verbose.wait_for_line(" info sluice ", 0ms));  // "sluice VERSION starting with FILE"
  CHECK(served_by(proxy) == "a");
  verbose.send_signal(SIGTERM);
  CHECK(verbose.wait_exit(scaled(Millis(5s))) == 0);
  CHECK(verbose.count_lines(" info stopped") == 1);
}

TEST_CASE("cli: a bad or missing --log-level is refused with exit 2 and a clear error, nothing started") {
  NameServer backend("a");
  const TempConfig config(single_service_config(ServiceSpec{.backends = {{"a", backend.address()}}}));
  const Run bad = run_sluice({"--log-level", "verbose", "--config", config.path()});
  REQUIRE(bad.code.has_value());
  CHECK(*bad.code == 2);
  CHECK(join(bad.out) == "");
  CHECK(join(bad.err) == "sluice: --log-level 'verbose' is not one of trace, debug, info, warn, error\n");

  const Run missing = run_sluice({"--config", config.path(), "--log-level"});
  REQUIRE(missing.code.has_value());
  CHECK(*missing.code == 2);
  CHECK(join(missing.out) == "");
  CHECK(join(missing.err) == "sluice: option '--log-level' needs a value (see --help)\n");
  CHECK(backend.accepted() == 0);
}

TEST_CASE("cli: an unknown option or a stray argument is refused with exit 2, nothing started") {
  NameServer backend("a");
  const TempConfig config(single_service_config(ServiceSpec{.backends = {{"a", backend.address()}}}));
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--bogus", "--config", config.path()}, "sluice: unknown option '--bogus' (see --help)"},
      {{"-x", "--config", config.path()}, "sluice: unknown option '-x' (see --help)"},
      {{"--config", config.path(), "extra"}, "sluice: unexpected argument 'extra' (see --help)"},
  };
  for (const auto& entry : cases) {  // not a structured binding: clang 14 cannot capture one
    const std::vector<std::string>& args = entry.first;
    const std::string& error = entry.second;
    INFO(join(args));
    const Run run = run_sluice(args);
    REQUIRE(run.code.has_value());
    CHECK(*run.code == 2);
    CHECK(join(run.out) == "");
    CHECK(join(run.err) == error + "\n");
  }
  CHECK(backend.accepted() == 0);
}
