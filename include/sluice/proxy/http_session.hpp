#pragma once
// One client connection of a `mode: http` listener. Each request on it is one job: once its head
// is read the session asks the service for a slot exactly as a TCP session does (same queues,
// timeouts and metrics), takes an idle pooled connection to that backend or connects a new one,
// writes a rebuilt request head and streams the body, reads the response with its own parser and
// sends a rebuilt head and the body to the client, and holds the slot until the response's last
// byte is written. Then the backend connection goes back to the pool (when both its ends keep it
// alive and the exchange is complete) and the next request on the connection is read: pipelined
// requests wait in order. Bodies are never held whole: a direction stops reading its source while
// more than the watermark is unsent to the other side.
//
// States: reading (a request head; timer: http.request_timeout) -> queued (timer: queue.timeout)
// -> connecting (timer: connect_timeout; failures retry other backends) -> exchanging (timer:
// http.response_timeout until the response head, then the listener's idle_timeout) -> reading
// again, or closing. Errors are answered as HTTP (README "mode: http").

#include <cstdint>
#include <string>
#include <vector>

#include <uv.h>

#include "sluice/balancing/wait_queue.hpp"
#include "sluice/config/config.hpp"
#include "sluice/http/forwarding.hpp"
#include "sluice/http/parser.hpp"
#include "sluice/metrics/stats.hpp"
#include "sluice/proxy/backend_pool.hpp"
#include "sluice/proxy/buffer_pool.hpp"
#include "sluice/proxy/client_side.hpp"
#include "sluice/proxy/loop_session.hpp"
#include "sluice/proxy/session_observer.hpp"
#include "sluice/proxy/write_pool.hpp"
#include "sluice/uv/deadline_timer.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class Listener;
class Service;
struct Backend;
struct LoopResources;

class HttpSession final : public LoopSession, public Waiter, private BackendConnection::User {
 public:
  /// Takes over `client_fd`; nullptr (and the descriptor closed) if libuv refuses it.
  static HttpSession* accept(Listener& listener, int client_fd);

  const sockaddr* client_address() const { return client_.address(); }
  /// Starts reading the first request.
  void start();
  /// Closes an accepted client that the listener does not admit (an access line without a request).
  void refuse(const char* reason);

  void abort() override { finish("shutdown"); }
  void drain() override;
  void on_dispatched(Backend& backend) override;

 private:
  enum class State { reading, queued, connecting, exchanging, tunnel, closing };

  // The two parsers' handlers (one object cannot be both).
  struct RequestReader final : http::Handler {
    explicit RequestReader(HttpSession& s) : session(s) {}
    http::Action on_head(const http::MessageHead& head) override;
    void on_body(std::string_view bytes) override;
    void on_message_end(const std::vector<http::Header>& trailers) override;
    HttpSession& session;
  };
  struct ResponseReader final : http::Handler {
    explicit ResponseReader(HttpSession& s) : session(s) {}
    http::Action on_head(const http::MessageHead& head) override;
    void on_body(std::string_view bytes) override;
    void on_message_end(const std::vector<http::Header>& trailers) override;
    HttpSession& session;
  };
  explicit HttpSession(Listener& listener);
  ~HttpSession();

  // http_session.cpp: the client's side and the session's life
  void read_client();
  void on_client_read(ssize_t nread);
  void pump_request();
  void begin_request();
  void ask_for_backend();
  void answer_error(HttpError error, int status, const char* end_reason, bool close);
  void arm_timer(std::uint64_t timeout_ms);
  void on_timer();
  void next_request();
  void finish(const char* reason, bool reset_client = false);
  void free_when_closed();

  // http_exchange.cpp: the backend's side of one request
  void use_backend(Backend& backend);
  void connect_new(Backend& backend);
  static void on_connect(BackendConnection& connection, int status);
  void connect_failed(const char* error);
  void connect_local_error(int error);
  void start_exchange();
  void on_backend_read(ssize_t nread);
  void pump_response();
  void backend_failed(const char* why);
  void maybe_end_exchange();
  void end_exchange(bool reuse);
  void release_slot();
  void log_request(const char* end);
  void backend_connection_closed(BackendConnection& connection) override;
  uv_buf_t backend_read_buffer() override;
  void backend_read(ssize_t nread) override;

