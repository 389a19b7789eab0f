// The HTTP fuzzer's inputs, replayed (fuzz/http_fuzzer.cpp, scripts/fuzz.sh --target http): every
// seed in fuzz/http-corpus/, every input in fuzz/http-regressions/ that once broke the parser, and
// every request of the smuggling corpus keep the rules of fuzz/http_properties.hpp.

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../../fuzz/http_properties.hpp"
#include "smuggling_corpus.hpp"

namespace {

namespace fs = std::filesystem;

void replay_directory(const std::string& directory) {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(fs::path(SLUICE_SOURCE_DIR) / "fuzz" / directory)) {
    if (entry.is_regular_file() && entry.path().filename() != "README.md") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  CHECK(!paths.empty());
  for (const fs::path& path : paths) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    const std::string violation = sluice::fuzz::check_http_properties(text.str());
    CHECK_MESSAGE(violation.empty(), "fuzz/" << directory << "/" << path.filename().string() << ": " << violation);
  }
}

}  // namespace

TEST_CASE("http fuzz corpus: every seed keeps the parser's properties") { replay_directory("http-corpus"); }

TEST_CASE("http fuzz regressions: every input that once broke the parser now keeps its properties") {
  replay_directory("http-regressions");
}

TEST_CASE("http fuzz properties: every request of the smuggling corpus keeps them") {
  for (const sluice::test::SmugglingCase& c : sluice::test::smuggling_corpus()) {
    CAPTURE(c.line);
    CHECK(sluice::fuzz::check_http_properties(c.request) == "");
  }
}
