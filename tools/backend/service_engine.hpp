// The service-time model of sluice-backend: `concurrency` requests in service at once, the others
// waiting in one FIFO (as a real server's worker pool queues them), each served for a time drawn from
// an exponential or constant distribution with a fixed seed.
//
//   sleep mode: service is time passing (a high-resolution timer, see tools/common/hr_timer.hpp);
//               no CPU is used, so the backend is the ideal server of queueing theory.
//   cpu mode:   service is that much CPU time burnt on one of `concurrency` worker threads (measured
//               with the thread's CPU clock), like a CPU-bound service: under contention for cores the
//               wall-clock service time stretches, as it did on the user's machine.
//
// The engine knows jobs only by id; the server maps ids to connections and ignores completions of
// connections that went away (the work itself is not cancelled: a real server finishes it too).

#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../common/hr_timer.hpp"
#include "../common/random.hpp"

namespace sluice::tools {

enum class ServiceDistribution { exponential, constant };
enum class ServiceMode { sleep, cpu };

struct ServiceConfig {
  std::uint64_t mean_ns = 0;  // 0: no service time (answer at once; the engine is not used)
  ServiceDistribution distribution = ServiceDistribution::exponential;
  ServiceMode mode = ServiceMode::sleep;
  std::uint32_t concurrency = 0;  // requests in service at once; 0 = unlimited (sleep mode only)
  std::uint64_t seed = 1;
  // Subtracted from each draw (not below 0): a known per-request overhead outside this backend (a proxy's
  // connect and hand-offs), so that the time the request holds a proxy slot follows the drawn distribution.
  std::uint64_t overhead_ns = 0;
};

struct ServiceCompletion {
  std::uint64_t job_id = 0;
  std::uint64_t drawn_ns = 0;    // the service time drawn for this job (before the overhead is taken off)
  std::uint64_t wait_ns = 0;     // submitted to service start: time in this backend's own FIFO
  std::uint64_t elapsed_ns = 0;  // service start to completion (wall clock)
};

struct ServiceStats {
  std::uint64_t completed = 0;
  double drawn_sum_ns = 0;
  double elapsed_sum_ns = 0;
  std::vector<std::int64_t> lateness_ns;  // elapsed - target per job, the first kMaxLatenessSamples
};

class ServiceEngine {
 public:
  using Done = std::function<void(const ServiceCompletion&)>;
  static constexpr std::size_t kMaxLatenessSamples = 1'000'000;

  ServiceEngine(uv_loop_t* loop, const ServiceConfig& config, Done on_done);
  ~ServiceEngine();
  ServiceEngine(const ServiceEngine&) = delete;
  ServiceEngine& operator=(const ServiceEngine&) = delete;

  void submit(std::uint64_t job_id);  // starts service now if a slot is free, else queues (FIFO)
  void close();                       // drops queued jobs, stops the workers, closes the handles
  const ServiceStats& stats() const { return stats_; }

 private:
  struct Job {
    std::uint64_t id = 0;
    std::uint64_t submitted_ns = 0;
    std::uint64_t started_ns = 0;
    std::uint64_t drawn_ns = 0;
    std::uint64_t target_ns = 0;  // drawn_ns - overhead, floored at 0: what is slept or burnt
  };
  struct AsyncHandle;  // uv_async_t freed in its close callback

  std::uint64_t draw();
  void start(Job job);
  void finish(const Job& job);
  void worker_main();
  static void on_async(uv_async_t* async);

  ServiceConfig config_;
  Done on_done_;
  Random random_;
  std::uint32_t in_service_ = 0;
  std::deque<Job> waiting_;
  ServiceStats stats_;
  bool closed_ = false;

  // sleep mode
  std::unique_ptr<HrTimerQueue> timers_;

  // cpu mode: jobs go to the workers, finished ones come back through the async handle
  AsyncHandle* async_ = nullptr;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::deque<Job> work_;      // guarded by mutex_
  std::vector<Job> done_;     // guarded by mutex_
  bool stopping_ = false;     // guarded by mutex_
  std::atomic<bool> abort_spin_{false};
  std::atomic<std::uint64_t> burn_sink_{0};
};

}  // namespace sluice::tools
