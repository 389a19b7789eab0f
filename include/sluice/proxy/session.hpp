#pragma once
// One proxied connection: the client socket, the backend socket, and the bytes between them.
// Reads from one side are written to the other; when a side's unsent bytes pass the high
// watermark its source stops reading until they drain below the low watermark. EOF becomes a
// shutdown after pending writes; a reset is passed on as a reset. A direction that carries bulk
// (a read filled a whole chunk) moves on to splice(2) through a kernel pipe, with the same
// semantics (see SplicePump). Knows nothing of YAML or how the backend was chosen beyond asking
// its Service.

#include <cstdint>
#include <vector>

#include <netinet/in.h>
#include <uv.h>

#include "sluice/proxy/buffer_pool.hpp"
#include "sluice/proxy/splice_pump.hpp"
#include "sluice/metrics/stats.hpp"
#include "sluice/balancing/wait_queue.hpp"

namespace sluice {

class Listener;
class Service;
struct Backend;
struct LoopResources;

class Session final : public Waiter {
 public:
  static constexpr std::size_t kHighWatermarkBytes = 256 * 1024;  // stop reading the source above
  static constexpr std::size_t kLowWatermarkBytes = 64 * 1024;    // resume reading at or below

  /// Takes over `client_fd`, a client the listener accepted. Returns nullptr (having closed what it
  /// opened) if libuv cannot. The session owns itself from here on and frees itself once closed.
  static Session* accept(Listener& listener, int client_fd);

  /// The client's address (AF_INET or AF_INET6), asked of the socket on first use (at accept when
  /// the access log is on): most sessions never need it, and getpeername is a syscall each.
  const sockaddr* client_address() const;
  /// The client socket's descriptor number (-1 if it has none).
  int client_descriptor() const;

  /// Asks the service for a backend (waiting in its queue if need be) and starts proxying.
  void start();

  /// From the service's queue: a slot on `backend` is ours (already counted).
  void on_dispatched(Backend& backend) override;

  /// Closes an accepted client that the listener does not admit.
  void refuse(const char* reason);

  /// Ends the session now (drain timeout, shutdown): both sockets are closed.
  void abort();

  Session* prev_in_worker = nullptr;  // LoopResources's intrusive list
  Session* next_in_worker = nullptr;

 private:
  enum class Phase {
    waiting,     // no slot yet: asking the service, or in its queue (timer: queue timeout)
    connecting,  // slot taken, TCP connect to the backend under way (timer: connect timeout)
    splicing,    // both sockets open, bytes flowing, by read/write or splice(2) (timer: idle timeout)
    closing,     // handles closing; the session frees itself in the last close callback
  };

  // A poll handle on a duplicate of one of the session's sockets: libuv allows one handle per
  // descriptor, and the socket's own is busy with the stream.
  struct SocketWatch {
    uv_poll_t poll;  // first member: the close callback finds the watch from the handle
    int fd;          // the duplicate, closed with the watch
  };

  // How a direction moves its bytes.
  enum class Transfer {
    chunks,  // read into pooled chunks, written with uv_write
    splice,  // splice(2) source -> kernel pipe -> sink; libuv only says when the source is readable
  };

  // One direction of the session: bytes read from `source` are written to `sink`.
  struct Direction {
    uv_stream_t* source = nullptr;
    uv_stream_t* sink = nullptr;
    Chunk* reading_into = nullptr;  // chunk handed to libuv by the alloc callback
    Chunk* waiting_head = nullptr;  // read before the sink was connected, not yet written
    Chunk* waiting_tail = nullptr;
    std::size_t unsent_bytes = 0;   // read but not yet written to the sink (chunks and pipe)
    std::uint64_t bytes_total = 0;  // moved through this direction
    bool reading = false;
    bool eof = false;               // the source sent FIN
    bool shutdown_started = false;  // FIN passed on to the sink (after pending writes)
    bool done = false;              // the shutdown completed
    uv_shutdown_t shutdown_req;

    Transfer transfer = Transfer::chunks;
    bool splice_wanted = false;     // bulk seen: switch to splice once nothing is in flight
    bool splice_refused = false;    // splice(2) failed on these sockets: chunks for good
    SplicePump pump;                // holds a pipe only while bytes are in it
    SocketWatch* sink_watch = nullptr;  // while the pipe waits for the sink to be writable
  };

