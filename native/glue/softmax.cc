// N-API glue for the softmax family (see kernels/softmax.h). Arrays are contiguous f32 [rows, d]; targets are
// an Int32Array or a BigInt64Array (is64).
#include <string>

#include "glue/common.h"
#include "kernels/softmax.h"

namespace vk {
namespace {

// softmax(rows, d, x, y, log)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return guarded(info, "softmax", [&]() -> Napi::Value {
    softmax_f32(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), f32(info[3]), barg(info[4]));
    return info.Env().Undefined();
  });
}

// softmaxBackward(rows, d, y, gy, gx, log)
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "softmaxBackward", [&]() -> Napi::Value {
    softmax_backward_f32(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), cf32(info[3]), f32(info[4]),
                         barg(info[5]));
    return info.Env().Undefined();
  });
}

void check_targets(int64_t n, int64_t v, const void* t, bool t64, int64_t ignore) {
  int64_t bad = cross_entropy_check(n, v, t, t64, ignore);
  if (bad >= 0)
    throw std::runtime_error("target " + std::to_string(target_at(t, t64, bad)) + " at row " + std::to_string(bad) +
                             " is out of range for " + std::to_string(v) + " classes (ignore index " +
                             std::to_string(ignore) + ")");
}

// crossEntropy(n, v, logits, targets, is64, ignore, losses, lse)
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  return guarded(info, "crossEntropy", [&]() -> Napi::Value {
    int64_t n = i64arg(info[0]), v = i64arg(info[1]), ignore = i64arg(info[5]);
    const void* t = data_of(info[3]);
    bool t64 = barg(info[4]);
    check_targets(n, v, t, t64, ignore);
    cross_entropy_f32(n, v, cf32(info[2]), t, t64, ignore, f32(info[6]), f32(info[7]));
    return info.Env().Undefined();
  });
}

// crossEntropyBackward(n, v, logits, targets, is64, ignore, lse, gRow, gx)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "crossEntropyBackward", [&]() -> Napi::Value {
    int64_t n = i64arg(info[0]), v = i64arg(info[1]), ignore = i64arg(info[5]);
    const void* t = data_of(info[3]);
    bool t64 = barg(info[4]);
    check_targets(n, v, t, t64, ignore);
    cross_entropy_backward_f32(n, v, cf32(info[2]), t, t64, ignore, cf32(info[6]), cf32(info[7]), f32(info[8]));
    return info.Env().Undefined();
  });
}

void register_softmax(Napi::Env env, Napi::Object exports) {
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("softmaxBackward", Napi::Function::New(env, SoftmaxBackward));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, CrossEntropyBackward));
}
VK_REGISTER(register_softmax);

}  // namespace
}  // namespace vk
