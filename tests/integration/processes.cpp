#include "processes.hpp"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "client.hpp"
#include "netns.hpp"  // run_command

namespace sluice::it {

std::optional<std::string> find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string_view directories = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!directories.empty()) {
    const auto colon = directories.find(':');
    const std::string candidate = std::string(directories.substr(0, colon)) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    directories.remove_prefix(colon == std::string_view::npos ? directories.size() : colon + 1);
  }
  return std::nullopt;
}

std::optional<std::string> postgres_bin_dir() {
  namespace fs = std::filesystem;
  std::error_code error;
  int best_version = -1;
  std::optional<std::string> best;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", error)) {
    const std::string version_text = entry.path().filename().string();
    if (version_text.empty() || version_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string bin = (entry.path() / "bin").string();
    static constexpr const char* kTools[] = {"initdb", "postgres", "pgbench"};
    const bool complete = std::all_of(std::begin(kTools), std::end(kTools), [&](const char* tool) {
      return ::access((bin + "/" + tool).c_str(), X_OK) == 0;
    });
    const int version = std::stoi(version_text);
    if (complete && version > best_version) {
      best_version = version;
      best = bin;
    }
  }
  return best;
}

std::uint16_t free_port() {
  Fd fd = bind_tcp_socket(Address::loopback(AF_INET));
  return local_address(fd.get()).port;
}

// ---- TempDir ----

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "sluice-it-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp", errno);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

// ---- descendants ----

std::vector<pid_t> descendants(pid_t root) {
  // pid -> parent, from /proc/PID/stat ("PID (COMM) STATE PPID ...": COMM may hold spaces and
  // parentheses, so the fields are read after the last ')').
  std::vector<std::pair<pid_t, pid_t>> parents;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string text;
    std::getline(stat, text);
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 1));
    std::string state;
    pid_t parent = 0;
    if (fields >> state >> parent) parents.emplace_back(static_cast<pid_t>(std::stol(name)), parent);
  }
  std::vector<pid_t> found;
  std::vector<pid_t> frontier = {root};
  while (!frontier.empty()) {
    const pid_t parent = frontier.back();
    frontier.pop_back();
    for (const auto& [pid, ppid] : parents) {
      if (ppid == parent && std::find(found.begin(), found.end(), pid) == found.end()) {
        found.push_back(pid);
        frontier.push_back(pid);
      }
    }
  }
  return found;
}

// ---- RedisServer ----

