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
    : loop_(loop), path_(std::move(config_path)), directory_(directory_of(path_)), trigger_(std::move(trigger)) {
  uv_signal_init(loop_, &sighup_);
  uv_fs_event_init(loop_, &directory_event_);
  uv_timer_init(loop_, &settle_timer_);
  sighup_.data = directory_event_.data = settle_timer_.data = this;
}

void ConfigWatcher::start() {
  last_ = identity();
  uv_signal_start(
      &sighup_,
      [](uv_signal_t* handle, int) {
        auto* self = static_cast<ConfigWatcher*>(handle->data);
        self->last_ = self->identity();  // the file this reload reads: its own change event is moot
        self->trigger_("SIGHUP");
      },
      SIGHUP);
  int rc = uv_fs_event_start(
      &directory_event_,
      [](uv_fs_event_t* handle, const char*, int, int) {
        static_cast<ConfigWatcher*>(handle->data)->on_directory_event();
      },
      directory_.c_str(), 0);
  if (rc != 0) {
    spdlog::warn("config: cannot watch {} ({}); reload with SIGHUP", directory_, uv_strerror(rc));
  }
}

void ConfigWatcher::stop() {
  if (stopped_) return;
  stopped_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&sighup_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&directory_event_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&settle_timer_), nullptr);
}

ConfigWatcher::Identity ConfigWatcher::identity() const {
  struct stat info{};
  if (::stat(path_.c_str(), &info) != 0) return {};  // gone for a moment during a swap
  return {info.st_dev, info.st_ino, info.st_size, info.st_mtim.tv_sec, info.st_mtim.tv_nsec};
}

void ConfigWatcher::on_directory_event() {
  uv_timer_start(
      &settle_timer_,
      [](uv_timer_t* timer) {
        auto* self = static_cast<ConfigWatcher*>(timer->data);
        const Identity now = self->identity();
        if (now == Identity{} || now == self->last_) return;
        self->last_ = now;
        self->trigger_("file changed");
      },
      kSettleMs, 0);
}

}  // namespace sluice
