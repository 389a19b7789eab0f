// sluice-backend: a small HTTP/1.1 server that answers every request with its own name and node
// ("backend=NAME node=NODE\n"), so that tests and the demo see exactly which backend served a request,
// and, for the queueing experiments, after a service time (--mean-service) drawn with a fixed seed from
// an exponential or constant distribution, at most --concurrency requests at once (the others wait in
// the backend, in arrival order, as in a server with a fixed worker pool). One libuv loop; cpu mode adds
// --concurrency worker threads that burn the CPU time (service_engine.hpp).
//
// Per connection: bytes are parsed in order, one request at a time (process_input), and each request is
// answered by serve(). With a service time, serve() hands the request to the ServiceEngine and marks the
// connection busy, so process_input stops until the engine's completion sends the response and resumes
// it: requests pipelined on a keep-alive connection are served one after the other, as HTTP/1.1 wants.
// Service-time accuracy: the engine's timers are a timerfd (nanoseconds), not uv_timer_t (milliseconds);
// see tools/common/hr_timer.hpp. At exit the backend prints how late its timers fired.

#include <uv.h>

#include <algorithm>
#include <cinttypes>
#include <cctype>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../common/cli.hpp"
#include "sluice/http/parser.hpp"
#include "sluice/http/response.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"
#include "service_engine.hpp"

namespace {

using sluice::tools::ServiceCompletion;
using sluice::tools::ServiceConfig;
using sluice::tools::ServiceEngine;

constexpr std::size_t kMaxHeadBytes = 16 * 1024;         // request line + headers + CRLFCRLF; more gets 431
constexpr std::size_t kReadBufferBytes = 64 * 1024;      // one read; shared by all connections
constexpr std::size_t kWriteHighWaterBytes = 64 * 1024;  // unsent response bytes above which parsing pauses

// ---------------------------------------------------------------------------------------------------------------
// HTTP: requests are read by the daemon's HTTP parser (sluice/http/parser.hpp); responses written here.

struct Request {
  bool is_head = false;      // HEAD: same headers, no body
  bool close_after = false;  // HTTP/1.0, or "Connection: close"
};

std::string make_response(int status, std::string_view body, bool send_body, bool close,
                          std::string_view extra_headers = {}) {
  std::string extra(extra_headers);
  if (close) extra += "Connection: close\r\n";
  std::string response = sluice::http::response_head(status, "text/plain", body.size(), extra);
  if (send_body) response.append(body);
  return response;
}

// ---------------------------------------------------------------------------------------------------------------
// The server: one listener, the signals that stop it, and its connections.

// A libuv call whose failure the backend survives: said on stderr, never ignored silently.
void warn_if_failed(int rc, const char* what) {
  if (rc < 0) std::fprintf(stderr, "sluice-backend: %s: %s\n", what, uv_strerror(rc));
}

struct Connection;

struct Server {
  uv_loop_t loop{};
  uv_tcp_t listener{};
  uv_signal_t sigint{};
  uv_signal_t sigterm{};
  std::string name;
  std::string node;
  std::string body;                              // "backend=NAME node=NODE\n"
  std::unordered_map<std::uint64_t, Connection*> connections;  // by id; owned, each deleted in its close callback
  std::uint64_t next_connection_id = 1;
  std::unique_ptr<ServiceEngine> engine;          // null without --mean-service: answers at once
  bool stopping = false;
  char read_buffer[kReadBufferBytes];            // every read lands here and is consumed in the read callback
};

struct Connection : sluice::http::Handler {
  enum class State {
    open,      // reading and answering requests
    draining,  // last response queued and shutdown requested; reading and discarding until the peer's EOF
    closing,   // uv_close called; freed in on_close
  };

  uv_tcp_t tcp{};
  uv_shutdown_t shutdown_request{};
  Server* server = nullptr;
  std::uint64_t id = 0;                // the engine's job id while a request is in service
  State state = State::open;
  bool busy = false;                   // a request is waiting for or in service: parsing is paused
  Request in_service;                  // that request
  std::string input;                   // received bytes not parsed yet: at most one head + one read
  sluice::http::Parser parser{sluice::http::Kind::request, *this, {.max_head_bytes = kMaxHeadBytes}};
  std::optional<Request> request;      // the head just parsed, until it is served
  bool reading = false;
  bool peer_eof = false;
  bool shutdown_done = false;

