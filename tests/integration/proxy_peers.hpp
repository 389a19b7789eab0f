#pragma once
// Real peers of the PROXY protocol: an nginx whose http and stream servers accept it (and answer
// each connection with the client's address and port as the header gave them), and an HAProxy in
// front that sends it (send-proxy, send-proxy-v2).

#include <memory>
#include <string>

#include "daemon_process.hpp"
#include "net.hpp"
#include "processes.hpp"

namespace sluice::it {

/// nginx with `listen ... proxy_protocol`: the http server answers every request, the stream
/// server every connection, with "$proxy_protocol_addr $proxy_protocol_port\n" (both empty for a
/// header without addresses: "PROXY UNKNOWN", v2 LOCAL); the http server's /xff answers with the
/// request's X-Forwarded-For.
struct ProxyProtocolNginx {
  explicit ProxyProtocolNginx(const std::string& nginx);
  TempDir directory;
  Address http;
  Address stream;
  std::unique_ptr<DaemonProcess> process;
};

/// HAProxy in tcp mode on a free loopback port, sending to `sluice` with a PROXY header of
/// `version` (1: send-proxy, 2: send-proxy-v2).
struct FrontHaproxy {
  FrontHaproxy(const std::string& haproxy, const Address& sluice, int version);
  TempDir directory;
  Address address;
  std::unique_ptr<DaemonProcess> process;
};

}  // namespace sluice::it
