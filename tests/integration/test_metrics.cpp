// The admin server's /metrics and the access log: Little's law over the exact time integrals,
// `promtool check metrics`, a real Prometheus server scraping the daemon, and the access log lines
// in text and JSON.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "harness.hpp"

using namespace sluice::it;

namespace {

std::string backend_series(const std::string& name, const std::string& backend, const std::string& node) {
  return name + R"({service="web",backend=")" + backend + R"(",node=")" + node + "\"}";
}

/// A fresh temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sluice-it-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp", errno);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string file = path_ + "/" + name;
    std::ofstream out(file);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + file);
    return file;
  }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A helper program as a child process, stdout and stderr into `log_path`. The destructor sends
/// SIGTERM, waits up to 5 s, then SIGKILLs.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> args, const std::string& log_path) {
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    Fd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!log) throw_errno("open " + log_path, errno);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(log.get(), STDOUT_FILENO);
      ::dup2(log.get(), STDERR_FILENO);
      struct sigaction default_action {};
      default_action.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &default_action, nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid_ < 0) throw_errno("fork", errno);
  }
  ~ChildProcess() {
    if (exited()) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + 5s;
    while (!exited() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    if (exited()) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool exited() {
    if (reaped_) return true;
    int status = 0;
    reaped_ = ::waitpid(pid_, &status, WNOHANG) == pid_;
    return reaped_;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

/// A loopback port that was free a moment ago (bound to port 0, read back, closed).
std::uint16_t free_port() {
  Fd fd = bind_tcp_socket(Address::loopback(AF_INET));
  return local_address(fd.get()).port;
}

/// Runs a shell command; returns its exit code and fills `output` with its stdout and stderr.
int run_command(const std::string& command, std::string& output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw_errno("popen", errno);
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Strict JSON syntax check (RFC 8259 grammar) of one value; is_object() also wants an object.
class JsonChecker {
 public:
  static bool is_object(std::string_view text) {
    JsonChecker checker(text);
    checker.skip_space();
    if (checker.at_end() || checker.peek() != '{' || !checker.value()) return false;
    checker.skip_space();
    return checker.at_end();
  }

 private:
  explicit JsonChecker(std::string_view text) : text_(text) {}
  bool at_end() const { return at_ >= text_.size(); }
  char peek() const { return text_[at_]; }
  bool eat(char c) {
    skip_space();
    if (at_end() || peek() != c) return false;
    ++at_;
    return true;
  }
  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++at_;
  }
  bool value() {
    skip_space();
    if (at_end()) return false;
    switch (peek()) {
      case '{': return members('}', true);
      case '[': return members(']', false);
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }
  bool members(char close, bool object) {
    ++at_;
    if (eat(close)) return true;
    do {
      if (object && !(skip_space(), string() && eat(':'))) return false;
      if (!value()) return false;
    } while (eat(','));
    return eat(close);
  }
  bool string() {
    if (at_end() || peek() != '"') return false;
    for (++at_; !at_end(); ++at_) {
      const char c = peek();
      if (c == '"') {
        ++at_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c == '\\') {
        if (++at_ >= text_.size()) return false;
        if (peek() == 'u') {
          for (int i = 0; i < 4; ++i)
            if (++at_ >= text_.size() || !std::isxdigit(static_cast<unsigned char>(peek()))) return false;
        } else if (std::string_view("\"\\/bfnrt").find(peek()) == std::string_view::npos) {
          return false;
        }
      }
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (text_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }
  bool number() {
    const auto digits = [&] {
      const std::size_t begin = at_;
      while (!at_end() && std::isdigit(static_cast<unsigned char>(peek()))) ++at_;
      return at_ > begin;
    };
    if (!at_end() && peek() == '-') ++at_;
    if (!at_end() && peek() == '0') {
      ++at_;
    } else if (at_end() || !std::isdigit(static_cast<unsigned char>(peek())) || !digits()) {
      return false;
    }
    if (!at_end() && peek() == '.' && (++at_, !digits())) return false;
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++at_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++at_;
      if (!digits()) return false;
    }
    return true;
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

/// Holds each connection exactly `hold` from its accept, then shuts down its write side, reads
/// until the peer's EOF and closes: one connection is one job of a fixed service time.
class FixedTimeServer {
 public:
  explicit FixedTimeServer(Millis hold)
      : hold_(hold), server_(AF_INET, [this](ServerConnection& c) {
          std::this_thread::sleep_for(hold_);
          c.shutdown_write();
          c.drain();
        }) {}
  const Address& address() const { return server_.address(); }
  std::uint64_t accepted() const { return server_.accepted(); }

 private:
  Millis hold_;
  TcpServer server_;
};

}  // namespace

TEST_CASE("Little's law holds on the exact integrals: L = lambda * W within 2%") {
  constexpr int kClients = 40;
  constexpr auto kInterval = 25ms;
  FixedTimeServer backend(100ms);
  DaemonProcess daemon(ConfigSpec{.listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{.name = "s", .address = backend.address(), .node = "n1"}},
                                                .queue = QueueSpec{}}},
                                  .admin = true}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  const std::string active = backend_series("sluice_backend_connections_active", "s", "n1");
  const std::string active_seconds = backend_series("sluice_backend_connections_active_seconds_total", "s", "n1");
  const std::string busy_seconds = backend_series("sluice_backend_busy_seconds_total", "s", "n1");
  const std::string total = backend_series("sluice_backend_connections_total", "s", "n1");
  const std::string session_sum = backend_series("sluice_backend_session_seconds_sum", "s", "n1");
  const std::string session_count = backend_series("sluice_backend_session_seconds_count", "s", "n1");
  const std::string connect_sum = backend_series("sluice_backend_connect_seconds_sum", "s", "n1");

  const std::string before = scrape(admin);
  const auto t0 = Clock::now();
  // One thread per client: each connects at its time, sends its EOF at once (it has no request),
  // and reads until the EOF that follows the backend's close.
  std::vector<ReadResult> results(kClients);
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> threads;
  const auto start = Clock::now() + 20ms;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      std::this_thread::sleep_until(start + i * kInterval);  // the arrival process, not a wait
      try {
        Client client = Client::connect(proxy);
        client.shutdown_write();
        results[static_cast<std::size_t>(i)] = client.read_until_end(3s);
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << failures[static_cast<std::size_t>(i)]);
    CHECK(failures[static_cast<std::size_t>(i)].empty());
    CHECK(results[static_cast<std::size_t>(i)].end == End::eof);
    CHECK(results[static_cast<std::size_t>(i)].data.empty());
  }
  std::string after;
  const bool settled = wait_scrape(
                           admin,
                           [&](const std::string& text) {
                             return metric(text, active) == 0 &&
                                    metric(text, session_count) - metric(before, session_count) == kClients;
                           },
                           3s, &after)
                           .has_value();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  REQUIRE_MESSAGE(settled, "the sessions did not all end:\n" << after);

  const auto increase = [&](const std::string& series) { return metric(after, series) - metric(before, series); };
  const double arrivals = increase(total);
  const double lambda = arrivals / elapsed;                                     // per second
  const double mean_session = increase(session_sum) / increase(session_count);  // W, seconds
  const double in_service = increase(active_seconds) / elapsed;                 // L, time-average
  const double utilisation = increase(busy_seconds) / elapsed;
  // A slot is held from dispatch, so the exact W of the slot integral is connect + session time.
  const double mean_slot = (increase(connect_sum) + increase(session_sum)) / increase(session_count);
  MESSAGE("Little's law over " << elapsed << " s: lambda = " << lambda << "/s, W = " << mean_session * 1e3
                               << " ms, lambda*W = " << lambda * mean_session << ", L = " << in_service
                               << ", L/(lambda*W) = " << in_service / (lambda * mean_session)
                               << ", W with connect = " << mean_slot * 1e3 << " ms, L/(lambda*W) with it = "
                               << in_service / (lambda * mean_slot) << ", busy fraction = " << utilisation);
  CHECK(arrivals == kClients);
  CHECK(increase(session_count) == kClients);
  CHECK(backend.accepted() == static_cast<std::uint64_t>(kClients));
  CHECK(mean_session >= 0.100);
  CHECK(mean_session <= 0.100 + 0.015 * sluice::test::time_scale());  // the proxy's own delay, slower under sanitizers
  CHECK(std::abs(in_service / (lambda * mean_session) - 1) < 0.02);
  CHECK(std::abs(in_service / (lambda * mean_slot) - 1) < 0.002);
  CHECK(utilisation <= 1.0);
  CHECK(increase(busy_seconds) >= increase(session_sum) / kClients);
  // No slot limit: nobody waited.
  CHECK(metric(after, R"(sluice_service_queue_wait_seconds_count{service="web"})") == kClients);
  CHECK(metric(after, R"(sluice_service_queue_wait_seconds_sum{service="web"})") < 0.05);
  CHECK(metric(after, R"(sluice_service_queue_length_seconds_total{service="web"})") == 0);
}

TEST_CASE("promtool check metrics finds nothing to complain about in a live scrape") {
  const std::string promtool = "/usr/bin/promtool";
  if (::access(promtool.c_str(), X_OK) != 0) {
    SLUICE_SKIP(promtool << " is missing (scripts/install-deps.sh installs package prometheus)");
  }
  EchoServer echo;
  DaemonProcess daemon(ConfigSpec{.listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{.name = "echo",
                                                              .address = echo.address(),
                                                              .node = "n1",
                                                              .max_connections = 1}},
                                                .queue = QueueSpec{.max_length = 1}}},
                                  .admin = true}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  // Traffic that fills every family: sessions with bytes both ways, one queued, one refused.
  Client holder = Client::connect(proxy);
  holder.send_all("x");
  CHECK(holder.read_exact(1) == "x");
  Client queued = Client::connect(proxy);
  REQUIRE(wait_metric(admin, R"(sluice_service_queue_length{service="web"})", 1, 2s));
  {
    Client refused = Client::connect(proxy);
    CHECK(refused.read_until_end(2s).data.empty());
  }
  holder.shutdown_write();
  CHECK(holder.read_until_end(2s).end == End::eof);
  holder.close();
  queued.send_all("hello");
  queued.shutdown_write();
  const ReadResult echoed = queued.read_until_end(2s);
  CHECK(echoed.end == End::eof);
  CHECK(echoed.data == "hello");
  CHECK(wait_metric(admin, R"(sluice_backend_session_seconds_count{service="web",backend="echo",node="n1"})", 2, 2s));

  const std::string text = scrape(admin);
  TempDir dir;
  const std::string file = dir.write("metrics.txt", text);
  std::string output;
  const int code = run_command(promtool + " check metrics < " + file, output);
  INFO("promtool output:\n" << output << "\nscrape:\n" << text);
  CHECK(code == 0);
  CHECK(output.empty());
  CHECK(find_metric(text, R"(sluice_listener_connections_rejected_total{listener="web",reason="queue_full"})") == 1);
  CHECK(metric(text, backend_series("sluice_backend_sent_bytes_total", "echo", "n1")) == 6);  // "x", "hello"
  CHECK(metric(text, backend_series("sluice_backend_received_bytes_total", "echo", "n1")) == 6);
  CHECK(text.find("# TYPE sluice_backend_session_seconds histogram") != std::string::npos);
  CHECK(text.find("process_") != std::string::npos);
}

TEST_CASE("a real Prometheus server scrapes the daemon and sees every connection") {
  const std::string prometheus = "/usr/bin/prometheus";
  if (::access(prometheus.c_str(), X_OK) != 0) {
    SLUICE_SKIP(prometheus << " is missing (scripts/install-deps.sh installs package prometheus)");
  }
  NameServer backend("only");
  DaemonProcess daemon(ConfigSpec{.listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{.name = "only", .address = backend.address()}}}},
                                  .admin = true}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  TempDir dir;
  const std::string config = dir.write("prometheus.yml",
                                       "global: { scrape_interval: 1s, scrape_timeout: 1s }\n"
                                       "scrape_configs:\n"
                                       "  - job_name: sluice\n"
                                       "    static_configs:\n"
                                       "      - targets: [\"" + admin.to_string() + "\"]\n");
  const Address web = Address::loopback(AF_INET, free_port());
  const std::string log = dir.path() + "/prometheus.log";
  std::string last_answer;
  {
    ChildProcess server({prometheus, "--config.file=" + config, "--storage.tsdb.path=" + dir.path() + "/data",
                         "--web.listen-address=" + web.to_string(), "--log.level=warn"},
                        log);
    const auto get = [&](const std::string& path) -> std::optional<HttpResponse> {
      try {
        return http_get(web, path, 2s);
      } catch (const std::exception&) {
        return std::nullopt;  // not listening yet
      }
    };
    bool ready = false;
    for (const auto deadline = Clock::now() + 20s; !ready && Clock::now() < deadline && !server.exited();) {
      const auto response = get("/-/ready");
      ready = response && response->status == 200;
      if (!ready) std::this_thread::sleep_for(100ms);
    }
    INFO("prometheus log:\n" << read_file(log));
    REQUIRE_MESSAGE(ready, "prometheus on " << web.to_string() << " not ready within 20 s");

    for (int i = 0; i < 7; ++i) {
      Client client = Client::connect(proxy);
      CHECK(client.read_until_end(2s).data == "only\n");
    }

    // Sum the values of the result vector: "value":[TIMESTAMP,"VALUE"] per series.
    const auto sum_of_values = [](const std::string& body) {
      double sum = 0;
      static constexpr std::string_view key = "\"value\":[";
      for (auto at = body.find(key); at != std::string::npos; at = body.find(key, at + 1)) {
        const auto open = body.find('"', body.find(',', at) + 1);
        sum += std::strtod(body.c_str() + open + 1, nullptr);
      }
      return sum;
    };
    const auto started = Clock::now();
    double seen = -1;
    for (const auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
      if (const auto response = get("/api/v1/query?query=sluice_backend_connections_total");
          response && response->status == 200) {
        last_answer = response->body;
        seen = sum_of_values(response->body);
        if (seen == 7) break;
      }
      std::this_thread::sleep_for(200ms);
    }
    INFO("last answer: " << last_answer);
    CHECK_MESSAGE(seen == 7, "Prometheus still reports " << seen << " connections after 30 s");
    MESSAGE("Prometheus reported 7 connections " << elapsed_ms(started) << " ms after the last one");
    CHECK(last_answer.find(R"("status":"success")") != std::string::npos);
    CHECK(last_answer.find(R"("backend":"only")") != std::string::npos);

    const auto up = get("/api/v1/query?query=up");
    REQUIRE(up.has_value());
    INFO("up: " << up->body);
    CHECK(up->body.find(R"("job":"sluice")") != std::string::npos);
    CHECK(sum_of_values(up->body) == 1);
  }  // Prometheus is stopped here, before its directory goes
}

