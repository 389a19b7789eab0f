#include "service_engine.hpp"
#include "sluice/uv/handle.hpp"

#include <time.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace sluice::tools {

namespace {

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Work the optimiser cannot drop: a few microseconds of integer mixing per call.
std::uint64_t burn(std::uint64_t x) {
  for (int i = 0; i < 2000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

}  // namespace

struct ServiceEngine::AsyncHandle {
  uv_async_t async{};
  ServiceEngine* owner = nullptr;  // null once the engine closed it
};

ServiceEngine::ServiceEngine(uv_loop_t* loop, const ServiceConfig& config, Done on_done)
    : config_(config), on_done_(std::move(on_done)), random_(config.seed) {
  if (config_.mode == ServiceMode::sleep) {
    timers_ = std::make_unique<HrTimerQueue>(loop);
    return;
  }
  if (config_.concurrency == 0) throw std::invalid_argument("cpu mode needs a concurrency of at least 1");
  async_ = new AsyncHandle;
  async_->owner = this;
  async_->async.data = async_;
  const int rc = uv_async_init(loop, &async_->async, on_async);
  if (rc < 0) {
    delete async_;
    async_ = nullptr;
    throw std::runtime_error(std::string("uv_async_init: ") + uv_strerror(rc));
  }
  for (std::uint32_t i = 0; i < config_.concurrency; ++i) workers_.emplace_back([this] { worker_main(); });
}

ServiceEngine::~ServiceEngine() { close(); }

std::uint64_t ServiceEngine::draw() {
  const double mean = static_cast<double>(config_.mean_ns);
  const double value = config_.distribution == ServiceDistribution::constant ? mean : random_.exponential(mean);
  return static_cast<std::uint64_t>(std::llround(value));
}

void ServiceEngine::submit(std::uint64_t job_id) {
  if (closed_) return;
  Job job;
  job.id = job_id;
  job.submitted_ns = uv_hrtime();
  if (config_.concurrency == 0 || in_service_ < config_.concurrency) {
    start(job);
  } else {
    waiting_.push_back(job);
  }
}

void ServiceEngine::start(Job job) {
  ++in_service_;
  job.started_ns = uv_hrtime();
  // Drawn at service start, in service order: with a fixed seed the n-th job served gets the n-th draw.
  job.drawn_ns = draw();
  job.target_ns = job.drawn_ns > config_.overhead_ns ? job.drawn_ns - config_.overhead_ns : 0;
  if (config_.mode == ServiceMode::sleep) {
    timers_->schedule(job.started_ns + job.target_ns, [this, job] { finish(job); });
    return;
  }
  {
    std::lock_guard lock(mutex_);
    work_.push_back(job);
  }
  work_ready_.notify_one();
}

void ServiceEngine::finish(const Job& job) {
  --in_service_;
  ServiceCompletion completion;
  completion.job_id = job.id;
  completion.drawn_ns = job.drawn_ns;
  completion.wait_ns = job.started_ns - job.submitted_ns;
  completion.elapsed_ns = uv_hrtime() - job.started_ns;
  ++stats_.completed;
  stats_.drawn_sum_ns += static_cast<double>(completion.drawn_ns);
  stats_.elapsed_sum_ns += static_cast<double>(completion.elapsed_ns);
  if (stats_.lateness_ns.size() < kMaxLatenessSamples) {
    stats_.lateness_ns.push_back(static_cast<std::int64_t>(completion.elapsed_ns) -
                                 static_cast<std::int64_t>(job.target_ns));
  }
  // The next job starts before the callback runs, so the slot never idles while the response is sent.
  if (!waiting_.empty() && !closed_) {
    const Job next = waiting_.front();
    waiting_.pop_front();
    start(next);
  }
  on_done_(completion);
}

void ServiceEngine::worker_main() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [this] { return stopping_ || !work_.empty(); });
      if (stopping_) return;
      job = work_.front();
      work_.pop_front();
    }
    const std::uint64_t begin = thread_cpu_ns();
    std::uint64_t sink = job.id;
    while (thread_cpu_ns() - begin < job.target_ns && !abort_spin_.load(std::memory_order_relaxed)) sink = burn(sink);
    burn_sink_.store(sink, std::memory_order_relaxed);  // a result the optimiser must keep, so burn() runs
    {
      std::lock_guard lock(mutex_);
      done_.push_back(job);
    }
    uv_async_send(&async_->async);  // async_ stays valid until every worker has joined
  }
}

void ServiceEngine::on_async(uv_async_t* async) {
  auto* handle = static_cast<AsyncHandle*>(async->data);
  ServiceEngine* engine = handle->owner;
  if (engine == nullptr) return;
  std::vector<Job> finished;
  {
    std::lock_guard lock(engine->mutex_);
    finished.swap(engine->done_);
  }
  for (const Job& job : finished) engine->finish(job);
}

void ServiceEngine::close() {
  if (closed_) return;
  closed_ = true;
  waiting_.clear();
  if (timers_) timers_->close();
  if (!workers_.empty()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      work_.clear();
    }
    abort_spin_ = true;
    work_ready_.notify_all();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
  }
  if (async_ != nullptr) {
    async_->owner = nullptr;
    uv_close(sluice::as_handle(&async_->async),
             [](uv_handle_t* h) { delete static_cast<AsyncHandle*>(h->data); });
    async_ = nullptr;
  }
}

}  // namespace sluice::tools
