// Probes of the machine's limits (see bench.h). Written so that nothing but the hardware limits them:
// - FMA peak: independent FMA chains held in registers, enough of them to cover the FMA latency on every pipe, so
//   the vector units retire one FMA per pipe per cycle and nothing touches memory.
// - bandwidth: contiguous streams, as wide as the CPU loads and stores, split over the pool in page-sized pieces;
//   streaming stores skip the read-for-ownership that an ordinary store pays beyond the caches, ordinary stores
//   win while the data fit in cache: the benches take the better of the two.
// The AVX-512 and AVX2 functions carry target attributes, so the addon builds without -mavx512f and loads on
// any x86-64 CPU; which one runs is chosen from cpuid at run time.
#include "kernels/bench.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VK_X86 1
#endif

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"

namespace vk {
namespace {

enum class Unit { Avx512, Avx2, Sse2, Scalar };

Unit widest_unit() {
#if VK_X86
  static const Unit isa = [] {
    __builtin_cpu_init();
    // libgcc's check includes the OS saving the zmm state (xgetbv), not only the cpuid bit
    if (__builtin_cpu_supports("avx512f")) return Unit::Avx512;
    if (cpu_has_avx2()) return Unit::Avx2;
    return Unit::Sse2;  // the x86-64 baseline
  }();
  return isa;
#else
  return Unit::Scalar;
#endif
}

// ------------------------------------------------------------------------------------------------ FMA peak

// 12 chains: an FMA's result is ready 4 cycles later on current cores (Zen 4/5, Intel since Skylake) and two pipes
// take one each per cycle, so at least 8 must be in flight; 12 chains + 2 constants also fit AVX2's 16 registers
// (no spills). The chains converge to 1 (x <- 0.9999·x + 1e-4): no overflow, no denormals.
constexpr int kChains = 12;
// Iterations between clock reads: ~50k FMAs, tens of microseconds, so reading the clock costs well under 1%.
constexpr int64_t kIters = 4096;

#if VK_X86
__attribute__((target("avx512f"))) float fma_block_avx512(float seed) {
  __m512 x[kChains];
  for (int i = 0; i < kChains; i++) x[i] = _mm512_set1_ps(seed + 0.001f * (float)i);
  const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
  for (int64_t k = 0; k < kIters; k++)
    for (int i = 0; i < kChains; i++) x[i] = _mm512_fmadd_ps(x[i], m, c);
  for (int i = 1; i < kChains; i++) x[0] = _mm512_add_ps(x[0], x[i]);
  alignas(64) float t[16];
  _mm512_store_ps(t, x[0]);
  return t[0] + t[15];
}

__attribute__((target("avx2,fma"))) float fma_block_avx2(float seed) {
  __m256 x[kChains];
  for (int i = 0; i < kChains; i++) x[i] = _mm256_set1_ps(seed + 0.001f * (float)i);
  const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
  for (int64_t k = 0; k < kIters; k++)
    for (int i = 0; i < kChains; i++) x[i] = _mm256_fmadd_ps(x[i], m, c);
  for (int i = 1; i < kChains; i++) x[0] = _mm256_add_ps(x[0], x[i]);
  alignas(32) float t[8];
  _mm256_store_ps(t, x[0]);
  return t[0] + t[7];
}

// No FMA below AVX2: a multiply and an add (2 flops, as an FMA counts), on SSE2's 4 lanes.
float fma_block_sse2(float seed) {
  __m128 x[kChains];
  for (int i = 0; i < kChains; i++) x[i] = _mm_set1_ps(seed + 0.001f * (float)i);
  const __m128 m = _mm_set1_ps(0.9999f), c = _mm_set1_ps(1e-4f);
  for (int64_t k = 0; k < kIters; k++)
    for (int i = 0; i < kChains; i++) x[i] = _mm_add_ps(_mm_mul_ps(x[i], m), c);
  for (int i = 1; i < kChains; i++) x[0] = _mm_add_ps(x[0], x[i]);
  return _mm_cvtss_f32(x[0]);
}
#endif

float fma_block_scalar(float seed) {
  float x[kChains];
  for (int i = 0; i < kChains; i++) x[i] = seed + 0.001f * (float)i;
  for (int64_t k = 0; k < kIters; k++)
    for (int i = 0; i < kChains; i++) x[i] = x[i] * 0.9999f + 1e-4f;
  float s = 0;
  for (float v : x) s += v;
  return s;
}

// ------------------------------------------------------------------------------------------------ streams

// One thread's part of stream_probe_pool: [lo, hi) of every array. K sources (0..3); d == nullptr: read only.
#if VK_X86
template <int K>
__attribute__((target("avx512f"))) double stream_avx512(const float* const* s, float* d, int64_t lo, int64_t hi, bool nt) {
  if (!d) {
    const float* p = s[0];
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;  // 4 accumulators: the adds never wait
    int64_t i = lo;
    for (; i + 64 <= hi; i += 64) {
      a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
      a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
      a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
      a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
    }
    alignas(64) float t[16];  // (not _mm512_reduce_add_ps: GCC 12 warns on its expansion)
    _mm512_store_ps(t, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    double r = 0;
    for (float v : t) r += v;
    for (; i < hi; i++) r += p[i];
    return r;
  }
  auto at = [&](int64_t i) {  // scalar element i (head and tail)
    float v = K == 0 ? 1.0f : 0.0f;
    for (int j = 0; j < K; j++) v += s[j][i];
    return v;
  };
  int64_t i = lo;
  for (; i < hi && (reinterpret_cast<uintptr_t>(d + i) & 63); i++) d[i] = at(i);  // streaming stores need 64 B alignment
  for (; i + 16 <= hi; i += 16) {
    __m512 v = K == 0 ? _mm512_set1_ps(1.0f) : _mm512_loadu_ps(s[0] + i);
    if (K > 1) v = _mm512_add_ps(v, _mm512_loadu_ps(s[1] + i));
    if (K > 2) v = _mm512_add_ps(v, _mm512_loadu_ps(s[2] + i));
    if (nt) _mm512_stream_ps(d + i, v);
    else _mm512_storeu_ps(d + i, v);
  }
  for (; i < hi; i++) d[i] = at(i);
  _mm_sfence();  // the streamed lines reach memory before the job counts as done
  return 0;
}

template <int K>
__attribute__((target("avx2"))) double stream_avx2(const float* const* s, float* d, int64_t lo, int64_t hi, bool nt) {
  if (!d) {
    const float* p = s[0];
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = lo;
    for (; i + 32 <= hi; i += 32) {
      a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
      a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
      a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
      a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
    }
    alignas(32) float t[8];
    _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    double r = 0;
    for (float v : t) r += v;
    for (; i < hi; i++) r += p[i];
    return r;
  }
  auto at = [&](int64_t i) {
    float v = K == 0 ? 1.0f : 0.0f;
    for (int j = 0; j < K; j++) v += s[j][i];
    return v;
  };
  int64_t i = lo;
  for (; i < hi && (reinterpret_cast<uintptr_t>(d + i) & 31); i++) d[i] = at(i);
  for (; i + 8 <= hi; i += 8) {
    __m256 v = K == 0 ? _mm256_set1_ps(1.0f) : _mm256_loadu_ps(s[0] + i);
    if (K > 1) v = _mm256_add_ps(v, _mm256_loadu_ps(s[1] + i));
    if (K > 2) v = _mm256_add_ps(v, _mm256_loadu_ps(s[2] + i));
    if (nt) _mm256_stream_ps(d + i, v);
    else _mm256_storeu_ps(d + i, v);
  }
  for (; i < hi; i++) d[i] = at(i);
  _mm_sfence();
  return 0;
}
#endif

// Portable version (SSE2 machines and others): the compiler vectorizes these loops to the baseline width.
template <int K>
double stream_plain(const float* const* s, float* d, int64_t lo, int64_t hi, bool) {
  if (!d) {
    double r = 0;
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = lo;
    for (; i + 8 <= hi; i += 8)
      for (int j = 0; j < 8; j++) a[j] += s[0][i + j];
    for (float v : a) r += v;
    for (; i < hi; i++) r += s[0][i];
    return r;
  }
  for (int64_t i = lo; i < hi; i++) {
    float v = K == 0 ? 1.0f : 0.0f;
    for (int j = 0; j < K; j++) v += s[j][i];
    d[i] = v;
  }
  return 0;
}

using StreamFn = double (*)(const float* const*, float*, int64_t, int64_t, bool);

template <int K>
StreamFn stream_for(Unit isa) {
#if VK_X86
  if (isa == Unit::Avx512) return stream_avx512<K>;
  if (isa == Unit::Avx2) return stream_avx2<K>;
#endif
  (void)isa;
  return stream_plain<K>;
}

}  // namespace

const char* fma_peak_isa() {
  switch (widest_unit()) {
    case Unit::Avx512: return "avx512f";
    case Unit::Avx2: return "avx2";
    case Unit::Sse2: return "sse2";
    default: return "scalar";
  }
}

FmaPeak fma_peak_pool(double seconds) {
  using clock = std::chrono::steady_clock;
  const Unit isa = widest_unit();
  float (*block)(float) = fma_block_scalar;
  int lanes = 1;
#if VK_X86
  if (isa == Unit::Avx512) block = fma_block_avx512, lanes = 16;
  else if (isa == Unit::Avx2) block = fma_block_avx2, lanes = 8;
  else block = fma_block_sse2, lanes = 4;
#endif
  const double flops_per_block = 2.0 * (double)kIters * kChains * lanes;
  const int nt = num_threads();
  std::vector<int64_t> blocks((size_t)nt, 0);
  std::vector<double> ends((size_t)nt, 0.0);
  std::vector<float> sink((size_t)nt, 0.0f);
  std::vector<std::thread::id> who((size_t)nt);
  const auto t0 = clock::now();
  // One piece per pool thread, all running at once, each until the same deadline: a thread that starts late (or
  // is handed a second piece because another was descheduled) adds less work, never a longer span, so the figure
  // is the FMAs the machine retired in the window.
  parallel_for(nt, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      int64_t count = 0;
      float s = 0;
      double el;
      do {
        s += block(s * 1e-9f + 0.5f);
        count++;
        el = std::chrono::duration<double>(clock::now() - t0).count();
      } while (el < seconds);
      blocks[(size_t)t] = count;
      ends[(size_t)t] = el;
      sink[(size_t)t] = s;
      who[(size_t)t] = std::this_thread::get_id();
    }
  });
  int64_t total = 0;
  double span = 0, check = 0;
  for (int t = 0; t < nt; t++) total += blocks[(size_t)t], span = std::max(span, ends[(size_t)t]), check += sink[(size_t)t];
  if (!(check == check)) throw std::runtime_error("fma peak probe: the chains diverged");  // NaN: never expected
  const std::set<std::thread::id> threads(who.begin(), who.end());
  return {flops_per_block * (double)total / span / 1e9, fma_peak_isa(), (int)threads.size()};
}

double stream_probe_pool(const float* const* srcs, int nsrc, float* dst, int64_t n, bool nontemporal) {
  if (nsrc < 0 || nsrc > 3) throw std::runtime_error("stream probe: 0 to 3 sources");
  if (!dst && nsrc != 1) throw std::runtime_error("stream probe: a read-only probe reads exactly one source");
  const Unit isa = widest_unit();
  StreamFn fn = nsrc == 0 ? stream_for<0>(isa) : nsrc == 1 ? stream_for<1>(isa) : nsrc == 2 ? stream_for<2>(isa) : stream_for<3>(isa);
  const int64_t units = (n + 1023) / 1024;  // 4 KB pieces, at least 16 to a thread
  std::mutex mu;
  double total = 0;
  parallel_for(units, 16, [&](int64_t b, int64_t e) {
    const double r = fn(srcs, dst, b * 1024, std::min(n, e * 1024), nontemporal);
    std::lock_guard<std::mutex> g(mu);
    total += r;
  });
  return total;
}

}  // namespace vk
