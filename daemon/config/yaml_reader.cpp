#include "sluice/config/yaml_reader.hpp"

namespace sluice::config_yaml {

namespace {

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbours (the usual typing slip) each cost one. Three rows, not a matrix: names come from the
// file and may be long.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// Words longer than this get no hint: no one mistypes a 65-character name, and the distance costs
// the product of the lengths.
constexpr std::size_t kMaxHintLength = 64;


}  // namespace

std::string describe(const YAML::Node& value) {
  switch (value.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "'" + value.Scalar() + "'";
    default:
      return "an empty value";
  }
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  if (word.size() > kMaxHintLength) return "";
  std::size_t allowed = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  const std::string* best = nullptr;
  std::size_t best_distance = allowed + 1;
  for (const std::string& candidate : candidates) {
    // The distance is at least the difference of the lengths.
    if (candidate.size() > word.size() + allowed || word.size() > candidate.size() + allowed) continue;
    std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best != nullptr ? "; did you mean '" + *best + "'?" : "";
}

bool expect_map(const YAML::Node& value, const std::string& what, Diagnostics& diag) {
  if (!value.IsMap()) diag.error(value.Mark(), what + ": expected a map, got " + describe(value));
  return value.IsMap();
}

}  // namespace sluice::config_yaml
