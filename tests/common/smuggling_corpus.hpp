#pragma once
// Reads tests/data/smuggling.txt: malformed, ambiguous and valid-but-unusual requests, each with
// the outcome the one HTTP parser must give. The unit test feeds them to sluice::http::Parser, the
// integration test to the daemon's admin server; the HTTP fuzzer is seeded with them.
//
// A line is `EXPECT | NAME | WHY | REQUEST` (blank lines and lines starting with '#' are skipped):
//   EXPECT   400 (ErrorKind::malformed), 431 (ErrorKind::head_too_large), or ok (exactly one
//            request, every byte of it used);
//   WHY      for 400 and 431, a piece of the parser's reason (case-insensitive), empty for ok;
//   REQUEST  the bytes, with C escapes (\r \n \t \0 \\ \xHH) and [[N*TEXT]] for TEXT N times.

#include <cstddef>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

struct SmugglingCase {
  std::string expect;  // "400", "431" or "ok"
  std::string name;
  std::string why;
  std::string request;
  std::size_t line = 0;  // in the file
};

namespace detail {

inline std::string trim_spaces(std::string_view text) {
  const auto first = text.find_first_not_of(' ');
  if (first == std::string_view::npos) return {};
  return std::string(text.substr(first, text.find_last_not_of(' ') - first + 1));
}

inline std::string expand_repeats(std::string_view text) {
  std::string out;
  for (;;) {
    const auto open = text.find("[[");
    out += text.substr(0, open);
    if (open == std::string_view::npos) return out;
    const auto star = text.find('*', open);
    const auto close = text.find("]]", open);
    if (star == std::string_view::npos || close == std::string_view::npos || star > close) {
      throw std::runtime_error("a [[N*TEXT]] without its '*' or ']]'");
    }
    const std::size_t count = std::stoul(std::string(text.substr(open + 2, star - open - 2)));
    for (std::size_t i = 0; i < count; ++i) out += text.substr(star + 1, close - star - 1);
    text.remove_prefix(close + 2);
  }
}

inline std::string unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char c = text[++i];
    if (c == 'r') out += '\r';
    else if (c == 'n') out += '\n';
    else if (c == 't') out += '\t';
    else if (c == '0') out += '\0';
    else if (c == '\\') out += '\\';
    else if (c == 'x' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      throw std::runtime_error(std::string("unknown escape \\") + c);
    }
  }
  return out;
}

}  // namespace detail

/// Every case of the file; throws with the line when one is malformed.
inline std::vector<SmugglingCase> smuggling_corpus() {
  std::string path = SLUICE_SOURCE_DIR;
  path += "/tests/data/smuggling.txt";  // appended, not operator+: GCC 12 -O2 warns falsely (-Warray-bounds)
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot read " + path);
  std::vector<SmugglingCase> cases;
  std::size_t number = 0;
  for (std::string line; std::getline(file, line);) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (int i = 0; i < 3; ++i) {
      const auto bar = line.find('|', start);
      if (bar == std::string::npos) throw std::runtime_error(path + ":" + std::to_string(number) + ": fewer than 4 fields");
      fields.push_back(detail::trim_spaces(std::string_view(line).substr(start, bar - start)));
      start = bar + 1;
    }
    // The request starts after the one space that follows the last '|'.
    const std::string_view raw = std::string_view(line).substr(start + (start < line.size() && line[start] == ' ' ? 1 : 0));
    SmugglingCase c{fields[0], fields[1], fields[2], detail::unescape(detail::expand_repeats(raw)), number};
    if (c.expect != "400" && c.expect != "431" && c.expect != "ok") {
      throw std::runtime_error(path + ":" + std::to_string(number) + ": EXPECT is 400, 431 or ok, not '" + c.expect + "'");
    }
    if ((c.expect == "ok") != c.why.empty()) {
      throw std::runtime_error(path + ":" + std::to_string(number) + ": WHY is given exactly for 400 and 431");
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace sluice::test
