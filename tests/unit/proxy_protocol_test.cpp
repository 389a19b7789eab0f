// The PROXY protocol parser and writer (net/proxy_protocol): every version, family and malformed
// header, headers split over reads, and what is written read back.

#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "sluice/net/proxy_protocol.hpp"
#include "sluice/net/sockaddr_text.hpp"
#include "sluice/uv/handle.hpp"

namespace pp = sluice::proxy_protocol;
using sluice::ProxyVersion;

namespace {

const std::string kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

std::string v2(unsigned char command, unsigned char family, std::string block) {
  std::string header = kV2Signature;
  header += static_cast<char>(command);
  header += static_cast<char>(family);
  header += static_cast<char>(block.size() >> 8);
  header += static_cast<char>(block.size() & 0xFF);
  return header + block;
}

std::string tcp4_block() {
  // 192.0.2.1:56324 -> 198.51.100.7:443
  return std::string{"\xC0\x00\x02\x01\xC6\x33\x64\x07\xDC\x04\x01\xBB", 12};
}

std::string address(const sockaddr_storage& a) { return sluice::sockaddr_to_string(a); }

sockaddr_storage ip(const char* text) { return *sluice::parse_ip_address(text); }

// Every prefix of a complete header asks for more; the whole header is done.
void check_incremental(const std::string& header) {
  for (std::size_t n = 0; n < header.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK(pp::parse(std::string_view(header).substr(0, n)).status == pp::Status::need_more);
  }
  CHECK(pp::parse(header).status == pp::Status::done);
}

}  // namespace