  // http_writes.cpp
  std::string* open_write(bool to_client);  // the side's open write to append to; nullptr: none
  void send(bool to_client);                // sends the side's open write (held while batching)
  void write(bool to_client, std::string_view bytes);
  void write_taking(bool to_client, std::string& bytes);  // `bytes` are moved out
  void flush_client();
  void on_written(StringWrite* op, int status);

  // http_tunnel.cpp: after a 101
  void start_tunnel();
  void tunnel_eof(bool from_client);
  void on_tunnel_shutdown(int status);
  void update_reading();
  void update_backend_reading();

  Listener& listener_;
  Service& service_;
  LoopResources& resources_;
  const HttpConfig http_;  // as the listener had it at accept
  State state_ = State::reading;
  StatsObserver stats_;
  DeadlineTimer timer_;  // one timeout moved at every step (deadline_timer.hpp)
  ClientSide client_;
  bool client_reading_ = false;
  bool backend_reading_ = false;
  Chunk* client_chunk_ = nullptr;   // handed to libuv for the client's read under way
  Chunk* backend_chunk_ = nullptr;  // the same for the backend
  bool client_eof_ = false;
  bool draining_ = false;
  std::string client_in_;   // read from the client, not yet parsed
  std::string backend_in_;  // read from the backend, not yet parsed
  std::size_t client_unsent_ = 0;   // queued towards the client
  std::size_t backend_unsent_ = 0;  // queued towards the backend
  StringWrite* open_[2] = {nullptr, nullptr};  // bytes not yet sent, [0] backend, [1] client
  bool batching_client_ = false;    // the response parser runs: the client's bytes wait for it
  RequestReader request_reader_{*this};
  ResponseReader response_reader_{*this};
  http::Parser request_parser_;
  http::Parser response_parser_;

  // The request in flight.
  http::MessageHead request_;
  bool head_pending_ = false;     // a head was parsed and not yet begun
  bool request_done_ = false;     // its last byte was parsed (and queued to the backend once connected)
  bool body_started_ = false;     // some body byte went to the backend (no safe retry after that)
  bool client_keep_alive_ = true;
  http::RequestForwarding forwarding_;  // how its head is rebuilt (for each connection it is sent on)
  std::uint64_t served_ = 0;      // requests answered on this connection
  std::uint64_t head_ns_ = 0;     // the head was read (the job's arrival)

  // Its backend.
  Backend* slot_ = nullptr;
  BackendConnection* connection_ = nullptr;
  int connections_attached_ = 0;  // backend connections whose user is this session (closing ones too)
  std::vector<bool> tried_;
  std::uint32_t attempts_ = 0;
  int connect_error_ = 0;          // a connect that failed at once, reported from the timer
  bool retried_ = false;
  std::uint64_t connect_ns_ = 0;   // connect time of this request's connection (0: reused)
  std::uint64_t exchange_ns_ = 0;  // the request head was written

  // The tunnel after a 101: each EOF passed on as a FIN, ended when both ways have.
  bool backend_eof_ = false;
  int shutdowns_pending_ = 0;
  const char* tunnel_end_ = nullptr;  // who closed first
  uv_shutdown_t shutdown_to_client_{};
  uv_shutdown_t shutdown_to_backend_{};

  // Its response.
  bool response_bytes_ = false;    // a byte of the response came from the backend
  bool response_started_ = false;  // a final response head went to the client
  bool response_done_ = false;
  bool response_keep_alive_ = false;
  int status_ = 0;
  http::BodyOut body_out_ = http::BodyOut::none;
  std::uint64_t last_activity_ms_ = 0;
  bool client_open_ = false;
};

}  // namespace sluice
