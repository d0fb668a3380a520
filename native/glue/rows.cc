// N-API glue for the row kernels (see kernels/rows.h). Index arrays are an Int32Array or a BigInt64Array (is64).
#include <string>

#include "glue/common.h"
#include "kernels/rows.h"

namespace vk {
namespace {

void check(const char* what, int64_t n, const void* idx, bool i64, int64_t limit) {
  int64_t bad = rows_check(n, idx, i64, limit);
  if (bad >= 0)
    throw std::runtime_error(std::string(what) + " " + std::to_string(index_at(idx, i64, bad)) + " at position " +
                             std::to_string(bad) + " is out of range for " + std::to_string(limit) + " rows");
}

// embedding(wdt, vocab, d, w, n, ids, is64, out)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guarded(info, "embedding", [&]() -> Napi::Value {
    DT wdt = (DT)iarg(info[0]);
    if (wdt != DT::F32 && wdt != DT::BF16 && wdt != DT::F16) throw std::runtime_error("weights must be f32, bf16 or f16");
    int64_t vocab = i64arg(info[1]), d = i64arg(info[2]), n = i64arg(info[4]);
    const void* ids = data_of(info[5]);
    bool i64 = barg(info[6]);
    check("id", n, ids, i64, vocab);
    embedding_gather(wdt, d, data_of(info[3]), n, ids, i64, f32(info[7]));
    return info.Env().Undefined();
  });
}

// embeddingBackward(n, ids, is64, d, gy, vocab, out)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "embeddingBackward", [&]() -> Napi::Value {
    int64_t n = i64arg(info[0]), d = i64arg(info[3]), vocab = i64arg(info[5]);
    const void* ids = data_of(info[1]);
    bool i64 = barg(info[2]);
    check("id", n, ids, i64, vocab);
    embedding_scatter_add(n, ids, i64, d, cf32(info[4]), vocab, f32(info[6]));
    return info.Env().Undefined();
  });
}

// indexCopy(elemBytes, rows, d, dst, m, idx, is64, src)
Napi::Value IndexCopy(const Napi::CallbackInfo& info) {
  return guarded(info, "indexCopy", [&]() -> Napi::Value {
    int elem = iarg(info[0]);
    int64_t rows = i64arg(info[1]), d = i64arg(info[2]), m = i64arg(info[4]);
    const void* idx = data_of(info[5]);
    bool i64 = barg(info[6]);
    check("index", m, idx, i64, rows);
    index_copy(elem, d, data_of(info[3]), m, idx, i64, data_of(info[7]));
    return info.Env().Undefined();
  });
}

void register_rows(Napi::Env env, Napi::Object exports) {
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
  exports.Set("indexCopy", Napi::Function::New(env, IndexCopy));
}
VK_REGISTER(register_rows);

}  // namespace
}  // namespace vk