namespace {

struct LoggedConnection {
  std::uint16_t client_port = 0;
  std::string backend;  // from the reply: "from-a\n" came from backend a
  std::size_t sent = 0;
  std::size_t received = 0;
};

/// Three connections through round robin over two ReplyAfterEofServers that answer "from-a\n" and
/// "from-bb\n"; each client sends a payload of its own length, then its EOF.
std::vector<LoggedConnection> run_three_connections(DaemonProcess& daemon) {
  const Address proxy = daemon.wait_listening_on("web");
  std::vector<LoggedConnection> connections;
  for (const std::string payload : {"hello", "hello!", "hello!!"}) {
    Client client = Client::connect(proxy);
    LoggedConnection logged;
    logged.client_port = local_address(client.fd()).port;
    logged.sent = payload.size();
    client.send_all(payload);
    client.shutdown_write();
    const ReadResult result = client.read_until_end(2s);
    CHECK(result.end == End::eof);
    CHECK((result.data == "from-a\n" || result.data == "from-bb\n"));
    logged.backend.assign(1, result.data == "from-a\n" ? 'a' : 'b');  // a char: GCC 12 -O3 warns falsely on "a"
    logged.received = result.data.size();
    connections.push_back(logged);
  }
  return connections;
}

std::string access_config(ReplyAfterEofServer& a, ReplyAfterEofServer& b, const std::string& format) {
  return ConfigSpec{.listeners = {ListenerSpec{}},
                    .services = {{.policy = "round_robin",
                                  .backends = {{.name = "a", .address = a.address(), .node = "node-a"},
                                               {.name = "b", .address = b.address(), .node = "node-b"}}}},
                    .access_log = true,
                    .log_format = format}
      .yaml();
}

/// Stops the daemon (SIGTERM) and waits for its exit and the end of its output: every line it
/// will ever write is in, so a count taken now is final and an extra line would show.
void stop_and_read_everything(DaemonProcess& daemon) {
  daemon.send_signal(SIGTERM);
  const auto code = daemon.wait_exit(sluice::test::scaled(10s));
  REQUIRE_MESSAGE(code.has_value(), "the daemon did not exit after SIGTERM");
  CHECK(*code == 0);
}

}  // namespace

