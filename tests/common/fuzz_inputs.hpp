#pragma once
// The committed inputs of one fuzz/ directory (seeds or regressions), read for the replay tests of
// every fuzz harness (config, http, session): each file's name and bytes, in name order, without
// the directory's README.md. SLUICE_SOURCE_DIR is the project's root (a compile definition).

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::test {

struct FuzzInput {
  std::string name;   // "fuzz/DIRECTORY/FILE", as a failure names it
  std::string bytes;
};

inline std::vector<FuzzInput> fuzz_inputs(const std::string& directory) {
  namespace fs = std::filesystem;
  std::vector<FuzzInput> inputs;
  for (const auto& entry : fs::directory_iterator(fs::path(SLUICE_SOURCE_DIR) / "fuzz" / directory)) {
    if (!entry.is_regular_file() || entry.path().filename() == "README.md") continue;
    std::ifstream file(entry.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << file.rdbuf();
    inputs.push_back({"fuzz/" + directory + "/" + entry.path().filename().string(), bytes.str()});
  }
  std::sort(inputs.begin(), inputs.end(), [](const FuzzInput& a, const FuzzInput& b) { return a.name < b.name; });
  return inputs;
}

}  // namespace sluice::test
