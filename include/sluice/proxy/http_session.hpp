#pragma once
// One client connection of a `mode: http` listener: the client's side (reading and parsing
// requests, writing responses in order) and an ordered list of its requests, each an HttpExchange
// (http_exchange.hpp: its slot, backend connection, response parser and timers). A request whose
// head is read becomes an exchange and is dispatched through the service's policy and queue.
//
// With `http.pipeline_depth` 1 (the default) the next request is read only after the previous
// response's last byte was written: pipelined requests wait in order in the client's bytes. With
// depth N > 1, up to N requests of a connection are in flight at once: each safe request (see
// HttpExchange::may_run_ahead) read while others are in flight is dispatched at once, so pipelined
// requests wait in Sluice's queue and are served by several backends in parallel; any other request
// waits until every exchange before it ended, and none is read after a request that closes the
// connection. While N are in flight the client's bytes wait unparsed (at most the 256 KiB
// watermark). Responses go to the client strictly in request order (HttpExchange).
//
// Timers: the session's own for the client only (http.request_timeout while a head is partially
// read, or while nothing is in flight; then an idle keep-alive connection is just closed). Errors
// are answered as HTTP (README "mode: http"); one that closes the connection, or the client going
// away, aborts the exchanges after it.

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "sluice/config/config.hpp"
#include "sluice/http/parser.hpp"
#include "sluice/metrics/stats.hpp"
#include "sluice/proxy/backend_pool.hpp"
#include "sluice/proxy/buffer_pool.hpp"
#include "sluice/proxy/client_side.hpp"
#include "sluice/proxy/http_exchange.hpp"
#include "sluice/proxy/loop_session.hpp"
#include "sluice/proxy/session_observer.hpp"
#include "sluice/proxy/write_pool.hpp"
#include "sluice/uv/deadline_timer.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class Listener;
class Service;
struct LoopResources;

class HttpSession final : public LoopSession, private BackendConnection::User {
 public:
  /// Takes over `client_fd`; nullptr (and the descriptor closed) if libuv refuses it.
  static HttpSession* accept(Listener& listener, int client_fd);

  const sockaddr* client_address() const { return client_.address(); }
  /// accept_proxy: the client and the address it connected to, as the PROXY header gave them.
  void use_proxied_addresses(const sockaddr_storage& client, const sockaddr_storage& local) {
    client_.set_addresses(client, local);
  }
  /// Starts reading the first request.
  void start();
  /// Closes an accepted client that the listener does not admit (an access line without a request).
  void refuse(const char* reason);

  void abort() override { finish("shutdown"); }
  void drain() override;
  /// One of its writes completed (towards the client or one of its exchanges' backends).
  void on_written(StringWrite* op, int status);

 private:
  friend class HttpExchange;
  enum class State { open, tunnel, closing };

  struct RequestReader final : http::Handler {
    explicit RequestReader(HttpSession& s) : session(s) {}
    http::Action on_head(const http::MessageHead& head) override;
    void on_body(std::string_view bytes) override;
    void on_message_end(const std::vector<http::Header>& trailers) override;
    HttpSession& session;
  };
  explicit HttpSession(Listener& listener);
  ~HttpSession();

  // http_session.cpp: the client's side and the session's life
  void on_client_read(ssize_t nread);
  void pump_request();
  void watch_closed_client();   // after the client's EOF: a reset ends the session at once
  bool may_parse() const;       // whether the parser may read on (a body, or the next head)
  void start_pending();         // dispatches the exchange whose head was just read, when its turn allows
  HttpExchange& add_exchange(const http::MessageHead& head, std::uint64_t head_ns);
  void answer_error(HttpError error, int status, const char* end_reason);  // for bytes that are no request
  void arm_timer(std::uint64_t timeout_ms);
  void on_timer();
  void front_ended(bool close, const char* reason);  // the front's answer is out (or queued)
  void close_when_written(const char* reason);      // no more reading: finished once the client has every byte
  void cut_after(const HttpExchange& exchange);  // exchanges after it aborted: the connection closes after it
  void next_request();
  void finish(const char* reason, bool reset_client = false);
  void free_when_closed();
  bool is_front(const HttpExchange& exchange) const {
    return !exchanges_.empty() && exchanges_.front().get() == &exchange;
  }
  HttpExchange* exchange_on(const BackendConnection* connection);
  void backend_connection_closed(BackendConnection& connection) override;
  uv_buf_t backend_read_buffer(BackendConnection& connection) override;
  void backend_read(BackendConnection& connection, ssize_t nread) override;
  void update_reading();

  // http_writes.cpp: towards the client (an exchange's writes towards its backend are there too)
  std::string* open_write();  // the client's open write to append to; nullptr: none
  void send();                // sends it (held while batching)
  void write(std::string_view bytes);
  void write_taking(std::string& bytes);  // `bytes` are moved out
  void flush_client();

  // http_tunnel.cpp: after a 101
  void start_tunnel();
  void tunnel_eof(bool from_client);
  void on_tunnel_shutdown(int status);

  Listener& listener_;
  Service& service_;
  LoopResources& resources_;
  const HttpConfig http_;  // as the listener had it at accept
  State state_ = State::open;
  StatsObserver stats_;
  DeadlineTimer timer_;  // moved at every step, libuv's timer seldom (deadline_timer.hpp)
  ClientSide client_;
  bool client_reading_ = false;
  Chunk* client_chunk_ = nullptr;   // handed to libuv for the client's read under way
  bool client_eof_ = false;
  bool draining_ = false;
  std::string client_in_;   // read from the client, not yet parsed
  std::size_t client_unsent_ = 0;   // queued towards the client
  StringWrite* open_ = nullptr;     // bytes towards the client not yet sent
  bool batching_client_ = false;    // the front's response parser runs: the client's bytes wait for it
  RequestReader request_reader_{*this};
  http::Parser request_parser_;

  // The requests in flight, oldest (the one answered next) first, and objects kept for reuse.
  std::deque<std::unique_ptr<HttpExchange>> exchanges_;
  std::vector<std::unique_ptr<HttpExchange>> spare_;
  bool head_pending_ = false;     // the back exchange's head was read and it is not dispatched yet
  bool parse_stopped_ = false;    // no request is read after the back one (it closes the connection)
  std::uint64_t served_ = 0;      // requests answered on this connection
  std::uint64_t last_activity_ms_ = 0;
  int connections_attached_ = 0;  // backend connections whose user is this session (closing ones too)
  bool client_open_ = false;

  // The tunnel after a 101: each EOF passed on as a FIN, ended when both ways have.
  bool backend_eof_ = false;
  int shutdowns_pending_ = 0;
  const char* tunnel_end_ = nullptr;  // who closed first
  uv_shutdown_t shutdown_to_client_{};
  uv_shutdown_t shutdown_to_backend_{};
};

}  // namespace sluice
