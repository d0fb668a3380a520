// Elementwise kernels in f32: unary ops and their derivatives, binary ops with numpy broadcasting. Inputs are
// views (shape + strides in elements, a stride of 0 broadcasts); outputs are contiguous. Adjacent dims that are
// contiguous in every operand are merged first, so same-shape, scalar and row-broadcast cases become one or two
// flat loops over AVX2 kernels; anything else gathers runs of the innermost dim into a small buffer. The flat
// forms may run in place (y == x, out == a or b). Called inside a pool job, they run on the calling thread.
#pragma once
#include <cstdint>

namespace vk {

// Codes shared with src/engine/backend/native/elementwise.ts (the order of UnaryOp / BinaryOp there).
enum class UnaryOp : int {
  Neg = 0, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Silu, Gelu, GeluTanh, LogSigmoid, Relu, Abs, Square, Count
};
enum class BinaryOp : int { Add = 0, Sub, Mul, Div, Pow, Maximum, Minimum, Count };

constexpr int kMaxDims = 8;

// y = op(x), all contiguous.
void unary_flat_f32(UnaryOp op, int64_t n, const float* x, float* y);
// y (contiguous) = op(x) for a strided x.
void unary_f32(UnaryOp op, int ndim, const int64_t* shape, const float* x, const int64_t* xs, float* y);
// gx (contiguous) = gy * op'(x).
void unary_backward_f32(UnaryOp op, int ndim, const int64_t* shape, const float* x, const int64_t* xs,
                        const float* gy, const int64_t* gs, float* gx);
// out (contiguous) = a op b over `shape`; as/bs are a's and b's strides aligned to shape (0 where broadcast).
void binary_f32(BinaryOp op, int ndim, const int64_t* shape, const float* a, const int64_t* as, const float* b,
                const int64_t* bs, float* out);
// Flat form: a and b are either contiguous (stride 1) or a single broadcast value (stride 0).
void binary_flat_f32(BinaryOp op, int64_t n, const float* a, int sa, const float* b, int sb, float* out);

}  // namespace vk