TEST_CASE("access log, text: one line per finished connection with its backend and byte counts") {
  ReplyAfterEofServer a("from-a\n");
  ReplyAfterEofServer b("from-bb\n");
  DaemonProcess daemon(access_config(a, b, "text"));
  const auto connections = run_three_connections(daemon);
  stop_and_read_everything(daemon);
  CHECK(daemon.count_lines(" end=") == 3);
  CHECK(daemon.count_lines(" access ") == 3);

  std::set<std::string> backends;
  for (const auto& connection : connections) {
    backends.insert(connection.backend);
    const std::string address = "127.0.0.1:" + std::to_string(connection.client_port);
    const auto line = daemon.wait_for_line("client=" + address + " ", 0ms);
    REQUIRE_MESSAGE(line.has_value(), "no access line for client " << address);
    INFO("line: " << *line);
    // "TIME access client=... listener=... ... end=...": these fields in this order, nothing else.
    std::istringstream in(*line);
    std::vector<std::string> words;
    for (std::string word; in >> word;) words.push_back(word);
    REQUIRE(words.size() == 13);
    CHECK(words[1] == "access");
    const auto seconds = [](const std::string& word, const std::string& key) {  // key=0.000123 (%.6f)
      if (!word.starts_with(key + "=")) return false;
      const std::string value = word.substr(key.size() + 1);
      const auto dot = value.find('.');
      return dot != std::string::npos && dot > 0 && value.size() == dot + 7 &&
             value.find_first_not_of("0123456789.") == std::string::npos;
    };
    CHECK(words[2] == "client=" + address);
    CHECK(words[3] == "listener=web");
    CHECK(words[4] == "service=web");
    CHECK(words[5] == "backend=" + connection.backend);
    CHECK(words[6] == "node=node-" + connection.backend);
    CHECK(seconds(words[7], "queue_wait"));
    CHECK(seconds(words[8], "connect"));
    CHECK(seconds(words[9], "duration"));
    CHECK(words[10] == "bytes_from_client=" + std::to_string(connection.sent));
    CHECK(words[11] == "bytes_from_backend=" + std::to_string(connection.received));
    CHECK(words[12] == "end=client_close");
  }
  CHECK(backends.size() == 2);  // round robin used both
}

