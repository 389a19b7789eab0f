// The value grammars of the config: durations, endpoints and CIDR ranges, edge by edge.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "sluice/net/cidr.hpp"
#include "sluice/config/duration.hpp"
#include "sluice/net/endpoint.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

using sluice::Cidr;
using sluice::Millis;
using sluice::parse_duration;
using sluice::parse_endpoint;

namespace {

// A socket address for a literal, as accept() would fill it in.
sockaddr_storage address_of(const std::string& literal) {
  const auto address = sluice::numeric_address(sluice::Endpoint{literal, 0});
  REQUIRE(address.has_value());
  return *address;
}

bool range_contains(const std::string& range, const std::string& literal) {
  auto cidr = Cidr::parse(range);
  REQUIRE(cidr.has_value());
  sockaddr_storage address = address_of(literal);
  return cidr->contains(sluice::as_sockaddr(&address));
}

// The reason parse_endpoint gives for rejecting `text` ("" when it accepts it).
std::string endpoint_error(const std::string& text) {
  std::string why;
  return parse_endpoint(text, &why) ? "" : why;
}

std::string cidr_error(const std::string& text) {
  std::string why;
  return Cidr::parse(text, &why) ? "" : why;
}

}  // namespace

TEST_CASE("durations: every unit") {
  CHECK(parse_duration("250ms") == Millis(250));
  CHECK(parse_duration("2s") == Millis(2000));
  CHECK(parse_duration("1m") == Millis(60000));
  CHECK(parse_duration("1h") == Millis(3600000));
  CHECK(parse_duration("0s") == Millis(0));
  CHECK(parse_duration("007s") == Millis(7000));
  CHECK(parse_duration("9223372036854775807ms") == Millis(9223372036854775807LL));
  CHECK(parse_duration("2562047788015h") == Millis(2562047788015LL * 3600000));
}

TEST_CASE("durations: everything else is refused") {
  for (const char* text : {"",
                           "5",
                           "ms",
                           "s",
                           "-1s",
                           "+1s",
                           "1.5s",
                           ".5s",
                           " 1s",
                           "1s ",
                           "1 s",
                           "1d",
                           "1S",
                           "1sec",
                           "1ms2",
                           "1h30m",
                           "0x10s",
                           "9223372036854775808ms",
                           "2562047788016h",
                           "99999999999999999999999s"}) {
    CAPTURE(text);
    CHECK_FALSE(parse_duration(text).has_value());
  }
}

TEST_CASE("endpoints: accepted forms") {
  auto v4 = parse_endpoint("127.0.0.1:80");
  REQUIRE(v4.has_value());
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 80);
  CHECK(v4->to_string() == "127.0.0.1:80");

  auto v6 = parse_endpoint("[::1]:80");
  REQUIRE(v6.has_value());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 80);
  CHECK(v6->to_string() == "[::1]:80");

  auto mapped = parse_endpoint("[::ffff:10.0.0.1]:65535");
  REQUIRE(mapped.has_value());
  CHECK(mapped->host == "::ffff:10.0.0.1");
  CHECK(mapped->port == 65535);

  auto name = parse_endpoint("web-node_a.default.svc.cluster.local:0");
  REQUIRE(name.has_value());
  CHECK(name->host == "web-node_a.default.svc.cluster.local");
  CHECK(name->port == 0);

  CHECK(endpoint_error("localhost:8080") == "");
  CHECK(endpoint_error("0.0.0.0:00080") == "");
  CHECK(endpoint_error(std::string(253, 'a') + ":1") == "");
  CHECK(parse_endpoint("localhost") == std::nullopt);  // `why` is optional
}

TEST_CASE("endpoints: each refusal says why") {
  CHECK(endpoint_error("") == "address is empty (expected host:port)");
  CHECK(endpoint_error("localhost") == "missing port (expected host:port)");
  CHECK(endpoint_error("localhost:") == "missing port (expected host:port)");
  CHECK(endpoint_error(":80") == "missing host (expected host:port)");
  CHECK(endpoint_error("::1:80") == "IPv6 address must be in brackets, e.g. [::1]:8080");
  CHECK(endpoint_error("::1") == "IPv6 address must be in brackets, e.g. [::1]:8080");
  CHECK(endpoint_error("[::1]") == "missing port (expected [host]:port)");
  CHECK(endpoint_error("[::1]:") == "missing port (expected [host]:port)");
  CHECK(endpoint_error("[::1]80") == "expected ':' and a port after ']'");
  CHECK(endpoint_error("[::1:80") == "missing ']' after IPv6 address");
  CHECK(endpoint_error("[::g]:80") == "'::g' is not a valid IPv6 address");
  CHECK(endpoint_error("[1.2.3.4]:80") == "'1.2.3.4' is not a valid IPv6 address");
  CHECK(endpoint_error("[fe80::1%eth0]:80") == "'fe80::1%eth0' is not a valid IPv6 address");
  CHECK(endpoint_error("1.2.3.4:70000") == "port 70000 is out of range 0..65535");
  CHECK(endpoint_error("1.2.3.4:65536") == "port 65536 is out of range 0..65535");
  CHECK(endpoint_error("1.2.3.4:99999999999999999999") ==
        "port 99999999999999999999 is out of range 0..65535");
  CHECK(endpoint_error("1.2.3.4:-1") == "port '-1' is not a number 0..65535");
  CHECK(endpoint_error("1.2.3.4:http") == "port 'http' is not a number 0..65535");
  CHECK(endpoint_error("1.2.3.4: 80") == "port ' 80' is not a number 0..65535");
  CHECK(endpoint_error("300.1.1.1:80") == "'300.1.1.1' is not a valid IPv4 address");
  CHECK(endpoint_error("1.2.3:80") == "'1.2.3' is not a valid IPv4 address");
  CHECK(endpoint_error("1.2.3.4.:80") == "'1.2.3.4.' is not a valid IPv4 address");
  CHECK(endpoint_error("my host:80") ==
        "host name 'my host' contains ' '; only letters, digits, '-', '_' and '.' are allowed");
  CHECK(endpoint_error(std::string(254, 'a') + ":1") == "host name is longer than 253 characters");
}

