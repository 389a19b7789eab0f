// The systemd unit's ExecReload (packaging/sluice.service) run as systemd runs it: each line in
// turn, $MAINPID and ${CONFIG} substituted, stopping at the first that fails unless it starts with
// '-'. `systemctl reload` must fail on a bad config without touching the daemon, and reload a good one.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "test_support.hpp"

using namespace sluice::it;
using sluice::test::scaled;

namespace {

constexpr const char* kReloadsOk = R"(sluice_config_reloads_total{result="success"})";
constexpr const char* kReloadsFailed = R"(sluice_config_reloads_total{result="failure"})";
constexpr const char* kUnitBinary = "/usr/bin/sluice";  // the unit's path of the daemon

struct ExecLine {
  bool ignore_failure = false;  // systemd's '-' prefix
  std::vector<std::string> argv;
};

/// The unit's ExecReload= lines, split into words (the unit quotes nothing).
std::vector<ExecLine> exec_reload_lines() {
  std::ifstream unit(std::filesystem::path(SLUICE_SOURCE_DIR) / "packaging/sluice.service");
  REQUIRE_MESSAGE(unit.good(), "cannot read packaging/sluice.service");
  std::vector<ExecLine> lines;
  for (std::string line; std::getline(unit, line);) {
    if (!line.starts_with("ExecReload=")) continue;
    ExecLine exec;
    std::string command = line.substr(std::string_view("ExecReload=").size());
    if (command.starts_with('-')) {
      exec.ignore_failure = true;
      command.erase(0, 1);
    }
    std::istringstream words(command);
    for (std::string word; words >> word;) exec.argv.push_back(word);
    lines.push_back(exec);
  }
  return lines;
}

struct ReloadRun {
  int code = 0;                 // the first failing line's exit code, else 0
  std::size_t lines_run = 0;
  std::string failure_output{};
};

/// Runs ExecReload against the daemon `main_pid` whose config is `config`; the unit's
/// /usr/bin/sluice is this build's binary.
ReloadRun run_exec_reload(const std::vector<ExecLine>& lines, pid_t main_pid, const std::string& config) {
  ReloadRun run;
  for (const ExecLine& line : lines) {
    std::vector<std::string> argv;
    for (const std::string& word : line.argv) {
      if (word == "$MAINPID" || word == "${MAINPID}") argv.push_back(std::to_string(main_pid));
      else if (word == "${CONFIG}" || word == "$CONFIG") argv.push_back(config);
      else if (word == kUnitBinary) argv.push_back(sluice_binary());
      else argv.push_back(word);
    }
    DaemonProcess process(Command{argv});
    const auto code = process.wait_exit(scaled(Millis(10s)));
    REQUIRE_MESSAGE(code.has_value(), "ExecReload line " << line.argv.front() << " did not exit");
    ++run.lines_run;
    if (*code != 0 && !line.ignore_failure) {
      run.code = *code;
      for (const auto& text : process.lines(Stream::err)) run.failure_output += text + "\n";
      break;
    }
  }
  return run;
}

}  // namespace

TEST_CASE("systemd unit: ExecReload fails on a bad config with the daemon untouched, and reloads a good one") {
  const std::vector<ExecLine> lines = exec_reload_lines();
  REQUIRE_MESSAGE(lines.size() >= 2, "the unit needs a check line and a signal line in ExecReload");

  NameServer a("a"), b("b");
  TempConfig file(name_servers_config({&a}));
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web", scaled(Millis(10s)));
  const Address admin = wait_admin_address(daemon, scaled(Millis(10s)));
  CHECK(served_by(proxy) == "a");

  // A bad file: the config watcher notices the change first (one failure counted). ExecReload
  // must then stop at its check, before any signal.
  file.write(name_servers_config({&b}) + "    bogus_key: 1\n");
  REQUIRE(wait_metric(admin, kReloadsFailed, 1, scaled(Millis(5s))));
  const ReloadRun bad = run_exec_reload(lines, daemon.pid(), file.path());
  CHECK_MESSAGE(bad.code != 0, "ExecReload succeeded on a bad config: systemctl reload would not fail");
  CHECK_MESSAGE(bad.lines_run == 1, "ExecReload went on after its check failed");
  CHECK_MESSAGE(bad.failure_output.find(file.path() + ":") != std::string::npos,
                "the check does not name the file and line: " << bad.failure_output);
  CHECK(daemon.running());
  CHECK(served_by(proxy) == "a");

  // A good file: the watcher's reload (success 1), then ExecReload's SIGHUP (success 2). The
  // failure count still 1 shows the failed ExecReload sent no signal.
  file.write(name_servers_config({&b}));
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled(Millis(5s))));
  CHECK(metric(scrape(admin), kReloadsFailed) == 1);
  CHECK(daemon.count_lines("reload rejected") == 1);

  const ReloadRun good = run_exec_reload(lines, daemon.pid(), file.path());
  CHECK_MESSAGE(good.code == 0, "ExecReload failed on a good config: " << good.failure_output);
  CHECK(good.lines_run == lines.size());
  CHECK(wait_metric(admin, kReloadsOk, 2, scaled(Millis(5s))));
  CHECK(metric(scrape(admin), kReloadsFailed) == 1);
  CHECK(served_by(proxy) == "b");
  CHECK(daemon.running());
}