TEST_CASE("access log, json: every line is a JSON object, the access ones with the connection's fields") {
  ReplyAfterEofServer a("from-a\n");
  ReplyAfterEofServer b("from-bb\n");
  DaemonProcess daemon(access_config(a, b, "json"));
  const auto connections = run_three_connections(daemon);
  stop_and_read_everything(daemon);
  CHECK(daemon.count_lines("\"end\":") == 3);

  for (const auto& line : daemon.lines(Stream::out)) {
    INFO("line: " << line);
    CHECK(JsonChecker::is_object(line));
  }
  for (const auto& connection : connections) {
    const std::string client = R"("client":"127.0.0.1:)" + std::to_string(connection.client_port) + "\"";
    const auto line = daemon.wait_for_line(client, 0ms);
    REQUIRE_MESSAGE(line.has_value(), "no access line with " << client);
    INFO("line: " << *line);
    const std::vector<std::string> fields = {
        R"("listener":"web")", R"("service":"web")", R"("backend":")" + connection.backend + "\"",
          R"("node":"node-)" + connection.backend + "\"",
          R"("bytes_from_client":)" + std::to_string(connection.sent) + ",",
          R"("bytes_from_backend":)" + std::to_string(connection.received) + ",", R"("end":"client_close")",
        R"("queue_wait_seconds":)", R"("connect_seconds":)", R"("duration_seconds":)"};
    for (const auto& field : fields) {
      CHECK_MESSAGE(line->find(field) != std::string::npos, "missing " << field);
    }
  }
}

