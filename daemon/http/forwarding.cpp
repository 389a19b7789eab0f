#include "sluice/http/forwarding.hpp"

#include <array>
#include <cstdio>

#include "sluice/http/host_field.hpp"
#include "sluice/http/response.hpp"

namespace sluice::http {

namespace {

// The fixed hop-by-hop names (RFC 9110 7.6.1), told apart by length before any byte is compared.
bool is_fixed_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2: return equal_ignoring_case(name, "TE");
    case 7: return equal_ignoring_case(name, "Upgrade");
    case 10: return equal_ignoring_case(name, "Connection") || equal_ignoring_case(name, "Keep-Alive");
    case 16: return equal_ignoring_case(name, "Proxy-Connection");
    case 17: return equal_ignoring_case(name, "Transfer-Encoding");
    default: return false;
  }
}

// The next element of the comma-separated `list` (spaces around it removed), taken off `list`.
std::string_view next_item(std::string_view& list) {
  const std::size_t comma = list.find(',');
  std::string_view item = list.substr(0, comma);
  list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
  while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
  while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
  return item;
}

// Whether the comma-separated `list` holds `token` (case-insensitive, spaces around items ignored).
bool list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    if (equal_ignoring_case(next_item(list), token)) return true;
  }
  return false;
}

void add_line(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// Headers the framing replaces: re-emitted from the parsed framing, never copied.
bool is_framing(std::string_view name) {
  return equal_ignoring_case(name, "Content-Length") || equal_ignoring_case(name, "Transfer-Encoding");
}

// RFC 7239: an IPv6 address is quoted and bracketed.
std::string forwarded_node(std::string_view address) {
  if (address.find(':') == std::string_view::npos) return std::string(address);
  return "\"[" + std::string(address) + "]\"";
}

// The names a head's Connection fields list, split once per head so that each header is not
// checked against every field's list (the common head lists one or two). A head listing more
// than fits here is checked field by field.
class HopByHop {
 public:
  explicit HopByHop(const MessageHead& head) : headers_(head.headers) {
    for (const Header& header : headers_) {
      if (!equal_ignoring_case(header.name, "Connection")) continue;
      std::string_view list = header.value;
      while (!list.empty()) {
        const std::string_view item = next_item(list);
        if (item.empty()) continue;
        if (count_ == names_.size()) {
          overflow_ = true;
          return;
        }
        names_[count_++] = item;
      }
    }
  }

  bool operator()(std::string_view name) const {
    if (is_fixed_hop_by_hop(name)) return true;
    if (overflow_) {
      for (const Header& header : headers_) {
        if (equal_ignoring_case(header.name, "Connection") && list_has(header.value, name)) return true;
      }
      return false;
    }
    for (std::size_t i = 0; i < count_; ++i) {
      if (equal_ignoring_case(names_[i], name)) return true;
    }
    return false;
  }

 private:
  const std::vector<Header>& headers_;
  std::array<std::string_view, 8> names_{};  // the listed names, while they fit
  std::size_t count_ = 0;
  bool overflow_ = false;  // more than fit: each header is checked against each list
};

}  // namespace

bool is_hop_by_hop(std::string_view name, const MessageHead& head) { return HopByHop(head)(name); }

std::string request_head(const MessageHead& request, const RequestForwarding& how) {
  std::string out;
  append_request_head(out, request, how);
  return out;
}

