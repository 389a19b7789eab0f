// Every log call under daemon/ follows the line grammar of log_event.hpp: a plain spdlog call is
// prose whatever its values hold (its format string cannot read as `event key=value`, which only
// log_event writes, escaped), and every log_event names its event and fields as names.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "sluice/log/log_line_json.hpp"

namespace {

struct Call {
  std::string where;  // file:offset
  std::string text;   // from the call's name through its closing parenthesis
};

// The calls of `name` (a regex) in every source under daemon/.
std::vector<Call> calls(const std::string& name) {
  std::vector<Call> found;
  const std::regex pattern(name + "\\(");
  for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(SLUICE_SOURCE_DIR) + "/daemon")) {
    if (entry.path().extension() != ".cpp") continue;
    std::ifstream in(entry.path());
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string source = buffer.str();
    for (std::sregex_iterator it(source.begin(), source.end(), pattern), end; it != end; ++it) {
      const auto start = static_cast<std::size_t>(it->position());
      std::size_t at = start + static_cast<std::size_t>(it->length());
      int depth = 1;
      bool in_string = false;
      for (; at < source.size() && depth > 0; ++at) {
        const char c = source[at];
        if (in_string) {
          if (c == '\\') ++at;
          else if (c == '"') in_string = false;
        } else if (c == '"') {
          in_string = true;
        } else if (c == '(') {
          ++depth;
        } else if (c == ')') {
          --depth;
        }
      }
      found.push_back({entry.path().filename().string() + ":" + std::to_string(start), source.substr(start, at - start)});
    }
  }
  return found;
}

// The string literals of a call, in order, adjacent ones joined, escapes undone.
std::vector<std::string> literals(const std::string& call) {
  std::vector<std::string> result;
  bool joined = false;  // only white space since the last literal ended
  for (std::size_t at = 0; at < call.size(); ++at) {
    if (call[at] != '"') {
      if (call[at] != ' ' && call[at] != '\n') joined = false;
      continue;
    }
    std::string text;
    for (++at; at < call.size() && call[at] != '"'; ++at) {
      if (call[at] == '\\') ++at;
      text += call[at];
    }
    if (joined && !result.empty()) {
      result.back() += text;
    } else {
      result.push_back(text);
    }
    joined = true;
  }
  return result;
}

bool reads_as_prose(const std::string& text) {
  std::string members;
  sluice::append_line_json_members(members, text);
  return members.find(",\"message\":") != std::string::npos;
}

bool is_name(const std::string& text) { return std::regex_match(text, std::regex("[a-z0-9_]+")); }

}  // namespace

TEST_CASE("log call sites: a plain spdlog format string reads as prose whatever its values") {
  const auto found = calls(R"(spdlog::(trace|debug|info|warn|error|critical|log))");
  CHECK(found.size() > 50);
  for (const Call& call : found) {
    const auto strings = literals(call.text);
    REQUIRE_MESSAGE(!strings.empty(), call.where << ": no format string in " << call.text);
    const std::string& format = strings.front();
    INFO(call.where << ": " << format);
    if (format.find('{') == std::string::npos && is_name(format)) continue;  // "stopped": an event, no fields
    // Values that would make a structured line of a careless format: a word, a field, a name.
    for (const std::string value : {"x", "x y=1", "a=b", "", "\"q\""}) {
      const std::string line = std::regex_replace(format, std::regex(R"(\{[^}]*\})"), value);
      CHECK_MESSAGE(reads_as_prose(line), "reads as a structured line with {} = '" << value << "': " << line
                                          << " (use log_event for key=value lines)");
    }
  }
}

TEST_CASE("log call sites: every log_event names its event and fields as names, none a common field") {
  const auto found = calls(R"(\blog_event)");
  CHECK(found.size() > 30);
  for (const Call& call : found) {
    if (call.text.find("std::string_view event") != std::string::npos) continue;  // the declaration
    INFO(call.where << ": " << call.text);
    const auto strings = literals(call.text);
    REQUIRE(!strings.empty());
    CHECK(is_name(strings.front()));
    const std::regex key(R"(\{\s*\"([^\"]*)\"\s*,)");
    for (std::sregex_iterator it(call.text.begin(), call.text.end(), key), end; it != end; ++it) {
      const std::string name = (*it)[1];
      CHECK_MESSAGE(is_name(name), "field " << name);
      CHECK_MESSAGE((name != "time" && name != "level" && name != "event" && name != "message"), "field " << name);
    }
  }
}
