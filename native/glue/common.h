// Shared helpers for the N-API glue: argument unpacking and the self-registration of each family's functions.
// Kernels never see N-API; glue files never do math.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vk {

using Registrar = void (*)(Napi::Env, Napi::Object);
std::vector<Registrar>& registrars();
struct Register {
  explicit Register(Registrar r) { registrars().push_back(r); }
};
#define VK_REGISTER(fn) static ::vk::Register vk_register_##fn(fn)

// Pointer to the first element of a typed array argument (honours byteOffset).
inline void* data_of(const Napi::Value& v) {
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value ab;
  size_t offset;
  napi_status s = napi_get_typedarray_info(v.Env(), v, &type, &length, &data, &ab, &offset);
  if (s != napi_ok) throw Napi::TypeError::New(v.Env(), "vlmkit native: expected a typed array");
  return data;
}
inline size_t length_of(const Napi::Value& v) { return v.As<Napi::TypedArray>().ElementLength(); }
inline float* f32(const Napi::Value& v) { return static_cast<float*>(data_of(v)); }
inline const float* cf32(const Napi::Value& v) { return static_cast<const float*>(data_of(v)); }
inline uint16_t* u16(const Napi::Value& v) { return static_cast<uint16_t*>(data_of(v)); }
inline int32_t* i32(const Napi::Value& v) { return static_cast<int32_t*>(data_of(v)); }
inline int64_t i64arg(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }
inline int iarg(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }
inline double farg(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
inline bool barg(const Napi::Value& v) { return v.ToBoolean().Value(); }
inline bool is_null(const Napi::Value& v) { return v.IsNull() || v.IsUndefined(); }
inline std::vector<int64_t> ints(const Napi::Value& v) {
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = a.Get(i).As<Napi::Number>().Int64Value();
  return out;
}

// Wraps a function body so that a C++ exception becomes a JS Error with a clear message instead of a crash.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, const char* name, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("vlmkit native ") + name + ": " + e.what());
  }
}

}  // namespace vk
