// N-API glue for the elementwise kernels (see kernels/elementwise.h). Shapes and strides are JS arrays of
// element counts; typed arrays are positioned at element 0 of each view.
#include "glue/common.h"
#include "kernels/elementwise.h"
#include "kernels/vmath.h"

namespace vk {
namespace {

UnaryOp unary_code(const Napi::Value& v) {
  int c = iarg(v);
  if (c < 0 || c >= (int)UnaryOp::Count) throw std::runtime_error("unknown unary op code");
  return (UnaryOp)c;
}
BinaryOp binary_code(const Napi::Value& v) {
  int c = iarg(v);
  if (c < 0 || c >= (int)BinaryOp::Count) throw std::runtime_error("unknown binary op code");
  return (BinaryOp)c;
}

// unaryFlat(op, n, x, y)
Napi::Value UnaryFlat(const Napi::CallbackInfo& info) {
  return guarded(info, "unary", [&]() -> Napi::Value {
    unary_flat_f32(unary_code(info[0]), i64arg(info[1]), cf32(info[2]), f32(info[3]));
    return info.Env().Undefined();
  });
}

// unaryStrided(op, shape[], x, xStrides[], y)
Napi::Value UnaryStrided(const Napi::CallbackInfo& info) {
  return guarded(info, "unary", [&]() -> Napi::Value {
    auto shape = ints(info[1]), xs = ints(info[3]);
    unary_f32(unary_code(info[0]), (int)shape.size(), shape.data(), cf32(info[2]), xs.data(), f32(info[4]));
    return info.Env().Undefined();
  });
}

// unaryBackward(op, shape[], x, xStrides[], gy, gyStrides[], gx)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "unaryBackward", [&]() -> Napi::Value {
    auto shape = ints(info[1]), xs = ints(info[3]), gs = ints(info[5]);
    unary_backward_f32(unary_code(info[0]), (int)shape.size(), shape.data(), cf32(info[2]), xs.data(),
                       cf32(info[4]), gs.data(), f32(info[6]));
    return info.Env().Undefined();
  });
}

// binaryFlat(op, n, a, aStride(0|1), b, bStride(0|1), out)
Napi::Value BinaryFlat(const Napi::CallbackInfo& info) {
  return guarded(info, "binary", [&]() -> Napi::Value {
    binary_flat_f32(binary_code(info[0]), i64arg(info[1]), cf32(info[2]), iarg(info[3]), cf32(info[4]),
                    iarg(info[5]), f32(info[6]));
    return info.Env().Undefined();
  });
}

// binaryStrided(op, shape[], a, aStrides[], b, bStrides[], out): strides aligned to shape, 0 where broadcast
Napi::Value BinaryStrided(const Napi::CallbackInfo& info) {
  return guarded(info, "binary", [&]() -> Napi::Value {
    auto shape = ints(info[1]), as = ints(info[3]), bs = ints(info[5]);
    binary_f32(binary_code(info[0]), (int)shape.size(), shape.data(), cf32(info[2]), as.data(), cf32(info[4]),
               bs.data(), f32(info[6]));
    return info.Env().Undefined();
  });
}

// binaryRows(op, rows, cols, a, b, out, rowIsB): [rows, cols] op [cols] (rowIsB) or [cols] op [rows, cols], all
// contiguous; the bias-add shape without marshalling shape and stride arrays.
Napi::Value BinaryRows(const Napi::CallbackInfo& info) {
  return guarded(info, "binary", [&]() -> Napi::Value {
    int64_t rows = i64arg(info[1]), cols = i64arg(info[2]);
    bool row_is_b = barg(info[6]);
    int64_t shape[2] = {rows, cols}, full[2] = {cols, 1}, row[2] = {0, 1};
    binary_f32(binary_code(info[0]), 2, shape, cf32(info[3]), row_is_b ? full : row, cf32(info[4]),
               row_is_b ? row : full, f32(info[5]));
    return info.Env().Undefined();
  });
}

void register_elementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("binaryRows", Napi::Function::New(env, BinaryRows));
  exports.Set("unaryFlat", Napi::Function::New(env, UnaryFlat));
  exports.Set("unaryStrided", Napi::Function::New(env, UnaryStrided));
  exports.Set("unaryBackward", Napi::Function::New(env, UnaryBackward));
  exports.Set("binaryFlat", Napi::Function::New(env, BinaryFlat));
  exports.Set("binaryStrided", Napi::Function::New(env, BinaryStrided));
}
VK_REGISTER(register_elementwise);

}  // namespace
}  // namespace vk
