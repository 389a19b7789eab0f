// Live reload: SIGHUP and a changed config file (a ConfigMap's symlink swap) apply a new config
// without refusing a client; a bad config, or one whose new listener cannot bind, changes nothing
// and is counted. Sessions and queued clients finish on what they started with.

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "harness.hpp"
#include "processes.hpp"
#include "test_support.hpp"

using namespace sluice::it;

namespace {

constexpr const char* kReloadsOk = R"(sluice_config_reloads_total{result="success"})";
constexpr const char* kReloadsFailed = R"(sluice_config_reloads_total{result="failure"})";

/// A wall-clock upper bound times the run's time scale (tests/common).
Millis scaled_ms(Millis bound) { return sluice::test::scaled(bound); }

/// Polls `done` until it holds or `timeout` passes (the period only paces the polling).
bool wait_until(const std::function<bool()>& done, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

/// served_by with scaled bounds: the name a NameServer behind `proxy` answered a new connection with.
std::string name_from(const Address& proxy) {
  Client client = Client::connect(proxy, scaled_ms(2s));
  const std::string data = client.read_until_end(scaled_ms(2s)).data;
  return data.empty() ? "" : data.substr(0, data.size() - 1);
}

/// Sends `bytes` through an echo session and checks they come back unchanged.
void echo_round(Client& client, const std::string& bytes) {
  client.send_all(bytes, scaled_ms(5s));
  CHECK(client.read_exact(bytes.size(), scaled_ms(2s)) == bytes);
}

/// Half-closes and checks that the session then ends cleanly with nothing more.
void end_cleanly(Client& client) {
  client.shutdown_write();
  const ReadResult rest = client.read_until_end(scaled_ms(2s));
  CHECK(rest.end == End::eof);
  CHECK(rest.data.empty());
}

// Short connections, one after another, until stopped: each must end cleanly with a name.
class Load {
 public:
  explicit Load(Address proxy) : thread_([this, proxy] { run(proxy); }) {}
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int completed() const { return completed_; }
  int failed() const { return failed_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  void run(const Address& proxy) {
    while (!stop_) {
      std::string what;
      try {
        Client client = Client::connect(proxy, scaled_ms(2s));
        const ReadResult result = client.read_until_end(scaled_ms(2s));
        if (result.end == End::eof && result.data.size() == 2 && result.data[1] == '\n') {
          ++completed_;
          continue;
        }
        what = std::string("ended with ") + to_string(result.end) + " after \"" + result.data + "\"";
      } catch (const std::exception& e) {
        what = e.what();
      }
      if (failed_++ == 0) first_failure_ = what;
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> completed_{0};
  std::atomic<int> failed_{0};
  std::string first_failure_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("reload: 20 SIGHUP reloads under load refuse no client, a bad config changes nothing and is counted") {
  NameServer a("a"), b("b"), c("c");
  TempConfig file(name_servers_config({&a, &b}));
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web", scaled_ms(10s));
  const Address admin = wait_admin_address(daemon, scaled_ms(10s));

  Load load(proxy);
  // Connections keep completing between any two reloads: the load spans all of them.
  auto load_goes_on = [&] {
    const int mark = load.completed();
    return wait_until([&] { return load.completed() >= mark + 5; }, scaled_ms(5s));
  };
  for (int i = 1; i <= 20; ++i) {
    REQUIRE_MESSAGE(load_goes_on(), "no connection completes before reload " << i);
    const bool odd = i % 2 == 1;
    file.write(odd ? name_servers_config({&c}) : name_servers_config({&a, &b}));
    daemon.send_signal(SIGHUP);
    REQUIRE_MESSAGE(wait_metric(admin, kReloadsOk, i, scaled_ms(5s)), "reload " << i << " not applied");
    // Every new connection after the reload uses the new backends.
    for (int k = 0; k < 3; ++k) {
      const std::string name = name_from(proxy);
      CHECK_MESSAGE((odd ? name == "c" : (name == "a" || name == "b")), "reload " << i << ": served by '" << name << "'");
    }
  }

  // Invalid: every error logged with its place, counted, and the running config (a, b) stays.
  file.write(name_servers_config({&c}) + "    bogus_key: 1\n");
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsFailed, 1, scaled_ms(5s)));
  CHECK(daemon.wait_for_line(file.path() + ":", scaled_ms(2s)));
  CHECK(daemon.wait_for_line("reload rejected", scaled_ms(2s)));
  for (int k = 0; k < 4; ++k) {
    const std::string name = name_from(proxy);
    CHECK((name == "a" || name == "b"));
  }
  CHECK_MESSAGE(load_goes_on(), "no connection completes after the rejected reload");
  load.stop();

  MESSAGE("connections during 21 reloads: " << load.completed() << " completed, " << load.failed() << " failed");
  CHECK_MESSAGE(load.failed() == 0, "first failure: " << load.first_failure());
  const std::string text = scrape(admin);
  CHECK(metric(text, kReloadsOk) == 20);
  CHECK(metric(text, kReloadsFailed) == 1);
  CHECK(metric(text, R"(sluice_listener_connections_rejected_total{listener="web",reason="no_backend"})") == 0);
}

TEST_CASE("reload: a ConfigMap-style symlink swap in the config directory is applied without a signal") {
  NameServer a("a"), b("b");
  EchoServer echo;
  // Listener "idle" closes a silent session after 300 ms: the test's clock in the daemon's loop.
  auto config = [&](const NameServer& web) {
    ConfigSpec spec;
    spec.admin = true;
    spec.listeners = {ListenerSpec{},
                      ListenerSpec{.name = "idle", .bind = "127.0.0.2:0", .service = "echo", .idle_timeout = "300ms"}};
    spec.services = {ServiceSpec{.backends = {{web.name(), web.address()}}},
                     ServiceSpec{.name = "echo", .backends = {{"echo", echo.address()}}}};
    return spec.yaml();
  };
  TempConfig scratch("");  // a private directory laid out as kubelet lays out a ConfigMap volume
  namespace fs = std::filesystem;
  const fs::path dir = scratch.directory();
  auto write_version = [&](const std::string& name, const std::string& yaml) {
    fs::create_directory(dir / name);
    std::ofstream(dir / name / "sluice.yaml") << yaml;
  };
  write_version("..2026_v1", config(a));
  fs::create_directory_symlink("..2026_v1", dir / "..data");
  fs::remove(dir / "sluice.yaml");
  fs::create_symlink("..data/sluice.yaml", dir / "sluice.yaml");

  DaemonProcess daemon(scratch);
  const auto listening = daemon.wait_listening(2, scaled_ms(10s));
  const Address proxy = listening.at("web");
  const Address idle = listening.at("idle");
  const Address admin = wait_admin_address(daemon, scaled_ms(10s));
  CHECK(name_from(proxy) == "a");

  // kubelet's update: a new version directory, a temporary symlink, renamed over ..data.
  write_version("..2026_v2", config(b));
  fs::create_directory_symlink("..2026_v2", dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(3s)));
  CHECK(daemon.wait_for_line("config: reloading " + scratch.path() + " (file changed)", scaled_ms(1s)));
  CHECK(name_from(proxy) == "b");

  // Unrelated files in the directory trigger nothing. The file's events reach the daemon before
  // this connect, so the idle session's 300 ms timer starts after the watcher's 100 ms settle
  // timer for them: once the session is closed, a reload they caused would have been counted.
  std::ofstream(dir / "unrelated.txt") << "x";
  Client silent = Client::connect(idle, scaled_ms(2s));
  const ReadResult closed = silent.read_until_end(scaled_ms(5s));
  CHECK(closed.end == End::eof);
  CHECK(closed.data.empty());
  CHECK(metric(scrape(admin), kReloadsOk) == 1);
  CHECK(daemon.count_lines("config: reloading") == 1);
}

TEST_CASE("reload: a session open on a replaced service keeps flowing, new clients use the new one, its checks stop") {
  EchoServer echo;
  NameServer a("a");
  // Health checks show which monitor runs: the replaced service's checks echo every 50 ms, the new
  // one's check a every 100 ms.
  ConfigSpec spec;
  spec.admin = true;
  spec.listeners = {ListenerSpec{}};
  spec.services = {ServiceSpec{.backends = {{"echo", echo.address()}},
                               .health_check = HealthCheckSpec{.interval = "50ms", .timeout = "50ms"}}};
  TempConfig file(spec.yaml());
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web", scaled_ms(10s));
  const Address admin = wait_admin_address(daemon, scaled_ms(10s));

  Client old_client = Client::connect(proxy, scaled_ms(2s));
  echo_round(old_client, "before\n");

  spec.services = {ServiceSpec{.backends = {{"a", a.address()}},
                               .health_check = HealthCheckSpec{.interval = "100ms", .timeout = "100ms"}}};
  file.write(spec.yaml());
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(5s)));
  CHECK(name_from(proxy) == "a");
  // The replaced service's monitor stopped when the reload committed, though its session goes on:
  // while the new one checks a 4 times (300 ms and more, 6 intervals of the old checks), echo sees
  // at most the check that was in flight then.
  const std::uint64_t echo_checks = echo.accepted();
  const std::uint64_t a_mark = a.accepted();
  CHECK(wait_until([&] { return a.accepted() >= a_mark + 4; }, scaled_ms(5s)));
  CHECK(echo.accepted() <= echo_checks + 1);
  echo_round(old_client, "after\n");
  end_cleanly(old_client);
  // The replaced service is freed on the loop turn after its last session is gone; under
  // ASan the exit adds: no leak, no use after free.
  CHECK(name_from(proxy) == "a");
}

TEST_CASE("reload: a client queued on a replaced service is served by the old one once a slot frees, bytes intact") {
  EchoServer echo;
  NameServer b("b");
  ConfigSpec spec;
  spec.admin = true;
  spec.listeners = {ListenerSpec{}};
  spec.services = {ServiceSpec{.backends = {{.name = "echo", .address = echo.address(), .max_connections = 1}},
                               .queue = QueueSpec{.timeout = "60s"}}};
  TempConfig file(spec.yaml());
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web", scaled_ms(10s));
  const Address admin = wait_admin_address(daemon, scaled_ms(10s));

  Client first = Client::connect(proxy, scaled_ms(2s));
  echo_round(first, "first\n");
  // The only slot is taken: the second client waits in the queue, its bytes read by the daemon.
  Client queued = Client::connect(proxy, scaled_ms(2s));
  const std::string payload = pattern(64 * 1024, 16);
  queued.send_all(payload, scaled_ms(5s));
  REQUIRE(wait_metric(admin, R"(sluice_service_queue_length{service="web"})", 1, scaled_ms(5s)));

  spec.services = {ServiceSpec{.backends = {{"b", b.address()}}}};
  file.write(spec.yaml());
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(5s)));
  // New clients use the new service at once; the queued one stays with the old.
  CHECK(name_from(proxy) == "b");
  CHECK(name_from(proxy) == "b");

  // The old service's slot frees: its queued client gets it, on echo, with every byte in order.
  echo_round(first, "second\n");
  end_cleanly(first);
  const std::string echoed = queued.read_exact(payload.size(), scaled_ms(5s));
  CHECK(echoed.size() == payload.size());
  CHECK_MESSAGE(echoed == payload, "the queued client's bytes came back changed");
  echo_round(queued, "tail\n");
  end_cleanly(queued);
  CHECK(echo.accepted() == 2);
  CHECK(b.accepted() == 2);
  CHECK(metric(scrape(admin), R"(sluice_listener_connections_rejected_total{listener="web",reason="queue_timeout"})") == 0);
}

