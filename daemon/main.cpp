// sluice: parses flags, loads the configuration and hands it to the daemon. Nothing else.

#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "sluice/log/access_log.hpp"
#include "sluice/config/config.hpp"
#include "sluice/control/daemon.hpp"
#include "sluice/metrics/exact_metrics.hpp"

namespace {

constexpr const char* kDefaultConfigPath = "/etc/sluice/sluice.yaml";

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "sluice %s: a TCP and HTTP/1.1 load balancer\n"
               "\n"
               "Usage: sluice [--config FILE] [--check] [--log-level LEVEL]\n"
               "\n"
               "  -c, --config FILE       YAML configuration (default %s)\n"
               "      --check             validate the configuration and exit: 0 if valid, else 1\n"
               "                          with every error printed as FILE:LINE:COL: message\n"
               "  -l, --log-level LEVEL   override log.level: trace, debug, info, warn, error\n"
               "  -V, --version           print the version and exit\n"
               "  -h, --help              print this help and exit\n"
               "\n"
               "Signals: SIGTERM/SIGINT stop accepting and drain sessions for drain_timeout;\n"
               "a second one closes the remaining sessions at once. SIGHUP, or a change of the\n"
               "config file (its directory is watched), reloads the configuration; an invalid\n"
               "one is logged and the running configuration stays.\n",
               SLUICE_VERSION, kDefaultConfigPath);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = kDefaultConfigPath;
  std::optional<std::string> level_flag;
  bool check_only = false;

  enum { kCheck = 1000 };
  const option options[] = {
      {"config", required_argument, nullptr, 'c'},  {"check", no_argument, nullptr, kCheck},
      {"log-level", required_argument, nullptr, 'l'}, {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},           {nullptr, 0, nullptr, 0},
  };
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, ":c:l:Vh", options, nullptr)) != -1) {
    switch (opt) {
      case 'c': config_path = optarg; break;
      case 'l': level_flag = optarg; break;
      case kCheck: check_only = true; break;
      case 'V': std::printf("sluice %s\n", SLUICE_VERSION); return 0;
      case 'h': print_usage(stdout); return 0;
      case ':':
        std::fprintf(stderr, "sluice: option '%s' needs a value (see --help)\n", argv[optind - 1]);
        return 2;
      default:
        std::fprintf(stderr, "sluice: unknown option '%s' (see --help)\n", argv[optind - 1]);
        return 2;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "sluice: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (level_flag && !sluice::parse_log_level(*level_flag)) {
    std::fprintf(stderr, "sluice: --log-level '%s' is not one of trace, debug, info, warn, error\n",
                 level_flag->c_str());
    return 2;
  }

  sluice::ConfigResult loaded = sluice::load_config(config_path);
  if (!loaded.config) {
    for (const auto& error : loaded.errors) std::fprintf(stderr, "%s\n", error.to_string().c_str());
    return 1;
  }
  if (check_only) {
    std::printf("%s: configuration ok\n", config_path.c_str());
    return 0;
  }

  const auto level = level_flag ? sluice::parse_log_level(*level_flag) : std::nullopt;
  sluice::setup_logging(loaded.config->log, level);

  spdlog::info("sluice {} starting with {}", SLUICE_VERSION, config_path);
  if constexpr (!sluice::kExactMetrics) {
    spdlog::warn("built with SLUICE_EXACT_METRICS=OFF (a benchmark build): time integrals and histograms read 0");
  }
  const char* hooks = std::getenv("SLUICE_TEST_HOOKS");
  const bool test_hooks = hooks != nullptr && std::string_view(hooks) == "1";
  if (test_hooks) spdlog::warn("SLUICE_TEST_HOOKS=1: the admin endpoint serves /test/ paths (tests only)");
  sluice::Daemon daemon(std::move(*loaded.config), {config_path, level, test_hooks});
  return daemon.run();
}
