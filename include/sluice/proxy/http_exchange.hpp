#pragma once
// One request of a `mode: http` client connection (HttpSession keeps the client's side and an
// ordered list of these). An exchange is one job: it asks the service for a slot (same queues,
// timeouts and metrics as a TCP session), takes an idle pooled connection to that backend or
// connects a new one, writes a rebuilt request head (and streams the body), reads the response
// with its own parser and rebuilds it towards the client.
//
// Only the front exchange (the oldest on the connection) streams its response to the client,
// holding its slot until the last byte is written, as without pipelining. A later exchange, run
// ahead with `http.pipeline_depth` > 1, keeps its response in its own buffer of at most
// kAheadBufferBytes (64 KiB, the data path's low watermark) beyond one read: once the response is
// complete its slot is released and its backend connection pooled at once, the bytes waiting for
// their turn; when the buffer fills first it stops reading its backend, keeping the slot, until it
// is the front.
//
// States: waiting_turn (not safe to run ahead: waits until every exchange before it ended) ->
// queued (timer: queue.timeout) -> connecting (timer: connect_timeout; failures retry other
// backends) -> exchanging (timer: http.response_timeout until the response head, then the
// listener's idle_timeout) -> answered (only bytes for the client left), or tunnel after a 101,
// or ended (the session aborted it). Errors are answered as HTTP (README "mode: http").

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "sluice/balancing/backend.hpp"
#include "sluice/balancing/wait_queue.hpp"
#include "sluice/http/forwarding.hpp"
#include "sluice/http/parser.hpp"
#include "sluice/metrics/stats.hpp"
#include "sluice/uv/deadline_timer.hpp"
#include "sluice/uv/handle.hpp"

namespace sluice {

class HttpSession;
class BackendConnection;
struct Backend;
struct Chunk;
struct StringWrite;

class HttpExchange final : public Waiter {
 public:
  static constexpr std::size_t kAheadBufferBytes = 64 * 1024;

  /// A request of `session`; its timer is on the session's loop (false from ok() if libuv refused).
  explicit HttpExchange(HttpSession& session);
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  /// Takes the request whose head was just read at `head_ns` (an empty head: Sluice's own answer
  /// to bytes that are no request). The object is reused for each request.
  void reset(const http::MessageHead& head, std::uint64_t head_ns);
  /// Whether it may run while other exchanges of the connection are in flight: GET, HEAD, OPTIONS
  /// or TRACE, without a body, Upgrade or Expect (RFC 9112 9.3.2: safe methods only).
  bool may_run_ahead() const;
  /// Asks the service for a slot (first from waiting_turn, or at once).
  void dispatch();
  void on_dispatched(Backend& backend) override;
  /// It is now the oldest of its connection: its held bytes go to the client, and it streams on.
  void became_front();
  /// The client side is closing: queue left, backend connection reset, slot released, no timer.
  void abort();
  /// Sluice's own answer for this request, in its turn; `close` closes the client connection
  /// after it (and the later exchanges are aborted).
  void answer_error(HttpError error, int status, const char* end_reason, bool close);

  // What the session's request parser finds for it.
  void on_request_body(std::string_view bytes);
  void on_request_end(const std::vector<http::Header>& trailers);
  /// The session wrote client bytes (or its front changed): go on reading or end.
  void on_client_drained();
  /// A write towards this exchange's backend completed with `status`.
  void on_backend_written(std::size_t bytes, int status);

  enum class State { waiting_turn, queued, connecting, exchanging, tunnel, answered, ended };
  State state() const { return state_; }
  const http::MessageHead& request() const { return request_; }
  bool request_done() const { return request_done_; }
  bool keeps_client() const { return client_keep_alive_; }
  bool body_flowing() const;  // its request body may be read and sent on now
  std::size_t backend_unsent() const { return backend_unsent_; }
  BackendConnection* connection() const { return connection_; }
  int status() const { return status_; }
  void log_request(const char* end);