TEST_CASE("reload: a new listener whose address is taken rejects the whole reload, the old listeners serve on") {
  NameServer a("a"), c("c");
  // A port the test holds and listens on: the daemon's bind fails even with SO_REUSEADDR/SO_REUSEPORT.
  Fd held = bind_tcp_socket(Address{"127.0.0.1", 0});
  REQUIRE(::listen(held.get(), 4) == 0);
  const Address taken = local_address(held.get());
  auto config = [&](const NameServer& backend, bool with_extra) {
    ConfigSpec spec;
    spec.workers = 2;  // worker 1 fails first: nothing may change on either
    spec.admin = true;
    spec.listeners = {ListenerSpec{}};
    if (with_extra) spec.listeners.push_back(ListenerSpec{.name = "extra", .bind = taken.to_string()});
    spec.services = {ServiceSpec{.backends = {{backend.name(), backend.address()}}}};
    return spec.yaml();
  };
  TempConfig file(config(a, false));
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web", scaled_ms(10s));
  const Address admin = wait_admin_address(daemon, scaled_ms(10s));
  CHECK(name_from(proxy) == "a");

  // The new service (c) and the new listener come together: neither may apply.
  file.write(config(c, true));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsFailed, 1, scaled_ms(5s)));
  const auto rejected = daemon.wait_for_line("config: reload rejected", scaled_ms(2s));
  REQUIRE(rejected);
  CHECK_MESSAGE(rejected->find("listener extra") != std::string::npos, *rejected);
  CHECK_MESSAGE(rejected->find(taken.to_string()) != std::string::npos, *rejected);
  const std::string text = scrape(admin);
  CHECK(metric(text, kReloadsOk) == 0);
  CHECK(metric(text, R"(sluice_listener_connections_accepted_total{listener="web"})") >= 1);
  CHECK_FALSE(find_metric(text, R"(sluice_listener_connections_accepted_total{listener="extra"})").has_value());
  CHECK(daemon.count_lines("listening listener=extra") == 0);
  for (int k = 0; k < 6; ++k) CHECK(name_from(proxy) == "a");  // the kernel spreads them over both workers

  // Once the port is free, the same file applies in full.
  held.reset();
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(5s)));
  CHECK(daemon.wait_for_line("listening listener=extra address=" + taken.to_string(), scaled_ms(2s)));
  for (int k = 0; k < 4; ++k) {
    CHECK(name_from(taken) == "c");
    CHECK(name_from(proxy) == "c");
  }
  CHECK(metric(scrape(admin), kReloadsFailed) == 1);
}

