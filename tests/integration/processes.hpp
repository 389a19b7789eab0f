#pragma once
// Real servers as test backends: redis-server and PostgreSQL on loopback ports, each in a
// temporary directory removed afterwards, run with DaemonProcess (output captured, crash check,
// bounded waits). Also: finding programs, free ports, and killing a process with its children.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon_process.hpp"
#include "net.hpp"

namespace sluice::it {

/// The path of `name` in PATH (or `name` itself when it holds a '/' and is executable).
std::optional<std::string> find_executable(const std::string& name);

/// A directory holding initdb, postgres and pgbench: the newest /usr/lib/postgresql/N/bin.
std::optional<std::string> postgres_bin_dir();

/// A loopback port that was free a moment ago (bound to port 0, read back, closed). Servers that
/// cannot take a port from the test retry with another when this one was taken meanwhile.
std::uint16_t free_port();

/// A fresh directory under the temp directory; removed with its content on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// The pids of every descendant of `pid` (children, their children, ...), read from /proc.
std::vector<pid_t> descendants(pid_t pid);

/// A redis-server on 127.0.0.1 (no persistence: --save '' --appendonly no), in its own temp dir.
class RedisServer {
 public:
  explicit RedisServer(const std::string& redis_server);
  const Address& address() const { return address_; }
  /// SIGKILL, as a crash of the host would.
  void kill();
  /// One inline command straight to the server (not through Sluice); the reply's first line, or for
  /// a bulk reply its content. Throws on failure.
  std::string command(const std::string& line) const;
  /// An integer field of INFO ("total_commands_processed"); throws when absent.
  long long info_number(const std::string& field) const;

 private:
  TempDir directory_;
  Address address_;
  std::unique_ptr<DaemonProcess> process_;
};

/// A PostgreSQL cluster on 127.0.0.1 (run as the account postgres, else nobody, when the tests run
/// as root), trust authentication for user postgres, durability off (a throwaway test database).
class PostgresServer {
 public:
  /// initdb into a fresh directory (slow: a few seconds). `template_data`: copy that data directory
  /// instead of running initdb (fast; the copy must be of a stopped cluster).
  PostgresServer(const std::string& bin_dir, const std::string& template_data = {});
  /// Stops the cluster (immediate shutdown) unless it was killed.
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  /// Starts the postmaster and waits until it accepts connections. Throws on failure.
  void start();
  const Address& address() const { return address_; }
  const std::string& data_directory() const { return data_; }
  /// SIGKILL to the postmaster and every process it started: the host died.
  void kill();

 private:
  std::string bin_dir_;
  TempDir directory_;
  std::string data_;
  Address address_;
  std::unique_ptr<DaemonProcess> process_;
  bool killed_ = false;
};

}  // namespace sluice::it