TEST_CASE("CIDR: parsing and normal form") {
  auto v4 = Cidr::parse("10.0.0.0/8");
  REQUIRE(v4.has_value());
  CHECK(v4->family == AF_INET);
  CHECK(v4->prefix_bits == 8);
  CHECK(v4->bytes[0] == 10);
  CHECK(v4->to_string() == "10.0.0.0/8");

  auto host = Cidr::parse("192.168.1.7");
  REQUIRE(host.has_value());
  CHECK(host->prefix_bits == 32);
  CHECK(host->to_string() == "192.168.1.7/32");

  auto v6_host = Cidr::parse("::1");
  REQUIRE(v6_host.has_value());
  CHECK(v6_host->family == AF_INET6);
  CHECK(v6_host->prefix_bits == 128);

  CHECK(Cidr::parse("::/0")->to_string() == "::/0");
  CHECK(Cidr::parse("0.0.0.0/0")->to_string() == "0.0.0.0/0");
  CHECK(Cidr::parse("2001:db8::/32")->to_string() == "2001:db8::/32");
}

TEST_CASE("CIDR: each refusal says why") {
  CHECK(cidr_error("10.0.0.1/8") == "'10.0.0.1/8' has host bits set; did you mean '10.0.0.0/8'?");
  CHECK(cidr_error("10.0.0.3/31") == "'10.0.0.3/31' has host bits set; did you mean '10.0.0.2/31'?");
  CHECK(cidr_error("2001:db8::1/32") == "'2001:db8::1/32' has host bits set; did you mean '2001:db8::/32'?");
  CHECK(cidr_error("10.0.0.0/33") == "prefix length 33 is out of range 0..32");
  CHECK(cidr_error("::/129") == "prefix length 129 is out of range 0..128");
  CHECK(cidr_error("::/99999999999999999999") == "prefix length 99999999999999999999 is out of range 0..128");
  CHECK(cidr_error("10.0.0.0/") == "prefix length '' is not a number 0..32");
  CHECK(cidr_error("10.0.0.0/-1") == "prefix length '-1' is not a number 0..32");
  CHECK(cidr_error("10.0.0.0/8 ") == "prefix length '8 ' is not a number 0..32");
  CHECK(cidr_error("10/8") == "'10' is not a valid IPv4 address");
  CHECK(cidr_error("banana") == "'banana' is not a valid IPv4 address");
  CHECK(cidr_error("") == "'' is not a valid IPv4 address");
  CHECK(cidr_error("::g/64") == "'::g' is not a valid IPv6 address");
  CHECK_FALSE(Cidr::parse("10.0.0.1/8").has_value());  // `why` is optional
}

TEST_CASE("CIDR: contains") {
  CHECK(range_contains("10.0.0.0/8", "10.255.255.255"));
  CHECK_FALSE(range_contains("10.0.0.0/8", "11.0.0.0"));
  CHECK(range_contains("10.0.0.2/31", "10.0.0.3"));
  CHECK_FALSE(range_contains("10.0.0.2/31", "10.0.0.4"));
  CHECK(range_contains("192.168.1.7", "192.168.1.7"));
  CHECK_FALSE(range_contains("192.168.1.7", "192.168.1.8"));
  CHECK(range_contains("2001:db8::/32", "2001:db8:ffff::1"));
  CHECK_FALSE(range_contains("2001:db8::/32", "2001:db9::"));
  CHECK(range_contains("::1", "::1"));
}

TEST_CASE("CIDR: /0 ranges match their whole family") {
  CHECK(range_contains("0.0.0.0/0", "0.0.0.0"));
  CHECK(range_contains("0.0.0.0/0", "255.255.255.255"));
  CHECK(range_contains("::/0", "::"));
  CHECK(range_contains("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(range_contains("::/0", "10.0.0.1"));  // an IPv4 socket address is not in an IPv6 range
  CHECK_FALSE(range_contains("0.0.0.0/0", "2001:db8::1"));
}

TEST_CASE("CIDR: IPv4-mapped IPv6 clients match IPv4 ranges") {
  CHECK(range_contains("10.0.0.0/8", "::ffff:10.1.2.3"));
  CHECK_FALSE(range_contains("10.0.0.0/8", "::ffff:11.1.2.3"));
  CHECK(range_contains("0.0.0.0/0", "::ffff:1.2.3.4"));
  CHECK(range_contains("192.168.1.7", "::ffff:192.168.1.7"));
  // Only the ::ffff:0:0/96 form is IPv4: the last four bytes of any other address are not.
  CHECK_FALSE(range_contains("10.0.0.0/8", "::10.1.2.3"));
  CHECK_FALSE(range_contains("10.0.0.0/8", "64:ff9b::10.1.2.3"));
  // A mapped address is still an IPv6 address for IPv6 ranges.
  CHECK(range_contains("::ffff:0:0/96", "::ffff:10.1.2.3"));
}

TEST_CASE("CIDR: no address, or an address of another family, is not contained") {
  auto any = Cidr::parse("0.0.0.0/0");
  REQUIRE(any.has_value());
  CHECK_FALSE(any->contains(nullptr));
  sockaddr_un local{};
  local.sun_family = AF_UNIX;
  CHECK_FALSE(any->contains(sluice::as_sockaddr(&local)));
}
