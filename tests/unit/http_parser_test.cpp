// The one HTTP/1.x parser (llhttp underneath): requests and responses fed in any split, body spans,
// pauses at message ends and after heads, framing, keep-alive, Upgrade, errors and the head limit.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sluice/http/parser.hpp"

namespace {

using sluice::http::Action;
using sluice::http::ErrorKind;
using sluice::http::Fed;
using sluice::http::Framing;
using sluice::http::Kind;
using sluice::http::MessageHead;
using sluice::http::Parser;
using sluice::http::Stop;

// Keeps every head, the body bytes and the trailers of each message, and counts the body spans.
struct Recorder : sluice::http::Handler {
  std::vector<MessageHead> heads;
  std::vector<std::string> bodies;
  std::vector<std::vector<sluice::http::Header>> trailers;
  std::size_t ended = 0;
  std::size_t body_spans = 0;
  bool pause_after_head = false;

  Action on_head(const MessageHead& head) override {
    heads.push_back(head);
    bodies.emplace_back();
    return pause_after_head ? Action::pause : Action::proceed;
  }
  void on_body(std::string_view bytes) override {
    bodies.back() += bytes;
    ++body_spans;
  }
  void on_message_end(const std::vector<sluice::http::Header>& t) override {
    trailers.push_back(t);
    ++ended;
  }
};

// Feeds `input` in pieces of `piece` bytes, each piece again from where the last feed stopped,
// going on after message ends and pauses. Returns the last stop that was not need_more.
Stop feed_in_pieces(Parser& parser, std::string_view input, std::size_t piece) {
  Stop last = Stop::need_more;
  for (std::size_t start = 0; start < input.size(); start += piece) {
    std::string_view rest = input.substr(start, piece);
    while (!rest.empty()) {
      const Fed fed = parser.feed(rest);
      if (fed.stop == Stop::error) MESSAGE(parser.error().reason);
      if (fed.stop == Stop::error || fed.stop == Stop::upgrade) return fed.stop;
      if (fed.stop != Stop::need_more) last = fed.stop;
      rest.remove_prefix(fed.consumed);
    }
  }
  return last;
}

const std::string kChunked =
    "POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;name=value\r\nhello\r\n"
    "6;q=\"x y\";flag\r\n world\r\n"
    "0\r\nChecksum: abc\r\nX-Late: 1\r\n\r\n";

}  // namespace

TEST_CASE("http parser: a request in every split gives the same head, body and trailers") {
  for (std::size_t piece = 1; piece <= kChunked.size(); ++piece) {
    CAPTURE(piece);
    Recorder r;
    Parser parser(Kind::request, r);
    CHECK(feed_in_pieces(parser, kChunked, piece) == Stop::message_end);
    REQUIRE(r.heads.size() == 1);
    const MessageHead& head = r.heads[0];
    CHECK(head.method == "POST");
    CHECK(head.target == "/upload?x=1");
    CHECK(head.path() == "/upload");
    CHECK(head.version_major == 1);
    CHECK(head.version_minor == 1);
    CHECK(head.header("host") == "a");
    CHECK(head.header("TRANSFER-ENCODING") == "chunked");
    CHECK(head.framing == Framing::chunked);
    CHECK(head.keep_alive);
    CHECK(r.bodies[0] == "hello world");
    REQUIRE(r.trailers.size() == 1);
    REQUIRE(r.trailers[0].size() == 2);
    CHECK(r.trailers[0][0].name == "Checksum");
    CHECK(r.trailers[0][0].value == "abc");
    CHECK(r.ended == 1);
    CHECK(parser.idle());
  }
}

TEST_CASE("http parser: a body is handed out in spans as it arrives, never gathered") {
  Recorder r;
  Parser parser(Kind::request, r);
  const std::string head = "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
  Fed fed = parser.feed(head + "abc");
  CHECK(fed.stop == Stop::need_more);
  CHECK(fed.consumed == head.size() + 3);
  REQUIRE(r.heads.size() == 1);
  CHECK(r.heads[0].framing == Framing::content_length);
  CHECK(r.heads[0].content_length == 10);
  CHECK(r.bodies[0] == "abc");
  CHECK(r.ended == 0);
  fed = parser.feed("defghij");
  CHECK(fed.stop == Stop::message_end);
  CHECK(r.bodies[0] == "abcdefghij");
  CHECK(r.body_spans == 2);
}

