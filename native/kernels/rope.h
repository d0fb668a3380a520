// Rotary position embedding, Llama's rotate-half convention.
#pragma once
#include <cstdint>

namespace vk {

// out [B,H,T,D] contiguous <- rotate x (a [B,H,T,D] view with unit stride on D; strides in elements) by
// angle = positions[b,t] * inv_freq[i] in the pairs (i, i + D/2). positions [B,T] contiguous, i32 or i64
// (pos64). cos/sin are made once per (b, t, i) from the float32 angle, in double, rounded to float32 (as
// transformers' float32 tables are). inverse rotates by -angle.
void rope(int64_t B, int64_t H, int64_t T, int64_t D, const float* x, int64_t sb, int64_t sh, int64_t st,
          const void* positions, bool pos64, const float* inv_freq, bool inverse, float* out);

}  // namespace vk
