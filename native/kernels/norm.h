// Layer norm and RMS norm over the last axis of R rows of D floats (contiguous), forward and backward.
// Statistics are saved per row (mean, rstd = 1/sqrt(var + eps)); w/b may be null (taken as 1 and 0).
// gw/gb (null = not wanted) are summed over rows in fixed blocks of rows and then across blocks in a fixed
// order, so the result does not depend on the thread count.
#pragma once
#include <cstdint>

namespace vk {
void layer_norm_forward(int64_t R, int64_t D, const float* x, const float* w, const float* b, float eps, float* y,
                        float* mean, float* rstd);
void layer_norm_backward(int64_t R, int64_t D, const float* x, const float* w, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* gw, float* gb);
void rms_norm_forward(int64_t R, int64_t D, const float* x, const float* w, float eps, float* y, float* rstd);
void rms_norm_backward(int64_t R, int64_t D, const float* x, const float* w, const float* rstd, const float* gy,
                       float* gx, float* gw);
}  // namespace vk
