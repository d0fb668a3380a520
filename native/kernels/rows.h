// Row gathers and scatters: embedding lookup (f32/bf16/f16 weights widened to f32), its deterministic
// scatter-add backward, and indexCopy. Indices are int32 or int64 (i64 flag); callers check them first with
// rows_check (kernels never throw inside the thread pool).
#pragma once
#include <cstdint>

#include "kernels/layout.h"

namespace vk {

// The first position whose index is outside [0, limit), or -1.
int64_t rows_check(int64_t n, const void* idx, bool i64, int64_t limit);
int64_t index_at(const void* idx, bool i64, int64_t i);
// out[i, :] = w[idx[i], :] as f32; w is [?, d] of dtype wdt (F32, BF16, F16).
void embedding_gather(DT wdt, int64_t d, const void* w, int64_t n, const void* idx, bool i64, float* out);
// out [vocab, d] = 0, then out[idx[i], :] += gy[i, :] for i in order (columns split across threads).
void embedding_scatter_add(int64_t n, const void* idx, bool i64, int64_t d, const float* gy, int64_t vocab,
                           float* out);
// dst[idx[i], :] = src[i, :] (rows of d elements of `elem` bytes); with repeated indices the last one wins.
void index_copy(int elem, int64_t d, void* dst, int64_t m, const void* idx, bool i64, const void* src);

}  // namespace vk