TEST_CASE("proxy protocol: v1 TCP4 and TCP6 give the addresses and the header's length") {
  const std::string header = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
  const pp::Parsed parsed = pp::parse(header + "GET / HTTP/1.1\r\n");
  REQUIRE(parsed.status == pp::Status::done);
  CHECK(parsed.length == header.size());
  CHECK_FALSE(parsed.local);
  CHECK(address(parsed.source) == "192.0.2.1:56324");
  CHECK(address(parsed.destination) == "198.51.100.7:443");
  check_incremental(header);

  const pp::Parsed six = pp::parse("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
  REQUIRE(six.status == pp::Status::done);
  CHECK(address(six.source) == "[2001:db8::1]:65535");
  CHECK(address(six.destination) == "[::1]:0");
}

TEST_CASE("proxy protocol: v1 UNKNOWN is local, whatever follows it on the line") {
  CHECK(pp::parse("PROXY UNKNOWN\r\n").local);
  const pp::Parsed parsed = pp::parse("PROXY UNKNOWN ff:: 1.2.3.4 x y\r\nrest");
  REQUIRE(parsed.status == pp::Status::done);
  CHECK(parsed.local);
  CHECK(parsed.length == 32);
}

TEST_CASE("proxy protocol: malformed v1 headers are invalid") {
  const char* bad[] = {
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",       // protocol
      "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",       // case
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",         // a field missing
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",     // a field too many
      "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",      // a doubled space
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",      // a trailing space
      "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",   // port too large
      "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",      // leading zero
      "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",      // sign
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",      // sign
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2a\r\n",      // not a number
      "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",     // address out of range
      "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",         // short address
      "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",           // IPv6 in TCP4
      "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",           // IPv4 in TCP6
      "PROXY TCP6 ::1 ::g 1 2\r\n",               // bad IPv6
      "PROXY \r\n",                               // no protocol
      "PROXY TCP4\r\n",                           // no addresses
      "PROXY\r\n",                                // no space after PROXY
      "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",       // signature case
      "GET / HTTP/1.1\r\n",                       // no header at all
      "\r\nX",                                    // nor here (not the v2 signature)
  };
  for (const char* header : bad) {
    INFO(std::string(header));
    const pp::Parsed parsed = pp::parse(header);
    CHECK(parsed.status == pp::Status::invalid);
    CHECK(std::string_view(parsed.error).size() > 0);
  }
}

TEST_CASE("proxy protocol: a v1 header is bounded by 107 bytes") {
  // The spec's worst case: UNKNOWN with two full IPv6 addresses and ports.
  const std::string ipv6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string longest = "PROXY UNKNOWN " + ipv6 + " " + ipv6 + " 65535 65535\r\n";
  CHECK(longest.size() == pp::kV1MaxBytes);
  CHECK(pp::parse(longest).status == pp::Status::done);
  CHECK(pp::parse("PROXY TCP6 " + ipv6 + " " + ipv6 + " 65535 65535\r\n").status == pp::Status::done);
  const std::string endless = "PROXY UNKNOWN" + std::string(200, 'x');
  CHECK(pp::parse(endless.substr(0, 106)).status == pp::Status::need_more);
  CHECK(pp::parse(endless.substr(0, 107)).status == pp::Status::invalid);
  CHECK(pp::parse("PROXY UNKNOWN" + std::string(92, ' ') + "\r\n").status == pp::Status::done);   // 107
  CHECK(pp::parse("PROXY UNKNOWN" + std::string(93, ' ') + "\r\n").status == pp::Status::invalid);  // 108
}

TEST_CASE("proxy protocol: v2 PROXY over TCP4 and TCP6, TLVs skipped") {
  const std::string header = v2(0x21, 0x11, tcp4_block());
  const pp::Parsed parsed = pp::parse(header + "client bytes");
  REQUIRE(parsed.status == pp::Status::done);
  CHECK(parsed.length == 28);
  CHECK_FALSE(parsed.local);
  CHECK(address(parsed.source) == "192.0.2.1:56324");
  CHECK(address(parsed.destination) == "198.51.100.7:443");
  check_incremental(header);

  std::string six(36, '\0');
  six[15] = 1;                    // source ::1
  six[16] = '\x20', six[17] = '\x01', six[18] = '\x0d', six[19] = '\xb8';  // destination 2001:db8::
  six[32] = '\x01', six[33] = '\x00';  // 256
  six[34] = '\x00', six[35] = '\x50';  // 80
  const std::string tlvs = std::string{"\x04\x00\x03\x61\x62\x63", 6};  // a NOOP TLV of 3 bytes
  const pp::Parsed parsed6 = pp::parse(v2(0x21, 0x21, six + tlvs));
  REQUIRE(parsed6.status == pp::Status::done);
  CHECK(parsed6.length == 16 + 36 + 6);
  CHECK(address(parsed6.source) == "[::1]:256");
  CHECK(address(parsed6.destination) == "[2001:db8::]:80");
}

TEST_CASE("proxy protocol: v2 LOCAL and the families without usable addresses are local") {
  CHECK(pp::parse(v2(0x20, 0x00, "")).local);
  CHECK(pp::parse(v2(0x20, 0x11, tcp4_block())).local);   // LOCAL: the block is discarded
  CHECK(pp::parse(v2(0x20, 0x7F, "")).local);              // LOCAL: even its family is not looked at
  CHECK(pp::parse(v2(0x21, 0x00, "")).local);              // PROXY UNSPEC
  CHECK(pp::parse(v2(0x21, 0x12, tcp4_block())).local);   // UDP4: the spec's fallback to UNSPEC
  CHECK(pp::parse(v2(0x21, 0x31, std::string(216, 'a'))).local);  // UNIX stream
  CHECK(pp::parse(v2(0x21, 0x11, tcp4_block())).local == false);
}

TEST_CASE("proxy protocol: malformed v2 headers are invalid") {
  CHECK(pp::parse(v2(0x11, 0x11, tcp4_block())).status == pp::Status::invalid);  // version 1
  CHECK(pp::parse(v2(0x31, 0x11, tcp4_block())).status == pp::Status::invalid);  // version 3
  CHECK(pp::parse(v2(0x22, 0x11, tcp4_block())).status == pp::Status::invalid);  // command 2
  CHECK(pp::parse(v2(0x21, 0x13, tcp4_block())).status == pp::Status::invalid);  // transport 3
  CHECK(pp::parse(v2(0x21, 0x41, tcp4_block())).status == pp::Status::invalid);  // family 4
  CHECK(pp::parse(v2(0x21, 0x11, tcp4_block().substr(0, 11))).status == pp::Status::invalid);  // short
  CHECK(pp::parse(v2(0x21, 0x21, std::string(35, '\0'))).status == pp::Status::invalid);       // short
  std::string bad_signature = v2(0x21, 0x11, tcp4_block());
  bad_signature[11] = 'X';
  CHECK(pp::parse(bad_signature).status == pp::Status::invalid);
  CHECK(pp::parse(bad_signature.substr(0, 11)).status == pp::Status::need_more);  // not seen yet
  CHECK(pp::parse(bad_signature.substr(0, 12)).status == pp::Status::invalid);
}

TEST_CASE("proxy protocol: a v2 header is bounded by 536 bytes, and known bad from its first 16") {
  CHECK(pp::parse(v2(0x21, 0x11, tcp4_block() + std::string(508, '\0'))).status == pp::Status::done);  // 536
  const std::string too_long = v2(0x21, 0x11, tcp4_block() + std::string(509, '\0'));  // 537
  CHECK(pp::parse(too_long).status == pp::Status::invalid);
  CHECK(pp::parse(too_long.substr(0, 16)).status == pp::Status::invalid);
  CHECK(pp::parse(v2(0x21, 0x11, tcp4_block()).substr(0, 16)).status == pp::Status::need_more);
}

TEST_CASE("proxy protocol: what is written reads back, v1 and v2, IPv4 and IPv6") {
  struct Case {
    const char* source;
    const char* destination;
  };
  const Case cases[] = {{"192.0.2.1:56324", "127.0.0.1:8080"},
                        {"[2001:db8::1]:1", "[::1]:65535"},
                        {"[::ffff:10.1.2.3]:5000", "[::ffff:127.0.0.1]:80"}};  // mapped: written as IPv4
  for (const Case& c : cases) {
    for (ProxyVersion version : {ProxyVersion::v1, ProxyVersion::v2}) {
      INFO(c.source << " v" << (version == ProxyVersion::v1 ? 1 : 2));
      const sockaddr_storage from = ip(c.source);
      const sockaddr_storage to = ip(c.destination);
      pp::Buffer out{};
      const std::size_t n =
          pp::write_header(version, sluice::as_sockaddr(&from), sluice::as_sockaddr(&to), out);
      const pp::Parsed parsed = pp::parse(std::string_view(out.data(), n));
      REQUIRE(parsed.status == pp::Status::done);
      CHECK(parsed.length == n);
      CHECK_FALSE(parsed.local);
      const std::string expected = std::string(c.source).starts_with("[::ffff:")
                                       ? "10.1.2.3:5000"
                                       : c.source;
      CHECK(address(parsed.source) == expected);
    }
  }
  pp::Buffer out{};
  const sockaddr_storage from = ip("192.0.2.1:1");
  const sockaddr_storage to = ip("127.0.0.1:2");
  const std::size_t n = pp::write_header(ProxyVersion::v1, sluice::as_sockaddr(&from),
                                         sluice::as_sockaddr(&to), out);
  CHECK(std::string_view(out.data(), n) == "PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n");
}

TEST_CASE("proxy protocol: the local headers, and addresses of two families, parse as local") {
  CHECK(pp::local_header(ProxyVersion::v1) == "PROXY UNKNOWN\r\n");
  CHECK(pp::local_header(ProxyVersion::v2).size() == 16);
  CHECK(pp::parse(pp::local_header(ProxyVersion::v2)).local);
  CHECK(pp::parse(pp::local_header(ProxyVersion::v1)).local);
  const sockaddr_storage from = ip("192.0.2.1:1");
  const sockaddr_storage to = ip("[::1]:2");
  pp::Buffer out{};
  const std::size_t n = pp::write_header(ProxyVersion::v2, sluice::as_sockaddr(&from),
                                         sluice::as_sockaddr(&to), out);
  CHECK(pp::parse(std::string_view(out.data(), n)).local);
}

TEST_CASE("proxy protocol: properties over 20000 mutated headers (a small deterministic fuzz)") {
  // Valid headers with bytes changed, cut or added: whatever the parser says must be consistent. A
  // done header is within its bound and the input, and every shorter prefix needs more; an invalid
  // input stays invalid however it goes on; need_more never comes past a bound.
  const std::string seeds[] = {"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
                               "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n", "PROXY UNKNOWN\r\n",
                               v2(0x21, 0x11, tcp4_block()), v2(0x20, 0x00, ""),
                               v2(0x21, 0x21, std::string(36, '\1') + std::string{"\x04\x00\x01\x00", 4})};
  std::uint32_t state = 12345;
  auto next = [&state] { return state = state * 1664525u + 1013904223u; };
  for (int i = 0; i < 20000; ++i) {
    std::string input = seeds[next() % std::size(seeds)];
    const int changes = 1 + static_cast<int>(next() % 3);
    for (int c = 0; c < changes && !input.empty(); ++c) {
      const std::size_t at = next() % input.size();
      switch (next() % 3) {
        case 0: input[at] = static_cast<char>(next() >> 24); break;
        case 1: input.resize(at); break;
        default: input.insert(at, 1, static_cast<char>(next() >> 24)); break;
      }
    }
    INFO("input #" << i);
    const pp::Parsed parsed = pp::parse(input);
    switch (parsed.status) {
      case pp::Status::done:
        CHECK(parsed.length <= input.size());
        CHECK(parsed.length <= pp::kV2MaxBytes);
        if (input[0] == 'P') CHECK(parsed.length <= pp::kV1MaxBytes);
        CHECK(pp::parse(std::string_view(input).substr(0, parsed.length - 1)).status == pp::Status::need_more);
        CHECK(pp::parse(input + "tail").length == parsed.length);
        break;
      case pp::Status::invalid:
        CHECK(pp::parse(input + std::string(600, 'x')).status == pp::Status::invalid);
        break;
      case pp::Status::need_more:
        CHECK(input.size() < pp::kV2MaxBytes);
        break;
    }
  }
}
