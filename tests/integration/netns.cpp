#include "netns.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

namespace sluice::it {

namespace {

constexpr std::string_view kNetnsPrefix = "sluice-it-";  // namespace names: sluice-it-<tag>-<label>
const char* const kLockPath = "/run/lock/sluice-it-netns.lock";

/// The ip binary of iproute2, or "" when there is none.
const std::string& ip_path() {
  static const std::string path = [] {
    for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
      if (::access(candidate, X_OK) == 0) return std::string(candidate);
    return std::string();
  }();
  return path;
}

std::string joined(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& word : words) text += (text.empty() ? "" : " ") + word;
  return text;
}

/// Runs `ip ARGS...` (with `input` as a -batch script when given) and throws unless it succeeds.
std::string ip(std::vector<std::string> args, const std::string& input = {}) {
  args.insert(args.begin(), ip_path());
  const CommandResult result = run_command(args, input);
  if (result.exit_code != 0) {
    std::string what = joined(args) + " failed (exit " + std::to_string(result.exit_code) + "): " + result.output;
    if (!input.empty()) what += "\nscript:\n" + input;
    throw std::runtime_error(what);
  }
  return result.output;
}

/// `ip -force -batch -`: every line is tried, failures (things already gone) are ignored.
void ip_force(const std::string& script) {
  if (!script.empty()) run_command({ip_path(), "-force", "-batch", "-"}, script);
}

/// An exclusive flock held while a network picks its /24 and puts the address on its bridge, so
/// that two test processes never pick the same one.
class SubnetLock {
 public:
  SubnetLock() : fd_(::open(kLockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (!fd_) fd_ = Fd(::open("/tmp/sluice-it-netns.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd_) throw_errno("open the netns lock file", errno);
    while (::flock(fd_.get(), LOCK_EX) != 0)
      if (errno != EINTR) throw_errno("flock", errno);
  }  // closing the fd releases the lock

 private:
  Fd fd_;
};

/// "198.18.N" or "198.19.N" for index 0..511.
std::string subnet_prefix(unsigned index) {
  return (index < 256 ? "198.18." : "198.19.") + std::to_string(index % 256);
}

/// The first index from `preferred` on whose /24 no address or route of the root namespace lies.
unsigned free_subnet(unsigned preferred) {
  const std::string used = ip({"-o", "-4", "addr", "show"}) + ip({"-4", "route", "show", "table", "all"});
  for (unsigned i = 0; i < 512; ++i) {
    const unsigned index = (preferred + i) % 512;
    // Built with append, not " " + ... + ".": GCC 12 at -O3 warns falsely (-Wstringop-overflow).
    std::string needle(1, ' ');
    needle.append(subnet_prefix(index)).append(1, '.');
    if (used.find(needle) == std::string::npos) return index;
  }
  throw std::runtime_error("no free /24 in 198.18.0.0/15");
}

/// True when the process `pid` no longer exists.
bool dead(long pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

/// SIGKILLs every process in the namespace `netns` (by pid, as `ip netns pids` lists them).
void kill_processes_in(const std::string& netns) {
  const CommandResult pids = run_command({ip_path(), "netns", "pids", netns});
  if (pids.exit_code != 0) return;
  std::istringstream in(pids.output);
  for (long pid; in >> pid;)
    if (pid > 1 && pid != ::getpid()) ::kill(static_cast<pid_t>(pid), SIGKILL);
}

/// Removes namespaces and links that this helper made for a test process that has died (a
/// crashed or killed run), and those named with `own_tag` (leftovers of an earlier process that had
/// this pid).
// "sl<pid><letter>": the pid of the test process whose tag it is (no std::regex: GCC 12 warns
// falsely inside it under the sanitizers' -O1, and warnings are errors here).
std::optional<long> pid_of_tag(std::string_view tag) {
  if (!tag.starts_with("sl") || tag.size() < 4 || !std::islower(static_cast<unsigned char>(tag.back()))) {
    return std::nullopt;
  }
  const std::string_view digits = tag.substr(2, tag.size() - 3);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  return std::stol(std::string(digits));
}

// From an `ip -o link show` line "7: sl123abr: <...>" or "8: sl123av0@if9: <...>", the tag
// ("sl123a") and the suffix ("br" or "v0") of a link this helper made.
std::optional<std::pair<std::string, std::string>> our_link(const std::string& line) {
  const auto colon = line.find(": ");
  if (colon == std::string::npos) return std::nullopt;
  const std::string name = line.substr(colon + 2, line.find_first_of("@:", colon + 2) - colon - 2);
  for (std::size_t end = 3; end < name.size(); ++end) {
    if (!std::islower(static_cast<unsigned char>(name[end]))) continue;
    const std::string suffix = name.substr(end + 1);
    const bool bridge_or_veth =
        suffix == "br" || (suffix.size() > 1 && suffix[0] == 'v' &&
                           std::all_of(suffix.begin() + 1, suffix.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }));
    if (pid_of_tag(name.substr(0, end + 1)) && bridge_or_veth) return std::make_pair(name.substr(0, end + 1), suffix);
    return std::nullopt;
  }
  return std::nullopt;
}

void remove_leftovers(const std::string& own_tag) {
  auto stale = [&](const std::string& tag) {
    const auto pid = pid_of_tag(tag);
    return pid && (tag == own_tag || dead(*pid));
  };
  std::string script;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", error)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kNetnsPrefix)) continue;
    const std::string rest = name.substr(kNetnsPrefix.size());
    if (!stale(rest.substr(0, rest.find('-')))) continue;
    kill_processes_in(name);
    script += "netns del " + name + "\n";
    std::filesystem::remove_all("/etc/netns/" + name, error);
  }
  std::istringstream links(run_command({ip_path(), "-o", "link", "show"}).output);
  for (std::string line; std::getline(links, line);) {
    const auto link = our_link(line);
    if (link && stale(link->first)) script = "link del " + link->first + link->second + "\n" + script;  // links first
  }
  ip_force(script);
}

/// Replaces a file's content without replacing the file: the new bytes are written over the old
/// ones from offset 0 and the file is then cut to their length, so a reader never finds it empty.
void overwrite_in_place(const std::string& path, const std::string& text) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throw_errno("open " + path, errno);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::pwrite(fd.get(), text.data() + written, text.size() - written, static_cast<off_t>(written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("write " + path, errno);
    written += static_cast<std::size_t>(n);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(text.size())) != 0) throw_errno("truncate " + path, errno);
}

std::atomic<unsigned> g_instances{0};

}  // namespace

// ---- run_command ----

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw_errno("pipe2", errno);
  Fd in_read(in_pipe[0]);
  Fd in_write(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe2", errno);
  Fd out_read(out_pipe[0]);
  Fd out_write(out_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t signals;
  ::sigfillset(&signals);
  posix_spawnattr_setsigdefault(&attributes, &signals);  // e.g. SIGPIPE, which the tests ignore
  ::sigemptyset(&signals);
  posix_spawnattr_setsigmask(&attributes, &signals);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawn_error = ::posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error != 0) return CommandResult{127, "cannot run " + argv[0] + ": " + errno_text(spawn_error)};
  in_read.reset();
  out_write.reset();

  // The scripts are small (far below a pipe's capacity): write all, then read.
  std::size_t sent = 0;
  while (sent < input.size()) {
    const ssize_t n = ::write(in_write.get(), input.data() + sent, input.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  in_write.reset();

  CommandResult result;
  bool timed_out = false;
  for (;;) {
    if (poll_until(out_read.get(), POLLIN, deadline) == 0) {
      timed_out = true;
      break;
    }
    char buffer[4096];
    const ssize_t n = ::read(out_read.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buffer, static_cast<std::size_t>(n));
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (timed_out) result.output += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
  return result;
}

// ---- NetnsSupport ----

std::string NetnsSupport::check() {
  static const std::string reason = []() -> std::string {
    if (::geteuid() != 0) return "not running as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)";
    if (ip_path().empty()) return "no ip binary (install iproute2)";
    try {
      NetnsNetwork probe({"probe"}, 511);
      const CommandResult inside = probe.run("probe", {"true"});
      if (inside.exit_code != 0) return "ip netns exec failed: " + inside.output;
    } catch (const std::exception& e) {
      return std::string("cannot create network namespaces here: ") + e.what();
    }
    return {};
  }();
  return reason;
}

// ---- NetnsNetwork ----

NetnsNetwork::NetnsNetwork(const std::vector<std::string>& labels, unsigned preferred_subnet) {
  const unsigned instance = g_instances++;
  tag_ = "sl" + std::to_string(::getpid()) + static_cast<char>('a' + instance % 26);
  bridge_ = tag_ + "br";
  if (labels.empty() || labels.size() > 250) throw std::invalid_argument("NetnsNetwork: 1 to 250 nodes");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    nodes_.push_back(NetnsNode{.label = labels[i],
                               .netns = std::string(kNetnsPrefix) + tag_ + "-" + labels[i],
                               .host_link = tag_ + "v" + std::to_string(i)});
  }
  try {
    remove_leftovers(tag_);
    create(preferred_subnet);
  } catch (...) {
    destroy();
    throw;
  }
}

NetnsNetwork::~NetnsNetwork() { destroy(); }

void NetnsNetwork::create(unsigned preferred_subnet) {
  if (ip_path().empty()) throw std::runtime_error("no ip binary (install iproute2)");
  {
    SubnetLock lock;  // until the bridge holds its address
    const std::string prefix = subnet_prefix(free_subnet(preferred_subnet % 512));
    bridge_address_ = prefix + ".254";
    std::string script = "link add " + bridge_ + " type bridge\n" +
                         "addr add " + bridge_address_ + "/24 dev " + bridge_ + "\n" +
                         "link set " + bridge_ + " up\n";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      auto& node = nodes_[i];
      node.address = prefix + "." + std::to_string(i + 1);
      script += "netns add " + node.netns + "\n" +
                "link add " + node.host_link + " type veth peer name eth0 netns " + node.netns + "\n" +
                "link set " + node.host_link + " master " + bridge_ + "\n" +
                "link set " + node.host_link + " up\n";
    }
    ip({"-batch", "-"}, script);
  }
  for (const auto& node : nodes_) {
    ip({"-n", node.netns, "-batch", "-"},
       "link set lo up\naddr add " + node.address + "/24 dev eth0\nlink set eth0 up\n");
    std::filesystem::create_directories(etc_directory(node.label));
    write_hosts(node.label, "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    write_resolv_conf(node.label, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
  }
}

void NetnsNetwork::destroy() noexcept {
  try {
    std::string script;
    for (const auto& node : nodes_) {
      kill_processes_in(node.netns);
      script += "link del " + node.host_link + "\n";  // both ends at once, now
    }
    for (const auto& node : nodes_) script += "netns del " + node.netns + "\n";
    script += "link del " + bridge_ + "\n";
    ip_force(script);
    std::error_code ignored;
    for (const auto& node : nodes_) std::filesystem::remove_all("/etc/netns/" + node.netns, ignored);
    if (std::filesystem::is_empty("/etc/netns", ignored)) std::filesystem::remove("/etc/netns", ignored);
  } catch (...) {
    // A destructor: what could not be removed is removed by the next run (remove_leftovers).
  }
}

const NetnsNode& NetnsNetwork::node(std::string_view label) const {
  for (const auto& node : nodes_)
    if (node.label == label) return node;
  throw std::out_of_range("no node " + std::string(label));
}

std::vector<std::string> NetnsNetwork::exec_prefix(std::string_view label) const {
  return {ip_path(), "netns", "exec", node(label).netns};
}

Launch NetnsNetwork::launch(std::string_view label, std::vector<std::string> environment) const {
  return Launch{.prefix = exec_prefix(label), .environment = std::move(environment)};
}

CommandResult NetnsNetwork::run(std::string_view label, std::vector<std::string> argv, Millis timeout) const {
  std::vector<std::string> command = exec_prefix(label);
  command.insert(command.end(), argv.begin(), argv.end());
  return run_command(command, {}, timeout);
}

void NetnsNetwork::set_link(std::string_view label, bool up) {
  ip({"link", "set", "dev", node(label).host_link, up ? "up" : "down"});
}

std::string NetnsNetwork::etc_directory(std::string_view label) const { return "/etc/netns/" + node(label).netns; }

void NetnsNetwork::write_hosts(std::string_view label, const std::string& text) {
  overwrite_in_place(etc_directory(label) + "/hosts", text);
}

void NetnsNetwork::write_resolv_conf(std::string_view label, const std::string& text) {
  overwrite_in_place(etc_directory(label) + "/resolv.conf", text);
}

}  // namespace sluice::it
