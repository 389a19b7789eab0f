#pragma once
// What `mode: http` writes: rebuilt request and response heads (never the bytes as received:
// hop-by-hop headers dropped, framing re-emitted from what the parser decided), chunk framing, and
// Sluice's own error answers. Pure functions over MessageHead, so unit-tested without sockets.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/http/parser.hpp"

namespace sluice::http {

/// Whether header `name` is hop-by-hop (RFC 9110 7.6.1) for a message with `head`'s headers:
/// Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade, and each header the
/// Connection header names. Content-Length is not hop-by-hop but is re-emitted from the framing.
bool is_hop_by_hop(std::string_view name, const MessageHead& head);

/// How a request goes to a backend.
struct RequestForwarding {
  bool upgrade = false;         // keep Upgrade and send "Connection: upgrade"
  bool forwarded = false;       // add X-Forwarded-For, X-Forwarded-Proto, Forwarded
  std::string client_address;   // the client's IP, for those headers ("" if unknown)
  std::string host;             // the Host sent when an HTTP/1.0 request has none and its target no authority
};

/// The request head for the backend: "METHOD target HTTP/1.1", the end-to-end headers in order,
/// the framing (Content-Length or Transfer-Encoding: chunked) as parsed, and the forwarding
/// headers when asked; when the request has no Host (HTTP/1.0), its absolute-form target's
/// authority or else `how.host` as Host. Keep-alive towards the backend is HTTP/1.1's default.
std::string request_head(const MessageHead& request, const RequestForwarding& how);
/// The same, appended to `out`.
void append_request_head(std::string& out, const MessageHead& request, const RequestForwarding& how);

/// How a response's body goes to the client.
enum class BodyOut {
  none,            // no body (HEAD, 1xx, 204, 304)
  content_length,  // as the backend framed it
  chunked,         // re-chunked (a chunked or close-delimited body, to an HTTP/1.1 client)
  until_close,     // raw, and the client connection closed after it (an HTTP/1.0 client)
};

/// How a response with `response`'s framing is sent to a client speaking HTTP/1.`client_minor`.
/// `response_to_head`: the request was a HEAD.
BodyOut body_out(const MessageHead& response, int client_minor);

/// The response head for the client: "HTTP/1.1 status reason" (Sluice's phrase for the statuses it
/// knows, the backend's for the others), the end-to-end headers, framing for
/// `out`, and "Connection: close" when `keep_alive` is false (or "keep-alive" to an HTTP/1.0
/// client that keeps it). For HEAD and 304 the backend's Content-Length is kept as it describes the
/// representation, not this message.
std::string response_head(const MessageHead& response, BodyOut out, bool keep_alive, int client_minor,
                          bool response_to_head);
/// The same, appended to `head` (a write being built).
void append_response_head(std::string& head, const MessageHead& response, BodyOut out, bool keep_alive,
                          int client_minor, bool response_to_head);

/// The size line of a chunk of `size` bytes ("1a2b\r\n"); the data and "\r\n" follow.
std::string chunk_size_line(std::size_t size);
/// One whole chunk: its size line, `data` and "\r\n", appended to `out`.
void append_chunk(std::string& out, std::string_view data);
/// The last chunk and the trailers: "0\r\n" + trailer lines + "\r\n".
std::string last_chunk(const std::vector<Header>& trailers);

/// Sluice's own answer with `status` (a short text body), always "Connection: close" when
/// `close`; `retry_after_s` > 0 adds Retry-After. `to_head`: it answers a HEAD, so the body is
/// left out (its Content-Length stays, as for any HEAD response).
std::string error_response(int status, bool close, std::uint32_t retry_after_s = 0, bool to_head = false);

/// Whether a request with `method` may be sent twice (RFC 9110 9.2.2).
bool is_idempotent(std::string_view method);

}  // namespace sluice::http
