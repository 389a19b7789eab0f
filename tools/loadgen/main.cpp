// sluice-loadgen: an open-loop HTTP/1.1 load generator for the queueing experiments. Poisson arrivals at
// --rate, one connection per request or K persistent ones; every request recorded (scheduled and actual
// send time, response time, backend, status); a summary on stdout, the records as CSV, the summary as
// JSON. How the schedule is kept below a millisecond: loadgen.hpp.

#include <sys/resource.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/cli.hpp"
#include "loadgen.hpp"

namespace {

using namespace sluice::tools;

constexpr const char* kUsage =
    "usage: sluice-loadgen --target HOST:PORT --rate PER_SECOND (--requests N | --duration D) [options]\n"
    "       sluice-loadgen --target HOST:PORT --profile SPEC|FILE --duration D [options]\n"
    "\n"
    "Open-loop HTTP/1.1 load: requests arrive as a Poisson process and each is sent at its arrival time,\n"
    "whether or not earlier ones were answered.\n"
    "\n"
    "  --target HOST:PORT        where to send: IPv4, [IPv6] or a name (resolved once, at start)\n"
    "  --rate R                  mean arrival rate, requests per second (> 0)\n"
    "  --profile SPEC|FILE       instead of --rate: a rate lambda(t) that changes over the run (a non-homogeneous\n"
    "                            Poisson process, drawn exactly by thinning); needs --duration. SPEC is one of\n"
    "                              steps:0s:20,120s:60,240s:30   (\"steps:\" optional) rate 20/s from 0s, 60/s from 120s...\n"
    "                              linear:0s:10,60s:50           straight lines between points, then the last rate\n"
    "                              sine:mean=40,amplitude=25,period=300s[,phase=DEGREES]\n"
    "                            or a FILE holding such a spec, one item a line, # comments\n"
    "  --requests N              stop the arrivals after N requests\n"
    "  --duration D              stop the arrivals after D (250ms, 30s, 2m); with --requests, the first bound wins\n"
    "  --mode MODE               new-connection (default): one connection per request, \"Connection: close\";\n"
    "                            persistent: K keep-alive connections opened first, requests spread over them\n"
    "  --connections K           persistent: number of connections (default 1)\n"
    "  --spread HOW              persistent: round-robin (default), random, or idle-first (the first idle\n"
    "                            connection, else the least loaded: what client connection pools do)\n"
    "  --half-close              new-connection: shut down the sending side after the request (FIN)\n"
    "  --seed N                  seed of the arrival times (and of --spread random); default 1\n"
    "  --warmup D                leave arrivals in the first D out of the printed summary (the CSV has all)\n"
    "  --request-timeout D       a request unanswered this long is an error \"timeout\" (default 60s)\n"
    "  --drain-timeout D         after the last arrival wait at most D for answers (default 30s); the rest\n"
    "                            are \"unfinished\"\n"
    "  --path PATH               request target (default /)\n"
    "  --host NAME               Host header (default sluice)\n"
    "  --csv FILE                one row per request (times in CLOCK_MONOTONIC nanoseconds); - for stdout\n"
    "  --json FILE               the summary as JSON; - for stdout (the printed summary then goes to stderr)\n"
    "  --help                    this text\n"
    "\n"
    "Errors per request: connect_failed, closed (EOF before an answer: turned away), reset, timeout,\n"
    "malformed, unfinished. SIGINT/SIGTERM end the arrivals (answers are still awaited); a second one ends\n"
    "the run. Exit status: 0 after a run, 1 if it could not run, 2 for a bad command line.\n";

struct Cli {
  LoadOptions load;
  std::uint64_t warmup_ns = 0;
  std::string csv_path;
  std::string json_path;
};

std::uint64_t duration_flag(const std::string& flag, const std::string& value) {
  const auto ns = parse_duration_ns(value);
  if (!ns) throw FlagError(flag, value, "a duration with a unit: 500ms, 30s, 2m");
  return *ns;
}

std::optional<int> parse_cli(int argc, char** argv, Cli& cli) {
  bool have_target = false;
  bool have_rate = false;
  try {
    const bool help = walk_flags(argc, argv, kUsage, {"--half-close"}, [&](const std::string& flag, const std::string& value) {
      if (flag == "--half-close") {
        cli.load.half_close = true;
      } else if (flag == "--target") {
        std::string why;
        if (!resolve_address(value, cli.load.target, why)) throw FlagError(flag, value, "HOST:PORT or [V6]:PORT: " + why);
        cli.load.target_text = value;
        have_target = true;
      } else if (flag == "--rate") {
        const auto rate = parse_non_negative(value);
        if (!rate || *rate <= 0 || *rate > 1e6) throw FlagError(flag, value, "requests per second, > 0 and <= 1e6");
        cli.load.rate = *rate;
        have_rate = true;
      } else if (flag == "--profile") {
        std::string why;
        std::error_code ignored;
        cli.load.profile = std::filesystem::is_regular_file(value, ignored) ? RateProfile::load(value, why)
                                                                            : RateProfile::parse(value, why);
        if (!cli.load.profile) throw FlagError(flag + ": " + why);
        if (cli.load.profile->max_rate() > 1e6) throw FlagError(flag + ": rates above 1e6 per second");
      } else if (flag == "--requests") {
        const auto n = parse_uint(value);
        if (!n || *n == 0) throw FlagError(flag, value, "a positive integer");
        cli.load.requests = *n;
      } else if (flag == "--duration") {
        cli.load.duration_ns = duration_flag(flag, value);
        if (cli.load.duration_ns == 0) throw FlagError(flag, value, "a duration above 0");
      } else if (flag == "--mode") {
        if (value == "new-connection") cli.load.mode = LoadMode::new_connection;
        else if (value == "persistent") cli.load.mode = LoadMode::persistent;
        else throw FlagError(flag, value, "new-connection or persistent");
      } else if (flag == "--connections") {
        const auto n = parse_uint(value);
        if (!n || *n == 0 || *n > 10000) throw FlagError(flag, value, "an integer from 1 to 10000");
        cli.load.connections = static_cast<std::uint32_t>(*n);
      } else if (flag == "--spread") {
        if (value == "round-robin") cli.load.spread = Spread::round_robin;
        else if (value == "random") cli.load.spread = Spread::random;
        else if (value == "idle-first") cli.load.spread = Spread::idle_first;
        else throw FlagError(flag, value, "round-robin, random or idle-first");
      } else if (flag == "--seed") {
        const auto n = parse_uint(value);
        if (!n) throw FlagError(flag, value, "a non-negative integer");
        cli.load.seed = *n;
      } else if (flag == "--warmup") {
        cli.warmup_ns = duration_flag(flag, value);
      } else if (flag == "--request-timeout") {
        cli.load.request_timeout_ns = duration_flag(flag, value);
        if (cli.load.request_timeout_ns == 0) throw FlagError(flag, value, "a duration above 0");
      } else if (flag == "--drain-timeout") {
        cli.load.drain_timeout_ns = duration_flag(flag, value);
      } else if (flag == "--path") {
        if (!value.starts_with('/') || value.find_first_of(" \r\n") != std::string::npos) {
          throw FlagError(flag, value, "an absolute path without spaces");
        }
        cli.load.path = value;
      } else if (flag == "--host") {
        if (value.empty() || value.find_first_of(" \r\n") != std::string::npos) {
          throw FlagError(flag, value, "a host name without spaces");
        }
        cli.load.host = value;
      } else if (flag == "--csv") {
        cli.csv_path = value;
      } else if (flag == "--json") {
        cli.json_path = value;
      } else {
        throw FlagError("unknown option " + flag);
      }
    });
    if (help) return 0;
    if (!have_target) throw FlagError("--target HOST:PORT is required");
    if (have_rate && cli.load.profile) throw FlagError("--rate and --profile exclude each other");
    if (cli.load.profile && cli.load.duration_ns == 0) throw FlagError("--profile needs --duration D");
    if (!cli.load.profile && cli.load.rate <= 0) throw FlagError("--rate R or --profile SPEC is required");
    if (cli.load.requests == 0 && cli.load.duration_ns == 0) throw FlagError("--requests N or --duration D is required");
  } catch (const FlagError& e) {
    std::fprintf(stderr, "sluice-loadgen: %s\n(see --help)\n", e.what());
    return 2;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------------------------
// Summary.

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto low = static_cast<std::size_t>(position);
  const std::size_t high = std::min(low + 1, sorted.size() - 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (position - static_cast<double>(low));
}

struct Distribution {
  double mean = NAN, p50 = NAN, p95 = NAN, p99 = NAN, max = NAN;
};

Distribution describe(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  d.mean = sum / static_cast<double>(values.size());
  d.p50 = percentile(values, 0.50);
  d.p95 = percentile(values, 0.95);
  d.p99 = percentile(values, 0.99);
  d.max = values.back();
  return d;
}

struct Summary {
  std::uint64_t arrivals = 0, ok = 0, non_2xx = 0, errors = 0;
  std::uint64_t by_error[7] = {};
  double window_s = 0, offered_per_s = 0, throughput_per_s = 0;
  Distribution latency_ms, lag_us;
  std::vector<std::uint64_t> per_backend;
};

Summary summarise(const LoadResult& result, std::uint64_t warmup_ns) {
  Summary s;
  s.per_backend.assign(result.backend_names.size(), 0);
  const std::uint64_t window_start = result.start_ns + warmup_ns;
  const std::uint64_t window_end = std::max(result.arrivals_end_ns, window_start);
  s.window_s = static_cast<double>(window_end - window_start) / 1e9;
  std::vector<double> latency;
  std::vector<double> lag;
  std::uint64_t done_in_window = 0;
  for (const RequestRecord& r : result.records) {
    if (r.scheduled_ns < window_start) continue;
    ++s.arrivals;
    lag.push_back(static_cast<double>(static_cast<std::int64_t>(r.sent_ns - r.scheduled_ns)) / 1e3);
    if (r.error != RequestError::none) {
      ++s.errors;
      ++s.by_error[static_cast<int>(r.error)];
      continue;
    }
    if (r.status < 200 || r.status > 299) {
      ++s.non_2xx;
      continue;
    }
    ++s.ok;
    if (r.done_ns <= window_end) ++done_in_window;
    latency.push_back(static_cast<double>(r.done_ns - r.sent_ns) / 1e6);
    if (r.backend >= 0) ++s.per_backend[static_cast<std::size_t>(r.backend)];
  }
  if (s.window_s > 0) {
    s.offered_per_s = static_cast<double>(s.arrivals) / s.window_s;
    s.throughput_per_s = static_cast<double>(done_in_window) / s.window_s;
  }
  s.latency_ms = describe(std::move(latency));
  s.lag_us = describe(std::move(lag));
  return s;
}

const char* mode_name(LoadMode mode) { return mode == LoadMode::persistent ? "persistent" : "new-connection"; }
const char* spread_name(Spread spread) {
  switch (spread) {
    case Spread::round_robin: return "round-robin";
    case Spread::random: return "random";
    case Spread::idle_first: return "idle-first";
  }
  return "?";
}

void print_summary(FILE* out, const Cli& cli, const LoadResult& result, const Summary& s) {
  std::fprintf(out, "sluice-loadgen: %s to %s, ", mode_name(cli.load.mode), cli.load.target_text.c_str());
  if (cli.load.profile) {
    std::fprintf(out, "profile %s", cli.load.profile->text().c_str());
  } else {
    std::fprintf(out, "rate %.3f/s", cli.load.rate);
  }
  std::fprintf(out, ", seed %" PRIu64, cli.load.seed);
  if (cli.load.mode == LoadMode::persistent) {
    std::fprintf(out, ", %u connections, spread %s", cli.load.connections, spread_name(cli.load.spread));
  }
  std::fprintf(out, "%s\n", result.interrupted ? " (interrupted)" : "");
  std::fprintf(out, "  requests    %" PRIu64 " after warm-up: %" PRIu64 " ok, %" PRIu64 " non-2xx, %" PRIu64 " errors",
              s.arrivals, s.ok, s.non_2xx, s.errors);
  if (s.errors > 0) {
    std::fprintf(out, " (");
    bool first = true;
    for (int e = 1; e < 7; ++e) {
      if (s.by_error[e] == 0) continue;
      std::fprintf(out, "%s%s %" PRIu64, first ? "" : ", ", error_name(static_cast<RequestError>(e)), s.by_error[e]);
      first = false;
    }
    std::fprintf(out, ")");
  }
  std::fprintf(out, "\n  rate        %.2f s of arrivals: offered %.2f/s, throughput %.2f/s\n", s.window_s, s.offered_per_s,
              s.throughput_per_s);
  std::fprintf(out, "  response    mean %.3f ms, p50 %.3f, p95 %.3f, p99 %.3f, max %.3f ms\n", s.latency_ms.mean,
              s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.p99, s.latency_ms.max);
  std::fprintf(out, "  send lag    mean %.1f us, p50 %.1f, p99 %.1f, max %.1f us (actual send - Poisson schedule)\n",
              s.lag_us.mean, s.lag_us.p50, s.lag_us.p99, s.lag_us.max);
  std::fprintf(out, "  backends   ");
  if (result.backend_names.empty()) std::fprintf(out, " none named");
  for (std::size_t i = 0; i < result.backend_names.size(); ++i) {
    std::fprintf(out, " %s %" PRIu64 " (%.1f%%)", result.backend_names[i].c_str(), s.per_backend[i],
                s.ok > 0 ? 100.0 * static_cast<double>(s.per_backend[i]) / static_cast<double>(s.ok) : 0.0);
  }
  std::fprintf(out, "\n");
}

nlohmann::ordered_json json_distribution(const Distribution& d) {
  return {{"mean", d.mean}, {"p50", d.p50}, {"p95", d.p95}, {"p99", d.p99}, {"max", d.max}};
}

// "-" is stdout (kept open).
FILE* open_output(const std::string& path) { return path == "-" ? stdout : std::fopen(path.c_str(), "w"); }
bool close_output(FILE* f) { return f == stdout ? std::fflush(f) == 0 : std::fclose(f) == 0; }

// Through nlohmann-json: one escaper, non-finite numbers become null, invalid UTF-8 (a backend's name
// is whatever it sent) becomes U+FFFD.
bool write_json(const std::string& path, const Cli& cli, const LoadResult& result, const Summary& s) {
  FILE* f = open_output(path);
  if (f == nullptr) return false;
  nlohmann::ordered_json errors = nlohmann::ordered_json::object();
  for (int e = 1; e < 7; ++e) errors[error_name(static_cast<RequestError>(e))] = s.by_error[e];
  nlohmann::ordered_json backends = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < result.backend_names.size(); ++i) backends[result.backend_names[i]] = s.per_backend[i];
  const nlohmann::ordered_json summary = {
      {"mode", mode_name(cli.load.mode)},
      {"target", cli.load.target_text},
      {"rate", cli.load.rate},
      {"profile", cli.load.profile ? nlohmann::ordered_json(cli.load.profile->text()) : nlohmann::ordered_json()},
      {"seed", cli.load.seed},
      {"connections", cli.load.connections},
      {"spread", spread_name(cli.load.spread)},
      {"half_close", cli.load.half_close},
      {"start_ns", result.start_ns},
      {"arrivals_end_ns", result.arrivals_end_ns},
      {"end_ns", result.end_ns},
      {"warmup_s", static_cast<double>(cli.warmup_ns) / 1e9},
      {"interrupted", result.interrupted},
      {"arrivals", s.arrivals},
      {"ok", s.ok},
      {"non_2xx", s.non_2xx},
      {"errors", std::move(errors)},
      {"window_s", s.window_s},
      {"offered_per_s", s.offered_per_s},
      {"throughput_per_s", s.throughput_per_s},
      {"response_ms", json_distribution(s.latency_ms)},
      {"send_lag_us", json_distribution(s.lag_us)},
      {"backends", std::move(backends)},
  };
  const std::string text = summary.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  const bool written = std::fputs(text.c_str(), f) >= 0;
  return close_output(f) && written;
}

bool write_csv(const std::string& path, const LoadResult& result) {
  FILE* f = open_output(path);
  if (f == nullptr) return false;
  std::fputs("id,scheduled_ns,sent_ns,connected_ns,done_ns,status,error,backend,node,service_ns,backend_wait_ns,"
             "service_elapsed_ns,connection,local_port\n",
             f);
  for (std::size_t i = 0; i < result.records.size(); ++i) {
    const RequestRecord& r = result.records[i];
    const char* backend = r.backend >= 0 ? result.backend_names[static_cast<std::size_t>(r.backend)].c_str() : "";
    const char* node = r.backend >= 0 ? result.backend_nodes[static_cast<std::size_t>(r.backend)].c_str() : "";
    std::fprintf(f, "%zu,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%u,%s,%s,%s,%" PRId64 ",%" PRId64 ",%" PRId64
                    ",%u,%u\n",
                 i, r.scheduled_ns, r.sent_ns, r.connected_ns, r.done_ns, r.status, error_name(r.error), backend, node,
                 r.service_ns, r.backend_wait_ns, r.service_elapsed_ns, r.connection, r.local_port);
  }
  return close_output(f);
}

// Each open connection is a descriptor and an overloaded run keeps thousands open: take the hard limit.
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error from write, not a signal
  Cli cli;
  if (const auto exit_code = parse_cli(argc, argv, cli)) return *exit_code;
  raise_fd_limit();
  LoadResult result;
  try {
    result = run_load(cli.load);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-loadgen: %s\n", e.what());
    return 1;
  }
  const Summary summary = summarise(result, cli.warmup_ns);
  print_summary(cli.csv_path == "-" || cli.json_path == "-" ? stderr : stdout, cli, result, summary);
  std::fflush(stdout);
  if (!cli.csv_path.empty() && !write_csv(cli.csv_path, result)) {
    std::fprintf(stderr, "sluice-loadgen: cannot write --csv %s\n", cli.csv_path.c_str());
    return 1;
  }
  if (!cli.json_path.empty() && !write_json(cli.json_path, cli, result, summary)) {
    std::fprintf(stderr, "sluice-loadgen: cannot write --json %s\n", cli.json_path.c_str());
    return 1;
  }
  return 0;
}
