#pragma once
// systemd's notification protocol (sd_notify(3)) without libsystemd: under `Type=notify` the
// service manager passes a unix datagram socket in $NOTIFY_SOCKET, and each state change is one
// datagram to it ("READY=1", "RELOADING=1", "STOPPING=1"). Elsewhere (a shell, a container) the
// variable is unset and nothing is sent.

#include <string_view>

namespace sluice {

/// Sends `state` to the service manager named by $NOTIFY_SOCKET (a path, or "@name" for the
/// abstract namespace). Returns false only when a socket was named and the datagram could not be
/// sent; the reason is logged.
bool notify_service_manager(std::string_view state);

}  // namespace sluice
