#include "daemon_process.hpp"

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#ifndef SLUICE_BINARY
#error "SLUICE_BINARY must name the daemon executable"
#endif

namespace sluice::it {

namespace {

std::mutex g_transcripts_mutex;
std::vector<std::string> g_transcripts;

/// How the sanitizers start a report (ASan, LSan, TSan, and UBSan's "file:line:col: runtime error:").
bool is_sanitizer_report(const std::string& line) {
  return line.find("ERROR: AddressSanitizer") != std::string::npos ||
         line.find("ERROR: LeakSanitizer") != std::string::npos ||
         line.find("WARNING: ThreadSanitizer") != std::string::npos ||
         line.find("ERROR: ThreadSanitizer") != std::string::npos ||
         line.find("runtime error: ") != std::string::npos ||
         line.find("SUMMARY: UndefinedBehaviorSanitizer") != std::string::npos;
}

/// The listener and address of a `format: json` line {..."event":"listening","listener":NAME,"address":A...}.
std::optional<std::pair<std::string, Address>> parse_json_listening(const std::string& line) {
  const auto object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!object.is_object() || object.value("event", "") != "listening") return std::nullopt;
  return std::pair{object.value("listener", ""), Address::parse(object.value("address", ""))};
}

/// Parses `listening listener=NAME address=HOST:PORT` (anywhere in the line; or the JSON line) into
/// NAME and address.
std::optional<std::pair<std::string, Address>> parse_listening(const std::string& line) {
  if (line.starts_with('{')) return parse_json_listening(line);
  static constexpr std::string_view listener_key = "listening listener=";
  static constexpr std::string_view address_key = " address=";
  const auto at = line.find(listener_key);
  if (at == std::string::npos) return std::nullopt;
  const auto name_begin = at + listener_key.size();
  const auto name_end = line.find(' ', name_begin);
  if (name_end == std::string::npos || line.compare(name_end, address_key.size(), address_key) != 0)
    return std::nullopt;
  const auto address_begin = name_end + address_key.size();
  const auto address_end = std::min(line.find(' ', address_begin), line.size());
  return std::pair{line.substr(name_begin, name_end - name_begin),
                   Address::parse(std::string_view(line).substr(address_begin, address_end - address_begin))};
}

/// `name` itself when it contains a '/', else its first executable match in PATH (execve does not search).
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string_view directories = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!directories.empty()) {
    const auto colon = directories.find(':');
    const std::string candidate = std::string(directories.substr(0, colon)) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    directories.remove_prefix(colon == std::string_view::npos ? directories.size() : colon + 1);
  }
  return name;  // execve fails, and the child says so
}

/// The test's environment with `overrides` ("NAME=value") replacing or adding entries.
std::vector<std::string> merge_environment(const std::vector<std::string>& overrides) {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto equals = text.find('=');
    const auto key = text.substr(0, equals == std::string_view::npos ? text.size() : equals + 1);
    const bool replaced = equals != std::string_view::npos && std::any_of(overrides.begin(), overrides.end(),
                                      [&](const std::string& o) { return o.starts_with(key); });
    if (!replaced) result.emplace_back(text);
  }
  result.insert(result.end(), overrides.begin(), overrides.end());
  return result;
}

}  // namespace

const char* sluice_binary() {
  const char* path = std::getenv("SLUICE_BINARY");
  return path != nullptr && *path != '\0' ? path : SLUICE_BINARY;
}

std::vector<std::string> take_transcripts() {
  std::lock_guard lock(g_transcripts_mutex);
  return std::exchange(g_transcripts, {});
}

// ---- TempConfig ----

TempConfig::TempConfig(const std::string& yaml) {
  std::string pattern = (std::filesystem::temp_directory_path() / "sluice-it-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp", errno);
  directory_ = pattern;
  path_ = directory_ + "/sluice.yaml";
  write(yaml);
}

void TempConfig::write(const std::string& yaml) const {
  std::ofstream file(path_, std::ios::trunc);
  file << yaml;
  if (!file.flush()) throw std::runtime_error("cannot write " + path_);
}

