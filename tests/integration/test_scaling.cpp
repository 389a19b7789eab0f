// The scaling signal end to end (README "The scaling signal"): the real daemon in front of real
// sluice-backend servers (exponential and constant 20 ms service, three one-slot backends each),
// sluice-loadgen's Poisson arrivals at 60 a second; after a 20 s window /scaling and /metrics agree,
// lambda and 1/mu are within 10 % of the truth (1/mu: the draws plus the per-connection overhead the
// constant arm measures), the recommendation is the c* of the true lambda and mu, and constant
// service reads a service CV near 0 with the Allen-Cunneen correction applied.

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <signal.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "harness.hpp"
#include "sluice/scaling/recommend.hpp"

#ifndef SLUICE_LOADGEN_BINARY
#error "SLUICE_LOADGEN_BINARY must name the sluice-loadgen executable"
#endif

using namespace sluice::it;
using sluice::test::scaled;
using nlohmann::json;

namespace {

constexpr double kLambda = 60;        // arrivals per second, each service
constexpr double kMeanService = 0.020;

struct RunningBackend {
  std::unique_ptr<DaemonProcess> process;
  std::string address;
};

RunningBackend start_backend(const std::string& name, const std::string& distribution, int seed) {
  RunningBackend backend;
  backend.process = std::make_unique<DaemonProcess>(
      Command{{SLUICE_BACKEND_BINARY, "--listen", "127.0.0.1:0", "--name", name, "--mean-service", "20ms",
               "--distribution", distribution, "--seed", std::to_string(seed)}});
  const auto line = backend.process->wait_for_line("listening on", scaled(Millis(5s)));
  REQUIRE_MESSAGE(line, "sluice-backend " << name << " did not start");
  std::smatch match;
  REQUIRE(std::regex_search(*line, match, std::regex(R"(listening on (\S+))")));
  backend.address = match[1];
  return backend;
}

std::string service_yaml(const std::string& name, const std::vector<RunningBackend>& backends) {
  std::string yaml = "  - name: " + name +
                     "\n    health_check: {enabled: false}\n"
                     "    scaling: {window: 20s, target_wait: 1ms}\n"
                     "    backends:\n";
  for (std::size_t i = 0; i < backends.size(); ++i) {
    yaml += "      - {name: b" + std::to_string(i + 1) + ", address: \"" + backends[i].address +
            "\", max_connections: 1}\n";
  }
  return yaml;
}

const json& service_of(const json& doc, const std::string& name) {
  for (const json& service : doc.at("services")) {
    if (service.at("service") == name) return service;
  }
  throw std::runtime_error("no service " + name + " in /scaling: " + doc.dump());
}

std::string gauge(const std::string& name, const std::string& service) {
  return "sluice_service_" + name + "{service=\"" + service + "\"}";
}

// The gauges of the signal in one scrape, by name (absent ones left out).
std::map<std::string, double> signal_gauges(const std::string& text, const std::string& service) {
  std::map<std::string, double> out;
  for (const char* name : {"arrival_rate", "mean_service_seconds", "offered_load", "utilisation",
                           "predicted_queue_wait_seconds", "recommended_backends", "recommended_slots",
                           "arrival_cv", "service_cv", "scaling_corrected"}) {
    if (auto value = find_metric(text, gauge(name, service))) out[name] = *value;
  }
  return out;
}

}  // namespace

