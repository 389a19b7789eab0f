#pragma once
// Says when to reload the configuration: on SIGHUP, and when the config file changes. A
// Kubernetes ConfigMap volume is updated by swapping a symlink in the mounted directory, which a
// watch on the file itself would miss, so the directory is watched; after a short settling delay
// the file's identity (device, inode, size, modification time, through symlinks) is compared with
// the last one seen, so unrelated changes in the directory trigger nothing.

#include <functional>
#include <string>
#include <string_view>
#include <tuple>

#include <uv.h>

#include "sluice/uv/handle.hpp"

namespace sluice {

class ConfigWatcher {
 public:
  /// `why` is "SIGHUP" or "file changed".
  using Trigger = std::function<void(std::string_view why)>;

  ConfigWatcher(uv_loop_t* loop, std::string config_path, Trigger trigger);
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  /// Starts both triggers. A directory that cannot be watched is logged and leaves SIGHUP; a
  /// trigger that cannot be set up at all is logged.
  void start();
  /// Closes its handles; the object may then be destroyed at once.
  void stop();

 private:
  using Identity = std::tuple<dev_t, ino_t, off_t, long, long>;  // dev, inode, size, mtime s, ns
  Identity identity() const;
  void on_directory_event();

  uv_loop_t* loop_;
  std::string path_;
  std::string directory_;
  Trigger trigger_;
  Handle<uv_signal_t> sighup_;
  Handle<uv_fs_event_t> directory_event_;
  Handle<uv_timer_t> settle_timer_;
  Identity last_{};
};

}  // namespace sluice
