#pragma once
// The real sluice binary as a child process: config in a temporary file, stdout and stderr piped
// and collected line by line by a reader thread, every wait bounded by a deadline. The same class
// runs other long-lived programs (Command, e.g. sluice-backend) and runs either under a prefix
// command (Launch, e.g. `ip netns exec NS`, see netns.hpp).

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "net.hpp"

namespace sluice::it {

/// A YAML config written to a fresh temporary directory; both are removed on destruction.
class TempConfig {
 public:
  explicit TempConfig(const std::string& yaml);
  ~TempConfig();
  TempConfig(const TempConfig&) = delete;
  TempConfig& operator=(const TempConfig&) = delete;
  const std::string& path() const { return path_; }
  const std::string& directory() const { return directory_; }
  /// Replaces the file's content in place (a reload test's next config).
  void write(const std::string& yaml) const;

 private:
  std::string directory_;
  std::string path_;
};

enum class Stream { out, err };

/// How a child is started, beyond its own command line.
struct Launch {
  /// A command that runs the program, e.g. {"/usr/sbin/ip", "netns", "exec", "NS"} (see netns.hpp);
  /// it must exec the program in place, so that pid() is the program's. Empty: run it directly.
  std::vector<std::string> prefix{};
  /// "NAME=value" entries set in the child's environment on top of the test's own.
  std::vector<std::string> environment{};
};

/// Another long-running program than sluice (e.g. SLUICE_BACKEND_BINARY): its whole command line.
struct Command {
  std::vector<std::string> argv{};  // argv[0]: a path, or a name looked up in PATH
};

class DaemonProcess {
 public:
  /// Writes `config_yaml` to a temporary file and runs `SLUICE_BINARY [extra_args...] --config FILE`.
  explicit DaemonProcess(const std::string& config_yaml, std::vector<std::string> extra_args = {},
                         Launch launch = {});
  /// Same with a config file the caller owns (to compare messages of several runs on one file).
  explicit DaemonProcess(const TempConfig& config, std::vector<std::string> extra_args = {}, Launch launch = {});
  /// Runs another program with the same output capture, deadlines and crash check; there is no
  /// config, and the sluice-specific waits (wait_listening) do not apply.
  explicit DaemonProcess(Command command, Launch launch = {});
  /// Ends the process the way production does and checks how it ended:
  /// - it exited on its own although the test neither stopped it nor waited for its exit: a crash,
  ///   the test fails;
  /// - it still runs: SIGTERM, then the exit must come within a bounded time (a second SIGTERM
  ///   after the first wait closes open sessions at once) and, for sluice, be 0;
  /// - in every case, a sanitizer report (ASan, UBSan, LSan, TSan) in its output fails the test.
  /// Only kill() ends it without these checks on the exit code. Keeps the transcript for the
  /// failure report (see take_transcripts).
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  const std::string& config_path() const { return config_path_; }
  pid_t pid() const { return pid_; }

  /// Waits for one `listening listener=NAME address=HOST:PORT` line per listener and returns the
  /// addresses by listener name. Throws when the deadline passes or the daemon exits first.
  std::map<std::string, Address> wait_listening(std::size_t listener_count, Millis timeout = 10s);
  /// wait_listening(1) for a daemon with the single listener `name`.
  Address wait_listening_on(const std::string& name, Millis timeout = 10s);

  /// The first output line (either stream) containing `text`, waiting up to `timeout`.
  std::optional<std::string> wait_for_line(std::string_view text, Millis timeout);
  /// The first output line (either stream) for which `match` is true.
  using LineMatch = std::function<bool(const std::string&)>;
  std::optional<std::string> wait_for_line(const LineMatch& match, Millis timeout);
  std::size_t count_lines(std::string_view text) const;
  std::vector<std::string> lines(Stream stream) const;
  /// Everything the daemon printed so far, each line tagged with its stream.
  std::string transcript() const;

  /// Sends a signal. SIGTERM and SIGINT make an exit expected (the test waits for it, or the
  /// destructor does and checks it is 0); any other signal (SIGHUP: a reload) does not, so a
  /// daemon that dies after it fails the test.
  void send_signal(int signal_number);
  /// SIGKILL, on purpose (a crash of the host): an exit is expected and its code not checked.
  void kill();
  /// A memory figure of the running daemon from /proc/PID/status, in KiB ("VmRSS", "VmHWM").
  std::optional<long> status_kib(const std::string& key) const;
  /// True while the process has not exited.
  bool running();
  /// Waits for the process to exit and for its output to be read completely. Returns the exit code,
  /// 128 + N when killed by signal N, or nullopt when the deadline passed first.
  std::optional<int> wait_exit(Millis timeout);

 private:
  struct Line {
    Stream stream;
    std::string text;
  };
  void start(std::vector<std::string> argv, const Launch& launch);
  void read_output(int out_fd, int err_fd);
  bool reap(bool block);

  std::unique_ptr<TempConfig> owned_config_;
  std::string config_path_;  // empty for a Command
  std::string program_;      // the program's file name, for messages
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  bool exit_expected_ = false;  // the test stopped the daemon or waits for its exit
  bool killed_ = false;         // kill(): the exit code is the test's doing
  bool is_sluice_ = false;      // the daemon under test (not a Command): exit 0 after SIGTERM
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Line> lines_;
  bool output_closed_ = false;  // both pipes reached EOF
  std::thread reader_;
};

/// The daemon under test: $SLUICE_BINARY when set (e.g. the TSan build, see tests/CMakeLists.txt),
/// else the build's own (the SLUICE_BINARY compile definition).
const char* sluice_binary();

/// Transcripts of the daemons destroyed since the last call. The doctest listener in main.cpp
/// prints them when a test case fails.
std::vector<std::string> take_transcripts();

}  // namespace sluice::it
