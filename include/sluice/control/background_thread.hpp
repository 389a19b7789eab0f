#pragma once
// The control plane and the admin thread do work that may wait (a scrape, a reload, a health
// check), on cores the data workers share. They run as SCHED_BATCH: the same fair share of CPU,
// but a batch thread that wakes up never preempts a running thread, so a scrape waits for a
// worker's time slice to end instead of cutting into it (the p99 latency of proxied requests).
// Nothing a worker waits on may be held here (worker/worker_thread: the hand-off never waits).

namespace sluice {

/// Makes the calling thread SCHED_BATCH. Returns the errno when the kernel refuses (nothing changes).
int run_as_background_thread();

}  // namespace sluice
