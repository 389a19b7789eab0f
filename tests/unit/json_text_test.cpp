#include <doctest/doctest.h>

#include "sluice/log/access_log.hpp"

TEST_CASE("json_escape: quotes, backslashes and control characters escaped, invalid UTF-8 replaced") {
  CHECK(sluice::json_escape("say \"hi\"\\\n\t") == R"(say \"hi\"\\\n\t)");
  CHECK(sluice::json_escape(std::string("bell\x07")) == R"(bell\u0007)");
  CHECK(sluice::json_escape("caf\xc3\xa9") == "caf\xc3\xa9");  // valid UTF-8 passes through
  // A lone continuation byte and a truncated sequence become U+FFFD, never raw bytes.
  CHECK(sluice::json_escape("a\x80z") == "a\xef\xbf\xbdz");
  CHECK(sluice::json_escape("b\xc3") == "b\xef\xbf\xbd");
}