RedisServer::RedisServer(const std::string& redis_server) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    address_ = Address{"127.0.0.1", free_port()};
    process_ = std::make_unique<DaemonProcess>(Command{{redis_server, "--port", std::to_string(address_.port), "--bind",
                                                        "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                                                        directory_.path(), "--daemonize", "no", "--logfile", ""}});
    const auto line = process_->wait_for_line(
        [](const std::string& text) {
          return text.find("Ready to accept connections") != std::string::npos ||
                 text.find("Address already in use") != std::string::npos;
        },
        15s);
    if (line && line->find("Ready to accept connections") != std::string::npos) return;
    const bool port_taken = line.has_value();
    process_->send_signal(SIGKILL);
    process_->wait_exit(5s);
    if (!port_taken) throw std::runtime_error("redis-server did not start:\n" + process_->transcript());
  }
  throw std::runtime_error("redis-server: no free port in 5 attempts");
}

void RedisServer::kill() {
  process_->send_signal(SIGKILL);
  process_->wait_exit(5s);
}

std::string RedisServer::command(const std::string& line) const {
  Client client = Client::connect(address_);
  client.send_all(line + "\r\n");
  std::string head = client.read_line(5s);
  if (!head.empty() && head.back() == '\r') head.pop_back();
  if (head.empty()) throw std::runtime_error("redis: empty reply to " + line);
  switch (head.front()) {
    case '+':
    case ':':
      return head.substr(1);
    case '$': {
      const long length = std::stol(head.substr(1));
      if (length < 0) return {};
      std::string body = client.read_exact(static_cast<std::size_t>(length) + 2, 5s);
      body.resize(static_cast<std::size_t>(length));
      return body;
    }
    default:
      throw std::runtime_error("redis: " + line + ": " + head);
  }
}

long long RedisServer::info_number(const std::string& field) const {
  const std::string info = command("INFO");
  const auto at = info.find("\r\n" + field + ":");
  if (at == std::string::npos) throw std::runtime_error("redis INFO has no " + field);
  return std::stoll(info.substr(at + 3 + field.size()));
}

// ---- PostgresServer ----

namespace {

struct Account {
  std::string name;
  uid_t uid;
  gid_t gid;
};

Account unprivileged_account() {
  for (const char* name : {"postgres", "nobody"}) {
    if (const passwd* entry = ::getpwnam(name)) return {name, entry->pw_uid, entry->pw_gid};
  }
  throw std::runtime_error("no postgres or nobody account to run PostgreSQL as");
}

/// PostgreSQL refuses to run as root: as root, its programs run through setpriv as an unprivileged
/// account (setpriv execs in place, so a DaemonProcess's pid is the program's); else as we are.
std::vector<std::string> unprivileged_prefix() {
  if (::geteuid() != 0) return {};
  const Account account = unprivileged_account();
  return {"setpriv", "--reuid=" + std::to_string(account.uid), "--regid=" + std::to_string(account.gid),
          "--init-groups", "--"};
}

}  // namespace

PostgresServer::PostgresServer(const std::string& bin_dir, const std::string& template_data) : bin_dir_(bin_dir) {
  if (::geteuid() == 0) {
    const Account account = unprivileged_account();
    if (::chown(directory_.path().c_str(), account.uid, account.gid) != 0) throw_errno("chown", errno);
  }
  data_ = directory_.path() + "/data";
  CommandResult result;
  if (template_data.empty()) {
    std::vector<std::string> argv = unprivileged_prefix();
    argv.insert(argv.end(), {bin_dir_ + "/initdb", "-D", data_, "-U", "postgres", "--auth=trust", "--no-sync",
                             "--encoding=UTF8", "--locale=C"});
    result = run_command(argv, {}, 120s);
  } else {
    result = run_command({"cp", "-a", template_data, data_}, {}, 60s);
  }
  if (result.exit_code != 0)
    throw std::runtime_error((template_data.empty() ? "initdb" : "cp -a") + std::string(" failed (exit ") +
                             std::to_string(result.exit_code) + "):\n" + result.output);
}

void PostgresServer::start() {
  for (int attempt = 0; attempt < 5; ++attempt) {
    address_ = Address{"127.0.0.1", free_port()};
    Launch launch{.prefix = unprivileged_prefix()};
    process_ = std::make_unique<DaemonProcess>(
        Command{{bin_dir_ + "/postgres", "-D", data_, "-p", std::to_string(address_.port), "-c",
                 "listen_addresses=127.0.0.1", "-k", directory_.path(), "-c", "fsync=off", "-c",
                 "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=40", "-c",
                 "shared_buffers=16MB", "-c", "log_min_messages=warning", "-c", "logging_collector=off"}},
        launch);
    const auto line = process_->wait_for_line(
        [](const std::string& text) {
          return text.find("ready to accept connections") != std::string::npos ||
                 text.find("Address already in use") != std::string::npos;
        },
        60s);
    if (line && line->find("ready to accept connections") != std::string::npos) return;
    const bool port_taken = line.has_value();
    process_->send_signal(SIGKILL);
    process_->wait_exit(10s);
    if (!port_taken) throw std::runtime_error("postgres did not start:\n" + process_->transcript());
  }
  throw std::runtime_error("postgres: no free port in 5 attempts");
}

void PostgresServer::kill() {
  if (!process_ || killed_) return;
  killed_ = true;
  // Stopped, the postmaster neither reaps nor restarts its children: they stay its children (as
  // zombies once killed, so their pids cannot be reused) until the postmaster itself dies.
  ::kill(process_->pid(), SIGSTOP);
  for (const pid_t child : descendants(process_->pid())) ::kill(child, SIGKILL);
  process_->send_signal(SIGKILL);
  process_->wait_exit(10s);
}

PostgresServer::~PostgresServer() {
  if (!process_ || killed_) return;
  if (process_->running()) {
    // Immediate shutdown: the postmaster stops its children and exits after them.
    process_->send_signal(SIGQUIT);
    if (process_->wait_exit(15s)) return;
  }
  kill();
}

}  // namespace sluice::it