  // The backend side (http_exchange_backend.cpp, http_writes.cpp, http_tunnel.cpp).
  static void on_connect(BackendConnection& connection, int status);
  void write_backend(std::string_view bytes);
  void write_backend_taking(std::string& bytes);
  void update_backend_reading();
  /// Its connection's reads (BackendConnection::User, through the session): where the next goes, and what it gave.
  uv_buf_t backend_read_buffer();
  void on_backend_read(ssize_t nread);
  /// The tunnel ended cleanly both ways: its connection closed without a reset.
  void close_backend() { drop_connection(false); }

 private:
  // The two handlers of the response parser's messages (the request's are the session's).
  struct ResponseReader final : http::Handler {
    explicit ResponseReader(HttpExchange& e) : exchange(e) {}
    http::Action on_head(const http::MessageHead& head) override;
    void on_body(std::string_view bytes) override;
    void on_message_end(const std::vector<http::Header>& trailers) override;
    HttpExchange& exchange;
  };

  bool is_front() const;
  bool has_room() const;  // room for more of the response: the client's watermark, or the buffer's
  // Bytes towards the client: the session's open write at the front, else this buffer.
  std::string* client_out();
  void send_client();
  void write_client(std::string_view bytes);

  void ask_for_backend();
  void arm_timer(std::uint64_t timeout_ms);
  void stop_timer();
  void on_timer();
  void use_backend(Backend& backend);
  void connect_new(Backend& backend);
  void connect_failed(const char* error);
  void connect_local_error(int error);
  void start_exchange();
  void pump_response();
  void backend_failed(const char* why);
  void maybe_end();
  void end_backend(bool reuse);
  void drop_connection(bool reset);
  void release_slot(bool keep_for_log = false);
  void end(const char* reason, bool close);
  void start_tunnel();
  std::string* open_backend_write();
  void send_backend();

  HttpSession& session_;
  State state_ = State::ended;
  DeadlineTimer timer_;  // moved at every step, libuv's timer seldom (deadline_timer.hpp)
  ResponseReader response_reader_{*this};
  std::optional<http::Parser> response_parser_;  // made anew after an exchange aborted in a message

  // The request.
  http::MessageHead request_;
  http::RequestForwarding forwarding_;  // how its head is rebuilt (for each connection it is sent on)
  bool request_done_ = false;     // its last byte was parsed (and queued to the backend once connected)
  bool body_started_ = false;     // some body byte went to the backend (no safe retry after that)
  bool client_keep_alive_ = true;
  std::uint64_t head_ns_ = 0;     // the head was read (the job's arrival)

  // Its backend.
  Backend* slot_ = nullptr;
  BackendHold logged_backend_;  // for the access line: the slot's backend, kept after a success
  BackendConnection* connection_ = nullptr;
  Chunk* backend_chunk_ = nullptr;  // handed to libuv for the backend's read under way
  bool backend_reading_ = false;
  std::string backend_in_;          // read from the backend, not yet parsed
  std::size_t backend_unsent_ = 0;  // queued towards the backend on connection_
  StringWrite* open_backend_ = nullptr;
  std::vector<bool> tried_;
  std::uint32_t attempts_ = 0;
  int connect_error_ = 0;          // a connect that failed at once, reported from the timer
  bool retried_ = false;
  std::uint64_t connect_ns_ = 0;   // connect time of this request's connection (0: reused)
  std::uint64_t exchange_ns_ = 0;  // the request head was written

  // Its response.
  bool response_bytes_ = false;    // a byte of the response came from the backend
  bool response_started_ = false;  // a final response head was rebuilt
  bool response_done_ = false;
  bool response_keep_alive_ = false;
  int status_ = 0;
  http::BodyOut body_out_ = http::BodyOut::none;
  std::string held_;               // rebuilt for the client, waiting for this exchange's turn
  const char* end_reason_ = "done";  // the access line's end, once answered
  bool close_after_ = false;       // the client connection closes after this answer
  bool logged_ = false;            // its access line is written
  bool reset_after_ = false;       // its response broke off: the client connection is reset in its turn
};

}  // namespace sluice
