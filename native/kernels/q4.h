// The 4-bit weight formats' block kernels (Q4_0: q4.cc, NF4: nf4.cc), called by qmatmul.cc: decoding a range of
// blocks of one row into f32, and the few-row dot product C[m, n] = Σ_k A[m, k] deq(W)[n, k] (+ bias[n]) for rows
// [n0, n1) of W, with AVX2 and scalar twins. The rest of the product (threads, panels, sgemm) is qmatmul.cc's.
#pragma once
#include <cstdint>

namespace vk {

// An NF4 weight of N * K values in the layout of src/engine/quant/nf4.ts: the codes (first element of a pair in the
// high nibble), then the fp32 absmax per block of 64, or (double quantization) one byte per block indexing map[256],
// scaled by absmax2 per 256 blocks, plus offset. qmatmul's W argument points at this view for NF4.
struct Nf4View {
  const uint8_t* codes;
  // plain: absmax; double: qabsmax, absmax2, offset, map
  const float* absmax;
  const uint8_t* qabsmax;
  const float* absmax2;
  float offset;
  const float* map;
};

// The absmax of NF4 block g (in the flattened weight), as bitsandbytes reads it back: map[q] * absmax2 + offset
// rounded once per operation (never fused), or the stored fp32 absmax.
float nf4_absmax(const Nf4View& v, int64_t g);

// dst[(b - b0) * 32 + j] = deq value j of Q4_0 block b of `row`, for blocks [b0, b1).
void q4_0_decode(const uint8_t* row, int64_t b0, int64_t b1, float* dst);
// dst[j] = deq(W)[n, k0 + j] for k in [k0, k1) (multiples of 64) of an NF4 weight with K columns.
void nf4_decode(const Nf4View& v, int64_t K, int64_t n, int64_t k0, int64_t k1, float* dst);

// The few-row products (M in 1..8) over rows [n0, n1) of W. C row stride ldc; bias may be null.
void q4_0_dot(int64_t M, const float* A, int64_t lda, int64_t K, const uint8_t* W, int64_t n0, int64_t n1,
              const float* bias, float* C, int64_t ldc);
void nf4_dot(int64_t M, const float* A, int64_t lda, int64_t K, const Nf4View& W, int64_t n0, int64_t n1,
             const float* bias, float* C, int64_t ldc);

}  // namespace vk
