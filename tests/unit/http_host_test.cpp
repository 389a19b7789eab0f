// The Host field of requests (http/host_field, RFC 9112 3.2): exactly one in HTTP/1.1, at most one
// in HTTP/1.0, a value that is host[:port], and an absolute-form target whose authority is Host.
// Checked on heads the one parser reads, and through the parser, which refuses what check_host does.

#include "sluice/http/host_field.hpp"

#include <doctest/doctest.h>

#include <string>

#include "sluice/http/forwarding.hpp"
#include "sluice/http/message.hpp"

namespace http = sluice::http;

namespace {

http::MessageHead head(std::string target, int minor, std::vector<http::Header> headers) {
  http::MessageHead h;
  h.method = "GET";
  h.target = std::move(target);
  h.version_minor = minor;
  h.headers = std::move(headers);
  return h;
}

// What the parser says of `request`: "" when it reads one whole message, else its reason.
std::string parse_reason(const std::string& request) {
  std::string why;
  const auto message = http::read_whole_message(http::Kind::request, request, &why);
  return message ? std::string() : why;
}

}  // namespace

TEST_CASE("http host: HTTP/1.1 needs exactly one Host, HTTP/1.0 at most one") {
  CHECK(http::check_host(head("/", 1, {{"Host", "a"}})).empty());
  CHECK(http::check_host(head("/", 1, {{"X-A", "b"}})) == "an HTTP/1.1 request without Host");
  CHECK(http::check_host(head("/", 1, {{"Host", "a"}, {"hOST", "a"}})) == "several Host fields");
  CHECK(http::check_host(head("/", 0, {})).empty());
  CHECK(http::check_host(head("/", 0, {{"Host", "a"}, {"Host", "b"}})) == "several Host fields");
}

TEST_CASE("http host: the value is uri-host with an optional port") {
  for (const char* valid : {"", "a", "example.com:8080", "127.0.0.1", "[::1]", "[::1]:80", "a:", "x%41y",
                            "a-b_c~d!$&'()*+,;=", "[v1.fe80::a+en1]", " a \t"}) {
    CAPTURE(valid);
    CHECK(http::check_host(head("/", 1, {{"Host", valid}})).empty());
  }
  for (const char* invalid : {"a b", "u@a", "a/b", "a?b", "a#b", "a:8x", "a:80:90", "%4", "%zz", "[::1", "[]",
                              "[::1]x", "[::1/2]", "caf\xc3\xa9", "a\"b", "<a>"}) {
    CAPTURE(invalid);
    CHECK(http::check_host(head("/", 1, {{"Host", invalid}})).find("is not host[:port]") != std::string::npos);
  }
}

TEST_CASE("http host: an absolute-form target must name Host as its authority") {
  CHECK(http::target_authority("http://a:80/p?q") == "a:80");
  CHECK(http::target_authority("https://a?q") == "a");
  CHECK(http::target_authority("/p://x") == "");
  CHECK(http::target_authority("*") == "");
  CHECK(http::target_authority("a:443") == "");
  CHECK(http::check_host(head("http://Example.com:80/p", 1, {{"Host", "example.COM:80"}})).empty());
  CHECK(http::check_host(head("HTTPS://a", 1, {{"Host", "a"}})).empty());
  CHECK(http::check_host(head("https://a/p", 0, {})).empty());
  CHECK(http::check_host(head("http://b/p", 1, {{"Host", "a"}})) ==
        "Host 'a' differs from the target's authority 'b'");
  CHECK(http::check_host(head("http://a:80/p", 1, {{"Host", "a"}})).find("differs") != std::string::npos);
  CHECK(http::check_host(head("ftp://a/p", 1, {{"Host", "a"}})) == "target scheme 'ftp' is not http or https");
  CHECK(http::check_host(head("http://u@a/p", 0, {})).find("target authority 'u@a'") != std::string::npos);
  CHECK(http::check_host(head("http:///p", 0, {})).find("target authority ''") != std::string::npos);
}

TEST_CASE("http host: the parser refuses requests check_host refuses, and reads responses without Host") {
  CHECK(parse_reason("GET / HTTP/1.1\r\nHost: a\r\n\r\n").empty());
  CHECK(parse_reason("GET / HTTP/1.0\r\n\r\n").empty());
  CHECK(parse_reason("GET / HTTP/1.1\r\n\r\n") == "an HTTP/1.1 request without Host");
  CHECK(parse_reason("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == "several Host fields");
  CHECK(parse_reason("GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n").find("differs") != std::string::npos);
  std::string why;
  CHECK(http::read_whole_message(http::Kind::response, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &why));
  CHECK(why.empty());
}

TEST_CASE("http host: the path of an absolute-form target, and the Host an HTTP/1.0 one is forwarded with") {
  const auto message = http::read_whole_message(http::Kind::request, "GET http://a:8/x/y?q HTTP/1.0\r\n\r\n");
  REQUIRE(message);
  CHECK(message->head.path() == "/x/y");
  CHECK(head("http://a?q", 1, {}).path() == "/");
  CHECK(head("/x?q", 1, {}).path() == "/x");
  http::RequestForwarding how;
  how.host = "backend:80";
  const std::string out = http::request_head(message->head, how);
  CHECK(out.rfind("GET http://a:8/x/y?q HTTP/1.1\r\nHost: a:8\r\n", 0) == 0);
  CHECK(out.find("backend:80") == std::string::npos);
}