TEST_CASE("reload: a listener added by reload serves, a dropped one refuses new clients while its open session flows to its end") {
  NameServer a("a");
  EchoServer echo;
  // Distinct bind hosts: listeners are matched by bind, and two "127.0.0.1:0" would be ambiguous.
  auto config = [&](const std::string& name, const std::string& bind) {
    ConfigSpec spec;
    spec.admin = true;
    spec.listeners = {ListenerSpec{}, ListenerSpec{.name = name, .bind = bind, .service = "echo"}};
    spec.services = {ServiceSpec{.backends = {{"a", a.address()}}},
                     ServiceSpec{.name = "echo", .backends = {{"echo", echo.address()}}}};
    return spec.yaml();
  };
  TempConfig file(config("old", "127.0.0.2:0"));
  DaemonProcess daemon(file);
  const auto started = daemon.wait_listening(2, scaled_ms(10s));
  const Address proxy = started.at("web");
  const Address old = started.at("old");
  const Address admin = wait_admin_address(daemon, scaled_ms(10s));

  Client session = Client::connect(old, scaled_ms(2s));
  echo_round(session, "before\n");

  file.write(config("extra", "127.0.0.3:0"));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(5s)));
  const Address extra = daemon.wait_listening(3, scaled_ms(2s)).at("extra");
  CHECK(extra.host == "127.0.0.3");

  Client fresh = Client::connect(extra, scaled_ms(2s));
  echo_round(fresh, "new\n");
  end_cleanly(fresh);
  // The dropped listener's socket is closed: the kernel refuses a new client.
  Client refused;
  CHECK(Client::try_connect(old, scaled_ms(2s), refused) == ECONNREFUSED);
  // Its open session is not cut.
  echo_round(session, "after\n");
  end_cleanly(session);
  CHECK(name_from(proxy) == "a");

  const std::string text = scrape(admin);
  CHECK(metric(text, R"(sluice_listener_connections_accepted_total{listener="extra"})") == 1);
  CHECK_FALSE(find_metric(text, R"(sluice_listener_connections_accepted_total{listener="old"})").has_value());
  CHECK(echo.accepted() == 2);
}

