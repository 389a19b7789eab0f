// Structured log lines: the text grammar (log_event.hpp) and its JSON members (log_line_json.hpp).
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/log/log_event.hpp"
#include "sluice/log/log_line_json.hpp"

using sluice::event_text;
using sluice::LogValue;

namespace {

nlohmann::ordered_json as_json(std::string_view text) {
  std::string members;
  sluice::append_line_json_members(members, text);
  return nlohmann::ordered_json::parse("{" + members + "}");
}

}  // namespace

TEST_CASE("log_event text: bare values where they read back the same, quoted and escaped otherwise") {
  CHECK(event_text("backend_joined", {{"service", "web"}, {"state", "up"}}) == "backend_joined service=web state=up");
  CHECK(event_text("e", {{"address", "[::1]:80"}, {"path", "/a/b.c"}}) == "e address=[::1]:80 path=/a/b.c");
  CHECK(event_text("e", {{"reason", "2 health checks passed"}}) == R"(e reason="2 health checks passed")");
  CHECK(event_text("e", {{"name", R"(say "hi")"}}) == R"(e name="say \"hi\"")");
  CHECK(event_text("e", {{"name", R"(a\b)"}}) == R"(e name="a\\b")");
  CHECK(event_text("e", {{"name", "a=b"}}) == R"(e name="a=b")");
  CHECK(event_text("e", {{"name", "line\nbreak\ttab\x01"}}) == R"(e name="line\nbreak\ttab\x01")");
  CHECK(event_text("e", {{"name", ""}}) == R"(e name="")");
  // Strings that would read back as a number, a boolean or null keep their quotes.
  CHECK(event_text("e", {{"a", "5"}, {"b", "-1.5e3"}, {"c", "true"}, {"d", "-"}}) == R"(e a="5" b="-1.5e3" c="true" d="-")");
  CHECK(event_text("e", {{"a", "007"}, {"b", "5ms"}}) == "e a=007 b=5ms");  // not JSON numbers
  CHECK(event_text("e", {{"bytes", "caf\xc3\xa9\xff"}}) == "e bytes=caf\xc3\xa9\xff");  // bytes as they are
}

TEST_CASE("log_event text: integers, numbers, booleans and null") {
  CHECK(event_text("e", {{"n", -3}, {"u", std::numeric_limits<std::uint64_t>::max()}}) ==
        "e n=-3 u=18446744073709551615");
  CHECK(event_text("e", {{"x", 0.25}, {"y", 1e-7}, {"z", std::numeric_limits<double>::infinity()}}) ==
        "e x=0.25 y=1e-07 z=-");
  CHECK(event_text("e", {{"t", true}, {"f", false}, {"none", nullptr}}) == "e t=true f=false none=-");
  CHECK(event_text("e", {{"node", LogValue::text_or_null("")}, {"set", LogValue::text_or_null("a")}}) ==
        "e node=- set=a");
  CHECK(event_text("stopped", {}) == "stopped");
}

TEST_CASE("log line as JSON: every type read back, in the order written") {
  const std::string text = event_text("connect_failed", {{"service", "web one"},
                                                         {"quoted", R"(say "hi" \ a=b)"},
                                                         {"looks_numeric", "42"},
                                                         {"attempt", 2},
                                                         {"wait", 0.5},
                                                         {"big", std::numeric_limits<std::uint64_t>::max()},
                                                         {"negative", -7},
                                                         {"started", false},
                                                         {"node", nullptr},
                                                         {"word", "ECONNREFUSED"}});
  const auto line = as_json(text);
  INFO("text: " << text);
  CHECK(line["event"] == "connect_failed");
  CHECK(line["service"] == "web one");
  CHECK(line["quoted"] == R"(say "hi" \ a=b)");
  CHECK(line["looks_numeric"].is_string());
  CHECK(line["looks_numeric"] == "42");
  CHECK(line["attempt"] == 2);
  CHECK(line["wait"] == 0.5);
  CHECK(line["big"] == std::numeric_limits<std::uint64_t>::max());
  CHECK(line["negative"] == -7);
  CHECK(line["started"] == false);
  CHECK(line["node"].is_null());
  CHECK(line["word"] == "ECONNREFUSED");
  std::vector<std::string> keys;
  for (const auto& item : line.items()) keys.push_back(item.key());
  CHECK(keys == std::vector<std::string>{"event", "service", "quoted", "looks_numeric", "attempt", "wait", "big",
                                         "negative", "started", "node", "word"});
}

TEST_CASE("log line as JSON: control characters and invalid UTF-8 in a value stay valid JSON") {
  const auto line = as_json(event_text("e", {{"bytes", "a\nb\x01\x7f caf\xc3\xa9 \xff\xc3"}, {"bare", "x\x80y"}}));
  CHECK(line["bytes"] == "a\nb\x01\x7f caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
  CHECK(line["bare"] == "x\xef\xbf\xbdy");
}

TEST_CASE("log line as JSON: a field named like a common field is renamed, never duplicated") {
  const auto line = as_json("e time=1 level=x event=y message=z");
  CHECK(line["event"] == "e");
  CHECK(line["time_"] == 1);
  CHECK(line["level_"] == "x");
  CHECK(line["event_"] == "y");
  CHECK(line["message_"] == "z");
  CHECK_FALSE(line.contains("message"));
}

TEST_CASE("log line as JSON: prose is the message, its event the first word when that is a name") {
  auto line = as_json("config: reload applied generation=3");
  CHECK(line["event"] == "config");
  CHECK(line["message"] == "config: reload applied generation=3");
  line = as_json("sluice 1.0 starting with /etc/sluice/sluice.yaml");
  CHECK(line["event"] == "sluice");
  CHECK(line["message"] == "sluice 1.0 starting with /etc/sluice/sluice.yaml");
  CHECK(as_json("SLUICE_TEST_HOOKS=1: the admin endpoint serves /test/ paths")["event"] == "message");
  CHECK(as_json("  indented")["event"] == "message");
  CHECK(as_json("")["event"] == "message");
  // A structured line that does not follow the grammar to the end is prose, whole: nothing is lost.
  for (const char* broken : {"e a=\"open", "e a=", "e a=b c", "e a=\"x\"y", "e a=\"\\q\"", "e  a=b", "e a=b ",
                             "e a=\"\\x4\"", "E a=b"}) {
    INFO("text: " << broken);
    const auto prose = as_json(broken);
    CHECK(prose["message"] == broken);
  }
  // A single name is an event without fields.
  CHECK(as_json("stopped") == nlohmann::ordered_json{{"event", "stopped"}});
}

TEST_CASE("log_event find_field: a field's value as written, quoted values skipped whole") {
  const std::string text = event_text("connect_failed", {{"service", "web backend=x"}, {"backend", R"(b "q" c)"}, {"n", 3}});
  CHECK(sluice::find_field(text, "service") == R"("web backend=x")");
  CHECK(sluice::find_field(text, "backend") == R"("b \"q\" c")");
  CHECK(sluice::find_field(text, "n") == "3");
  CHECK(sluice::find_field(text, "listener").empty());
  CHECK(sluice::find_field("stopped", "service").empty());
}
