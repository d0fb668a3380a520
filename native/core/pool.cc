#include "core/pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "core/blas.h"

namespace vk {
namespace {

// Work is cut into chunks with fixed boundaries (results never depend on which thread ran a chunk), and every
// thread, the caller included, claims chunks from an atomic counter. A worker the OS has descheduled (another
// process on a 2-core machine) therefore never stalls a job: the caller claims the remaining chunks itself and
// only waits for chunks already started.
//
// Lifetime protocol for the job, which lives on the caller's stack: a worker announces itself (active++) and then
// checks `open`; the caller, once every chunk is claimed, clears `open` and waits for active == 0. With sequential
// consistency a worker either got in before the close (and is waited for) or sees the job closed and leaves it.
// Idle-time cache warming: ranges of memory queued by warm_caches() (the weights the next layer will read), which
// a worker with nothing to do reads 4 KB at a time, checking for a new job between pieces. On this hardware the
// lines go through the worker's L2 into the shared L3, where the threads of the next products find them. A hint
// only: results never depend on it.
struct Warm {
  std::mutex mu;
  std::vector<std::pair<const char*, int64_t>> ranges;
  size_t head = 0;
  std::atomic<bool> pending{false};

  // Reads the next piece (up to 4 KB) of the queue; false when the queue is empty. The piece is read under the
  // lock, so forget() (memory about to be freed) never races with a read.
  bool step() {
    std::lock_guard<std::mutex> g(mu);
    while (head < ranges.size() && ranges[head].second <= 0) head++;
    if (head >= ranges.size()) {
      pending.store(false);
      return false;
    }
    auto& r = ranges[head];
    const char* p = r.first;
    const int64_t n = std::min<int64_t>(r.second, 4096);
    r.first += n;
    r.second -= n;
    unsigned sum = 0;
    for (int64_t i = 0; i < n; i += 64) sum += *reinterpret_cast<const volatile unsigned char*>(p + i);
    sink.fetch_add(sum, std::memory_order_relaxed);
    return true;
  }

  // Drops every queued range that overlaps [p, p + n).
  void forget(const void* p, int64_t n) {
    std::lock_guard<std::mutex> g(mu);
    const char* a = static_cast<const char*>(p);
    for (auto& r : ranges)
      if (r.second > 0 && r.first < a + n && a < r.first + r.second) r.second = 0;
  }
  std::atomic<unsigned> sink{0};
};

struct Pool {
  Warm warm;
  std::vector<std::thread> workers;
  std::mutex dispatch;  // one job at a time; try_lock failure means run serially
  std::mutex sleep_mu;
  std::condition_variable wake;
  std::atomic<uint64_t> generation{0};
  std::atomic<bool> stop{false};
  int size = 1;

  // The current job.
  const std::function<void(int64_t)>* job = nullptr;
  int64_t nchunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<int> active{0};
  std::atomic<bool> open{false};