TempConfig::~TempConfig() {
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

// ---- DaemonProcess ----

DaemonProcess::DaemonProcess(const std::string& config_yaml, std::vector<std::string> extra_args, Launch launch)
    : owned_config_(std::make_unique<TempConfig>(config_yaml)), config_path_(owned_config_->path()) {
  extra_args.insert(extra_args.begin(), sluice_binary());
  extra_args.insert(extra_args.end(), {"--config", config_path_});
  is_sluice_ = true;
  start(std::move(extra_args), launch);
}

DaemonProcess::DaemonProcess(const TempConfig& config, std::vector<std::string> extra_args, Launch launch)
    : config_path_(config.path()) {
  extra_args.insert(extra_args.begin(), sluice_binary());
  extra_args.insert(extra_args.end(), {"--config", config_path_});
  is_sluice_ = true;
  start(std::move(extra_args), launch);
}

DaemonProcess::DaemonProcess(Command command, Launch launch) {
  if (command.argv.empty()) throw std::invalid_argument("DaemonProcess: empty command");
  start(std::move(command.argv), launch);
}

void DaemonProcess::start(std::vector<std::string> args, const Launch& launch) {
  program_ = std::filesystem::path(args.front()).filename().string();
  args.insert(args.begin(), launch.prefix.begin(), launch.prefix.end());
  args.front() = find_program(args.front());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The environment is prepared before fork: the child may not allocate.
  std::vector<std::string> environment = merge_environment(launch.environment);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe2", errno);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw_errno("pipe2", errno);
  }

  pid_ = ::fork();
  if (pid_ == 0) {
    // Child: only async-signal-safe calls until exec (the parent has other threads).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int signal_number = 1; signal_number < NSIG; ++signal_number)
      ::sigaction(signal_number, &default_action, nullptr);  // e.g. SIGPIPE, ignored by the tests
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    static const char message[] = "exec of the program under test failed\n";
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  const int fork_error = errno;
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid_ < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw_errno("fork", fork_error);
  }
  reader_ = std::thread([this, out = out_pipe[0], err = err_pipe[0]] { read_output(out, err); });
}

DaemonProcess::~DaemonProcess() {
  auto describe = [](int code) {
    return code > 128 ? "killed by signal " + std::to_string(code - 128) : "exit code " + std::to_string(code);
  };
  if (pid_ > 0) {
    if (!exit_expected_ && reap(false))
      FAIL_CHECK(program_ << " exited on its own during the test: " << describe(*exit_code_));
    if (!exit_code_) {
      // Stopped as production stops it; a test that leaves a session open pays one drain bound,
      // then the second signal closes what is left.
      send_signal(SIGTERM);
      auto code = wait_exit(test::scaled(Millis(10s)));
      if (!code) {
        send_signal(SIGTERM);
        code = wait_exit(test::scaled(Millis(5s)));
      }
      if (!code) {
        FAIL_CHECK(program_ << " did not exit within the bound after two SIGTERMs: SIGKILL");
        ::kill(pid_, SIGKILL);
        reap(true);
      } else if (is_sluice_ && !killed_ && *code != 0) {
        FAIL_CHECK(program_ << " ended with " << describe(*code) << " after SIGTERM, not exit 0");
      }
    }
  }
  if (reader_.joinable()) reader_.join();
  {
    std::lock_guard lock(mutex_);
    for (const auto& line : lines_)
      if (is_sanitizer_report(line.text)) {
        FAIL_CHECK(program_ << " printed a sanitizer report: " << line.text);
        break;
      }
  }
  std::string text = "---- " + program_ + " (pid " + std::to_string(pid_) +
                     (config_path_.empty() ? std::string(")") : ", config " + config_path_ + ")");
  text += exit_code_ ? ", " + describe(*exit_code_) : "";
  text += " ----\n" + transcript();
  std::lock_guard lock(g_transcripts_mutex);
  g_transcripts.push_back(std::move(text));
}

void DaemonProcess::read_output(int out_fd, int err_fd) {
  Fd out(out_fd);
  Fd err(err_fd);
  std::string partial[2];
  auto flush_lines = [&](int index, bool all) {
    std::lock_guard lock(mutex_);
    std::size_t start = 0;
    for (std::size_t newline; (newline = partial[index].find('\n', start)) != std::string::npos;
         start = newline + 1)
      lines_.push_back({static_cast<Stream>(index), partial[index].substr(start, newline - start)});
    partial[index].erase(0, start);
    if (all && !partial[index].empty()) lines_.push_back({static_cast<Stream>(index), partial[index]});
    changed_.notify_all();
  };
  bool open[2] = {true, true};
  while (open[0] || open[1]) {
    pollfd fds[2] = {{open[0] ? out.get() : -1, POLLIN, 0}, {open[1] ? err.get() : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || fds[i].revents == 0) continue;
      char buffer[8192];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        partial[i].append(buffer, static_cast<std::size_t>(n));
        flush_lines(i, false);
      } else if (n == 0 || errno != EINTR) {
        open[i] = false;
        flush_lines(i, true);
      }
    }
  }
  std::lock_guard lock(mutex_);
  output_closed_ = true;
  changed_.notify_all();
}

