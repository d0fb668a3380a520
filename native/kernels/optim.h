// Optimizer steps, in place on contiguous f32 buffers.
#pragma once
#include <cstdint>

namespace vk {

struct AdamWScalars {
  float decay;      // 1 - lr * weight_decay
  float one_m_b1;   // 1 - beta1 (the lerp weight)
  float b2;         // beta2
  float one_m_b2;   // 1 - beta2
  float bc2_sqrt;   // sqrt(1 - beta2^t)
  float eps;
  float step_size;  // lr / (1 - beta1^t)
};

// torch.optim.AdamW (single-tensor path) per element:
//   p *= decay; m = m + (1-b1)(g - m); v = b2 v + (1-b2) g^2; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
void adamw_f32(int64_t n, float* p, const float* g, float* m, float* v, const AdamWScalars& s);

}  // namespace vk
