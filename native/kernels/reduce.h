// Reductions over one axis of a contiguous f32 tensor viewed as [outer, n, inner]: sum and mean (accumulated in
// f64), max and argmax (NaN wins, the first index among ties, like torch). Results are [outer, inner].
#pragma once
#include <cstdint>

namespace vk {

enum class ReduceOp : int { Sum = 0, Mean, Max, Argmax, Count };

// out is float* for sum/mean/max and int32_t* for argmax.
void reduce_f32(ReduceOp op, int64_t outer, int64_t n, int64_t inner, const float* x, void* out);

// Sum of n contiguous floats in f64 (a building block for other kernels).
double sum_f64(const float* x, int64_t n);

}  // namespace vk