TEST_CASE("scaling: Poisson load on exponential and constant service, /scaling and /metrics agree with the truth") {
  std::vector<RunningBackend> exponential, constant;
  for (int i = 0; i < 3; ++i) exponential.push_back(start_backend("e" + std::to_string(i + 1), "exponential", i + 1));
  for (int i = 0; i < 3; ++i) constant.push_back(start_backend("d" + std::to_string(i + 1), "constant", i + 1));
  const std::string yaml = "admin: {bind: 127.0.0.1:0}\n"
                           "listeners:\n"
                           "  - {name: mmc, bind: 127.0.0.1:0, service: mmc}\n"
                           "  - {name: mdc, bind: 127.0.0.1:0, service: mdc}\n"
                           "services:\n" +
                           service_yaml("mmc", exponential) + service_yaml("mdc", constant);
  DaemonProcess daemon(yaml);
  const auto listeners = daemon.wait_listening(2);
  const Address admin = wait_admin_address(daemon);

  // No data yet: warming up, and no gauge of the signal.
  const json cold = json::parse(http_get(admin, "/scaling").body);
  CHECK(service_of(cold, "mmc").at("state") == "warming_up");
  CHECK(service_of(cold, "mmc").at("recommended_backends").is_null());
  CHECK(signal_gauges(scrape(admin), "mmc").empty());

  // 60 arrivals a second on each for 34 s: the 20 s window fills with load from its start.
  std::vector<std::unique_ptr<DaemonProcess>> loads;
  int seed = 11;
  for (const char* listener : {"mmc", "mdc"}) {
    loads.push_back(std::make_unique<DaemonProcess>(
        Command{{SLUICE_LOADGEN_BINARY, "--target", listeners.at(listener).to_string(), "--rate", "60",
                 "--duration", "34s", "--seed", std::to_string(seed++)}}));
  }
  // Wait until both windows hold 20 s of load and nothing from before it (copies are a second apart).
  const auto load_started = std::chrono::steady_clock::now();
  const auto deadline = load_started + scaled(Millis(40s));
  json doc;
  for (;;) {
    doc = json::parse(http_get(admin, "/scaling").body);
    const json& mmc = service_of(doc, "mmc");
    const json& mdc = service_of(doc, "mdc");
    const bool full = mmc.at("state") == "ok" && mdc.at("state") == "ok" &&
                      mmc.at("span_seconds").get<double>() >= 19.5 && mdc.at("span_seconds").get<double>() >= 19.5 &&
                      std::chrono::steady_clock::now() - load_started >= 22s;
    if (full) break;
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "the window did not fill: " << doc.dump());
    std::this_thread::sleep_for(200ms);
  }

  // /scaling and /metrics agree: read both between two scrapes that agree (no tick in between).
  std::map<std::string, double> mmc_gauges, mdc_gauges;
  for (int attempt = 0;; ++attempt) {
    const std::string before = scrape(admin);
    doc = json::parse(http_get(admin, "/scaling").body);
    const std::string after = scrape(admin);
    mmc_gauges = signal_gauges(before, "mmc");
    mdc_gauges = signal_gauges(before, "mdc");
    if (mmc_gauges == signal_gauges(after, "mmc") && mdc_gauges == signal_gauges(after, "mdc")) break;
    REQUIRE(attempt < 5);
  }
  const json& mmc = service_of(doc, "mmc");
  const json& mdc = service_of(doc, "mdc");
  INFO("/scaling: " << doc.dump());
  for (const auto& [service, gauges] : {std::pair{&mmc, &mmc_gauges}, std::pair{&mdc, &mdc_gauges}}) {
    const json& s = *service;
    CHECK(gauges->size() == 10);  // every gauge, the predicted wait included (rho < 1)
    CHECK(gauges->at("arrival_rate") == doctest::Approx(s.at("arrival_rate").get<double>()));
    CHECK(gauges->at("mean_service_seconds") == doctest::Approx(s.at("mean_service_seconds").get<double>()));
    CHECK(gauges->at("offered_load") == doctest::Approx(s.at("offered_load").get<double>()));
    CHECK(gauges->at("utilisation") == doctest::Approx(s.at("utilisation").get<double>()));
    CHECK(gauges->at("predicted_queue_wait_seconds") ==
          doctest::Approx(s.at("predicted_queue_wait_seconds").get<double>()));
    CHECK(gauges->at("recommended_backends") == s.at("recommended_backends").get<double>());
    CHECK(gauges->at("recommended_slots") == s.at("recommended_slots").get<double>());
    CHECK(gauges->at("arrival_cv") == doctest::Approx(s.at("arrival_cv").get<double>()));
    CHECK(gauges->at("service_cv") == doctest::Approx(s.at("service_cv").get<double>()));
    CHECK(s.at("slots") == 3);
    CHECK(s.at("backends_up") == 3);
    CHECK(s.at("workers") == 1);
    // The truth within 10 %.
    CHECK(std::fabs(s.at("arrival_rate").get<double>() / kLambda - 1) < 0.10);
    CHECK(std::fabs(s.at("arrival_cv").get<double>() - 1) < 0.2);  // Poisson arrivals
  }
  // 1/mu is the slot time: the backend's draw plus the per-connection overhead (the connect and the
  // hand-offs between processes: ~0.2 ms on an idle machine, a few ms at nice 19 beside a build or
  // under ASan). The constant arm measures that overhead exactly, at the same time: its draws are 20 ms.
  const double overhead = mdc.at("mean_service_seconds").get<double>() - kMeanService;
  INFO("per-connection overhead " << overhead * 1e3 << " ms");
  CHECK(overhead > -0.0005);
  CHECK(overhead < 0.008);
  CHECK(std::fabs(mmc.at("mean_service_seconds").get<double>() / (kMeanService + overhead) - 1) < 0.10);

  // Exponential service: plain M/M/c, and the c* of the true lambda and mu for a 1 ms mean wait
  // (c = 3 waits 1.6 ms, c = 4 0.26 ms: 4, not on a knife edge).
  sluice::scaling::RecommendInput truth;
  truth.lambda = kLambda;
  truth.mu = 1 / kMeanService;
  truth.current_slots = 3;
  truth.target.mean_wait_seconds = 0.001;
  truth.slots_per_backend = 1;
  truth.min_backends = 1;
  truth.max_backends = 64;
  const auto expected = sluice::scaling::recommend(truth);
  CHECK(expected.backends == 4);
  CHECK(mmc.at("model") == "M/M/c");
  CHECK(mmc_gauges.at("scaling_corrected") == 0);
  CHECK(std::fabs(mmc.at("service_cv").get<double>() - 1) < 0.2);
  CHECK(mmc.at("recommended_backends") == expected.backends);
  CHECK(mmc.at("clamped") == "none");

  // Constant service (M/D/c): the service CV reads near 0 (what is left is the jitter of the
  // per-connection overhead in each slot time, 0.05-0.12 on this machine) and the correction applies.
  CHECK(mdc.at("service_cv").get<double>() < 0.25);
  CHECK(mdc.at("model") == "G/G/c (Allen-Cunneen)");
  CHECK(mdc_gauges.at("scaling_corrected") == 1);
  CHECK(mdc.at("correction_factor").get<double>() < 0.55);  // (1 + cs^2) / 2

  for (auto& load : loads) load->send_signal(SIGTERM);
  daemon.send_signal(SIGTERM);
  CHECK(daemon.wait_exit(scaled(Millis(10s))) == 0);
}