TEST_CASE("reload: a config directory that cannot be watched is logged, SIGHUP still reloads") {
  NameServer a("a"), b("b");
  TempConfig file(name_servers_config({&a}));
  namespace fs = std::filesystem;
  using fs::perms;
  // Traversable but not readable: the config opens, the directory watch (inotify) is refused.
  fs::permissions(file.path(), perms::owner_read | perms::owner_write | perms::group_read | perms::others_read);
  fs::permissions(file.directory(), perms::owner_write | perms::owner_exec | perms::group_exec | perms::others_exec);
  struct Readable {  // TempConfig lists the directory to remove it
    std::string directory;
    ~Readable() { fs::permissions(directory, perms::owner_all); }
  } restore{file.directory()};
  Launch launch;
  if (::geteuid() == 0) {
    // Root reads any directory: the daemon runs without the two capabilities that let it.
    const auto setpriv = find_executable("setpriv");
    if (!setpriv) SLUICE_SKIP("setpriv (util-linux) is missing: as root the directory cannot be made unwatchable");
    launch.prefix = {*setpriv, "--inh-caps=-dac_override,-dac_read_search",
                     "--bounding-set=-dac_override,-dac_read_search", "--"};
  }
  DaemonProcess daemon(file, {}, launch);
  const Address proxy = daemon.wait_listening_on("web", scaled_ms(10s));
  const Address admin = wait_admin_address(daemon, scaled_ms(10s));
  CHECK(daemon.wait_for_line("config: cannot watch " + file.directory() + " (permission denied); reload with SIGHUP",
                             scaled_ms(2s)));
  CHECK(name_from(proxy) == "a");

  file.write(name_servers_config({&b}));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(5s)));
  CHECK(daemon.wait_for_line("config: reloading " + file.path() + " (SIGHUP)", scaled_ms(2s)));
  CHECK(name_from(proxy) == "b");
}

