// Per-thread scratch buffers for the kernels: each only grows, and is 64-byte aligned so that 32-byte vector
// loads never straddle a cache line (a malloc'ed block sits 16 bytes off one; split loads cost the 8-row decode
// kernel about a third of its speed). One slot per use, so that buffers in use at the same time on one thread
// (a fused call's packed x while its chunks run) never share memory.
#pragma once
#include <cstdint>
#include <vector>

namespace vk {

enum class Scratch : int {
  Panel = 0,    // matmul: a widened panel of a half-precision weight
  DotX,         // matmul: packed x of one few-row product
  SharedDotX,   // packed x shared by every chunk of a fused few-row call
  NtStrip,      // gemm_nt: one widened, transposed 16-row strip of W
  NtA,          // gemm_nt: packed A of one call (also shared by a fused call)
  FusedGate,    // fused swiglu: gate products of a chunk
  FusedUp,      // fused swiglu: up products of a chunk
  QPanel,       // qmatmul: a decoded panel of a block-quantized weight
  QActs,        // qdot: the 8-bit activations of one call (int8 values, scales, sums)
  Count
};

inline float* scratch(Scratch slot, int64_t n) {
  thread_local std::vector<float> bufs[(int)Scratch::Count];
  auto& b = bufs[(int)slot];
  if ((int64_t)b.size() < n + 16) b.resize((size_t)(n + 16));
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(b.data()) + 63) & ~uintptr_t(63));
}

}  // namespace vk
