#include "sluice/control/config_watcher.hpp"

#include <csignal>

#include <sys/stat.h>

#include <spdlog/spdlog.h>

namespace sluice {

namespace {

// Editors and kubelet change a file in several steps (write, rename, symlink swap): act once
// they are done.
constexpr std::uint64_t kSettleMs = 100;

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

ConfigWatcher::ConfigWatcher(uv_loop_t* loop, std::string config_path, Trigger trigger)
    : loop_(loop), path_(std::move(config_path)), directory_(directory_of(path_)), trigger_(std::move(trigger)) {}

void ConfigWatcher::start() {
  last_ = identity();
  int rc = sighup_.init(loop_, this, uv_signal_init);
  if (rc == 0) {
    rc = uv_signal_start(
        sighup_.get(),
        [](uv_signal_t* handle, int) {
          auto* self = owner<ConfigWatcher>(handle);
          self->last_ = self->identity();  // the file this reload reads: its own change event is moot
          self->trigger_("SIGHUP");
        },
        SIGHUP);
  }
  if (rc != 0) spdlog::error("config: cannot handle SIGHUP ({}); reload by changing {}", uv_strerror(rc), path_);
  rc = settle_timer_.init(loop_, this, uv_timer_init);
  if (rc == 0) rc = directory_event_.init(loop_, this, uv_fs_event_init);
  if (rc == 0) {
    rc = uv_fs_event_start(
        directory_event_.get(),
        [](uv_fs_event_t* handle, const char*, int, int) { owner<ConfigWatcher>(handle)->on_directory_event(); },
        directory_.c_str(), 0);
  }
  if (rc != 0) {
    spdlog::warn("config: cannot watch {} ({}); reload with SIGHUP", directory_, uv_strerror(rc));
  }
}

void ConfigWatcher::stop() {
  sighup_.close();
  directory_event_.close();
  settle_timer_.close();
}

ConfigWatcher::Identity ConfigWatcher::identity() const {
  struct stat info{};
  if (::stat(path_.c_str(), &info) != 0) return {};  // gone for a moment during a swap
  return {info.st_dev, info.st_ino, info.st_size, info.st_mtim.tv_sec, info.st_mtim.tv_nsec};
}

void ConfigWatcher::on_directory_event() {
  const int rc = uv_timer_start(
      settle_timer_.get(),
      [](uv_timer_t* timer) {
        auto* self = owner<ConfigWatcher>(timer);
        const Identity now = self->identity();
        if (now == Identity{} || now == self->last_) return;
        self->last_ = now;
        self->trigger_("file changed");
      },
      kSettleMs, 0);
  if (rc != 0) spdlog::warn("config: {} changed but cannot wait for it to settle ({}); not reloaded", path_, uv_strerror(rc));
}

}  // namespace sluice
