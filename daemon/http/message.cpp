#include "sluice/http/message.hpp"

#include <utility>

namespace sluice::http {

MessageReader::MessageReader(Kind kind, Limits limits) : parser_(kind, *this, limits) {}

Fed MessageReader::feed(std::string_view bytes) {
  std::size_t offset = 0;
  for (;;) {
    const Fed fed = parser_.feed(bytes.substr(offset));
    offset += fed.consumed;
    if (fed.stop == Stop::need_more || fed.stop == Stop::error || fed.stop == Stop::upgrade) {
      return {offset, fed.stop};
    }
    if (offset == bytes.size()) return {offset, Stop::need_more};
  }
}

Action MessageReader::on_head(const MessageHead& head) {
  current_ = Message{head, {}};
  return Action::proceed;
}

void MessageReader::on_body(std::string_view bytes) { current_.body.append(bytes); }

void MessageReader::on_message_end(const std::vector<Header>&) { done_.push_back(std::move(current_)); }

std::optional<Message> read_whole_message(Kind kind, std::string_view bytes, std::string* why, bool response_to_head) {
  MessageReader reader(kind);
  reader.parser().expect_response_to_head(response_to_head);
  Fed fed = reader.feed(bytes);
  if (fed.stop != Stop::error && reader.messages().empty()) fed = reader.finish();
  if (!reader.messages().empty()) return std::move(reader.messages().front());
  if (why != nullptr) {
    *why = fed.stop == Stop::error ? reader.parser().error().reason : "the message is incomplete";
  }
  return std::nullopt;
}

}  // namespace sluice::http