TEST_CASE("admin: /healthz is 200 ok while serving and 503 draining during a drain, unknown paths 404") {
  HoldServer hold("h");
  DaemonProcess daemon(ConfigSpec{.drain_timeout = "10s",
                                  .listeners = {ListenerSpec{}},
                                  .services = {{.backends = {{.name = "h", .address = hold.address()}}}},
                                  .admin = true}
                           .yaml());
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  HttpResponse health = http_get(admin, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK(http_get(admin, "/no-such-page").status == 404);
  const HttpResponse metrics = http_get(admin, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.head.header("Content-Type").value_or("").find("text/plain; version=0.0.4") != std::string::npos);

  Client client = Client::connect(proxy);  // an active session keeps the drain going
  CHECK(client.read_line() == "h");
  daemon.send_signal(SIGTERM);
  const auto deadline = Clock::now() + 2s;
  do {
    health = http_get(admin, "/healthz");
    if (health.status == 503) break;
    std::this_thread::sleep_for(5ms);  // the polling period
  } while (Clock::now() < deadline);
  CHECK(health.status == 503);
  CHECK(health.body == "draining\n");
  CHECK(http_get(admin, "/metrics").status == 200);  // still scraped while draining

  hold.release_all();
  CHECK(client.read_until_end(2s).end == End::eof);
  client.close();
  const auto code = daemon.wait_exit(3s);
  REQUIRE_MESSAGE(code.has_value(), "sluice still runs 3 s after its last session ended");
  CHECK(*code == 0);
}
