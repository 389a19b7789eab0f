#pragma once
// yaml-cpp 0.7's YAML::LoadAll never returns on a ',' at document level (e.g. "{...}," a flow-style
// config with a trailing comma): SingleDocParser emits an empty document without consuming the
// token, so each HandleNextDocument starts another at the same place and memory grows by ~100 MB/s.
// The config parser asks this first, and the fuzzer (fuzz/) uses it to step around the known case.

#include <yaml-cpp/mark.h>

#include <optional>
#include <string_view>

namespace sluice {

/// Where LoadAll would loop for ever (a document starting where the previous one did), or
/// nullopt when it returns. Walks the documents with the event parser, which builds no nodes.
/// A syntax error throws YAML::ParserException, as LoadAll would.
std::optional<YAML::Mark> loadall_stall(std::string_view text);

}  // namespace sluice
