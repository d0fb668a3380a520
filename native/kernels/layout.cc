// Layout kernels: strided copies (make a view contiguous, write into a slice) and dtype conversions.
#include "kernels/layout.h"

#include <cmath>
#include <cstring>

#include "core/pool.h"

namespace vk {

int dt_bytes(DT d) {
  switch (d) {
    case DT::F64: case DT::I64: return 8;
    case DT::F32: case DT::I32: return 4;
    case DT::BF16: case DT::F16: return 2;
    case DT::U8: return 1;
  }
  return 1;
}

float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float f16_to_f32(uint16_t h) {
  uint32_t s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
  if (e == 0) {
    if (m == 0) u = s;
    else {  // subnormal: normalise
      e = 127 - 15 + 1;
      while (!(m & 0x400)) { m <<= 1; e--; }
      m &= 0x3ff;
      u = s | (e << 23) | (m << 13);
    }
  } else if (e == 31) u = s | 0x7f800000u | (m << 13);
  else u = s | ((e + 127 - 15) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u, exp = (u >> 23) & 0xff, mant = u & 0x7fffffu;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    int shift = 14 - e;
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

void copy_strided(int elem, int ndim, const int64_t* shape, const void* src, const int64_t* sstr, void* dst,
                  const int64_t* dstr) {
  // Merge the innermost dims while both sides are contiguous there, then memcpy runs.
  int64_t inner = 1;
  int d = ndim - 1;
  int64_t expect = 1;
  while (d >= 0 && sstr[d] == expect && dstr[d] == expect) {
    inner *= shape[d];
    expect *= shape[d];
    d--;
  }
  int outer_dims = d + 1;
  int64_t outer = 1;
  for (int i = 0; i < outer_dims; i++) outer *= shape[i];
  const char* s = static_cast<const char*>(src);
  char* t = static_cast<char*>(dst);
  if (outer_dims == 0) {
    std::memcpy(t, s, (size_t)(inner * elem));
    return;
  }
  // Each outer index: compute offsets, then copy `inner` elements (contiguous, or elementwise along dim d).
  parallel_for(outer, 64, [&](int64_t b, int64_t e) {
    int64_t idx[8];
    int64_t rem = b;
    for (int i = outer_dims - 1; i >= 0; i--) {
      idx[i] = rem % shape[i];
      rem /= shape[i];
    }
    for (int64_t o = b; o < e; o++) {
      int64_t so = 0, to = 0;
      for (int i = 0; i < outer_dims; i++) {
        so += idx[i] * sstr[i];
        to += idx[i] * dstr[i];
      }
      if (inner > 1 || elem > 8) {
        std::memcpy(t + to * elem, s + so * elem, (size_t)(inner * elem));
      } else {
        switch (elem) {
          case 4: *reinterpret_cast<uint32_t*>(t + to * 4) = *reinterpret_cast<const uint32_t*>(s + so * 4); break;
          case 2: *reinterpret_cast<uint16_t*>(t + to * 2) = *reinterpret_cast<const uint16_t*>(s + so * 2); break;
          case 8: *reinterpret_cast<uint64_t*>(t + to * 8) = *reinterpret_cast<const uint64_t*>(s + so * 8); break;
          default: t[to] = s[so];
        }
      }
      for (int i = outer_dims - 1; i >= 0; i--) {
        if (++idx[i] < shape[i]) break;
        idx[i] = 0;
      }
    }
  });
}

template <typename F>
static void each(int64_t n, F f) {
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) f(i);
  });
}

static double load(DT d, const void* p, int64_t i) {
  switch (d) {
    case DT::F32: return static_cast<const float*>(p)[i];
    case DT::F64: return static_cast<const double*>(p)[i];
    case DT::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DT::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DT::I32: return static_cast<const int32_t*>(p)[i];
    case DT::I64: return (double)static_cast<const int64_t*>(p)[i];
    case DT::U8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}
static void store(DT d, void* p, int64_t i, double v) {
  switch (d) {
    case DT::F32: static_cast<float*>(p)[i] = (float)v; break;
    case DT::F64: static_cast<double*>(p)[i] = v; break;
    case DT::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16((float)v); break;
    case DT::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16((float)v); break;
    case DT::I32: static_cast<int32_t*>(p)[i] = (int32_t)std::trunc(v); break;
    case DT::I64: static_cast<int64_t*>(p)[i] = (int64_t)std::trunc(v); break;
    case DT::U8: static_cast<uint8_t*>(p)[i] = (uint8_t)std::trunc(v); break;
  }
}

void convert(DT from, DT to, int64_t n, const void* src, void* dst) {
  if (from == to) {
    std::memcpy(dst, src, (size_t)(n * dt_bytes(from)));
    return;
  }
  // Hot paths: bf16/f16 weights widened to f32.
  if (from == DT::BF16 && to == DT::F32) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    uint32_t* t = static_cast<uint32_t*>(dst);
    each(n, [&](int64_t i) { t[i] = (uint32_t)s[i] << 16; });
    return;
  }
  if (from == DT::F32 && to == DT::BF16) {
    const float* s = static_cast<const float*>(src);
    uint16_t* t = static_cast<uint16_t*>(dst);
    each(n, [&](int64_t i) { t[i] = f32_to_bf16(s[i]); });
    return;
  }
  each(n, [&](int64_t i) { store(to, dst, i, load(from, src, i)); });
}

void fill(DT d, int64_t n, void* dst, double v) {
  if (d == DT::F32) {
    float f = (float)v;
    float* t = static_cast<float*>(dst);
    each(n, [&](int64_t i) { t[i] = f; });
    return;
  }
  each(n, [&](int64_t i) { store(d, dst, i, v); });
}

}  // namespace vk
