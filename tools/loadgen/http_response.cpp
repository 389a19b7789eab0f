#include "http_response.hpp"

#include <algorithm>
#include <cctype>

#include "../common/cli.hpp"

namespace sluice::tools {

namespace {

constexpr std::size_t kMaxHeadBytes = 64 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::int64_t header_int(std::string_view value) {
  const auto parsed = parse_uint(value);
  return parsed && *parsed <= static_cast<std::uint64_t>(INT64_MAX) ? static_cast<std::int64_t>(*parsed) : -1;
}

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
  const std::size_t head_end = buffer.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return buffer.size() > kMaxHeadBytes || (at_eof && !buffer.empty()) ? ResponseParse::malformed
                                                                          : ResponseParse::incomplete;
  }
  const std::string_view head(buffer.data(), head_end);
  HttpResponse response;

  // Status line: "HTTP/1.x NNN reason".
  const std::size_t first_eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, first_eol);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
    return ResponseParse::malformed;
  }
  const auto code = parse_uint(status_line.substr(9, 3));
  if (!code || *code < 100 || *code > 599) return ResponseParse::malformed;
  response.status = static_cast<int>(*code);

  std::optional<std::uint64_t> content_length;
  std::string_view rest = first_eol == std::string_view::npos ? std::string_view{} : head.substr(first_eol + 2);
  while (!rest.empty()) {
    const std::size_t eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return ResponseParse::malformed;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      content_length = parse_uint(value);
      if (!content_length) return ResponseParse::malformed;
    } else if (iequals(name, "Connection")) {
      response.close = iequals(value, "close");
    } else if (iequals(name, "X-Service-Ns")) {
      response.service_ns = header_int(value);
    } else if (iequals(name, "X-Backend-Wait-Ns")) {
      response.backend_wait_ns = header_int(value);
    } else if (iequals(name, "X-Service-Elapsed-Ns")) {
      response.service_elapsed_ns = header_int(value);
    }
  }

  const std::size_t body_start = head_end + 4;
  std::size_t body_length = 0;
  if (content_length) {
    if (buffer.size() - body_start < *content_length) return ResponseParse::incomplete;
    body_length = static_cast<std::size_t>(*content_length);
  } else {
    if (!at_eof) return ResponseParse::incomplete;  // the body runs to the peer's EOF
    body_length = buffer.size() - body_start;
  }
  parse_backend_body(std::string_view(buffer).substr(body_start, body_length), response.backend, response.node);
  buffer.erase(0, body_start + body_length);
  out = std::move(response);
  return ResponseParse::complete;
}

}  // namespace sluice::tools
