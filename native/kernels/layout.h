#pragma once
#include <cstdint>

namespace vk {
enum class DT : int { F32 = 0, F64 = 1, BF16 = 2, F16 = 3, I32 = 4, I64 = 5, U8 = 6 };
int dt_bytes(DT d);
// dst (contiguous or strided) <- src (strided), same element size, ndim <= 8, strides in elements.
void copy_strided(int elem, int ndim, const int64_t* shape, const void* src, const int64_t* sstr, void* dst,
                  const int64_t* dstr);
// Contiguous dtype conversion of n elements.
void convert(DT from, DT to, int64_t n, const void* src, void* dst);
void fill(DT d, int64_t n, void* dst, double v);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
}  // namespace vk
