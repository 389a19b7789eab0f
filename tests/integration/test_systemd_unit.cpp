// The systemd unit (packaging/sluice.service) as systemd uses it: its ExecReload run as systemd
// runs it (each line in turn, $MAINPID and ${CONFIG} substituted, stopping at the first that fails
// unless it starts with '-'), so that `systemctl reload` fails on a bad config without touching the
// daemon and reloads a good one; and Type=notify: the datagrams sluice sends to $NOTIFY_SOCKET.

#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "processes.hpp"
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

/// A service manager's notification socket: a unix datagram socket bound in a fresh directory.
class NotifySocket {
 public:
  NotifySocket() : path_(directory_.path() + "/notify") {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE_MESSAGE(fd_ >= 0, "socket: " << std::strerror(errno));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof(address.sun_path));
    std::memcpy(address.sun_path, path_.c_str(), path_.size());
    REQUIRE_MESSAGE(::bind(fd_, sluice::as_sockaddr(&address), sizeof(address)) == 0, "bind: " << std::strerror(errno));
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  const std::string& path() const { return path_; }

  /// The next datagram, or "" when none arrives within `timeout`.
  std::string receive(Millis timeout) {
    pollfd ready{.fd = fd_, .events = POLLIN, .revents = 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) != 1) return "";
    char buffer[512];
    const ssize_t size = ::recv(fd_, buffer, sizeof(buffer), 0);
    return size > 0 ? std::string(buffer, static_cast<std::size_t>(size)) : "";
  }

 private:
  TempDir directory_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace

TEST_CASE("systemd unit: Type=notify, READY=1 once serving, RELOADING=1 and READY=1 around each reload, STOPPING=1 at the drain") {
  std::ifstream unit(std::filesystem::path(SLUICE_SOURCE_DIR) / "packaging/sluice.service");
  std::ostringstream text;
  text << unit.rdbuf();
  REQUIRE(text.str().find("\nType=notify\n") != std::string::npos);

  NameServer a("a");
  NotifySocket notify;
  TempConfig file(name_servers_config({&a}));
  DaemonProcess daemon(file, {}, Launch{.environment = {"NOTIFY_SOCKET=" + notify.path()}});
  CHECK(notify.receive(scaled(Millis(10s))) == "READY=1");
  // Ready means serving: the listener and the admin answer without a wait.
  const Address proxy = daemon.wait_listening_on("web", scaled(Millis(2s)));  // the port, from the log
  CHECK(served_by(proxy) == "a");
  const Address admin = wait_admin_address(daemon, scaled(Millis(2s)));
  CHECK(metric(scrape(admin), kReloadsOk) == 0);

  daemon.send_signal(SIGHUP);
  CHECK(notify.receive(scaled(Millis(5s))) == "RELOADING=1");
  CHECK(notify.receive(scaled(Millis(5s))) == "READY=1");
  CHECK(metric(scrape(admin), kReloadsOk) == 1);
  // A rejected reload (the watcher sees the bad file) ends in READY=1 too: the old config serves.
  file.write(name_servers_config({&a}) + "    bogus_key: 1\n");
  CHECK(notify.receive(scaled(Millis(5s))) == "RELOADING=1");
  CHECK(notify.receive(scaled(Millis(5s))) == "READY=1");
  CHECK(metric(scrape(admin), kReloadsFailed) == 1);

  daemon.send_signal(SIGTERM);
  CHECK(notify.receive(scaled(Millis(5s))) == "STOPPING=1");
  CHECK(daemon.wait_exit(scaled(Millis(10s))) == 0);
  CHECK(notify.receive(Millis(0)) == "");  // nothing after STOPPING=1
}

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
