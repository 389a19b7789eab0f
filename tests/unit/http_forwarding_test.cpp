// What mode: http writes (http/forwarding): rebuilt request and response heads without hop-by-hop
// headers, framing re-emitted from the parse, the forwarding headers, chunk framing and Sluice's
// own error answers. Heads are parsed from raw bytes by the one parser, as the daemon gets them.

#include "sluice/http/forwarding.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sluice/http/message.hpp"

namespace http = sluice::http;

namespace {

// The head of the first message in `bytes` (the parser stops after it: body, upgrade, anything).
struct HeadCatcher final : http::Handler {
  http::MessageHead head;
  bool seen = false;
  http::Action on_head(const http::MessageHead& h) override {
    head = h;
    seen = true;
    return http::Action::pause;
  }
};

http::MessageHead parse(http::Kind kind, const std::string& bytes, bool response_to_head = false) {
  HeadCatcher catcher;
  http::Parser parser(kind, catcher);
  parser.expect_response_to_head(response_to_head);
  const http::Fed fed = parser.feed(bytes);
  INFO(parser.error().reason);
  REQUIRE(fed.stop != http::Stop::error);
  REQUIRE(catcher.seen);
  return catcher.head;
}

http::MessageHead request(const std::string& head_lines) {
  return parse(http::Kind::request, head_lines + "\r\n");
}

bool has_line(const std::string& head, const std::string& line) {
  return head.find("\r\n" + line + "\r\n") != std::string::npos;
}

bool has_name(const std::string& head, const std::string& name) {
  return head.find("\r\n" + name + ":") != std::string::npos;
}

// The rebuilt head parses again as exactly one message head, so framing and lines are well formed.
http::MessageHead reparse(http::Kind kind, const std::string& head) { return parse(kind, head); }

}  // namespace

