// What the CPU can do, asked once, in one place. Kernels dispatch on has_avx2() (AVX2 + FMA, and not turned off by
// the tests' setSimd(false), which exercises the scalar fallbacks on an AVX2 machine); the half-precision dot
// kernels also need F16C.
#pragma once
#include <atomic>

namespace vk {

inline bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

inline bool cpu_has_f16c() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c");
  }();
  return ok;
#else
  return false;
#endif
}

inline std::atomic<bool>& simd_enabled() {
  static std::atomic<bool> on{true};
  return on;
}

inline bool has_avx2() { return cpu_has_avx2() && simd_enabled().load(std::memory_order_relaxed); }

}  // namespace vk