TEST_CASE("http parser: pipelined requests stop at each message end with the bytes consumed") {
  Recorder r;
  Parser parser(Kind::request, r);
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string second = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok";
  const std::string third = "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string all = first + second + third;
  Fed fed = parser.feed(all);
  CHECK(fed.stop == Stop::message_end);
  CHECK(fed.consumed == first.size());
  CHECK(r.heads.size() == 1);  // the second waits until the caller feeds again
  fed = parser.feed(std::string_view(all).substr(first.size()));
  CHECK(fed.stop == Stop::message_end);
  CHECK(fed.consumed == second.size());
  CHECK(r.bodies[1] == "ok");
  fed = parser.feed(std::string_view(all).substr(first.size() + second.size()));
  CHECK(fed.stop == Stop::message_end);
  CHECK(fed.consumed == third.size());
  REQUIRE(r.heads.size() == 3);
  CHECK(r.heads[2].target == "/c");
  CHECK(r.heads[0].framing == Framing::none);
}

TEST_CASE("http parser: a handler may pause after the head, before any body byte is read") {
  Recorder r;
  r.pause_after_head = true;
  Parser parser(Kind::request, r);
  const std::string head = "POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  Fed fed = parser.feed(head + "body");
  CHECK(fed.stop == Stop::paused);
  CHECK(fed.consumed == head.size());
  CHECK(r.heads[0].header("expect") == "100-continue");
  CHECK(r.bodies[0].empty());
  fed = parser.feed("body");
  CHECK(fed.stop == Stop::message_end);
  CHECK(r.bodies[0] == "body");
}

TEST_CASE("http parser: after a pause at the end of the input, a request without body ends on a feed of no bytes") {
  Recorder r;
  r.pause_after_head = true;
  Parser parser(Kind::request, r);
  const std::string head = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  Fed fed = parser.feed(head);
  CHECK(fed.stop == Stop::paused);
  CHECK(fed.consumed == head.size());
  CHECK(r.ended == 0);
  fed = parser.feed(std::string_view());  // nothing more has come: the message still ends
  CHECK(fed.stop == Stop::message_end);
  CHECK(fed.consumed == 0);
  CHECK(r.ended == 1);
  CHECK(parser.idle());
  CHECK(parser.feed(std::string_view()).stop == Stop::need_more);
}

TEST_CASE("http parser: keep-alive by version and Connection header") {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
  };
  for (const auto& [request, keep_alive] : cases) {
    CAPTURE(request);
    Recorder r;
    Parser parser(Kind::request, r);
    CHECK(parser.feed(request).stop == Stop::message_end);
    REQUIRE(r.heads.size() == 1);
    CHECK(r.heads[0].keep_alive == keep_alive);
    CHECK(r.heads[0].version_minor == (request.find("1.0") != std::string::npos ? 0 : 1));
  }
}

