#pragma once
// Reading the YAML of a config: every error of one parse with its place (Diagnostics), how a value
// reads in a message, "did you mean" hints, and KeyReader, which reads one map and reports the keys
// no lookup asked for. The sections of the schema are built on it (config_parser.hpp).

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/config/config.hpp"

namespace sluice::config_yaml {

// ---------------------------------------------------------------------------------------------
// Errors

// yaml-cpp marks are 0-based, and -1 when a node has no place (then the error has none either).
inline int one_based(int zero_based) { return zero_based >= 0 ? zero_based + 1 : 0; }

// Every error of one parse. Sections are checked in schema order, not file order, so the errors
// are sorted at the end; the sort is stable so errors at one place keep the order they were found.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& at, std::string message) {
    errors_.push_back({file_, one_based(at.line), one_based(at.column), std::move(message)});
  }
  void error_without_place(std::string message) { errors_.push_back({file_, 0, 0, std::move(message)}); }

  bool empty() const { return errors_.empty(); }

  std::vector<ConfigError> take_in_file_order() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(errors_);
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

/// How a value reads in "expected X, got Y".
std::string describe(const YAML::Node& value);

/// "; did you mean 'x'?" when one candidate is close enough to be a typo of `word`, else "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// ---------------------------------------------------------------------------------------------
// Maps

enum class Need { optional, required };

// Reads one YAML map. Every lookup records its key as part of the schema, so finish() can report
// all other keys as unknown (with a hint among the looked-up ones) without a second key list.
class KeyReader {
 public:
  struct Entry {
    YAML::Node key;
    YAML::Node value;

    // yaml-cpp places an empty value at the next token, often on the next line; point at the key.
    YAML::Mark where() const { return value.IsNull() ? key.Mark() : value.Mark(); }
  };

  // `context` names the map in messages ("service 'web'"); set_context() refines it once known.
  KeyReader(const YAML::Node& map, std::string context, Diagnostics& diag)
      : map_(map), context_(std::move(context)), diag_(diag) {
    for (auto it = map.begin(); it != map.end(); ++it) entries_.push_back({it->first, it->second});
  }

  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  // The first entry under `key`, or nullptr when absent (reported when the key is required).
  const Entry* find(std::string_view key, Need need = Need::optional) {
    if (std::find(schema_.begin(), schema_.end(), key) == schema_.end()) schema_.emplace_back(key);
    for (const Entry& entry : entries_) {
      if (entry.key.IsScalar() && entry.key.Scalar() == key) return &entry;
    }
    if (need == Need::required) {
      diag_.error(map_.Mark(), context_ + ": missing required key '" + std::string(key) + "'");
    }
    return nullptr;
  }

  // Parses the value under `key` into `out`; an absent optional key leaves `out` at its default.
  // Returns the entry when a value was read, nullptr when absent or rejected (and reported).
  template <class T, class Parser>
  const Entry* read(std::string_view key, T& out, Parser parse, Need need = Need::optional) {
    const Entry* entry = find(key, need);
    if (entry == nullptr) return nullptr;
    std::string why;
    auto parsed = parse(entry->value, why);
    if (!parsed) {
      // Appended, not `std::string(key) + ": " + why`: GCC 12 warns (-Warray-bounds) falsely on that here.
      std::string message(key);
      message.append(": ").append(why);
      diag_.error(entry->where(), std::move(message));
      return nullptr;
    }
    out = std::move(*parsed);
    return entry;
  }

  // The items of the list under `key`. A required list must also have at least one item; a
  // list longer than `max_items` is reported and read no further.
  std::vector<YAML::Node> read_list(std::string_view key, Need need,
                                    std::size_t max_items = std::numeric_limits<std::size_t>::max()) {
    const Entry* entry = find(key, need);
    if (entry == nullptr) return {};
    if (!entry->value.IsSequence()) {
      diag_.error(entry->where(), std::string(key) + ": expected a list, got " + describe(entry->value));
      return {};
    }
    if (need == Need::required && entry->value.size() == 0) {
      diag_.error(entry->where(), std::string(key) + ": must have at least one item");
    }
    if (entry->value.size() > max_items) {
      diag_.error(entry->where(), std::string(key) + ": at most " + std::to_string(max_items) + " allowed, got " +
                                      std::to_string(entry->value.size()));
      return {};
    }
    return {entry->value.begin(), entry->value.end()};
  }

  // Reports keys that are repeated or that no lookup asked for. Call after all lookups.
  void finish() {
    std::unordered_map<std::string_view, int> first_lines;  // key -> 0-based line of its first entry
    for (const Entry& entry : entries_) {
      if (!entry.key.IsScalar()) {
        diag_.error(entry.key.Mark(),
                    "keys in " + context_ + " must be strings, got " + describe(entry.key));
        continue;
      }
      const std::string& key = entry.key.Scalar();
      auto [first, inserted] = first_lines.try_emplace(key, entry.key.Mark().line);
      if (!inserted) {
        diag_.error(entry.key.Mark(), "duplicate key '" + key + "' in " + context_ + " (first at line " +
                                          std::to_string(one_based(first->second)) + ")");
      } else if (std::find(schema_.begin(), schema_.end(), key) == schema_.end()) {
        diag_.error(entry.key.Mark(),
                    "unknown key '" + key + "' in " + context_ + did_you_mean(key, schema_));
      }
    }
  }

 private:
  YAML::Node map_;
  std::string context_;
  Diagnostics& diag_;
  std::vector<Entry> entries_;       // in file order, repeats included (yaml-cpp keeps them)
  std::vector<std::string> schema_;  // every key looked up, in lookup order
};


/// Reports `value` unless it is a map; `what` names it in the message.
bool expect_map(const YAML::Node& value, const std::string& what, Diagnostics& diag);

// Names that must be unique in one scope; a repeat is reported with the line of the first.
class UniqueNames {
 public:
  explicit UniqueNames(std::string kind) : kind_(std::move(kind)) {}

  void add(const std::string& name, const YAML::Mark& at, Diagnostics& diag) {
    auto [first, inserted] = first_lines_.try_emplace(name, one_based(at.line));
    if (!inserted) {
      diag.error(at, "duplicate " + kind_ + " name '" + name + "' (first defined at line " +
                         std::to_string(first->second) + ")");
    }
  }
  bool contains(const std::string& name) const { return first_lines_.count(name) != 0; }
  std::vector<std::string> names() const {
    std::vector<std::string> result;
    for (const auto& [name, line] : first_lines_) result.push_back(name);
    return result;
  }

 private:
  std::string kind_;
  std::map<std::string, int> first_lines_;
};

/// Reads the required `name` of a list item; once known, the item's messages name it
/// ("<kind> '<name>'<suffix>") and `names` reports a repeat.
template <class Parser>
void read_item_name(KeyReader& keys, std::string& name, Parser parse, std::string_view kind, std::string_view suffix,
                    UniqueNames& names, Diagnostics& diag) {
  if (const auto* entry = keys.read("name", name, parse, Need::required)) {
    keys.set_context(std::string(kind) + " '" + name + "'" + std::string(suffix));
    names.add(name, entry->value.Mark(), diag);
  }
}

}  // namespace sluice::config_yaml
