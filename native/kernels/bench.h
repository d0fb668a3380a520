// Probes of the machine's limits for the benchmark ceilings (bench/ceilings.ts). Each one measures a limit of the
// hardware, not of our kernels: the most FMAs the vector units retire, the most bytes memory delivers to reads,
// takes from streaming stores, or moves in a read+write mix. All run on every pool thread at once, like the
// kernels they are compared with. None is used outside the benches.
#pragma once
#include <cstdint>

namespace vk {

// The widest FMA unit the CPU has, asked at run time: "avx512f", "avx2" (AVX2 + FMA) or "scalar".
const char* fma_peak_isa();

struct FmaPeak {
  double gflops;    // f32 FLOP/s (an FMA counts 2) of all pool threads together, / 1e9
  const char* isa;  // the unit measured (fma_peak_isa())
  int threads;      // pool threads that ran it
};
// Every pool thread runs independent FMA chains in registers until `seconds` have passed since the start.
FmaPeak fma_peak_pool(double seconds);

// dst[i] = Σ_j srcs[j][i] over n floats, for 0 <= nsrc <= 3 sources (0: dst is filled, a write-only probe);
// with dst == nullptr the sources are only read and their sum returned (nsrc must then be 1). Streaming
// (non-temporal) stores when `nontemporal`, else ordinary ones. Returns a checksum so nothing is optimized away.
double stream_probe_pool(const float* const* srcs, int nsrc, float* dst, int64_t n, bool nontemporal);

}  // namespace vk
