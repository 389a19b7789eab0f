// Live reload: SIGHUP and a changed config file (a ConfigMap's symlink swap) apply a new config
// without refusing a client; a bad config changes nothing and is counted.

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.hpp"

using namespace sluice::it;

namespace {

constexpr const char* kReloadsOk = R"(sluice_config_reloads_total{result="success"})";
constexpr const char* kReloadsFailed = R"(sluice_config_reloads_total{result="failure"})";

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
        Client client = Client::connect(proxy);
        const ReadResult result = client.read_until_end(2s);
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
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Load load(proxy);
  for (int i = 1; i <= 20; ++i) {
    const bool odd = i % 2 == 1;
    file.write(odd ? name_servers_config({&c}) : name_servers_config({&a, &b}));
    daemon.send_signal(SIGHUP);
    REQUIRE_MESSAGE(wait_metric(admin, kReloadsOk, i, 5s), "reload " << i << " not applied");
    // Every new connection after the reload uses the new backends.
    for (int k = 0; k < 3; ++k) {
      const std::string name = served_by(proxy);
      CHECK_MESSAGE((odd ? name == "c" : (name == "a" || name == "b")), "reload " << i << ": served by '" << name << "'");
    }
  }

  // Invalid: every error logged with its place, counted, and the running config (a, b) stays.
  file.write(name_servers_config({&c}) + "    bogus_key: 1\n");
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsFailed, 1, 5s));
  CHECK(daemon.wait_for_line(file.path() + ":", 2s));
  CHECK(daemon.wait_for_line("reload rejected", 2s));
  for (int k = 0; k < 4; ++k) {
    const std::string name = served_by(proxy);
    CHECK((name == "a" || name == "b"));
  }
  std::this_thread::sleep_for(200ms);
  load.stop();

  MESSAGE("connections during 21 reloads: " << load.completed() << " completed, " << load.failed() << " failed");
  CHECK_MESSAGE(load.failed() == 0, "first failure: " << load.first_failure());
  CHECK(load.completed() > 100);
  const std::string text = scrape(admin);
  CHECK(metric(text, kReloadsOk) == 20);
  CHECK(metric(text, kReloadsFailed) == 1);
  CHECK(metric(text, R"(sluice_listener_connections_rejected_total{listener="web",reason="no_backend"})") == 0);
}

TEST_CASE("reload: a ConfigMap-style symlink swap in the config directory is applied without a signal") {
  NameServer a("a"), b("b");
  TempConfig scratch("");  // a private directory laid out as kubelet lays out a ConfigMap volume
  namespace fs = std::filesystem;
  const fs::path dir = scratch.directory();
  auto write_version = [&](const std::string& name, const std::string& yaml) {
    fs::create_directory(dir / name);
    std::ofstream(dir / name / "sluice.yaml") << yaml;
  };
  write_version("..2026_v1", name_servers_config({&a}));
  fs::create_directory_symlink("..2026_v1", dir / "..data");
  fs::remove(dir / "sluice.yaml");
  fs::create_symlink("..data/sluice.yaml", dir / "sluice.yaml");

  DaemonProcess daemon(scratch);
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);
  CHECK(served_by(proxy) == "a");

  // kubelet's update: a new version directory, a temporary symlink, renamed over ..data.
  write_version("..2026_v2", name_servers_config({&b}));
  fs::create_directory_symlink("..2026_v2", dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");
  REQUIRE(wait_metric(admin, kReloadsOk, 1, 3s));
  CHECK(daemon.wait_for_line("config: reloading " + scratch.path() + " (file changed)", 1s));
  CHECK(served_by(proxy) == "b");
  // Unrelated files in the directory trigger nothing.
  std::ofstream(dir / "unrelated.txt") << "x";
  std::this_thread::sleep_for(400ms);
  CHECK(metric(scrape(admin), kReloadsOk) == 1);
}

TEST_CASE("reload: a session open on a replaced service keeps flowing, new clients use the new one") {
  EchoServer echo;
  NameServer a("a");
  ConfigSpec spec;
  spec.admin = true;
  spec.listeners = {ListenerSpec{}};
  spec.services = {ServiceSpec{.backends = {{"echo", echo.address()}}}};
  TempConfig file(spec.yaml());
  DaemonProcess daemon(file);
  const Address proxy = daemon.wait_listening_on("web");
  const Address admin = wait_admin_address(daemon);

  Client old_client = Client::connect(proxy);
  old_client.send_all("before\n");
  CHECK(old_client.read_exact(7) == "before\n");

  file.write(name_servers_config({&a}));
  daemon.send_signal(SIGHUP);
  REQUIRE(wait_metric(admin, kReloadsOk, 1, 5s));
  CHECK(served_by(proxy) == "a");
  old_client.send_all("after\n");
  CHECK(old_client.read_exact(6) == "after\n");
  old_client.shutdown_write();
  CHECK(old_client.read_until_end(2s).end == End::eof);
  // The replaced service is freed once its last session is gone (under ASan: without a leak or a
  // use after free); the daemon serves on.
  std::this_thread::sleep_for(1200ms);
  CHECK(served_by(proxy) == "a");
  CHECK(daemon.running());
}