  void start(int n) {
    size = n < 1 ? 1 : n;
    const uint64_t g0 = generation.load();
    for (int i = 1; i < size; i++) workers.emplace_back([this, g0] { loop(g0); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> g(sleep_mu);
      stop = true;
      generation++;
    }
    wake.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    stop = false;
  }

  void claim_and_run() {
    for (;;) {
      int64_t c = next.fetch_add(1);
      if (c >= nchunks) return;
      (*job)(c);
      done.fetch_add(1);
    }
  }

  void loop(uint64_t seen) {
    for (;;) {
      // Spin ~50us waiting for a new generation (warming caches while there are ranges queued), then sleep.
      auto t0 = std::chrono::steady_clock::now();
      int spins = 0;
      while (generation.load() == seen && !stop) {
        if (warm.pending.load(std::memory_order_relaxed) && warm.step()) {
          t0 = std::chrono::steady_clock::now();
          continue;
        }
        if (++spins % 256 == 0 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) {
          std::unique_lock<std::mutex> lk(sleep_mu);
          wake.wait(lk, [&] { return generation.load() != seen || stop || warm.pending.load(); });
          t0 = std::chrono::steady_clock::now();
          continue;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (stop) return;
      seen = generation.load();
      active.fetch_add(1);
      if (open.load()) claim_and_run();
      active.fetch_sub(1);
    }
  }

  void run(int64_t chunks, const std::function<void(int64_t)>& f) {
    job = &f;
    nchunks = chunks;
    next.store(0);
    done.store(0);
    open.store(true);
    {
      std::lock_guard<std::mutex> g(sleep_mu);
      generation.fetch_add(1);
    }
    wake.notify_all();
    claim_and_run();
    open.store(false);
    // Wait for chunks started by workers, then for every worker to leave the job.
    while (done.load() < nchunks || active.load() != 0) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    job = nullptr;
  }
};

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();
    int n = (int)std::thread::hardware_concurrency();
    if (const char* e = std::getenv("VLMKIT_THREADS")) {
      int v = std::atoi(e);
      if (v > 0) n = v;
    }
    if (n < 1) n = 1;
    // Our pool owns the parallelism: OpenBLAS runs single-threaded inside each pool task, so its own
    // spinning threads never compete with ours on a 2-core machine.
    blas_set_threads(1);
    q->start(n);
    return q;
  }();
  return *p;
}

thread_local bool in_pool_job = false;

struct InJob {
  bool prev;
  InJob() : prev(in_pool_job) { in_pool_job = true; }
  ~InJob() { in_pool_job = prev; }
};

}  // namespace

int num_threads() { return pool().size; }

void warm_forget(const void* p, int64_t bytes) { pool().warm.forget(p, bytes); }

void warm_caches(const void* const* ptrs, const int64_t* bytes, int n) {
  Pool& p = pool();
  if (p.size < 2) return;
  {
    std::lock_guard<std::mutex> g(p.warm.mu);
    p.warm.ranges.clear();  // what was queued for an earlier step is stale now
    p.warm.head = 0;
    for (int i = 0; i < n; i++)
      if (bytes[i] > 0) p.warm.ranges.push_back({static_cast<const char*>(ptrs[i]), bytes[i]});
    p.warm.pending.store(!p.warm.ranges.empty());
  }
  {
    std::lock_guard<std::mutex> g(p.sleep_mu);
  }
  p.wake.notify_all();
}

void set_num_threads(int n) {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.dispatch);
  if (n < 1) n = 1;
  if (n == p.size) return;
  p.shutdown();
  p.start(n);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Pool& p = pool();
  int64_t chunks = std::min<int64_t>(p.size, (n + grain - 1) / grain);
  if (chunks <= 1 || in_pool_job) {
    fn(0, n);
    return;
  }
  std::unique_lock<std::mutex> lk(p.dispatch, std::try_to_lock);
  if (!lk.owns_lock()) {
    fn(0, n);
    return;
  }
  std::function<void(int64_t)> job = [&](int64_t i) {
    InJob guard;
    int64_t b = n * i / chunks, e = n * (i + 1) / chunks;
    if (b < e) fn(b, e);
  };
  p.run(chunks, job);
}

void parallel_tasks(int64_t ntasks, const std::function<void(int64_t)>& fn) {
  if (ntasks <= 0) return;
  Pool& p = pool();
  if (ntasks == 1 || p.size == 1 || in_pool_job) {
    for (int64_t t = 0; t < ntasks; t++) fn(t);
    return;
  }
  std::unique_lock<std::mutex> lk(p.dispatch, std::try_to_lock);
  if (!lk.owns_lock()) {
    for (int64_t t = 0; t < ntasks; t++) fn(t);
    return;
  }
  std::function<void(int64_t)> job = [&](int64_t t) {
    InJob guard;
    fn(t);
  };
  p.run(ntasks, job);
}

}  // namespace vk
