#pragma once
// Writing an HTTP/1.1 response head: the status line and the framing headers every answer needs.

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::http {

/// "OK", "Not Found", ... for the statuses Sluice and its tools send; nullptr for others.
const char* known_reason_phrase(int status);
/// The same, "Unknown" for the others.
const char* reason_phrase(int status);

/// "HTTP/1.1 <status> <reason>\r\nContent-Type: ...\r\nContent-Length: ...\r\n<extra>\r\n";
/// `extra_headers` are whole lines, each ending in "\r\n".
std::string response_head(int status, std::string_view content_type, std::size_t content_length,
                          std::string_view extra_headers = {});

}  // namespace sluice::http
