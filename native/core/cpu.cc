#include "core/cpu.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace vk {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__) || defined(__i386__)
    // libgcc's checks include the OS saving the ymm/zmm state (xgetbv), not only the cpuid bits
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c.f16c = __builtin_cpu_supports("f16c");
    c.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    c.avx512bf16 = c.avx512 && __builtin_cpu_supports("avx512bf16");
    c.avx512vnni = c.avx512 && __builtin_cpu_supports("avx512vnni");
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    unsigned family = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
      family = (eax >> 8) & 0xf;
      if (family == 0xf) family += (eax >> 20) & 0xff;
    }
    c.wide512 = c.avx512 && !(__builtin_cpu_is("amd") && family == 0x19);
#endif
    return c;
  }();
  return f;
}

Isa cpu_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512 && f.avx2 && f.f16c) return Isa::Avx512;
  if (f.avx2) return Isa::Avx2;
  return Isa::Scalar;
}

Isa default_isa() {
  const Isa widest = cpu_isa();
  return widest == Isa::Avx512 && !cpu_features().wide512 ? Isa::Avx2 : widest;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: break;
  }
  return "scalar";
}

bool isa_from_env(Isa& isa, std::string& error) {
  isa = default_isa();
  const char* e = std::getenv("VLMKIT_ISA");
  if (!e || !*e) return true;
  const Isa widest = cpu_isa();
  Isa want;
  if (!std::strcmp(e, "avx512")) want = Isa::Avx512;
  else if (!std::strcmp(e, "avx2")) want = Isa::Avx2;
  else if (!std::strcmp(e, "scalar")) want = Isa::Scalar;
  else {
    error = std::string("VLMKIT_ISA=") + e + " is not an instruction set vlmkit knows: set it to avx512, avx2 or scalar, or unset it";
    return false;
  }
  if (want > widest) {
    error = std::string("VLMKIT_ISA=") + e + " asks for more than this CPU has (at most " + isa_name(widest) +
            "): set VLMKIT_ISA=" + isa_name(widest) + " or lower, or unset it";
    return false;
  }
  isa = want;
  return true;
}

std::atomic<int>& isa_level() {
  // An invalid VLMKIT_ISA fails the addon's load (glue/memory.cc), so no kernel ever runs under it.
  static std::atomic<int> level{[] {
    Isa isa;
    std::string error;
    isa_from_env(isa, error);
    return static_cast<int>(isa);
  }()};
  return level;
}

bool set_isa(Isa isa) {
  if (isa > cpu_isa()) return false;
  isa_level().store(static_cast<int>(isa));
  return true;
}

}  // namespace vk
