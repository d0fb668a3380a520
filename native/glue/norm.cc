#include "glue/common.h"
#include "kernels/norm.h"

namespace vk {
namespace {

inline const float* opt(const Napi::Value& v) { return is_null(v) ? nullptr : cf32(v); }
inline float* optw(const Napi::Value& v) { return is_null(v) ? nullptr : f32(v); }

// layerNorm(R, D, x, w|null, b|null, eps, y, mean, rstd)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  layer_norm_forward(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), opt(info[3]), opt(info[4]), (float)farg(info[5]),
                     f32(info[6]), f32(info[7]), f32(info[8]));
  return info.Env().Undefined();
}
// layerNormBackward(R, D, x, w|null, mean, rstd, gy, gx, gw|null, gb|null)
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  layer_norm_backward(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), opt(info[3]), cf32(info[4]), cf32(info[5]),
                      cf32(info[6]), f32(info[7]), optw(info[8]), optw(info[9]));
  return info.Env().Undefined();
}
// rmsNorm(R, D, x, w|null, eps, y, rstd)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  rms_norm_forward(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), opt(info[3]), (float)farg(info[4]), f32(info[5]),
                   f32(info[6]));
  return info.Env().Undefined();
}
// rmsNormBackward(R, D, x, w|null, rstd, gy, gx, gw|null)
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  rms_norm_backward(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), opt(info[3]), cf32(info[4]), cf32(info[5]),
                    f32(info[6]), optw(info[7]));
  return info.Env().Undefined();
}

void register_norm(Napi::Env env, Napi::Object exports) {
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("layerNormBackward", Napi::Function::New(env, LayerNormBackward));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("rmsNormBackward", Napi::Function::New(env, RmsNormBackward));
}
VK_REGISTER(register_norm);

}  // namespace
}  // namespace vk