std::optional<std::string> DaemonProcess::wait_for_line(const LineMatch& match, Millis timeout) {
  std::unique_lock lock(mutex_);
  std::size_t checked = 0;
  std::optional<std::string> found;
  changed_.wait_for(lock, timeout, [&] {
    for (; checked < lines_.size(); ++checked) {
      if (match(lines_[checked].text)) {
        found = lines_[checked].text;
        return true;
      }
    }
    return output_closed_;
  });
  return found;
}

std::optional<std::string> DaemonProcess::wait_for_line(std::string_view text, Millis timeout) {
  return wait_for_line([&](const std::string& line) { return line.find(text) != std::string::npos; }, timeout);
}

std::map<std::string, Address> DaemonProcess::wait_listening(std::size_t listener_count, Millis timeout) {
  std::map<std::string, Address> addresses;
  std::unique_lock lock(mutex_);
  std::size_t checked = 0;
  const bool complete = changed_.wait_for(lock, timeout, [&] {
    for (; checked < lines_.size(); ++checked) {
      if (auto listening = parse_listening(lines_[checked].text))
        addresses.insert_or_assign(std::move(listening->first), std::move(listening->second));
    }
    return addresses.size() >= listener_count || output_closed_;
  });
  if (!complete || addresses.size() < listener_count)
    throw std::runtime_error("sluice reported " + std::to_string(addresses.size()) + " of " +
                             std::to_string(listener_count) + " `listening` lines " +
                             (output_closed_ ? "before its output ended" : "within the deadline"));
  return addresses;
}

Address DaemonProcess::wait_listening_on(const std::string& name, Millis timeout) {
  const auto addresses = wait_listening(1, timeout);
  const auto it = addresses.find(name);
  if (it == addresses.end()) throw std::runtime_error("no `listening` line for listener " + name);
  return it->second;
}

std::size_t DaemonProcess::count_lines(std::string_view text) const {
  std::lock_guard lock(mutex_);
  std::size_t count = 0;
  for (const auto& line : lines_) count += line.text.find(text) != std::string::npos;
  return count;
}

std::vector<std::string> DaemonProcess::lines(Stream stream) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> result;
  for (const auto& line : lines_)
    if (line.stream == stream) result.push_back(line.text);
  return result;
}

std::string DaemonProcess::transcript() const {
  std::lock_guard lock(mutex_);
  std::string text;
  for (const auto& line : lines_) text += (line.stream == Stream::out ? "[out] " : "[err] ") + line.text + "\n";
  return text;
}

void DaemonProcess::send_signal(int signal_number) {
  if (signal_number == SIGTERM || signal_number == SIGINT || signal_number == SIGKILL) exit_expected_ = true;
  if (signal_number == SIGKILL) killed_ = true;
  if (!exit_code_ && ::kill(pid_, signal_number) != 0) throw_errno("kill", errno);
}

void DaemonProcess::kill() { send_signal(SIGKILL); }

std::optional<long> DaemonProcess::status_kib(const std::string& key) const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with(key + ":")) return std::stol(line.substr(key.size() + 1));
  return std::nullopt;
}

bool DaemonProcess::reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t result;
  do {
    result = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result != pid_) return false;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

bool DaemonProcess::running() { return !reap(false); }

std::optional<int> DaemonProcess::wait_exit(Millis timeout) {
  exit_expected_ = true;
  const auto deadline = Clock::now() + timeout;
  // waitpid has no timeout: poll it. The output pipes close at exit, so wait on them first.
  {
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, deadline, [&] { return output_closed_; });
  }
  while (!reap(false)) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(2ms);
  }
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, 2s, [&] { return output_closed_; });
  return exit_code_;
}

}  // namespace sluice::it
