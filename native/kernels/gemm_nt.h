// C = A · Wᵀ for a weight W stored [N, K] in f32, bf16, f16 or Q8_0 (a linear layer), for prompts and vision tiles (9 to
// a few thousand rows, see gemm_nt_takes in matmul.h), where OpenBLAS's blocking (tuned for large squares) leaves
// FMA units idle at a few dozen rows and a half-precision weight would first have to be widened to memory. An AVX2/FMA 6x16 register-blocked kernel in the
// BLIS manner: A is packed once per call into 6-row panels; each 16-column strip of W is widened and transposed
// into a small f32 panel that stays in L1 while every row panel of A sweeps over it.
//
// Every output element is summed in the same order whatever the column range a call covers (k-blocks depend
// only on K), so splitting columns across threads, or across the weights of a fused call, never changes a bit.
#pragma once
#include <cstdint>
#include <utility>

#include "kernels/matmul.h"

namespace vk {

// Whether this CPU runs the kernel (AVX2, FMA and F16C, not turned off by setSimd(false)).
bool gemm_nt_available(WT wt);

// Columns per strip of the kernel in use: 32 on AVX-512, 16 on AVX2. Column ranges given to gemm_nt_cols that are
// multiples of it fill whole strips.
int64_t gemm_nt_strip();

// Floats needed to pack M rows of K columns.
int64_t gemm_nt_packed_size(int64_t M, int64_t K);

// Packs A [M, K] (row stride lda) into `dst` (gemm_nt_packed_size floats, any alignment).
void gemm_nt_pack(int64_t M, int64_t K, const float* A, int64_t lda, float* dst);

// The same for op(A): transA ? A stored [K, M] : [M, K].
void gemm_nt_pack_op(bool transA, int64_t M, int64_t K, const float* A, int64_t lda, float* dst);

// Packs A into a buffer of the calling thread (valid until its next call on this thread) and returns it.
const float* gemm_nt_pack_local(int64_t M, int64_t K, const float* A, int64_t lda);

// How to share `strips` 16-column strips out over the pool: about four tasks per thread (a descheduled thread then
// costs a quarter of its share), as {tasks, strips per task}.
std::pair<int64_t, int64_t> gemm_nt_tasks(int64_t strips);

// C[:, n0:n1) = packedA · W[n0:n1, :]ᵀ (+ bias[n0:n1)), on the calling thread. W row stride ldw (elements; for
// Q8_0 the rows are packed blocks and ldw is the values per row, a multiple of 32). Q4_0 and NF4: not yet.
void gemm_nt_cols(const float* packedA, int64_t M, int64_t K, const void* W, WT wt, int64_t ldw, int64_t n0,
                  int64_t n1, const float* bias, float* C, int64_t ldc);

// AVX-512 only (has_avx512()): C[:, n0:n1) = packedA · op(B)[:, n0:n1) (+ bias) for a right operand B of f32, bf16
// or f16 stored [N, K] (transB, as gemm_nt_cols) or [K, N]: the general product of matmul.cc on this kernel.
void gemm_blocked_cols(bool transB, const float* packedA, int64_t M, int64_t K, const void* B, WT bt, int64_t ldb,
                       int64_t n0, int64_t n1, const float* bias, float* C, int64_t ldc);

}  // namespace vk
