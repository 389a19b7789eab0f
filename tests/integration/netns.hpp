#pragma once
// Network namespaces for the integration tests: "nodes" joined to the root namespace through a
// bridge, so that a test can cut one node's link, run programs inside a node (DaemonProcess with
// NetnsNetwork::launch) and give a node its own /etc/hosts and /etc/resolv.conf.
//
// Needs root and iproute2. Every name made here contains the test process's pid (the plain and the
// ASan suites run the same tests, possibly at once), and the /24 is one no other interface of the
// root namespace uses. The destructor removes everything: processes left in the namespaces, the
// namespaces (and with them the veth pairs), the bridge and /etc/netns/NAME. Construction first
// removes leftovers with the same names, and those of test processes that no longer run.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "daemon_process.hpp"
#include "net.hpp"

namespace sluice::it {

struct NetnsSupport {
  /// Empty when this process may create network namespaces, veth pairs and bridges; otherwise why
  /// not ("not root", "ip netns add failed: ..."). Probed once per process. A test that needs
  /// namespaces ends with SLUICE_SKIP(reason) (tests/common/test_support.hpp) when it is not empty.
  static std::string check();
};

/// The output and exit code of a command run to completion.
struct CommandResult {
  int exit_code = -1;  // 128 + N when killed by signal N (e.g. at the timeout)
  std::string output{};  // stdout and stderr, interleaved
};

/// Runs `argv` (argv[0] a path) with `input` on its stdin, waiting at most `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = {},
                          Millis timeout = 10s);

/// One node: a network namespace with `lo` up and `eth0`, a veth whose peer is a bridge port.
struct NetnsNode {
  std::string label{};      // the test's name for it ("a")
  std::string netns{};      // the namespace's name, unique to this test process
  std::string host_link{};  // the bridge-side veth, in the root namespace
  std::string address{};    // the node's IPv4 address (x.y.z.1, .2, ... in the order of the labels)
};

class NetnsNetwork {
 public:
  /// A bridge in the root namespace holding x.y.z.254/24, and one node per label. The /24 is
  /// 198.18.`preferred_subnet`.0 when no interface uses it yet, else the next free one in
  /// 198.18.0.0/15. Throws (after removing what it made) when a step fails.
  explicit NetnsNetwork(const std::vector<std::string>& labels, unsigned preferred_subnet = 0);
  ~NetnsNetwork();
  NetnsNetwork(const NetnsNetwork&) = delete;
  NetnsNetwork& operator=(const NetnsNetwork&) = delete;

  /// The root namespace's address on the bridge: how the nodes reach the test and a daemon in it.
  const std::string& bridge_address() const { return bridge_address_; }
  const std::string& bridge() const { return bridge_; }
  const std::vector<NetnsNode>& nodes() const { return nodes_; }
  /// Throws std::out_of_range for an unknown label.
  const NetnsNode& node(std::string_view label) const;

  /// {ip, "netns", "exec", NETNS}: ip enters the namespace, bind-mounts the files of
  /// /etc/netns/NETNS over those of /etc in a private mount namespace, and execs the program in
  /// place (so DaemonProcess::pid() is the program's).
  std::vector<std::string> exec_prefix(std::string_view label) const;
  /// A DaemonProcess launch that runs the program in the node, with `environment` ("NAME=value").
  Launch launch(std::string_view label, std::vector<std::string> environment = {}) const;
  /// Runs a command to completion in the node (e.g. getent), bounded by `timeout`.
  CommandResult run(std::string_view label, std::vector<std::string> argv, Millis timeout = 10s) const;

  /// Takes the node's bridge-side veth down (its packets are dropped, the node keeps its state) or
  /// up again.
  void set_link(std::string_view label, bool up);

  /// Replaces /etc/hosts as programs started in the node see it. Rewritten in place, never renamed:
  /// `ip netns exec` bind-mounts the file itself, and a rename would leave the mount on the old
  /// inode. Each node starts with a hosts file holding only localhost.
  void write_hosts(std::string_view label, const std::string& text);
  /// Same for /etc/resolv.conf. Each node starts with `nameserver 127.0.0.1` and `options timeout:1
  /// attempts:1`: nothing listens there, so a name the hosts file lacks fails at once.
  void write_resolv_conf(std::string_view label, const std::string& text);
  /// /etc/netns/NETNS: the directory whose files a process started in the node sees in /etc.
  std::string etc_directory(std::string_view label) const;

 private:
  void create(unsigned preferred_subnet);
  void destroy() noexcept;

  std::string tag_;  // "sl" + pid + a letter per instance: the start of every interface name
  std::string bridge_;
  std::string bridge_address_;
  std::vector<NetnsNode> nodes_;
};

}  // namespace sluice::it
