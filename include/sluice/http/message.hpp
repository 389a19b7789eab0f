#pragma once
// Whole HTTP messages (head and body together) read with the one parser, for the tools and tests,
// whose messages are small. The daemon's data path streams bodies through Parser instead.

#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/http/parser.hpp"

namespace sluice::http {

struct Message {
  MessageHead head;
  std::string body;  // without the chunked framing
};

/// Feeds a stream of messages to a Parser and keeps each complete one.
class MessageReader final : public Handler {
 public:
  explicit MessageReader(Kind kind, Limits limits = {});

  /// Parses `bytes`, going on after each message end. Stops early only at an error or an upgrade
  /// (then `consumed` says where).
  Fed feed(std::string_view bytes);
  /// The peer closed: a body that runs until the close ends here.
  Fed finish() { return parser_.finish(); }

  /// Complete messages, oldest first; the caller pops them.
  std::deque<Message>& messages() { return done_; }
  Parser& parser() { return parser_; }

 private:
  Action on_head(const MessageHead& head) override;
  void on_body(std::string_view bytes) override;
  void on_message_end(const std::vector<Header>& trailers) override;

  Parser parser_;
  Message current_;
  std::deque<Message> done_;
};

/// The one message in `bytes`, everything a peer sent before it closed (trailing bytes after it
/// are ignored). nullopt when there is no whole message; then `why` (when given) says what is
/// wrong. `response_to_head`: the response answers a HEAD, so it has no body.
std::optional<Message> read_whole_message(Kind kind, std::string_view bytes, std::string* why = nullptr,
                                          bool response_to_head = false);

}  // namespace sluice::http