TEST_CASE("http forwarding: a request loses every hop-by-hop header, and those the Connection header names") {
  const http::MessageHead head = request(
      "GET /a?b=1 HTTP/1.1\r\nHost: example\r\nConnection: keep-alive, X-Secret , x-other\r\n"
      "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: websocket\r\n"
      "X-Secret: 1\r\nX-Other: 2\r\nX-Kept: 3\r\nAccept: */*\r\n");
  const std::string out = http::request_head(head, {});
  CHECK(out.rfind("GET /a?b=1 HTTP/1.1\r\n", 0) == 0);
  for (const char* gone : {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade", "X-Secret", "X-Other"}) {
    CAPTURE(gone);
    CHECK_FALSE(has_name(out, gone));
  }
  CHECK(has_line(out, "Host: example"));
  CHECK(has_line(out, "X-Kept: 3"));
  CHECK(has_line(out, "Accept: */*"));
  // End-to-end headers keep their order.
  CHECK(out.find("Host:") < out.find("X-Kept:"));
  CHECK(out.find("X-Kept:") < out.find("Accept:"));
  CHECK(out.size() >= 4);
  CHECK(out.substr(out.size() - 4) == "\r\n\r\n");
  CHECK(reparse(http::Kind::request, out).keep_alive);  // HTTP/1.1's default towards the backend
}

TEST_CASE("http forwarding: is_hop_by_hop knows the fixed list without case and the names Connection lists") {
  const http::MessageHead head = request("GET / HTTP/1.1\r\nHost: h\r\nConnection: close,\tX-A\r\n");
  for (const char* name : {"connection", "KEEP-ALIVE", "proxy-connection", "te", "transfer-encoding", "upgrade", "x-a"}) {
    CAPTURE(name);
    CHECK(http::is_hop_by_hop(name, head));
  }
  CHECK_FALSE(http::is_hop_by_hop("Content-Length", head));
  CHECK_FALSE(http::is_hop_by_hop("Host", head));
  CHECK_FALSE(http::is_hop_by_hop("X-AB", head));  // a whole token, not a prefix
}

TEST_CASE("http forwarding: the request framing is re-emitted from the parse, never copied") {
  SUBCASE("chunked stays chunked, with one Transfer-Encoding line") {
    const http::MessageHead head = request("POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n");
    const std::string out = http::request_head(head, {});
    CHECK(has_line(out, "Transfer-Encoding: chunked"));
    CHECK_FALSE(has_name(out, "Content-Length"));
    CHECK(reparse(http::Kind::request, out).framing == http::Framing::chunked);
  }
  SUBCASE("Content-Length as parsed, written in its own spelling and once") {
    const http::MessageHead head = request("PUT /u HTTP/1.1\r\nHost: h\r\ncontent-length:  012\r\n");
    const std::string out = http::request_head(head, {});
    CHECK(has_line(out, "Content-Length: 12"));
    CHECK(out.find("Content-Length") == out.rfind("Content-Length"));
    CHECK_FALSE(has_name(out, "content-length"));
    CHECK_FALSE(has_name(out, "Transfer-Encoding"));
    const http::MessageHead again = reparse(http::Kind::request, out);
    CHECK(again.framing == http::Framing::content_length);
    CHECK(again.content_length == 12);
  }
  SUBCASE("no body: no framing line at all") {
    const std::string out = http::request_head(request("GET / HTTP/1.1\r\nHost: h\r\n"), {});
    CHECK_FALSE(has_name(out, "Content-Length"));
    CHECK_FALSE(has_name(out, "Transfer-Encoding"));
  }
  SUBCASE("an HTTP/1.0 request goes out as HTTP/1.1") {
    const std::string out = http::request_head(request("GET /old HTTP/1.0\r\nHost: h\r\n"), {});
    CHECK(out.rfind("GET /old HTTP/1.1\r\n", 0) == 0);
  }
}

TEST_CASE("http forwarding: an upgrade keeps Upgrade and sends Connection: upgrade, other Connection names dropped") {
  const http::MessageHead head = request(
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\n"
      "HTTP2-Settings: x\r\nSec-WebSocket-Key: k\r\n");
  http::RequestForwarding how;
  how.upgrade = true;
  const std::string out = http::request_head(head, how);
  CHECK(has_line(out, "Upgrade: websocket"));
  CHECK(has_line(out, "Connection: upgrade"));
  CHECK(has_line(out, "Sec-WebSocket-Key: k"));
  CHECK_FALSE(has_name(out, "HTTP2-Settings"));
  CHECK(out.find("Connection") == out.rfind("Connection"));
}

TEST_CASE("http forwarding: forwarded headers added, an existing X-Forwarded-For and Forwarded extended") {
  http::RequestForwarding how;
  how.forwarded = true;
  SUBCASE("a first proxy: IPv4") {
    how.client_address = "127.0.0.1";
    const std::string out = http::request_head(request("GET / HTTP/1.1\r\nHost: h\r\n"), how);
    CHECK(has_line(out, "X-Forwarded-For: 127.0.0.1"));
    CHECK(has_line(out, "X-Forwarded-Proto: http"));
    CHECK(has_line(out, "Forwarded: for=127.0.0.1;proto=http"));
  }
  SUBCASE("behind another proxy: the chains grow by one, the client's Proto replaced") {
    how.client_address = "10.0.0.7";
    const std::string out = http::request_head(
        request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.5\r\nX-Forwarded-For: 198.51.100.1\r\n"
                "X-Forwarded-Proto: https\r\nForwarded: for=203.0.113.5\r\n"),
        how);
    CHECK(has_line(out, "X-Forwarded-For: 203.0.113.5, 198.51.100.1, 10.0.0.7"));
    CHECK(out.find("X-Forwarded-For") == out.rfind("X-Forwarded-For"));
    CHECK(has_line(out, "X-Forwarded-Proto: http"));
    CHECK(out.find("X-Forwarded-Proto") == out.rfind("X-Forwarded-Proto"));
    CHECK(has_line(out, "Forwarded: for=203.0.113.5, for=10.0.0.7;proto=http"));
  }
  SUBCASE("IPv6 quoted and bracketed in Forwarded, bare in X-Forwarded-For") {
    how.client_address = "::1";
    const std::string out = http::request_head(request("GET / HTTP/1.1\r\nHost: h\r\n"), how);
    CHECK(has_line(out, "X-Forwarded-For: ::1"));
    CHECK(has_line(out, "Forwarded: for=\"[::1]\";proto=http"));
  }
  SUBCASE("without forwarded, the client's own forwarding headers pass untouched") {
    const std::string out =
        http::request_head(request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.5\r\n"), {});
    CHECK(has_line(out, "X-Forwarded-For: 203.0.113.5"));
    CHECK_FALSE(has_name(out, "Forwarded"));
    CHECK_FALSE(has_name(out, "X-Forwarded-Proto"));
  }
}

TEST_CASE("http forwarding: response heads, body framing to HTTP/1.1 and HTTP/1.0 clients") {
  const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\n"
                              "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\n\r\n";
  const http::MessageHead response = parse(http::Kind::response, chunked);
  SUBCASE("chunked to HTTP/1.1: re-chunked, hop-by-hop gone") {
    CHECK(http::body_out(response, 1) == http::BodyOut::chunked);
    const std::string out = http::response_head(response, http::BodyOut::chunked, true, 1, false);
    CHECK(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(has_line(out, "Transfer-Encoding: chunked"));
    CHECK(has_line(out, "X-End: 2"));
    for (const char* gone : {"Connection", "Keep-Alive", "X-Hop"}) {
      CAPTURE(gone);
      CHECK_FALSE(has_name(out, gone));
    }
  }
  SUBCASE("chunked to HTTP/1.0: raw until close, Connection: close") {
    CHECK(http::body_out(response, 0) == http::BodyOut::until_close);
    const std::string out = http::response_head(response, http::BodyOut::until_close, true, 0, false);
    CHECK_FALSE(has_name(out, "Transfer-Encoding"));
    CHECK(has_line(out, "Connection: close"));
  }
  SUBCASE("Content-Length kept, keep-alive said to an HTTP/1.0 client, close when asked") {
    const http::MessageHead sized = parse(http::Kind::response, "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n");
    CHECK(http::body_out(sized, 0) == http::BodyOut::content_length);
    const std::string kept = http::response_head(sized, http::BodyOut::content_length, true, 0, false);
    CHECK(has_line(kept, "Content-Length: 5"));
    CHECK(has_line(kept, "Connection: keep-alive"));
    const std::string closed = http::response_head(sized, http::BodyOut::content_length, false, 1, false);
    CHECK(has_line(closed, "Connection: close"));
    CHECK_FALSE(has_name(http::response_head(sized, http::BodyOut::content_length, true, 1, false), "Connection"));
  }
  SUBCASE("a close-delimited body is re-chunked for HTTP/1.1") {
    const http::MessageHead open = parse(http::Kind::response, "HTTP/1.1 200 OK\r\n\r\n");
    CHECK(open.framing == http::Framing::until_close);
    CHECK(http::body_out(open, 1) == http::BodyOut::chunked);
  }
  SUBCASE("HEAD and 304 keep the representation's Content-Length with no body") {
    const http::MessageHead head =
        parse(http::Kind::response, "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n", /*response_to_head=*/true);
    CHECK(http::body_out(head, 1) == http::BodyOut::none);
    CHECK(has_line(http::response_head(head, http::BodyOut::none, true, 1, true), "Content-Length: 26"));
    const http::MessageHead not_modified =
        parse(http::Kind::response, "HTTP/1.1 304 Not Modified\r\nContent-Length: 26\r\n\r\n");
    CHECK(http::body_out(not_modified, 1) == http::BodyOut::none);
    CHECK(has_line(http::response_head(not_modified, http::BodyOut::none, true, 1, false), "Content-Length: 26"));
  }
  SUBCASE("an interim 100 never says Connection") {
    const http::MessageHead interim = parse(http::Kind::response, "HTTP/1.1 100 Continue\r\n\r\n");
    const std::string out = http::response_head(interim, http::BodyOut::none, false, 1, false);
    CHECK(out == "HTTP/1.1 100 Continue\r\n\r\n");
  }
}

TEST_CASE("http forwarding: a status Sluice has no phrase for keeps the backend's, a known one gets Sluice's") {
  const http::MessageHead teapot = parse(http::Kind::response, "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n");
  CHECK(teapot.reason == "I'm a teapot");
  CHECK(http::response_head(teapot, http::BodyOut::content_length, true, 1, false).rfind("HTTP/1.1 418 I'm a teapot\r\n", 0) == 0);
  const http::MessageHead bare = parse(http::Kind::response, "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n");
  CHECK(http::response_head(bare, http::BodyOut::content_length, true, 1, false).rfind("HTTP/1.1 299 \r\n", 0) == 0);
  const http::MessageHead odd_ok = parse(http::Kind::response, "HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n");
  CHECK(http::response_head(odd_ok, http::BodyOut::content_length, true, 1, false).rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
}

TEST_CASE("http forwarding: a request without Host gets the backend's address, one with Host keeps its own") {
  http::RequestForwarding how;
  how.host = "backend.local:8000";
  const std::string old = http::request_head(request("GET /x HTTP/1.0\r\nAccept: */*\r\n"), how);
  CHECK(old.rfind("GET /x HTTP/1.1\r\n", 0) == 0);
  CHECK(has_line(old, "Host: backend.local:8000"));
  CHECK(reparse(http::Kind::request, old).header("Host") == "backend.local:8000");
  const std::string own = http::request_head(request("GET /x HTTP/1.0\r\nhost: client.example\r\n"), how);
  CHECK(has_line(own, "host: client.example"));
  CHECK(own.find("backend.local") == std::string::npos);
}

TEST_CASE("http forwarding: chunk framing and the last chunk with trailers") {
  CHECK(http::chunk_size_line(0x1a2b) == "1a2b\r\n");
  CHECK(http::chunk_size_line(1) == "1\r\n");
  CHECK(http::last_chunk({}) == "0\r\n\r\n");
  CHECK(http::last_chunk({{"Checksum", "abc"}}) == "0\r\nChecksum: abc\r\n\r\n");
  // Re-chunked bytes read back as the same body.
  const std::string body = http::chunk_size_line(5) + "hello\r\n" + http::chunk_size_line(6) + " world\r\n" +
                           http::last_chunk({{"X-T", "1"}});
  const auto message = http::read_whole_message(
      http::Kind::response, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
  REQUIRE(message);
  CHECK(message->body == "hello world");
}

TEST_CASE("http forwarding: error answers are complete responses, closing and Retry-After as asked") {
  for (int status : {400, 408, 431, 502, 503, 504}) {
    CAPTURE(status);
    const std::string answer = http::error_response(status, true);
    const auto message = http::read_whole_message(http::Kind::response, answer);
    REQUIRE(message);
    CHECK(message->head.status == status);
    CHECK_FALSE(message->head.keep_alive);
    CHECK(message->body.rfind(std::to_string(status) + " ", 0) == 0);
    CHECK_FALSE(has_name(answer, "Retry-After"));
  }
  const std::string busy = http::error_response(503, false, 1);
  CHECK(busy.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(has_line(busy, "Retry-After: 1"));
  CHECK_FALSE(has_name(busy, "Connection"));
  const auto message = http::read_whole_message(http::Kind::response, busy);
  REQUIRE(message);
  CHECK(message->head.keep_alive);
  // To a HEAD: the head alone, whose Content-Length describes the body a GET would get.
  const std::string to_head = http::error_response(503, false, 1, /*to_head=*/true);
  CHECK(to_head == busy.substr(0, busy.find("\r\n\r\n") + 4));
  CHECK(has_line(to_head, "Content-Length: 24"));
}

TEST_CASE("http forwarding: idempotent methods are the ones RFC 9110 names") {
  for (const char* method : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) CHECK(http::is_idempotent(method));
  for (const char* method : {"POST", "PATCH", "CONNECT", "get"}) CHECK_FALSE(http::is_idempotent(method));
}
