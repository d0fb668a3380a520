// What the CPU can do, asked once, in one place, and which instruction set the kernels use (the ISA level).
// Kernels dispatch on has_avx512() (AVX-512 F/BW/VL on top of AVX2, FMA and F16C) and has_avx2() (AVX2 + FMA),
// both read from the active level: the widest the CPU has, or what VLMKIT_ISA=avx512|avx2|scalar forces, or what
// the tests set (setIsa, and setSimd(false) = scalar) to run every path on one machine. Every vector kernel
// carries a target attribute, so the addon builds without -mavx512f and loads on any x86-64 CPU.
#pragma once
#include <atomic>
#include <string>

namespace vk {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;        // AVX2 and FMA
  bool f16c = false;
  bool avx512 = false;      // AVX-512 F, BW and VL (with the OS saving zmm state)
  bool avx512bf16 = false;  // vdpbf16ps, vcvtneps2bf16
  bool avx512vnni = false;  // vpdpbusd
  // 512-bit operations at full width. AMD's Zen 4 (family 19h) splits each into two 256-bit halves: its AVX-512
  // FMA peak equals its AVX2 peak (measured 113 against 115 GFLOP/s per thread) and our AVX-512 products came out
  // 5-15% slower than the AVX2 ones, so it defaults to AVX2 (VLMKIT_ISA=avx512 still forces the AVX-512 kernels).
  bool wide512 = false;
};

// cpuid, asked once.
const CpuFeatures& cpu_features();
// The widest level this CPU runs (AVX-512 counts only with AVX2, FMA and F16C beside it).
Isa cpu_isa();
// The level used when nothing forces one: the widest, except AVX2 where 512-bit operations are split in two.
Isa default_isa();
const char* isa_name(Isa isa);

// The level VLMKIT_ISA asks for (default_isa() when unset). On an unknown value or a level the CPU lacks it
// returns false and sets `error` to a one-line message naming the variable and the fix.
bool isa_from_env(Isa& isa, std::string& error);

// The level the kernels use now. Never above cpu_isa().
std::atomic<int>& isa_level();
inline Isa isa() { return static_cast<Isa>(isa_level().load(std::memory_order_relaxed)); }
// Sets the level; false (and nothing changes) when the CPU lacks it.
bool set_isa(Isa isa);

inline bool cpu_has_avx2() { return cpu_features().avx2; }
inline bool cpu_has_f16c() { return cpu_features().f16c; }

inline bool has_avx2() { return isa() >= Isa::Avx2; }
inline bool has_avx512() { return isa() >= Isa::Avx512; }

}  // namespace vk