TEST_CASE("http parser: response framing: Content-Length, chunked, until close, and none") {
  SUBCASE("Content-Length and chunked, pipelined, byte by byte") {
    Recorder r;
    Parser parser(Kind::response, r);
    const std::string both = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
                             "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n";
    CHECK(feed_in_pieces(parser, both, 1) == Stop::message_end);
    REQUIRE(r.heads.size() == 2);
    CHECK(r.heads[0].status == 200);
    CHECK(r.bodies[0] == "abc");
    CHECK(r.heads[1].status == 404);
    CHECK(r.heads[1].framing == Framing::chunked);
    CHECK(r.bodies[1] == "no");
  }
  SUBCASE("no length: the body runs until the peer closes") {
    Recorder r;
    Parser parser(Kind::response, r);
    CHECK(parser.feed("HTTP/1.0 200 OK\r\n\r\nsome bytes").stop == Stop::need_more);
    REQUIRE(r.heads.size() == 1);
    CHECK(r.heads[0].framing == Framing::until_close);
    CHECK_FALSE(r.heads[0].keep_alive);
    CHECK(r.ended == 0);
    CHECK(parser.finish().stop == Stop::message_end);
    CHECK(r.bodies[0] == "some bytes");
    CHECK(r.ended == 1);
    // The next bytes are another connection's: a new response, not more of that body (found by
    // the request-path fuzzer: a proxy reusing its parser for the next exchange).
    CHECK(parser.idle());
    CHECK(parser.feed("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok").stop == Stop::message_end);
    REQUIRE(r.heads.size() == 2);
    CHECK(r.heads[1].status == 201);
    CHECK(r.bodies[1] == "ok");
  }
  SUBCASE("204, 304 and 1xx have no body whatever their headers say") {
    Recorder r;
    Parser parser(Kind::response, r);
    const std::string input = "HTTP/1.1 100 Continue\r\n\r\n"
                              "HTTP/1.1 204 No Content\r\n\r\n"
                              "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    CHECK(feed_in_pieces(parser, input, input.size()) == Stop::message_end);
    REQUIRE(r.heads.size() == 4);
    CHECK(r.heads[0].status == 100);
    for (int i = 0; i < 3; ++i) CHECK(r.heads[i].framing == Framing::none);
    CHECK(r.bodies[2].empty());
    CHECK(r.bodies[3] == "x");
  }
  SUBCASE("the response to a HEAD has no body, though it has a Content-Length") {
    Recorder r;
    Parser parser(Kind::response, r);
    parser.expect_response_to_head(true);
    const std::string head_answer = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    Fed fed = parser.feed(head_answer + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    CHECK(fed.stop == Stop::message_end);
    CHECK(fed.consumed == head_answer.size());
    REQUIRE(r.heads.size() == 1);
    CHECK(r.heads[0].framing == Framing::none);
    parser.expect_response_to_head(false);
    fed = parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    CHECK(fed.stop == Stop::message_end);
    CHECK(r.bodies[1] == "hi");
  }
}

TEST_CASE("http parser: Upgrade stops at the end of the head, and the rest is the other protocol") {
  Recorder r;
  Parser parser(Kind::request, r);
  const std::string head = "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const Fed fed = parser.feed(head + "\x81\x05hello");
  CHECK(fed.stop == Stop::upgrade);
  CHECK(fed.consumed == head.size());
  REQUIRE(r.heads.size() == 1);
  CHECK(r.heads[0].upgrade);
  CHECK(r.heads[0].framing == Framing::none);
  CHECK(r.ended == 1);
  CHECK(parser.feed("more").stop == Stop::upgrade);  // no more HTTP on this connection
  CHECK(parser.feed("more").consumed == 0);

  Recorder plain;
  Parser announce(Kind::request, plain);  // Upgrade without "Connection: upgrade" is only an offer
  CHECK(announce.feed("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n").stop == Stop::message_end);
  CHECK_FALSE(plain.heads[0].upgrade);
}

TEST_CASE("http parser: malformed input is an error with llhttp's reason and where it stopped") {
  const std::vector<std::string> broken = {
      "G@T / HTTP/1.1\r\n\r\n",
      "GET / HTTP/9.1\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  for (const std::string& input : broken) {
    CAPTURE(input);
    Recorder r;
    Parser parser(Kind::request, r);
    const Fed fed = parser.feed(input);
    CHECK(fed.stop == Stop::error);
    CHECK(fed.consumed < input.size());
    CHECK(parser.error().kind == ErrorKind::malformed);
    CHECK(parser.error().reason.starts_with("HPE_"));
    CHECK(parser.feed("GET / HTTP/1.1\r\n\r\n").stop == Stop::error);  // no more after an error
  }
  Recorder r;
  Parser parser(Kind::request, r);
  CHECK(parser.feed("GET / HTTP/1.1\r\nHost").stop == Stop::need_more);
  CHECK(parser.finish().stop == Stop::error);
  CHECK(parser.error().kind == ErrorKind::incomplete);
}

TEST_CASE("http parser: a head over the limit is refused without reading past the limit") {
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(100, 'a') + "\r\n\r\n";
  {
    Recorder r;
    Parser parser(Kind::request, r, {.max_head_bytes = request.size()});
    CHECK(parser.feed(request).stop == Stop::message_end);  // exactly at the limit: fine
  }
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, request.size()}) {
    CAPTURE(piece);
    Recorder r;
    Parser parser(Kind::request, r, {.max_head_bytes = request.size() - 1});
    CHECK(feed_in_pieces(parser, request + "more bytes", piece) == Stop::error);
    CHECK(parser.error().kind == ErrorKind::head_too_large);
    CHECK(r.heads.empty());
  }
  // The limit is per head: many pipelined heads, each under it, are fine.
  Recorder r;
  Parser parser(Kind::request, r, {.max_head_bytes = request.size()});
  std::string many;
  for (int i = 0; i < 20; ++i) many += request;
  CHECK(feed_in_pieces(parser, many, many.size()) == Stop::message_end);
  CHECK(r.heads.size() == 20);
}
