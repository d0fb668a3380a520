// Work splitting for the elementwise/softmax/reduce/optim kernels: [0, n) cut into fixed chunks that the pool's
// threads claim dynamically. With more chunks than threads, a thread that the OS deschedules (another process on
// a 2-core machine) delays only its current chunk: the others take the rest. Chunk boundaries are fixed, and the
// kernels' per-element results never depend on them.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/pool.h"

namespace vk {

// fn(begin, end) over [0, n): on the calling thread when n < 2 * grain, else in chunks of max(chunk, grain).
template <class F>
void for_chunks(int64_t n, int64_t grain, int64_t chunk, F&& fn) {
  if (n <= 0) return;
  if (n < 2 * grain || num_threads() == 1) {
    fn(int64_t(0), n);
    return;
  }
  chunk = std::max(chunk, grain);
  const int64_t tasks = (n + chunk - 1) / chunk;
  parallel_tasks(tasks, [&](int64_t t) {
    int64_t b = t * chunk;
    fn(b, std::min(n, b + chunk));
  });
}

}  // namespace vk
