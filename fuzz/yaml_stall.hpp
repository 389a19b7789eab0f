#pragma once
// Detects the input on which yaml-cpp 0.7's YAML::LoadAll never returns: a stray ',' at document
// level (e.g. a flow-style config with a trailing comma, "{listeners: [...]},"). There
// SingleDocParser::HandleNode emits a null without consuming the token, so every
// Parser::HandleNextDocument starts one more empty document at the same place, for ever, and
// memory grows by ~100 MB/s. Here the documents are walked with the event parser, which makes no
// node, and the walk stops when a document starts where the previous one did.

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace sluice::fuzz {

/// The place where LoadAll would loop for ever, or nullopt when it returns (or throws).
inline std::optional<YAML::Mark> loadall_stall(std::string_view text) {
  struct Starts : YAML::EventHandler {
    std::optional<YAML::Mark> previous;
    std::optional<YAML::Mark> stalled;
    void OnDocumentStart(const YAML::Mark& mark) override {
      if (previous && previous->pos == mark.pos) stalled = mark;
      previous = mark;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  };
  std::istringstream stream{std::string(text)};
  Starts starts;
  try {
    YAML::Parser parser(stream);
    while (!starts.stalled && parser.HandleNextDocument(starts)) {
    }
  } catch (const YAML::Exception&) {
    return std::nullopt;  // LoadAll throws the same: it returns
  }
  return starts.stalled;
}

}  // namespace sluice::fuzz
