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

namespace sluice {

class ConfigWatcher {
 public:
  /// `why` is "SIGHUP" or "file changed".
  using Trigger = std::function<void(std::string_view why)>;

  ConfigWatcher(uv_loop_t* loop, std::string config_path, Trigger trigger);
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  /// Starts both triggers. A directory that cannot be watched is logged and leaves SIGHUP.
  void start();
  /// Closes its handles (the object must outlive the loop's run).
  void stop();

 private:
  using Identity = std::tuple<dev_t, ino_t, off_t, long, long>;  // dev, inode, size, mtime s, ns
  Identity identity() const;
  void on_directory_event();

  uv_loop_t* loop_;
  std::string path_;
  std::string directory_;
  Trigger trigger_;
  uv_signal_t sighup_{};
  uv_fs_event_t directory_event_{};
  uv_timer_t settle_timer_{};
  bool stopped_ = false;
  Identity last_{};
};

}  // namespace sluice
