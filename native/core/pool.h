// One thread pool for every kernel in the addon. The caller thread takes part in the work, so a pool of N threads
// has N-1 workers. Workers spin briefly between jobs (decode issues hundreds of small jobs per token, and a
// condition-variable wake-up costs tens of microseconds) and then sleep.
#pragma once
#include <cstdint>
#include <functional>

namespace vk {

int num_threads();
void set_num_threads(int n);

// Splits [0, n) into at most num_threads() contiguous ranges of at least `grain` items and runs
// fn(begin, end) on each, the caller running the first. Nested calls, and calls while another JS thread
// holds the pool, run serially on the caller: no deadlock, no oversubscription.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Runs fn(task) for each task in [0, ntasks), dynamically scheduled over the pool (for uneven work).
void parallel_tasks(int64_t ntasks, const std::function<void(int64_t)>& fn);

// Queues n memory ranges for idle workers to read into the caches (replacing what was queued before): the
// weights the next products will stream. A hint; it never changes a result.
void warm_caches(const void* const* ptrs, const int64_t* bytes, int n);
// Drops queued ranges that overlap memory about to be freed (called before every free of a native buffer).
void warm_forget(const void* p, int64_t bytes);

}  // namespace vk