  // The parser stops after each head, so that a request is answered before its body (skipped) is read.
  sluice::http::Action on_head(const sluice::http::MessageHead& head) override {
    request = Request{head.method == "HEAD", !head.keep_alive || head.version_minor == 0};
    bad_version = head.version_major != 1;
    return sluice::http::Action::pause;
  }
  bool bad_version = false;
};

struct WriteRequest {
  uv_write_t request{};
  std::string data;  // kept alive until the write callback
};

uv_stream_t* stream_of(Connection& c) { return sluice::as_stream(&c.tcp); }
Connection& connection_of(uv_handle_t* handle) { return *static_cast<Connection*>(handle->data); }
Connection& connection_of(uv_stream_t* stream) { return *static_cast<Connection*>(stream->data); }

bool output_backed_up(Connection& c) { return uv_stream_get_write_queue_size(stream_of(c)) > kWriteHighWaterBytes; }

void on_close(uv_handle_t* handle) {
  Connection* c = &connection_of(handle);
  c->server->connections.erase(c->id);
  delete c;
}

void close_connection(Connection& c) {
  if (c.state == Connection::State::closing) return;
  c.state = Connection::State::closing;
  uv_close(sluice::as_handle(&c.tcp), on_close);  // cancels pending writes and the shutdown first
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

void alloc_read_buffer(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  Server& server = *connection_of(handle).server;
  *buf = uv_buf_init(server.read_buffer, sizeof server.read_buffer);
}

// Reads while there is somewhere for the bytes to go: not after EOF, and not while responses back up.
void update_reading(Connection& c) {
  if (c.state == Connection::State::closing) return;
  const bool want = !c.peer_eof && (c.state == Connection::State::draining || !output_backed_up(c));
  if (want && !c.reading) {
    if (uv_read_start(stream_of(c), alloc_read_buffer, on_read) < 0) return close_connection(c);
  } else if (!want && c.reading) {
    warn_if_failed(uv_read_stop(stream_of(c)), "uv_read_stop");
  }
  c.reading = want;
}

void on_write(uv_write_t* request, int status);

void send(Connection& c, std::string data) {
  auto write = std::make_unique<WriteRequest>();
  write->data = std::move(data);
  write->request.data = write.get();
  uv_buf_t buf = uv_buf_init(write->data.data(), static_cast<unsigned>(write->data.size()));
  if (uv_write(&write->request, stream_of(c), &buf, 1, on_write) < 0) return close_connection(c);
  write.release();  // owned by libuv until on_write
}

void on_shutdown(uv_shutdown_t* request, int status) {
  if (status == UV_ECANCELED) return;  // the connection is closing already
  Connection& c = connection_of(request->handle);
  c.shutdown_done = true;
  if (status < 0 || c.peer_eof) close_connection(c);
}

// The last response is queued: send FIN after it, then wait for the peer's EOF so that bytes it still sends
// do not turn our close into a reset that could destroy the response before the peer reads it.
void finish(Connection& c) {
  if (c.state != Connection::State::open) return;
  c.state = Connection::State::draining;
  c.input.clear();
  if (uv_shutdown(&c.shutdown_request, stream_of(c), on_shutdown) < 0) return close_connection(c);
  update_reading(c);
}

void send_error(Connection& c, int status, std::string_view body) {
  send(c, make_response(status, body, true, true));
  finish(c);
}

// Answers one request, in order: at once, or once the engine has served it (on_service_done).
void serve(Connection& c, const Request& request) {
  if (c.server->engine) {
    c.busy = true;
    c.in_service = request;
    c.server->engine->submit(c.id);
    return;
  }
  send(c, make_response(200, c.server->body, !request.is_head, request.close_after));
  if (request.close_after) finish(c);
}

void process_input(Connection& c);
void update_reading(Connection& c);

// The response names the service demand, the time waited in this backend and the service time as
// measured, so that a client can take the backend's part out of its response time.
void on_service_done(Server& server, const ServiceCompletion& done) {
  const auto found = server.connections.find(done.job_id);
  if (found == server.connections.end()) return;  // the client went away; the work was done anyway
  Connection& c = *found->second;
  if (!c.busy || c.state != Connection::State::open) return;
  c.busy = false;
  char headers[160];
  std::snprintf(headers, sizeof headers,
                "X-Service-Ns: %" PRIu64 "\r\nX-Backend-Wait-Ns: %" PRIu64 "\r\nX-Service-Elapsed-Ns: %" PRIu64 "\r\n",
                done.drawn_ns, done.wait_ns, done.elapsed_ns);
  try {
    send(c, make_response(200, server.body, !c.in_service.is_head, c.in_service.close_after, headers));
    if (c.in_service.close_after) {
      finish(c);
    } else {
      process_input(c);
      update_reading(c);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-backend: %s\n", e.what());
    close_connection(c);
  }
}

// Parses and answers the buffered requests in order, until one is incomplete, the connection ends, or the
// responses back up (on_write calls this again once they drain).
void process_input(Connection& c) {
  std::string_view pending = c.input;
  using sluice::http::Stop;
  while (c.state == Connection::State::open && !c.busy && !output_backed_up(c) && !pending.empty()) {
    const sluice::http::Fed fed = c.parser.feed(pending);
    pending.remove_prefix(fed.consumed);
    if (fed.stop == Stop::error) {
      if (c.parser.error().kind == sluice::http::ErrorKind::head_too_large) {
        return send_error(c, 431, "request head too large\n");
      }
      return send_error(c, 400, "bad request\n");
    }
    if (fed.stop == Stop::upgrade) return finish(c);  // the rest is not HTTP; the request was answered
    if (!c.request) continue;                          // need_more, or a skipped body ended
    const Request request = *std::exchange(c.request, std::nullopt);
    if (c.bad_version) return send_error(c, 400, "bad request\n");
    serve(c, request);
  }
  if (c.state != Connection::State::open) return;  // finish() dropped the input
  c.input.erase(0, c.input.size() - pending.size());
  // Every complete request is answered and no more will come. A request still in service keeps the
  // connection open: a half-closed client (`nc -N`) still gets its answer.
  if (c.peer_eof && !c.busy && !output_backed_up(c)) finish(c);
}

void on_write(uv_write_t* request, int status) {
  std::unique_ptr<WriteRequest> write(static_cast<WriteRequest*>(request->data));
  if (status == UV_ECANCELED) return;  // the connection is closing already
  Connection& c = connection_of(request->handle);
  try {
    if (status < 0) return close_connection(c);
    if (c.state == Connection::State::open) process_input(c);
    update_reading(c);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-backend: %s\n", e.what());
    close_connection(c);
  }
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Connection& c = connection_of(stream);
  try {
    if (nread > 0) {
      if (c.state != Connection::State::open) return;  // draining: discard
      c.input.append(buf->base, static_cast<std::size_t>(nread));
      process_input(c);
    } else if (nread == UV_EOF) {
      c.peer_eof = true;
      if (c.state == Connection::State::open) {
        process_input(c);
      } else if (c.state == Connection::State::draining && c.shutdown_done) {
        return close_connection(c);
      }
    } else if (nread < 0) {
      return close_connection(c);
    }
    update_reading(c);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-backend: %s\n", e.what());
    close_connection(c);
  }
}

void on_connection(uv_stream_t* listener, int status) {
  Server& server = *static_cast<Server*>(listener->data);
  if (status < 0) {
    std::fprintf(stderr, "sluice-backend: accept: %s\n", uv_strerror(status));
    return;
  }
  auto c = std::make_unique<Connection>();
  c->server = &server;
  c->id = server.next_connection_id++;
  c->tcp.data = c.get();
  if (uv_tcp_init(&server.loop, &c->tcp) < 0) return;
  Connection& connection = *c.release();  // from here on freed in on_close
  server.connections.emplace(connection.id, &connection);
  if (uv_accept(listener, stream_of(connection)) < 0) return close_connection(connection);
  warn_if_failed(uv_tcp_nodelay(&connection.tcp, 1), "TCP_NODELAY");
  update_reading(connection);
}

void stop(Server& server) {
  if (server.stopping) return;
  server.stopping = true;
  uv_close(sluice::as_handle(&server.listener), nullptr);
  uv_close(sluice::as_handle(&server.sigint), nullptr);
  uv_close(sluice::as_handle(&server.sigterm), nullptr);
  if (server.engine) server.engine->close();
  for (auto& [id, c] : server.connections) close_connection(*c);  // the map shrinks only in on_close
}

void on_signal(uv_signal_t* handle, int) { stop(*static_cast<Server*>(handle->data)); }

// ---------------------------------------------------------------------------------------------------------------
// Command line.

constexpr const char* kUsage =
    "usage: sluice-backend [--listen HOST:PORT] [--name NAME] [--mean-service DURATION]\n"
    "                      [--distribution exponential|constant] [--mode sleep|cpu]\n"
    "                      [--concurrency N] [--seed N] [--overhead DURATION]\n"
    "\n"
    "A small HTTP/1.1 server (keep-alive, pipelining) that answers every request with\n"
    "\"backend=NAME node=NODE\", at once or after a service time.\n"
    "\n"
    "  --listen HOST:PORT        IPv4 or [IPv6] address to listen on (default 0.0.0.0:8000); port 0 picks a free port\n"
    "  --name NAME               name in the responses (default \"backend\")\n"
    "  --mean-service DURATION   mean service time per request (250us, 20ms, 1s); default 0: answer at once\n"
    "  --distribution KIND       exponential (default) or constant service times\n"
    "  --mode MODE               sleep (default): time passes, no CPU is used (the ideal server);\n"
    "                            cpu: that much CPU time is burnt on a worker thread, like a CPU-bound service\n"
    "  --concurrency N           requests in service at once; more wait here, first come first served\n"
    "                            (default 0: unlimited in sleep mode; cpu mode needs N >= 1 worker threads)\n"
    "  --seed N                  seed of the service-time draws (default 1); the n-th request served gets\n"
    "                            the n-th draw\n"
    "  --overhead DURATION       take this much off every draw (not below 0): a known per-request overhead\n"
    "                            outside the backend (a proxy's connect and hand-offs), so that the time a\n"
    "                            request holds a proxy slot follows the drawn distribution (default 0)\n"
    "  --help                    this text\n"
    "\n"
    "NODE comes from the environment variable NODE_NAME (default \"unknown\").\n"
    "On start it prints \"sluice-backend NAME listening on HOST:PORT\" with the bound port.\n"
    "With a service time, each response carries X-Service-Ns (the draw), X-Backend-Wait-Ns (time queued\n"
    "in this backend) and X-Service-Elapsed-Ns (service start to response), and at exit the backend prints\n"
    "to stderr how many requests it served and how far the service times were from their targets.\n"
    "SIGINT or SIGTERM stop it.\n";

struct Options {
  std::string listen = "0.0.0.0:8000";
  std::string name = "backend";
  ServiceConfig service;
};

// Accepts "--flag value" and "--flag=value". Returns an exit code when the program should exit now.
std::optional<int> parse_options(int argc, char** argv, Options& options) {
  using sluice::tools::FlagError;
  try {
    const bool help = sluice::tools::walk_flags(argc, argv, kUsage, {}, [&](const std::string& arg, const std::string& value) {
      if (arg == "--listen") {
        options.listen = value;
      } else if (arg == "--name") {
        options.name = value;
      } else if (arg == "--mean-service") {
        const auto ns = sluice::tools::parse_duration_ns(value);
        if (!ns) throw FlagError(arg, value, "a duration with a unit: 250us, 20ms, 1.5s");
        options.service.mean_ns = *ns;
      } else if (arg == "--distribution") {
        if (value == "exponential") options.service.distribution = sluice::tools::ServiceDistribution::exponential;
        else if (value == "constant") options.service.distribution = sluice::tools::ServiceDistribution::constant;
        else throw FlagError(arg, value, "exponential or constant");
      } else if (arg == "--mode") {
        if (value == "sleep") options.service.mode = sluice::tools::ServiceMode::sleep;
        else if (value == "cpu") options.service.mode = sluice::tools::ServiceMode::cpu;
        else throw FlagError(arg, value, "sleep or cpu");
      } else if (arg == "--concurrency") {
        const auto n = sluice::tools::parse_uint(value);
        if (!n || *n > 100000) throw FlagError(arg, value, "an integer from 0 to 100000");
        options.service.concurrency = static_cast<std::uint32_t>(*n);
      } else if (arg == "--overhead") {
        const auto ns = sluice::tools::parse_duration_ns(value);
        if (!ns) throw FlagError(arg, value, "a duration with a unit: 750us, 1ms");
        options.service.overhead_ns = *ns;
      } else if (arg == "--seed") {
        const auto n = sluice::tools::parse_uint(value);
        if (!n) throw FlagError(arg, value, "a non-negative integer");
        options.service.seed = *n;
      } else {
        throw FlagError("unknown option " + arg);
      }
    });
    if (help) return 0;
    if (options.service.mode == sluice::tools::ServiceMode::cpu && options.service.concurrency == 0) {
      throw FlagError("--mode cpu needs --concurrency N with N >= 1 (the worker threads)");
    }
  } catch (const FlagError& e) {
    std::fprintf(stderr, "sluice-backend: %s\n%s", e.what(), kUsage);
    return 2;
  }
  return std::nullopt;
}

// One line on stderr: what was served and how well the service times were kept.
void print_service_stats(const Server& server) {
  const auto& stats = server.engine->stats();
  if (stats.completed == 0) {
    std::fprintf(stderr, "sluice-backend %s: served 0 requests\n", server.name.c_str());
    return;
  }
  std::vector<std::int64_t> lateness = stats.lateness_ns;
  std::sort(lateness.begin(), lateness.end());
  auto at = [&](double q) {
    return static_cast<double>(lateness[static_cast<std::size_t>(q * static_cast<double>(lateness.size() - 1))]) / 1e3;
  };
  const double n = static_cast<double>(stats.completed);
  std::fprintf(stderr,
               "sluice-backend %s: served %" PRIu64 " requests, mean service drawn %.3f ms, elapsed %.3f ms; "
               "lateness (elapsed - target) p50 %.1f us, p99 %.1f us, max %.1f us\n",
               server.name.c_str(), stats.completed, stats.drawn_sum_ns / n / 1e6, stats.elapsed_sum_ns / n / 1e6,
               at(0.5), at(0.99), at(1.0));
}

int run(const Options& options) {
  std::string why;
  const auto parsed = sluice::parse_ip_address(options.listen, &why);
  if (!parsed) {
    std::fprintf(stderr, "sluice-backend: bad --listen address '%s': %s (want IP:PORT or [V6]:PORT)\n",
                 options.listen.c_str(), why.c_str());
    return 2;
  }
  const sockaddr_storage address = *parsed;

  auto server = std::make_unique<Server>();
  server->name = options.name;
  const char* node = std::getenv("NODE_NAME");
  server->node = node != nullptr && *node != '\0' ? node : "unknown";
  server->body = "backend=" + server->name + " node=" + server->node + "\n";

  int rc = uv_loop_init(&server->loop);
  if (rc < 0) {
    std::fprintf(stderr, "sluice-backend: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }
  if (options.service.mean_ns > 0) {
    Server* raw = server.get();
    server->engine = std::make_unique<ServiceEngine>(
        &server->loop, options.service, [raw](const ServiceCompletion& done) { on_service_done(*raw, done); });
  }
  // These cannot fail on a loop that initialised (libuv checks only flags); checked all the same.
  for (const int init : {uv_tcp_init(&server->loop, &server->listener), uv_signal_init(&server->loop, &server->sigint),
                         uv_signal_init(&server->loop, &server->sigterm)}) {
    if (init < 0) {
      std::fprintf(stderr, "sluice-backend: cannot set up the loop: %s\n", uv_strerror(init));
      std::abort();  // an initialised handle cannot be left behind on a loop that is then closed
    }
  }
  server->listener.data = server->sigint.data = server->sigterm.data = server.get();

  rc = uv_tcp_bind(&server->listener, sluice::as_sockaddr(&address), 0);
  if (rc == 0) rc = uv_listen(sluice::as_stream(&server->listener), 511, on_connection);
  int exit_code = 0;
  if (rc < 0) {
    std::fprintf(stderr, "sluice-backend: cannot listen on %s: %s\n", options.listen.c_str(), uv_strerror(rc));
    exit_code = 1;
    stop(*server);
  } else {
    sockaddr_storage bound{};
    int length = sizeof bound;
    warn_if_failed(uv_tcp_getsockname(&server->listener, sluice::as_sockaddr(&bound), &length), "getsockname");
    std::printf("sluice-backend %s listening on %s\n", server->name.c_str(),
                sluice::sockaddr_to_string(bound).c_str());
    std::fflush(stdout);
    warn_if_failed(uv_signal_start(&server->sigint, on_signal, SIGINT), "SIGINT handler");
    warn_if_failed(uv_signal_start(&server->sigterm, on_signal, SIGTERM), "SIGTERM handler");
  }

  warn_if_failed(uv_run(&server->loop, UV_RUN_DEFAULT) == 0 ? 0 : UV_EBUSY, "the loop ended with handles open");
  if (server->engine && exit_code == 0) print_service_stats(*server);
  server->engine.reset();
  rc = uv_loop_close(&server->loop);
  if (rc < 0) {
    std::fprintf(stderr, "sluice-backend: uv_loop_close: %s\n", uv_strerror(rc));
    return 1;
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error from write, not a signal
  Options options;
  if (const auto exit_code = parse_options(argc, argv, options)) return *exit_code;
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-backend: %s\n", e.what());
    return 1;
  }
}
