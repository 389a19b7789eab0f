#pragma once
// A real DNS server for the tests: dnsmasq (Debian's dnsmasq-base) on 127.0.0.1 and a free port,
// answering only from a hosts file of the test's (A and AAAA records; several lines with one name
// are several records). Names under `.test` that the file lacks are NXDOMAIN (--local=/test/);
// any other name is REFUSED (no upstream server). set_hosts() rewrites the file and sends SIGHUP,
// on which dnsmasq reads it again.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

class Dnsmasq {
 public:
  static constexpr const char* kBinary = "/usr/sbin/dnsmasq";

  /// Empty when dnsmasq can run here, else why not (for SLUICE_SKIP).
  static std::string missing() {
    if (::access(kBinary, X_OK) == 0) return {};
    return "dnsmasq is not installed (apt-get install dnsmasq-base)";
  }

  explicit Dnsmasq(const std::string& hosts) {
    char pattern[] = "/tmp/sluice-dnsmasq-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    directory_ = pattern;
    write_hosts(hosts);
    // dnsmasq listens on UDP and TCP and exits if either port is taken. A port from the kernel's
    // ephemeral range may be a TCP client's local port a moment later (the suite opens thousands of
    // connections), so the port comes from below that range, is checked free for both, and a start
    // that still lost the race is tried again on another.
    for (int attempt = 0; attempt < 20 && pid_ <= 0; ++attempt) {
      port_ = free_port_below_ephemeral(attempt);
      pid_ = spawn();
      if (!wait_answering()) stop();
    }
    if (pid_ <= 0) {
      throw std::runtime_error("dnsmasq did not start answering on 127.0.0.1 (last port " + std::to_string(port_) +
                               "): " + last_error());
    }
  }
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;
  ~Dnsmasq() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  std::uint16_t port() const { return port_; }
  /// "127.0.0.1:PORT", as dns.servers takes it.
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

  /// Replaces the records (the file is swapped whole) and has dnsmasq read them again.
  void set_hosts(const std::string& hosts) {
    write_hosts(hosts);
    if (::kill(pid_, SIGHUP) != 0) throw std::runtime_error("cannot signal dnsmasq");
  }

 private:
  void write_hosts(const std::string& hosts) {
    const std::string next = directory_ + "/hosts.next";
    std::ofstream(next) << hosts;
    std::filesystem::rename(next, directory_ + "/hosts");
  }

  // Whether `type` (SOCK_DGRAM or SOCK_STREAM) can bind 127.0.0.1:port now.
  static bool can_bind(int type, std::uint16_t port) {
    const int fd = ::socket(AF_INET, type, 0);
    if (fd < 0) return false;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    const bool bound = ::bind(fd, static_cast<sockaddr*>(static_cast<void*>(&address)), sizeof address) == 0;
    ::close(fd);
    return bound;
  }

  // A port in [20000, 32768), below Linux's default ephemeral range, free for UDP and TCP now; spread by
  // process id and attempt so that tests running side by side start apart.
  static std::uint16_t free_port_below_ephemeral(int attempt) {
    constexpr int kFirst = 20000;
    constexpr int kCount = 12768;
    for (int probe = 0; probe < kCount; ++probe) {
      const long long offset = (static_cast<long long>(::getpid()) * 7919 + attempt * 997 + probe * 131) % kCount;
      const auto port = static_cast<std::uint16_t>(kFirst + offset);
      if (can_bind(SOCK_DGRAM, port) && can_bind(SOCK_STREAM, port)) return port;
    }
    throw std::runtime_error("no port in 20000..32767 free for UDP and TCP on 127.0.0.1");
  }

  // dnsmasq's own words (its stderr) from the last start, for the error message.
  std::string last_error() const {
    std::ifstream file(directory_ + "/stderr");
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    while (!text.empty() && text.front() == '\n') text.erase(0, 1);
    return text.empty() ? "it printed nothing" : text;
  }

  pid_t spawn() const {
    std::vector<std::string> args = {kBinary, "--no-daemon", "--conf-file=/dev/null", "--pid-file=", "--no-resolv",
                                     "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
                                     "--port=" + std::to_string(port_), "--addn-hosts=" + directory_ + "/hosts",
                                     "--local=/test/", "--log-facility=/dev/null"};
    if (::geteuid() == 0) args.push_back("--user=root");  // else it would switch to a user "dnsmasq"
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string errors_path = directory_ + "/stderr";  // built before fork: no allocation in the child
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Its start-up lines are noise in the test output; kept in a file for the error message.
      const int null = ::open("/dev/null", O_WRONLY);
      const int errors = ::open(errors_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (null >= 0) ::dup2(null, STDOUT_FILENO);
      if (errors >= 0) ::dup2(errors, STDERR_FILENO);
      ::execv(kBinary, argv.data());
      ::_exit(127);
    }
    return pid;
  }

  // True once dnsmasq answers a query (any answer), within 5 s; false if it exited or never did.
  bool wait_answering() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    timeval wait{0, 50000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port_);
    // A query for "ready.test" type A.
    const unsigned char query[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'r', 'e', 'a', 'd', 'y', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool answered = false;
    while (!answered && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: the port was taken
        pid_ = -1;
        break;
      }
      ::sendto(fd, query, sizeof query, 0, static_cast<const sockaddr*>(static_cast<const void*>(&address)),
               sizeof address);
      unsigned char reply[512];
      answered = ::recv(fd, reply, sizeof reply, 0) > 0;
    }
    ::close(fd);
    return answered;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string directory_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace sluice::test
