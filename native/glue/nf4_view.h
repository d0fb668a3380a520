// The Nf4View (kernels/q4.h) of packed NF4 data passed from JavaScript, shared by the glue of the quantized
// products (qmatmul.cc) and of the one-call decode step (decode.cc).
#pragma once
#include <napi.h>

#include <cstdint>

#include "kernels/q4.h"

namespace vk {

// The sections of the packed bytes of an NF4 weight [N, K] (src/engine/quant/nf4.ts nf4Layout); throws when the
// length does not match or the data is not 4-byte aligned. The view points into the array.
Nf4View nf4_view(const Napi::Value& bytes, int64_t N, int64_t K, bool dq);

}  // namespace vk
