#include "sluice/http/host_field.hpp"
#include "sluice/http/field_text.hpp"

#include <algorithm>

namespace sluice::http {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 3986 2.2 and 2.3: unreserved / sub-delims, the characters of a reg-name besides "%" HEXDIG HEXDIG.
bool is_name_char(char c) {
  return is_alpha(c) || is_digit(c) || std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}


// uri-host [ ":" port ]: a reg-name (which covers IPv4) or an IP-literal in brackets, then an
// optional port of digits.
bool is_valid_host(std::string_view host) {
  std::size_t i = 0;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    const std::string_view literal = host.substr(1, close - 1);
    // IPv6address or IPvFuture: hex digits, ':' and '.' (and IPvFuture's unreserved and sub-delims).
    if (!std::all_of(literal.begin(), literal.end(), [](char c) { return is_name_char(c) || c == ':'; })) return false;
    i = close + 1;
  } else {
    for (; i < host.size() && host[i] != ':'; ++i) {
      if (host[i] == '%') {
        if (i + 2 >= host.size() || !is_hex(host[i + 1]) || !is_hex(host[i + 2])) return false;
        i += 2;
      } else if (!is_name_char(host[i])) {
        return false;
      }
    }
  }
  if (i == host.size()) return true;
  if (host[i] != ':') return false;
  const std::string_view port = host.substr(i + 1);
  return std::all_of(port.begin(), port.end(), is_digit);
}


// The scheme of an absolute-form target ("http" of "http://a/p"), or "" for any other form.
std::string_view target_scheme(std::string_view target) {
  const std::size_t colon = target.find("://");
  if (colon == std::string_view::npos || colon == 0 || !is_alpha(target.front())) return {};
  const std::string_view scheme = target.substr(0, colon);
  const bool scheme_chars = std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
  });
  return scheme_chars ? scheme : std::string_view();
}

}  // namespace

std::string_view target_authority(std::string_view target) {
  const std::string_view scheme = target_scheme(target);
  if (scheme.empty()) return {};
  const std::string_view rest = target.substr(scheme.size() + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
}

std::string check_host(const MessageHead& request) {
  const Header* host = nullptr;
  for (const Header& header : request.headers) {
    if (!equal_ignoring_case(header.name, "Host")) continue;
    if (host != nullptr) return "several Host fields";
    host = &header;
  }
  if (host == nullptr && request.version_minor >= 1) return "an HTTP/1.1 request without Host";
  const std::string_view value = host != nullptr ? trim_ows(host->value) : std::string_view();
  if (host != nullptr && !is_valid_host(value)) return "Host " + quoted_excerpt(value) + " is not host[:port]";
  const std::string_view scheme = target_scheme(request.target);
  if (scheme.empty()) return {};
  if (!equal_ignoring_case(scheme, "http") && !equal_ignoring_case(scheme, "https")) {
    return "target scheme " + quoted_excerpt(scheme) + " is not http or https";
  }
  const std::string_view authority = target_authority(request.target);
  if (authority.empty() || !is_valid_host(authority)) {
    return "target authority " + quoted_excerpt(authority) + " is not host[:port]";
  }
  if (host != nullptr && !equal_ignoring_case(value, authority)) {
    return "Host " + quoted_excerpt(value) + " differs from the target's authority " + quoted_excerpt(authority);
  }
  return {};
}

}  // namespace sluice::http
