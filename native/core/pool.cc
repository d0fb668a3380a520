#include "core/pool.h"

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

struct Pool {
  std::vector<std::thread> workers;
  std::mutex dispatch;  // one job at a time; try_lock failure means run serially
  std::mutex sleep_mu;
  std::condition_variable wake;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> remaining{0};
  std::atomic<int64_t> next_task{0};
  const std::function<void(int)>* job = nullptr;  // job(worker_index)
  std::atomic<bool> stop{false};
  int size = 1;

  void start(int n) {
    size = n < 1 ? 1 : n;
    // Workers start from the current generation: after set_num_threads() restarts the pool, generation is
    // already past 0, and a worker starting from 0 would run a job that does not exist.
    const uint64_t g0 = generation.load();
    for (int i = 1; i < size; i++) workers.emplace_back([this, i, g0] { loop(i, g0); });
  }

  void shutdown() {
    stop = true;
    {
      std::lock_guard<std::mutex> g(sleep_mu);
      generation++;
    }
    wake.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    stop = false;
  }

  void loop(int index, uint64_t seen) {
    for (;;) {
      // Spin ~50us waiting for a new generation, then sleep.
      auto t0 = std::chrono::steady_clock::now();
      int spins = 0;
      while (generation.load(std::memory_order_acquire) == seen && !stop) {
        if (++spins % 256 == 0 &&
            std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) {
          std::unique_lock<std::mutex> lk(sleep_mu);
          wake.wait(lk, [&] { return generation.load() != seen || stop; });
          break;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (stop) return;
      seen = generation.load(std::memory_order_acquire);
      (*job)(index);
      remaining.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  // Runs job(i) for i in [0, size) with the caller as index 0.
  void run(const std::function<void(int)>& f) {
    job = &f;
    remaining.store(size - 1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> g(sleep_mu);
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    wake.notify_all();
    f(0);
    while (remaining.load(std::memory_order_acquire) != 0) {
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

}  // namespace

int num_threads() { return pool().size; }

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
  std::function<void(int)> job = [&](int i) {
    if (i >= chunks) return;
    in_pool_job = true;
    int64_t b = n * i / chunks, e = n * (i + 1) / chunks;
    if (b < e) fn(b, e);
    in_pool_job = false;
  };
  p.run(job);
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
  p.next_task.store(0);
  std::function<void(int)> job = [&](int) {
    in_pool_job = true;
    for (;;) {
      int64_t t = p.next_task.fetch_add(1);
      if (t >= ntasks) break;
      fn(t);
    }
    in_pool_job = false;
  };
  p.run(job);
}

}  // namespace vk
