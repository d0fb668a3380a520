// Softmax family over the last axis of contiguous f32 rows [rows, d]: softmax / log-softmax (max-subtracted),
// their backward passes, and cross-entropy against integer targets with an ignore index (the lm_head case:
// d = 49280). Row sums accumulate in f64.
#pragma once
#include <cstdint>

namespace vk {

void softmax_f32(int64_t rows, int64_t d, const float* x, float* y, bool log);
// softmax: gx = y * (gy - sum(gy * y)); log-softmax: gx = gy - exp(y) * sum(gy)
void softmax_backward_f32(int64_t rows, int64_t d, const float* y, const float* gy, float* gx, bool log);

// The first row whose target is neither ignore nor in [0, v), or -1. targets are int32 or int64 (t64).
int64_t cross_entropy_check(int64_t n, int64_t v, const void* targets, bool t64, int64_t ignore);
int64_t target_at(const void* targets, bool t64, int64_t i);
// losses[i] = lse[i] - logits[i, t_i] (0 where t_i == ignore); lse[i] = log sum_j exp(logits[i, j]).
void cross_entropy_f32(int64_t n, int64_t v, const float* logits, const void* targets, bool t64, int64_t ignore,
                       float* losses, float* lse);
// gx[i, j] = grow[i] * (exp(logits[i, j] - lse[i]) - [j == t_i]); rows with t_i == ignore are 0.
void cross_entropy_backward_f32(int64_t n, int64_t v, const float* logits, const void* targets, bool t64,
                                int64_t ignore, const float* lse, const float* grow, float* gx);

}  // namespace vk
