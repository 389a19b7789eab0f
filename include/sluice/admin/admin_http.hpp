#pragma once
// The admin server's own thread (admin_server.hpp): its loop, the listening socket and the HTTP
// connections, with every handle used on that thread only, except the two async handles that
// other threads wake it with. Only AdminServer uses it.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <uv.h>

#include "sluice/admin/admin_server.hpp"
#include "sluice/http/parser.hpp"

namespace sluice {

/// A text/plain response.
AdminResponse text_response(int status, std::string body);

class AdminServer::Http {
 public:
  // Throws when libuv cannot set the loop up (start() reports it).
  explicit Http(AdminServer& admin);
  // After run() (or when it never ran) every handle is closed here and the loop ends.
  ~Http();
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  // Before the thread starts.
  bool listen(const sockaddr* address, std::string& why);
  std::string bound_address() const;

  // The admin thread's body: returns once on_stop() has closed everything.
  void run();

  // Any thread.
  void request_stop();
  void wake_for_replies();

 private:
  // The request is read by the one HTTP parser; the connection answers once the request is
  // complete. A body is read and dropped, so that a malformed one is a 400 too; the request
  // deadline bounds how long that may take. A connection is kept alive for the next request when
  // the client asks (Prometheus scrapes that way) and nothing came after the request; otherwise,
  // and after any error, it closes once the answer is written.
  struct Connection : http::Handler {
    enum class State { reading, rendering, writing, lingering, idle };

    explicit Connection(Http& owner) : http(owner) {}
    http::Action on_head(const http::MessageHead& head) override {
      request = head;
      return head.framing == http::Framing::none ? http::Action::pause : http::Action::proceed;
    }
    void expect_request();  // a fresh parser for the next request

    Http& http;
    std::optional<http::Parser> parser;
    http::MessageHead request;
    uv_tcp_t tcp{};
    uv_timer_t timer{};  // request deadline, then write deadline, then linger or keep-alive idle
    uv_write_t write_request{};
    uv_shutdown_t shutdown_request{};
    State state = State::reading;
    bool head_only = false;    // HEAD: headers with the GET's Content-Length, no body
    bool peer_closed = false;  // EOF seen: answer, then close without lingering
    bool keep_alive = false;   // after this answer, wait for another request
    bool closing = false;
    int open_handles = 2;       // tcp + timer; deleted in the last close callback
    std::uint64_t id = 0;       // while rendering: the id of the queued request
    std::string response_head;  // status line and headers, alive until written
    std::string response_body;
    std::array<char, 2048> read_buffer{};  // reads land here: no allocation per read
  };

  static void timer_fired(uv_timer_t* timer);
  void on_connection(int status);
  void on_read(Connection* c, ssize_t nread, const uv_buf_t* buf);
  void handle_request(Connection* c);
  void on_replies();
  void on_timeout(Connection* c);
  void respond(Connection* c, AdminResponse response, std::string_view extra_headers = {});
  void on_written(Connection* c, int status);
  void close(Connection* c);
  void on_stop();

  AdminServer& owner_;
  uv_loop_t loop_;
  uv_tcp_t server_;
  uv_async_t reply_async_;  // the control loop has put replies in owner_.replies_
  uv_async_t stop_async_;
  bool stopping_ = false;
  std::uint64_t next_id_ = 1;
  std::unordered_set<Connection*> connections_;               // every open connection
  std::unordered_map<std::uint64_t, Connection*> rendering_;  // waiting for the control loop
};

}  // namespace sluice
