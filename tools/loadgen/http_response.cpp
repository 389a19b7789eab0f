#include "http_response.hpp"

#include <optional>

#include "../common/cli.hpp"
#include "sluice/http/parser.hpp"

namespace sluice::tools {

namespace {

constexpr std::size_t kMaxHeadBytes = 64 * 1024;

std::int64_t header_int(const http::MessageHead& head, std::string_view name) {
  const auto value = head.header(name);
  const auto parsed = value ? parse_uint(*value) : std::nullopt;
  return parsed && *parsed <= static_cast<std::uint64_t>(INT64_MAX) ? static_cast<std::int64_t>(*parsed) : -1;
}

// The first response of a buffer: its head and body, gathered (sluice-backend's are small).
struct FirstResponse : http::Handler {
  std::optional<http::MessageHead> head;
  std::string body;
  http::Action on_head(const http::MessageHead& h) override {
    head = h;
    return http::Action::proceed;
  }
  void on_body(std::string_view bytes) override { body.append(bytes); }
};

}  // namespace

bool parse_backend_body(std::string_view body, std::string& backend, std::string& node) {
  if (body.ends_with('\n')) body.remove_suffix(1);
  if (!body.starts_with("backend=")) return false;
  const std::size_t space = body.find(" node=");
  if (space == std::string_view::npos) return false;
  backend.assign(body.substr(8, space - 8));
  node.assign(body.substr(space + 6));
  return !backend.empty() && backend.find(' ') == std::string::npos && node.find(' ') == std::string::npos;
}

ResponseParse take_response(std::string& buffer, HttpResponse& out, bool at_eof) {
  // A fresh parser each time: the buffer holds everything not yet taken, from a response's start.
  FirstResponse first;
  http::Parser parser(http::Kind::response, first, {.max_head_bytes = kMaxHeadBytes});
  http::Fed fed = parser.feed(buffer);
  std::size_t consumed = fed.consumed;
  if (fed.stop == http::Stop::need_more && at_eof) fed = parser.finish();  // a body that runs to EOF
  if (fed.stop == http::Stop::error) {
    // Cut short in the body: the peer closed before answering in full (the caller counts it closed).
    return first.head && parser.error().kind == http::ErrorKind::incomplete ? ResponseParse::incomplete
                                                                             : ResponseParse::malformed;
  }
  if (fed.stop != http::Stop::message_end) {
    return at_eof && !buffer.empty() && !first.head ? ResponseParse::malformed : ResponseParse::incomplete;
  }
  HttpResponse response;
  response.status = first.head->status;
  response.close = http::equal_ignoring_case(first.head->header("Connection").value_or(""), "close");
  response.service_ns = header_int(*first.head, "X-Service-Ns");
  response.backend_wait_ns = header_int(*first.head, "X-Backend-Wait-Ns");
  response.service_elapsed_ns = header_int(*first.head, "X-Service-Elapsed-Ns");
  parse_backend_body(first.body, response.backend, response.node);
  buffer.erase(0, consumed);
  out = std::move(response);
  return ResponseParse::complete;
}

}  // namespace sluice::tools
