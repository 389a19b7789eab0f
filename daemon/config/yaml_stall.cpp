#include "sluice/config/yaml_stall.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <sstream>
#include <string>

namespace sluice {

std::optional<YAML::Mark> loadall_stall(std::string_view text) {
  struct DocumentStarts : YAML::EventHandler {
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
  YAML::Parser parser(stream);
  DocumentStarts starts;
  while (!starts.stalled && parser.HandleNextDocument(starts)) {
  }
  return starts.stalled;
}

}  // namespace sluice