namespace {

// One service "web" on one holding backend "h", the daemon at debug level (its retired_service_freed
// lines), for the tests of a service that a reload rebuilds (retries changed) under open sessions.
struct RebuiltService {
  explicit RebuiltService(bool access_log)
      : spec(make_spec(hold, access_log)),
        file(spec.yaml()),
        daemon(file, {"--log-level", "debug"}),
        proxy(daemon.wait_listening_on("web", scaled_ms(10s))),
        admin(wait_admin_address(daemon, scaled_ms(10s))) {}

  static ConfigSpec make_spec(const HoldServer& backend, bool access_log) {
    ConfigSpec made;
    made.admin = true;
    made.access_log = access_log;
    made.listeners = {ListenerSpec{}};
    made.services = {ServiceSpec{.backends = {{"h", backend.address()}}}};
    return made;
  }
  // Rewrites the file with a changed service (retries) and has the daemon reload it.
  void rebuild() {
    spec.services[0].retries = 1;
    file.write(spec.yaml());
    daemon.send_signal(SIGHUP);
  }

  HoldServer hold{"h"};
  ConfigSpec spec;
  TempConfig file;
  DaemonProcess daemon;
  const Address proxy;
  const Address admin;
  const std::string dispatched = R"(sluice_backend_connections_total{service="web",backend="h",node=""})";
  const std::string ended = R"(sluice_backend_session_seconds_count{service="web",backend="h",node=""})";
};

}  // namespace