void append_request_head(std::string& out, const MessageHead& request, const RequestForwarding& how) {
  out.reserve(out.size() + 256);
  out.append(request.method).append(" ").append(request.target).append(" HTTP/1.1\r\n");
  // With `forwarded`, the chains a previous proxy started are extended, not repeated.
  std::string forwarded_for;
  std::string forwarded;
  auto extend = [](std::string& chain, std::string_view value) { chain.append(chain.empty() ? "" : ", ").append(value); };
  const HopByHop hop_by_hop(request);
  for (const Header& header : request.headers) {
    if (is_framing(header.name)) continue;
    if (hop_by_hop(header.name) && !(how.upgrade && equal_ignoring_case(header.name, "Upgrade"))) continue;
    if (how.forwarded) {
      if (equal_ignoring_case(header.name, "X-Forwarded-For")) {
        extend(forwarded_for, header.value);
        continue;
      }
      if (equal_ignoring_case(header.name, "Forwarded")) {
        extend(forwarded, header.value);
        continue;
      }
      if (equal_ignoring_case(header.name, "X-Forwarded-Proto")) continue;  // ours replaces it
    }
    add_line(out, header.name, header.value);
  }
  // An HTTP/1.0 request may come without Host; what goes out is HTTP/1.1, which needs one: the
  // authority of an absolute-form target (RFC 9112 3.2.2), else the backend's address.
  if (!request.header("Host")) {
    const std::string_view authority = target_authority(request.target);
    if (!authority.empty() || !how.host.empty()) add_line(out, "Host", authority.empty() ? how.host : authority);
  }
  if (request.framing == Framing::content_length) add_line(out, "Content-Length", std::to_string(request.content_length));
  if (request.framing == Framing::chunked) add_line(out, "Transfer-Encoding", "chunked");
  if (how.upgrade) add_line(out, "Connection", "upgrade");
  if (how.forwarded) {
    const std::string client = how.client_address.empty() ? "unknown" : how.client_address;
    extend(forwarded_for, client);
    extend(forwarded, "for=" + forwarded_node(client) + ";proto=http");
    add_line(out, "X-Forwarded-For", forwarded_for);
    add_line(out, "X-Forwarded-Proto", "http");
    add_line(out, "Forwarded", forwarded);
  }
  out.append("\r\n");
}

BodyOut body_out(const MessageHead& response, int client_minor) {
  switch (response.framing) {
    case Framing::none: return BodyOut::none;
    case Framing::content_length: return BodyOut::content_length;
    case Framing::chunked:
    case Framing::until_close: return client_minor >= 1 ? BodyOut::chunked : BodyOut::until_close;
  }
  return BodyOut::none;
}

void append_response_head(std::string& head, const MessageHead& response, BodyOut out, bool keep_alive,
                          int client_minor, bool response_to_head) {
  head.reserve(head.size() + 256);
  head.append("HTTP/1.1 ").append(std::to_string(response.status)).append(" ");
  // A status Sluice has no phrase for keeps the backend's ("418 I'm a teapot"): the parser has
  // already refused control characters in it.
  const char* known = known_reason_phrase(response.status);
  head.append(known != nullptr ? std::string_view(known) : std::string_view(response.reason)).append("\r\n");
  const bool keep_length = response_to_head || response.status == 304;
  const HopByHop hop_by_hop(response);
  for (const Header& header : response.headers) {
    if (hop_by_hop(header.name)) continue;
    if (is_framing(header.name) && !(keep_length && equal_ignoring_case(header.name, "Content-Length"))) continue;
    add_line(head, header.name, header.value);
  }
  if (out == BodyOut::content_length) add_line(head, "Content-Length", std::to_string(response.content_length));
  if (out == BodyOut::chunked) add_line(head, "Transfer-Encoding", "chunked");
  const bool informational = response.status >= 100 && response.status < 200;
  if (!informational) {
    if (!keep_alive || out == BodyOut::until_close) {
      add_line(head, "Connection", "close");
    } else if (client_minor == 0) {
      add_line(head, "Connection", "keep-alive");
    }
  }
  head.append("\r\n");
}

std::string response_head(const MessageHead& response, BodyOut out, bool keep_alive, int client_minor,
                          bool response_to_head) {
  std::string head;
  append_response_head(head, response, out, keep_alive, client_minor, response_to_head);
  return head;
}

std::string chunk_size_line(std::size_t size) {
  char line[32];
  const int n = std::snprintf(line, sizeof line, "%zx\r\n", size);
  return std::string(line, static_cast<std::size_t>(n));
}

void append_chunk(std::string& out, std::string_view data) {
  out.append(chunk_size_line(data.size())).append(data).append("\r\n");
}

std::string last_chunk(const std::vector<Header>& trailers) {
  std::string out = "0\r\n";
  for (const Header& trailer : trailers) add_line(out, trailer.name, trailer.value);
  out.append("\r\n");
  return out;
}

std::string error_response(int status, bool close, std::uint32_t retry_after_s, bool to_head) {
  const std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
  std::string extra;
  if (retry_after_s > 0) add_line(extra, "Retry-After", std::to_string(retry_after_s));
  if (close) add_line(extra, "Connection", "close");
  return http::response_head(status, "text/plain", body.size(), extra) + (to_head ? "" : body);
}

bool is_idempotent(std::string_view method) {
  for (std::string_view safe : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    if (method == safe) return true;
  }
  return false;
}

}  // namespace sluice::http
