#include "sluice/discovery/resolver.hpp"

#include <spdlog/spdlog.h>

namespace sluice {

Resolver::Resolver(uv_loop_t* loop, DnsClient& dns, Endpoint endpoint, Millis interval, Callbacks callbacks)
    : loop_(loop), dns_(dns), endpoint_(std::move(endpoint)), interval_(interval), callbacks_(std::move(callbacks)) {}

void Resolver::start() {
  if (stopped_) return;
  int rc = timer_.init(loop_, this, uv_timer_init);
  if (rc == 0) {
    const auto every = static_cast<std::uint64_t>(interval_.count());
    rc = uv_timer_start(timer_.get(), [](uv_timer_t* timer) { owner<Resolver>(timer)->query(); }, 0, every);
  }
  if (rc != 0) {
    spdlog::error("dns: cannot schedule the lookups of {}: {}", endpoint_.host, uv_strerror(rc));
    callbacks_.failed(std::string("cannot schedule lookups: ") + uv_strerror(rc), !answered_once_);
    answered_once_ = true;
  }
}

void Resolver::stop() {
  stopped_ = true;
  lookup_.cancel();
  timer_.close();
}

void Resolver::query() {
  if (lookup_.pending() || stopped_) return;  // a slow DNS server: never more than one lookup at a time
  // The answer may come at once (a name in the hosts file), before lookup() returns.
  DnsLookup lookup = dns_.lookup(endpoint_.host, endpoint_.port, [this](DnsAnswer answer) { on_answer(std::move(answer)); });
  if (lookup.pending()) lookup_ = std::move(lookup);
}

void Resolver::on_answer(DnsAnswer answer) {
  const bool first = !answered_once_;
  answered_once_ = true;
  if (!answer.ok()) {
    callbacks_.failed(answer.error, first);
    return;
  }
  addresses_ = std::move(answer.addresses);
  callbacks_.resolved(addresses_, first);
}

}  // namespace sluice
