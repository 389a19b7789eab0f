// What the per-request savings of mode: http reuse must not leak between messages: a parser's
// header strings recycled for the next message, heads appended into a write being built, pooled
// writes, and the table-driven line scan (each byte class still found at every position).

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sluice/http/forwarding.hpp"
#include "sluice/http/head_lines.hpp"
#include "sluice/http/message.hpp"
#include "sluice/proxy/write_pool.hpp"

namespace http = sluice::http;

TEST_CASE("http reuse: each pipelined message has exactly its own fields, short and long") {
  const std::string long_value(300, 'v');  // above what the parser keeps for reuse
  const std::string bytes = "GET /a HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nX-Long: " + long_value +
                            "\r\nX-Three: three\r\n\r\n"
                            "GET /b HTTP/1.1\r\nHost: bb\r\n\r\n"
                            "GET /c HTTP/1.1\r\nX-Other: " + long_value + "x\r\nHost: c\r\nX-One: 11\r\n\r\n";
  http::MessageReader reader(http::Kind::request);
  REQUIRE(reader.feed(bytes).stop == http::Stop::need_more);
  REQUIRE(reader.messages().size() == 3);
  const auto& a = reader.messages()[0].head.headers;
  REQUIRE(a.size() == 4);
  CHECK(a[2].name == "X-Long");
  CHECK(a[2].value == long_value);
  CHECK(a[3].value == "three");
  const auto& b = reader.messages()[1].head;
  CHECK(b.target == "/b");
  REQUIRE(b.headers.size() == 1);
  CHECK(b.headers[0].name == "Host");
  CHECK(b.headers[0].value == "bb");
  const auto& c = reader.messages()[2].head.headers;
  REQUIRE(c.size() == 3);
  CHECK(c[0].name == "X-Other");
  CHECK(c[0].value == long_value + "x");
  CHECK(c[1].value == "c");
  CHECK(c[2].value == "11");
}

TEST_CASE("http reuse: MessageHead::clear gives a default head") {
  http::MessageHead head;
  head.method = "POST";
  head.target = "/x";
  head.status = 200;
  head.reason = "OK";
  head.version_minor = 0;
  head.headers.push_back({"A", "b"});
  head.framing = http::Framing::chunked;
  head.content_length = 5;
  head.keep_alive = head.upgrade = true;
  head.clear();
  const http::MessageHead fresh;
  CHECK(head.method.empty());
  CHECK(head.target.empty());
  CHECK(head.status == fresh.status);
  CHECK(head.reason.empty());
  CHECK(head.version_major == fresh.version_major);
  CHECK(head.version_minor == fresh.version_minor);
  CHECK(head.headers.empty());
  CHECK(head.framing == fresh.framing);
  CHECK(head.content_length == fresh.content_length);
  CHECK(head.keep_alive == fresh.keep_alive);
  CHECK(head.upgrade == fresh.upgrade);
}

TEST_CASE("http reuse: the append forms add exactly the head or chunk after what is there") {
  std::string why;
  const auto request = http::read_whole_message(http::Kind::request, "GET / HTTP/1.1\r\nHost: h\r\nTE: x\r\n\r\n", &why);
  REQUIRE(request);
  std::string out = "before";
  http::append_request_head(out, request->head, {});
  CHECK(out == "before" + http::request_head(request->head, {}));
  const auto response = http::read_whole_message(
      http::Kind::response, "HTTP/1.1 200 OK\r\nServer: s\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok", &why);
  REQUIRE(response);
  out = "body";
  http::append_response_head(out, response->head, http::BodyOut::content_length, true, 1, false);
  CHECK(out == "body" + http::response_head(response->head, http::BodyOut::content_length, true, 1, false));
  CHECK(out == "bodyHTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\n");
  out = "x";
  http::append_chunk(out, "hello world");
  CHECK(out == "xb\r\nhello world\r\n");
}

TEST_CASE("http reuse: a pooled write comes back empty, and a large one is not kept") {
  sluice::WritePool pool(1);
  sluice::StringWrite* first = pool.take();
  first->bytes = "some bytes";
  pool.give_back(first);
  sluice::StringWrite* again = pool.take();
  CHECK(again == first);
  CHECK(again->bytes.empty());
  again->bytes.assign(sluice::WritePool::kMaxKeptBytes + 1, 'x');
  pool.give_back(again);  // freed, not kept
  sluice::StringWrite* fresh = pool.take();
  CHECK(fresh->bytes.capacity() <= sluice::WritePool::kMaxKeptBytes);
  sluice::StringWrite* second = pool.take();
  pool.give_back(fresh);
  pool.give_back(second);  // beyond max_free: freed
  sluice::StringWrite* kept = pool.take();
  CHECK(kept == fresh);
  sluice::StringWrite* last = pool.take();
  CHECK(last != fresh);
  pool.give_back(kept);
  pool.give_back(last);
}

TEST_CASE("http reuse: the line scan finds each refused byte at every position of a line") {
  const std::string start = "GET / HTTP/1.1\r\nHost: h\r\nX-Value: ";
  for (std::size_t at = 0; at < 40; ++at) {
    for (const char bad : {'\x7f', '\x01', '\x1f', '\n'}) {
      std::string value(40, 'a');
      value[at] = bad;
      http::HeadLines lines(http::Section::request_head);
      const std::string bytes = start + value + "\r\n\r\n";
      const http::HeadLines::Scan scan = lines.scan(bytes);
      CAPTURE(at);
      CAPTURE(static_cast<int>(bad));
      CHECK(scan.length == start.size() + at);
      CHECK_FALSE(scan.ended);
      CHECK(scan.problem.find("(line 3 of the head)") != std::string::npos);
    }
    std::string value(40, 'a');
    value[at] = '\t';  // allowed in a field value
    http::HeadLines lines(http::Section::request_head);
    const http::HeadLines::Scan scan = lines.scan(start + value + "\r\n\r\n");
    CHECK(scan.ended);
    CHECK(scan.problem.empty());
  }
  // In the request line a tab and a third space are refused wherever they are.
  for (std::size_t at = 1; at < 12; ++at) {
    std::string line = "GET /abcdefghijk HTTP/1.1\r\n\r\n";
    line[at == 3 ? 2 : at] = '\t';
    const std::size_t expected = at == 3 ? 2 : at;
    http::HeadLines lines(http::Section::request_head);
    CHECK(lines.scan(line).length == expected);
  }
  http::HeadLines lines(http::Section::request_head);
  const http::HeadLines::Scan scan = lines.scan("GET /a b HTTP/1.1\r\n\r\n");
  CHECK(scan.length == 8);
  CHECK(scan.problem.find("more than two spaces") != std::string::npos);
  // Split anywhere, a header line starting with a space is still obs-fold.
  const std::string folded = "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n";
  for (std::size_t split = 0; split <= folded.size(); ++split) {
    http::HeadLines split_lines(http::Section::request_head);
    const http::HeadLines::Scan first = split_lines.scan(std::string_view(folded).substr(0, split));
    std::size_t refused = first.length;
    if (first.problem.empty()) refused = split + split_lines.scan(std::string_view(folded).substr(split)).length;
    CAPTURE(split);
    CHECK(refused == folded.find(" folded"));
  }
}
