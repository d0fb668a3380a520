// The weight formats, defined once: the element types a linear layer's weight may be stored in. The plain ones
// (one value per element) share their codes with the tensor dtypes of kernels/layout.h (DT); the block-quantized
// ones store groups of values with a scale per group, bit for bit as their origin lays them out. TypeScript
// mirrors this list in src/engine/formats.ts, and a test checks it against weightFormats() exported by the addon.
#pragma once
#include <cstdint>

namespace vk {

enum class WT : int {
  F32 = 0,
  BF16 = 2,
  F16 = 3,
  // ggml's block_q8_0: 32 values as an fp16 scale d (little-endian) then 32 int8 q; value = d * q.
  Q8_0 = 16,
  // ggml's block_q4_0: 32 values as an fp16 scale then 16 bytes, element j in the low nibble of byte j and
  // element j + 16 in the high nibble; value = d * (nibble - 8). (Kernels: issue 13.)
  Q4_0 = 17,
  // bitsandbytes NF4: blocks of 64, an fp32 absmax per block kept beside the packed codes, two 4-bit codes per
  // byte with the first element in the high nibble. (Kernels: issue 13.)
  NF4 = 18,
};

constexpr bool wt_is_block(WT t) { return t == WT::Q8_0 || t == WT::Q4_0 || t == WT::NF4; }

// Values per block (1 for the plain formats).
constexpr int64_t wt_block_values(WT t) { return t == WT::NF4 ? 64 : wt_is_block(t) ? 32 : 1; }

// Bytes per block in the packed data (for NF4 the absmax lives in a separate array and is not counted).
constexpr int64_t wt_block_bytes(WT t) {
  switch (t) {
    case WT::F32: return 4;
    case WT::BF16: case WT::F16: return 2;
    case WT::Q8_0: return 2 + 32;
    case WT::Q4_0: return 2 + 16;
    case WT::NF4: return 32;
  }
  return 0;
}

// Bytes of one row of K values (K a multiple of the block size).
constexpr int64_t wt_row_bytes(WT t, int64_t K) { return K / wt_block_values(t) * wt_block_bytes(t); }

}  // namespace vk
