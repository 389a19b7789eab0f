#pragma once
// The Host field of a request (RFC 9112 3.2), checked by sluice::http::Parser at the end of every
// request head, so that Sluice, its admin server and the backend behind it never disagree about
// which host a request is for. Refused (400 where a server answers):
// - an HTTP/1.1 request without Host (HTTP/1.0 may go without one),
// - more than one Host field,
// - a Host value that is not uri-host [ ":" port ] (RFC 3986: reg-name, IPv4 or [IP-literal];
//   no userinfo, no path, no spaces; an empty value is valid),
// - an absolute-form target ("GET http://a/p HTTP/1.1") whose scheme is not http or https, whose
//   authority is not a valid host, or whose authority differs from Host (compared as text, ignoring
//   case). RFC 9112 3.2.2 lets a server replace Host with the target's authority; refusing the
//   mismatch instead means no backend can be led to route on the other one.

#include <string>
#include <string_view>

#include "sluice/http/parser.hpp"

namespace sluice::http {

/// "" when the Host field(s) and an absolute-form target of `request` may stand, else why not.
std::string check_host(const MessageHead& request);

/// The authority of an absolute-form target ("http://a:8080/p?q" gives "a:8080"), or "" when
/// `target` is not absolute-form (origin-form "/p", asterisk-form "*", authority-form "a:443").
std::string_view target_authority(std::string_view target);

}  // namespace sluice::http