  Session(Listener& listener);
  ~Session();

  void ask_for_backend();
  void connect_to(Backend& backend);
  void on_connected();
  void on_connect_failed(const char* error);
  void begin_splicing();

  void start_reading(Direction& direction);
  void stop_reading(Direction& direction);
  void on_read(Direction& direction, ssize_t nread);
  void write(Direction& direction, Chunk* chunk);
  void on_written(Direction& direction, Chunk* chunk, int status);
  void on_source_eof(Direction& direction);
  void pass_on_eof(Direction& direction);
  void on_shutdown(Direction& direction, int status);

  // Zero-copy transfer (splice(2)) of a direction in bulk.
  void switch_to_splice_when_idle(Direction& direction);
  /// The source is readable (libuv was given no buffer, so it read nothing).
  void on_readable_for_splice(Direction& direction);
  void on_sink_writable(Direction& direction, int status);
  void count_spliced(Direction& direction, const SplicePump::Result& result);
  /// What a pump outcome means for the session: wait, fall back, end of stream or a reset.
  void act_on(Direction& direction, const SplicePump::Result& result);
  /// Sends the pipe's bytes through the read/write path when the sink cannot be waited for.
  void spill_pipe(Direction& direction);
  /// The next read of `direction` goes into a chunk; splice resumes once it is written.
  void read_one_chunk(Direction& direction);
  void on_timer();
  void arm_timer(std::uint64_t timeout_ms);
  /// Ends a session that never reached a backend, counted against the listener.
  void turn_away(RejectReason reason, const char* end_reason);
  void write_access_log() const;
  /// While queued and no longer read (after its EOF, or paused at the watermark), the client is
  /// watched for a reset through a poll handle on a duplicate of its descriptor.
  void watch_waiting_client();
  void stop_watching_client();
  /// nullptr when no duplicate below `descriptor_ceiling` or no handle could be had.
  SocketWatch* open_watch(uv_stream_t* socket, int events, uv_poll_cb on_event, int descriptor_ceiling);
  void close_watch(SocketWatch*& watch);

  /// Closes both sockets; with `reset_peer_of` set, that socket is closed with a RST.
  void finish(const char* reason, uv_tcp_t* reset_socket = nullptr);
  void close_handle(uv_handle_t* handle, bool reset);
  void on_handle_closed(uv_handle_t* handle);

  Direction& direction_from(uv_stream_t* source) { return source == stream(client_) ? upstream_ : downstream_; }
  static uv_stream_t* stream(uv_tcp_t& tcp) { return reinterpret_cast<uv_stream_t*>(&tcp); }
  static uv_tcp_t* tcp(uv_stream_t* stream) { return reinterpret_cast<uv_tcp_t*>(stream); }

  Listener& listener_;
  Service& service_;
  LoopResources& resources_;
  Phase phase_ = Phase::waiting;
  Backend* backend_ = nullptr;
  std::vector<bool> tried_;       // backends that failed to connect for this session (lazy)
  std::uint32_t attempts_ = 0;    // connects started
  bool backend_open_ = false;     // backend_ handle initialised and not yet closed
  bool retry_after_close_ = false;
  int open_handles_ = 0;
  std::uint64_t last_activity_ms_ = 0;  // loop time of the last byte in either direction
  std::uint64_t connect_started_ns_ = 0;
  std::uint64_t connected_ns_ = 0;      // 0 until the backend connect succeeded
  const char* end_reason_ = nullptr;   // first EOF, or what ended the session
  const Backend* served_by_ = nullptr; // the last backend tried, for the session's log line

  mutable sockaddr_in6 client_address_{};  // large enough for IPv4 too; AF_UNSPEC until asked
  uv_tcp_t client_;
  uv_tcp_t backend_socket_;
  uv_timer_t timer_;              // connect timeout, then idle timeout
  uv_connect_t connect_req_;
  SocketWatch* client_watch_ = nullptr;  // only while queued and not reading
  Direction upstream_;                 // client -> backend
  Direction downstream_;               // backend -> client
};

}  // namespace sluice
