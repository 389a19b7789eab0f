// mode: http in front of the stack the issue's user runs: three FastAPI apps under uvicorn
// (fastapi_backend.py, Debian python3-fastapi python3-uvicorn) with keep-alive, driven by curl and
// hey. Every response checked (bodies hashed), and the requests spread by round-robin.

#include <doctest/doctest.h>
#include "test_support.hpp"

#include <fstream>
#include <iterator>
#include <map>
#include <regex>

#include "harness.hpp"
#include "http_backend.hpp"
#include "netns.hpp"  // run_command
#include "processes.hpp"

#ifndef SLUICE_SOURCE_DIR
#error "SLUICE_SOURCE_DIR must name the source tree (tests/integration/fastapi_backend.py)"
#endif

using namespace sluice::it;

namespace {

RunningBackend start_fastapi(const std::string& name) {
  return start_listening_process(
      Command{{"/usr/bin/python3", SLUICE_SOURCE_DIR "/tests/integration/fastapi_backend.py", name}},
      "fastapi " + name + " listening on 127.0.0.1:", 20s);
}

bool python_has(const std::string& module) {
  return run_command({"/usr/bin/python3", "-c", "import " + module}).exit_code == 0;
}

// The bytes fastapi_backend.py's /blob/N sends.
std::string blob(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(i % 251);
  return out;
}

}  // namespace

TEST_CASE("http: three FastAPI apps under uvicorn, kept alive, through Sluice with curl and hey: every response right, requests spread 1/3 each") {
  const auto curl = find_executable("curl");
  const auto hey = find_executable("hey");
  if (!curl || !hey || !python_has("fastapi") || !python_has("uvicorn")) {
    SLUICE_SKIP("curl, hey, python3-fastapi or python3-uvicorn is not installed (scripts/install-deps.sh)");
  }
  std::vector<RunningBackend> apps;
  ServiceSpec service{.policy = "round_robin"};
  for (const char* name : {"a", "b", "c"}) {
    apps.push_back(start_fastapi(name));
    service.backends.push_back({.name = name, .address = apps.back().address, .max_connections = 1});
  }
  DaemonProcess daemon(
      ConfigSpec{.listeners = {ListenerSpec{.mode = "http"}}, .services = {service}, .admin = true}.yaml());
  const std::string base = "http://" + daemon.wait_listening_on("web").to_string();
  const Address admin = wait_admin_address(daemon);
  TempDir out;
  auto file = [&](const std::string& name) {
    std::ifstream in(out.path() + "/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };

  // curl: six requests on one connection go a, b, c, a, b, c (one at a time, every slot free).
  std::vector<std::string> argv{*curl, "-sS", "-w", "%{http_code} %{num_connects}\\n"};
  for (int i = 0; i < 6; ++i) {
    argv.insert(argv.end(), {base + "/r", "-o", out.path() + "/r" + std::to_string(i)});
  }
  const CommandResult rotated = run_command(argv);
  CHECK(rotated.exit_code == 0);
  CHECK(rotated.output == "200 1\n200 0\n200 0\n200 0\n200 0\n200 0\n");
  std::string order;
  for (int i = 0; i < 6; ++i) order += file("r" + std::to_string(i));
  CHECK(order == "backend=a ok\nbackend=b ok\nbackend=c ok\nbackend=a ok\nbackend=b ok\nbackend=c ok\n");

  // Bodies both ways, hashed: a 1 MiB upload echoed, a 700 kB download.
  const std::string upload = pattern(1 << 20, 31);
  std::ofstream(out.path() + "/upload", std::ios::binary) << upload;
  const CommandResult echoed = run_command({*curl, "-sS", "--data-binary", "@" + out.path() + "/upload", "-o",
                                            out.path() + "/echoed", "-w", "%{http_code}", base + "/echo"});
  CHECK(echoed.output == "200");
  CHECK(sha256_hex(file("echoed")) == sha256_hex(upload));
  const CommandResult fetched =
      run_command({*curl, "-sS", "-o", out.path() + "/blob", "-w", "%{http_code}", base + "/blob/700000"});
  CHECK(fetched.output == "200");
  CHECK(sha256_hex(file("blob")) == sha256_hex(blob(700'000)));

  // hey: a fixed count over 6 kept-alive connections, every one a 200, none failed.
  const int total = 600;
  const CommandResult loaded = run_command({*hey, "-n", std::to_string(total), "-c", "6", base + "/r"}, {}, 60s);
  INFO(loaded.output);
  CHECK(loaded.exit_code == 0);
  CHECK(loaded.output.find("[200]\t" + std::to_string(total) + " responses") != std::string::npos);
  CHECK(loaded.output.find("Error distribution") == std::string::npos);

  // Every request reached a backend and came back 2xx, spread about evenly, over pooled connections.
  const std::string text = scrape(admin);
  const double requests = metric(text, "sluice_listener_http_requests_total{listener=\"web\"}");
  CHECK(requests == 6 + 2 + total);
  double answered = 0;
  for (const char* name : {"a", "b", "c"}) {
    CAPTURE(name);
    const std::string labels = std::string("{service=\"web\",backend=\"") + name + "\",node=\"\"";
    const double ok = metric(text, "sluice_backend_http_responses_total" + labels + ",code=\"2xx\"}");
    answered += ok;
    CHECK(ok >= 0.25 * requests);
    CHECK(ok <= 0.42 * requests);
  }
  CHECK(answered == requests);
  double reuses = 0;
  for (const char* name : {"a", "b", "c"}) {
    reuses += metric(text, std::string("sluice_backend_pool_reuses_total{service=\"web\",backend=\"") + name + "\",node=\"\"}");
  }
  CHECK(reuses > 0.9 * requests);
}
