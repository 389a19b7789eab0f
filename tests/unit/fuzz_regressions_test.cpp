// The config fuzzer's inputs, replayed (fuzz/README: scripts/fuzz.sh, fuzz/config_fuzzer.cpp):
// every seed in fuzz/corpus/ and every input in fuzz/regressions/ that once crashed, hung or
// fooled the parser goes through parse_config again, in a child process with a deadline and a
// memory cap, so that a hang or a runaway allocation fails this test instead of stalling the
// suite. Nothing may escape parse_config, and the result must keep fuzz/config_properties.hpp.

#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "../../fuzz/config_properties.hpp"
#include "fuzz_inputs.hpp"
#include "sluice/config/config.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMiB = std::size_t{1} << 20;

long vm_size_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmSize:", 0) == 0) return std::stol(line.substr(7));
  }
  return -1;
}

// Runs `work` in a forked child that may use `memory` bytes of address space beyond what it
// starts with (under ASan too: its shadow is already mapped then) and must finish within
// `deadline`. Returns "" when work returned "", else what went wrong: work's own message, an
// exception that escaped it, a signal, or the deadline.
std::string run_bounded(const std::function<std::string()>& work, std::chrono::milliseconds deadline,
                        std::size_t memory) {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string message;
    const long vm_kib = vm_size_kib();
    const rlimit limit{static_cast<rlim_t>(vm_kib) * 1024 + memory, RLIM_INFINITY};
    if (vm_kib < 0 || ::setrlimit(RLIMIT_AS, &limit) != 0) {
      message = "cannot cap the child's memory";
    } else {
      try {
        message = work();
      } catch (const std::exception& e) {
        message = std::string("exception escaped: ") + e.what();
      } catch (...) {
        message = "a non-std exception escaped";
      }
    }
    std::size_t written = 0;
    while (written < message.size()) {
      const ssize_t n = ::write(pipe_fds[1], message.data() + written, message.size() - written);
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    ::_exit(message.empty() ? 0 : 1);  // no atexit handlers, no leak check of the parent's state
  }
  ::close(pipe_fds[1]);
  std::string message;
  bool timed_out = false;
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left <= 0ms) {
      timed_out = true;
      break;
    }
    pollfd fd{pipe_fds[0], POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // the loop head sees the deadline
    char buffer[4096];
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n > 0) {
      message.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;  // EOF: the child is done (or dead)
    }
  }
  ::close(pipe_fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return "did not finish within " + std::to_string(deadline.count()) + " ms (a hang or a runaway loop)";
  }
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) +
           "; out of its " + std::to_string(memory / kMiB) + " MiB?)" + (message.empty() ? "" : ": " + message);
  }
  if (WEXITSTATUS(status) != 0 && message.empty()) return "exit code " + std::to_string(WEXITSTATUS(status));
  return message;
}

// What the fuzz target does with one input, and a second parse that must give the same errors.
std::string parse_and_check(const std::string& text) {
  const sluice::ConfigResult result = sluice::parse_config(text, "fuzz.yaml");
  std::string violation = sluice::fuzz::check_properties(text, result, "fuzz.yaml");
  if (!violation.empty()) return "property violated: " + violation;
  const sluice::ConfigResult again = sluice::parse_config(text, "fuzz.yaml");
  if (again.errors.size() != result.errors.size() || again.config.has_value() != result.config.has_value()) {
    return "a second parse gave a different result";
  }
  for (std::size_t i = 0; i < result.errors.size(); ++i) {
    if (again.errors[i].to_string() != result.errors[i].to_string()) return "a second parse gave other errors";
  }
  return "";
}

// Each input gets 10 s and 1 GiB: a 1 MiB config parses in about a second and a few MiB.
void replay_directory(const std::string& directory) {
  const auto inputs = sluice::test::fuzz_inputs(directory);
  CHECK(!inputs.empty());
  for (const sluice::test::FuzzInput& input : inputs) {
    const std::string& text = input.bytes;
    const std::string failure = run_bounded([&] { return parse_and_check(text); }, 10s, 1024 * kMiB);
    CHECK_MESSAGE(failure.empty(), input.name << ": " << failure);
  }
}

}  // namespace

TEST_CASE("fuzz corpus: every seed parses within bounds, deterministically, keeping every property") {
  replay_directory("corpus");
}

TEST_CASE("fuzz regressions: every input that once broke the parser now parses within bounds") {
  replay_directory("regressions");
}

// Not a property the fuzzer can see (a Cidr keeps no text): checked on the input directly.
TEST_CASE("config: a NUL byte inside an address or an allow range is an error, not a cut") {
  const std::string bind = std::string("\"127.0.0.1:80") + "\\0" + "junk\"";
  const auto config_with = [](const std::string& listener_extra, const std::string& address) {
    return "listeners:\n  - name: web\n    bind: 127.0.0.1:8080\n    service: web\n" + listener_extra +
           "services:\n  - name: web\n    backends:\n      - name: a\n        address: " + address + "\n";
  };
  // Sanity: the same configs without the NUL are valid.
  REQUIRE(sluice::parse_config(config_with("", "127.0.0.1:9000"), "t.yaml").config);
  REQUIRE(sluice::parse_config(config_with("    allow: [10.0.0.0/8]\n", "127.0.0.1:9000"), "t.yaml").config);

  CHECK_FALSE(sluice::parse_config(config_with("", R"("[::1\0evil]:9000")"), "t.yaml").config);
  CHECK_FALSE(sluice::parse_config(config_with("", R"("10.0.0.1\0evil:9000")"), "t.yaml").config);
  CHECK_FALSE(sluice::parse_config(config_with(R"(    allow: ["10.0.0.0\0junk/8"])" "\n", "127.0.0.1:9000"),
                                   "t.yaml")
                  .config);
  CHECK_FALSE(sluice::parse_config(config_with(R"(    allow: ["::1\0junk"])" "\n", "127.0.0.1:9000"), "t.yaml")
                  .config);
}

// The config is reloaded on the event loop: whatever the file, the parse must stay roughly linear
// in its size. A 1 MiB map of distinct unknown keys took minutes (KeyReader::finish compared
// every key with every earlier one).
TEST_CASE("config: a 1 MiB map of distinct keys is checked in bounded time") {
  std::string text;
  // Appended piece by piece: "k" + std::to_string(i) trips GCC 12's false -Wrestrict at -O3.
  for (int i = 0; text.size() < sluice::kMaxConfigBytes - 32; ++i) {
    text += 'k';
    text += std::to_string(i);
    text += ": 1\n";
  }
  const std::string failure = run_bounded(
      [&]() -> std::string {
        const sluice::ConfigResult result = sluice::parse_config(text, "t.yaml");
        return result.errors.empty() ? "no errors for a config of unknown keys" : "";
      },
      45s, 1024 * kMiB);
  CHECK_MESSAGE(failure.empty(), failure);
}