TEST_CASE("reload: a rebuilt service's counters go on from the old one's totals, during its last session and after it is freed") {
  RebuiltService web(/*access_log=*/false);
  DaemonProcess& daemon = web.daemon;
  const Address& proxy = web.proxy;
  const Address& admin = web.admin;
  const std::string& dispatched = web.dispatched;
  const std::string& ended = web.ended;
  const std::string accepted = R"(sluice_listener_connections_accepted_total{listener="web"})";
  auto hello = [&] {
    Client client = Client::connect(proxy, scaled_ms(2s));
    CHECK(client.read_exact(2, scaled_ms(2s)) == "h\n");
    return client;
  };

  // One session stays open on the service that the reload replaces; three end before it.
  Client open_on_old = hello();
  for (int i = 0; i < 3; ++i) hello();
  REQUIRE(wait_metric(admin, ended, 3, scaled_ms(5s)));
  CHECK(metric(scrape(admin), dispatched) == 4);

  // A changed service is rebuilt with counters of its own, while the old one finishes its session.
  web.rebuild();
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(5s)));
  const std::string during = scrape(admin);
  CHECK(metric(during, dispatched) == 4);
  CHECK(metric(during, ended) == 3);
  Client open_on_new = hello();
  CHECK(wait_metric(admin, dispatched, 5, scaled_ms(5s)));

  // The old service's last session ends and it is freed: its totals stay in every sum.
  open_on_old.close();
  REQUIRE(daemon.wait_for_line("retired_service_freed service=web", scaled_ms(5s)));
  const std::string after = scrape(admin);
  CHECK(metric(after, dispatched) == 5);
  CHECK(metric(after, ended) == 4);
  CHECK(metric(after, accepted) == 5);
  open_on_new.close();
  CHECK(wait_metric(admin, ended, 5, scaled_ms(5s)));
  CHECK(metric(scrape(admin), dispatched) == 5);
}

namespace {

// Milliseconds since midnight of a text log line ("2026-12-06T04:20:01.123+0000 ...").
long log_time_ms(const std::string& line) {
  if (line.size() < 23) return -1;
  return ((std::stol(line.substr(11, 2)) * 60 + std::stol(line.substr(14, 2))) * 60 + std::stol(line.substr(17, 2))) *
             1000 +
         std::stol(line.substr(20, 3));
}

}  // namespace

TEST_CASE("reload: a replaced service is freed on the loop turn after its last session ends, not by a poll, its counters kept") {
  RebuiltService web(/*access_log=*/true);
  DaemonProcess& daemon = web.daemon;
  const Address& proxy = web.proxy;
  const Address& admin = web.admin;
  const std::string& dispatched = web.dispatched;
  const std::string& ended = web.ended;

  Client open_on_old = Client::connect(proxy, scaled_ms(2s));
  CHECK(open_on_old.read_exact(2, scaled_ms(2s)) == "h\n");
  web.rebuild();  // a changed service: rebuilt, the old one retired with its session
  REQUIRE(wait_metric(admin, kReloadsOk, 1, scaled_ms(5s)));
  // Closed right after the commit: a poll started with it (as the reap timer was) would next
  // look about a second later.
  open_on_old.close();
  const auto freed = daemon.wait_for_line("retired_service_freed service=web", scaled_ms(5s));
  REQUIRE(freed.has_value());
  const auto session_end = daemon.wait_for_line("access client=", scaled_ms(2s));
  REQUIRE(session_end.has_value());
  // The daemon's own timestamps: no scale needed.
  long gap_ms = log_time_ms(*freed) - log_time_ms(*session_end);
  if (gap_ms < -43'200'000) gap_ms += 86'400'000;  // across midnight
  MESSAGE("retired service freed " << gap_ms << " ms after its last session ended");
  CHECK(gap_ms >= 0);
  CHECK(gap_ms < 250);
  // Its counters still reach /metrics, carried by the rebuilt service.
  const std::string after = scrape(admin);
  CHECK(metric(after, dispatched) == 1);
  CHECK(metric(after, ended) == 1);
}
