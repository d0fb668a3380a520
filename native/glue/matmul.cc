#include <algorithm>
#include <stdexcept>
#include <vector>

#include "glue/common.h"
#include "kernels/matmul.h"

namespace vk {
namespace {

// Per-matrix element offsets from a Float64Array (exact integers), or none.
std::vector<int64_t> offsets(const Napi::Value& v, int64_t n) {
  std::vector<int64_t> out;
  if (is_null(v)) return out;
  const double* d = static_cast<const double*>(data_of(v));
  if ((int64_t)length_of(v) != n) throw std::runtime_error("offset array length differs from the batch count");
  out.resize((size_t)n);
  for (int64_t i = 0; i < n; i++) out[(size_t)i] = (int64_t)d[i];
  return out;
}

// gemm(nbatch, transA, transB, M, N, K, A, offA|null, lda, B, bType, offB|null, ldb, bias|null, C)
// A, B, C are typed arrays positioned at element 0 of their views; C is contiguous [nbatch, M, N]. A bias is
// only accepted with nbatch == 1.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, "gemm", [&]() -> Napi::Value {
    const int64_t nb = i64arg(info[0]);
    const bool tA = barg(info[1]), tB = barg(info[2]);
    const int64_t M = i64arg(info[3]), N = i64arg(info[4]), K = i64arg(info[5]);
    const float* A = cf32(info[6]);
    auto offA = offsets(info[7], nb);
    const int64_t lda = i64arg(info[8]);
    const void* B = data_of(info[9]);
    const WT bt = (WT)iarg(info[10]);
    if (bt != WT::F32 && bt != WT::BF16 && bt != WT::F16) throw std::runtime_error("B must be f32, bf16 or f16");
    auto offB = offsets(info[11], nb);
    const int64_t ldb = i64arg(info[12]);
    const float* bias = is_null(info[13]) ? nullptr : cf32(info[13]);
    float* C = f32(info[14]);
    if (nb == 1 && offA.empty() && offB.empty()) {
      gemm(tA, tB, M, N, K, A, lda, B, bt, ldb, bias, C, N);
    } else {
      if (bias) throw std::runtime_error("a bias needs nbatch == 1");
      gemm_batched(nb, tA, tB, M, N, K, A, offA.empty() ? nullptr : offA.data(), lda, B, bt,
                   offB.empty() ? nullptr : offB.data(), ldb, C);
    }
    return info.Env().Undefined();
  });
}

// rawSgemm(M, N, K, transB, threads, iters) -> Float64Array of seconds per call (benchmark ceiling only).
Napi::Value RawSgemm(const Napi::CallbackInfo& info) {
  return guarded(info, "rawSgemm", [&]() -> Napi::Value {
    const int iters = iarg(info[5]);
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), (size_t)std::max(iters, 0));
    raw_sgemm_times(i64arg(info[0]), i64arg(info[1]), i64arg(info[2]), barg(info[3]), iarg(info[4]), iters,
                    out.Data());
    return out;
  });
}

// gemmNtMaxRows(rows?) -> the rows of A up to which linear products take the gemm_nt kernel (set when given).
Napi::Value GemmNtMaxRows(const Napi::CallbackInfo& info) {
  return guarded(info, "gemmNtMaxRows", [&]() -> Napi::Value {
    if (info.Length() > 0 && !info[0].IsUndefined()) set_gemm_nt_max_rows(i64arg(info[0]));
    return Napi::Number::New(info.Env(), (double)gemm_nt_max_rows());
  });
}

void register_matmul(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("rawSgemm", Napi::Function::New(env, RawSgemm));
  exports.Set("gemmNtMaxRows", Napi::Function::New(env, GemmNtMaxRows));
}
VK_REGISTER(register_matmul);

}  // namespace
}  // namespace vk
