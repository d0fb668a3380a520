// Bandwidth probes for the benchmark ceilings (bench/engine.ts): a memcpy and a read-only sweep, both shared
// out over our pool like the kernels they are compared with.
#pragma once
#include <cstdint>

namespace vk {
void memcpy_pool(void* dst, const void* src, int64_t bytes);
// Sum of n floats (a read-bandwidth probe: every byte loaded once, nothing written).
double read_sum_pool(const float* src, int64_t n);
}  // namespace vk
