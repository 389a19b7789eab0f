#include <doctest/doctest.h>

#include "sluice/log/json_text.hpp"

TEST_CASE("JSON text: strings escaped, invalid UTF-8 replaced, numbers recognised") {
  CHECK(sluice::json_escape("say \"hi\"\\\n\t") == R"(say \"hi\"\\\n\t)");
  CHECK(sluice::json_escape(std::string("bell\x07")) == R"(bell\u0007)");
  CHECK(sluice::json_escape("caf\xc3\xa9 \xf0\x9f\x99\x82") == "caf\xc3\xa9 \xf0\x9f\x99\x82");  // valid UTF-8 passes
  // A lone continuation byte and a truncated sequence become U+FFFD, never raw bytes.
  CHECK(sluice::json_escape("a\x80z") == "a\xef\xbf\xbdz");
  CHECK(sluice::json_escape("b\xc3") == "b\xef\xbf\xbd");
  CHECK(sluice::json_escape("\xe2\x82z") == "\xef\xbf\xbdz");                    // truncated 3-byte sequence: one
  CHECK(sluice::json_escape("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  CHECK(sluice::json_escape("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");          // overlong
  for (const char* number : {"0", "-0", "12", "-3.25", "1e9", "1E-07", "6.02e+23"}) {
    CHECK_MESSAGE(sluice::is_json_number(number), number);
  }
  for (const char* other : {"", "-", "01", "1.", ".5", "1e", "+1", "0x10", "1 ", "nan", "inf", "5ms"}) {
    CHECK_FALSE_MESSAGE(sluice::is_json_number(other), other);
  }
}
