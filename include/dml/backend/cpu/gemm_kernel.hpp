// dml/backend/cpu/gemm_kernel.hpp: dml's own single-precision GEMM for x86-64
// hosts with AVX2+FMA or AVX-512, chosen at run time (issue 20).
//
// The classic blocked scheme (Goto; BLIS): op(B) is packed in panels of
// kc x nc, cut into slivers of NR columns stored k step by k step; op(A) in
// blocks of mc x kc, cut into slivers of MR rows (stored row by row when A is
// row-major, k step by k step when it is transposed); a register-blocked
// micro-kernel multiplies one A sliver by one B sliver into an MR x NR tile of
// C. Packing is where the four transpose cases differ; the micro-kernel is one
// per instruction set (and A layout):
//
//   AVX-512  MR = 14, NR = 32: 28 zmm accumulators, B rows in 2 zmm, A values
//            broadcast from memory into the FMAs.
//   AVX2     MR = 6,  NR = 16: 12 ymm accumulators (the usual 6x16 kernel).
//
// Threads never share a buffer: C is cut into one stripe per thread along its
// longer side (whole micro-tiles), and each thread runs the blocked loops on
// its stripe with its own packed A and B. The operand the stripes share is
// packed once per thread; that costs a fraction 1 / (stripe width) of the
// multiply, which is small because the stripes are cut along the longer side.
//
// The micro-kernels carry target attributes, so a binary built for plain
// x86-64 still gets them on a host that has the instructions (the runtime
// dispatch of issue 20), and a -march=native build gets the same code.
// Elsewhere (other architectures, or no AVX2 on the host) Gemm falls back to
// Eigen; DML_GEMM_KERNEL=eigen|avx2|avx512 chooses by hand (bench_gemm).
// Each element of C sums its k blocks in the same order whatever the number of
// threads, so results do not depend on it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "parallel.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define DML_GEMM_KERNELS 1
#include <immintrin.h>
// The micro-kernels' loops over the tile's rows must unroll completely, or the
// accumulators leave the registers. nvcc's host pass drops the pragma (with a
// warning each time), and its code is only run by the CUDA tests' host checks.
#if defined(__CUDACC__)
#define DML_GEMM_UNROLL(n)
#else
#define DML_GEMM_UNROLL(n) _Pragma(#n)
#endif
#else
#define DML_GEMM_KERNELS 0
#endif

namespace dml::cpu::gemm_kernel {

// Which micro-kernel Gemm uses for float.
enum class Isa { eigen, avx2, avx512 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "eigen";
  }
}

// The best kernel this host runs (Isa::eigen where none is compiled).
inline Isa host_isa() {
#if DML_GEMM_KERNELS
  static const Isa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
    return Isa::eigen;
  }();
  return best;
#else
  return Isa::eigen;
#endif
}

// The kernel in use: host_isa(), or the one the environment variable
// DML_GEMM_KERNEL names (eigen, avx2 or avx512; one the host runs, else the
// host's), or the one a test or benchmark chose with use_isa (before the
// threads start, not while a GEMM runs).
inline Isa& chosen_isa() {
  static Isa isa = [] {
    const Isa best = host_isa();
    const char* env = std::getenv("DML_GEMM_KERNEL");
    if (!env) return best;
    for (Isa i : {Isa::eigen, Isa::avx2, Isa::avx512})
      if (std::strcmp(env, isa_name(i)) == 0 && int(i) <= int(best)) return i;
    return best;
  }();
  return isa;
}
inline void use_isa(Isa isa) { chosen_isa() = isa; }

// op(X)(i, j) of a row-major matrix with leading dimension ld.
// With `cols`, the stored matrix's column j is at offset cols[j] of its row
// instead of j (a gather: how the convolution reads a block's taps straight
// from the weight's own [o, c, kh, kw] layout).
struct Operand {
  const float* data;
  std::int64_t ld;
  bool trans;
  const std::int64_t* cols = nullptr;
  std::int64_t col(std::int64_t j) const { return cols ? cols[j] : j; }
  float at(std::int64_t i, std::int64_t j) const { return trans ? data[j * ld + col(i)] : data[i * ld + col(j)]; }
};

// Zero-padded copies of a sliver of op(A) (R rows, kc columns), in the two
// layouts the micro-kernels read:
//   by columns  dst[p * R + r]      (R values per k step: what op(A) = A^T gives)
//   by rows     dst[r * stride + p] (one contiguous run per row: a row-major A)
// Rows past `live` are zero, so the micro-kernel never tests for edges.
template <int R>
void pack_by_columns(const Operand& x, std::int64_t i0, int live, std::int64_t p0, std::int64_t kc, float* dst) {
  if (x.trans && x.cols) {
    for (std::int64_t p = 0; p < kc; ++p) {
      const float* src = x.data + (p0 + p) * x.ld;
      float* d = dst + p * R;
      for (int r = 0; r < live; ++r) d[r] = src[x.cols[i0 + r]];
      for (int r = live; r < R; ++r) d[r] = 0.f;
    }
    return;
  }
  if (x.trans) {  // op(X)(i, p) = data[p * ld + i]: `live` contiguous values per k step
    const float* src = x.data + p0 * x.ld + i0;
    if (live == R) {  // a whole sliver: fixed-size copies the compiler turns into vector moves
      for (std::int64_t p = 0; p < kc; ++p, src += x.ld) std::memcpy(dst + p * R, src, R * sizeof(float));
      return;
    }
    for (std::int64_t p = 0; p < kc; ++p, src += x.ld) {
      float* d = dst + p * R;
      for (int r = 0; r < live; ++r) d[r] = src[r];
      for (int r = live; r < R; ++r) d[r] = 0.f;
    }
    return;
  }
  // op(X)(i, p) = data[i * ld + p]: a transpose, in blocks of 16 k steps so
  // that the R source rows stay in L1 while their values are spread out.
  constexpr std::int64_t kBlock = 16;
  for (std::int64_t pb = 0; pb < kc; pb += kBlock) {
    const std::int64_t pe = std::min(kc, pb + kBlock);
    for (int r = 0; r < R; ++r) {
      if (r < live && x.cols) {
        const float* src = x.data + (i0 + r) * x.ld;
        for (std::int64_t p = pb; p < pe; ++p) dst[p * R + r] = src[x.cols[p0 + p]];
      } else if (r < live) {
        const float* src = x.data + (i0 + r) * x.ld + p0;
        for (std::int64_t p = pb; p < pe; ++p) dst[p * R + r] = src[p];
      } else {
        for (std::int64_t p = pb; p < pe; ++p) dst[p * R + r] = 0.f;
      }
    }
  }
}
inline void pack_by_rows(const Operand& x, std::int64_t i0, int live, std::int64_t p0, std::int64_t kc, int R,
                         std::int64_t stride, float* dst) {
  for (int r = 0; r < R; ++r) {
    float* d = dst + r * stride;
    if (r >= live) {
      std::fill_n(d, kc, 0.f);
    } else if (x.cols) {  // row-major: x.trans is false
      for (std::int64_t p = 0; p < kc; ++p) d[p] = x.data[(i0 + r) * x.ld + x.cols[p0 + p]];
    } else {
      std::copy_n(x.data + (i0 + r) * x.ld + p0, kc, d);
    }
  }
}

// C tile (rows x cols of an MR x NR tile) = alpha * acc + beta * C, where acc
// was stored to a row-major MR x NR buffer; beta == 0 never reads C.
inline void store_edge(const float* acc, int NR, int rows, int cols, float alpha, float beta, float* c,
                       std::int64_t ldc) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) {
      float v = alpha * acc[r * NR + j];
      c[r * ldc + j] = beta == 0.f ? v : v + beta * c[r * ldc + j];
    }
}

#if DML_GEMM_KERNELS

// One micro-kernel call: an MR x kc sliver of op(A) times a kc x NR sliver of
// op(B) into rows x cols of C. A's value (r, p) is a[p * a_step + r] or, with
// rows_a, a[r * K::kRowStride + p]; B's row p is the NR floats at b + p * b_step.
struct Sliver {
  const float* a;
  std::int64_t a_step;
  const float* b;
  std::int64_t b_step;
};

// The AVX-512 micro-kernel: C[0:rows, 0:cols] = alpha * A_sliver @ B_sliver + beta * C.
struct Avx512 {
  static constexpr int MR = 14, NR = 32;
  static constexpr std::int64_t KC = 256, MC = 14 * 24, NC = 2048;
  static constexpr std::int64_t kRowStride = KC + 16;  // 16 spare floats keep the rows off one cache set

  // B's sliver (NR columns of op(B)) when op(B)^T is row-major (a transposed B,
  // such as the convolution's weight): the transpose by gathers, 16 rows of
  // op(B)^T per instruction, instead of one value at a time. Whole slivers
  // whose row offsets fit in 32 bits; the rest goes to pack_by_columns.
  __attribute__((target("avx512f"))) static void pack_b(const Operand& bt, std::int64_t j0, int live,
                                                        std::int64_t p0, std::int64_t kc, float* dst) {
    if (bt.trans || live != NR || (NR - 1) * bt.ld > INT32_MAX) {
      pack_by_columns<NR>(bt, j0, live, p0, kc, dst);
      return;
    }
    const __m512i step = _mm512_set1_epi32(static_cast<int>(16 * bt.ld));
    const __m512i rows0 = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(static_cast<int>(bt.ld)));
    const __m512i rows1 = _mm512_add_epi32(rows0, step);
    const float* base = bt.data + j0 * bt.ld;
    for (std::int64_t p = 0; p < kc; ++p, dst += NR) {
      const float* col = base + bt.col(p0 + p);
      _mm512_store_ps(dst, _mm512_i32gather_ps(rows0, col, 4));
      _mm512_store_ps(dst + 16, _mm512_i32gather_ps(rows1, col, 4));
    }
  }

  template <bool rows_a>
  __attribute__((target("avx512f"))) static void tile(std::int64_t kc, Sliver s, float alpha, float beta, float* c,
                                                      std::int64_t ldc, int rows, int cols) {
    __m512 acc[MR][2];
DML_GEMM_UNROLL(GCC unroll 14)
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const float* a = s.a;
    const float* b = s.b;
    for (std::int64_t p = 0; p < kc; ++p, a += rows_a ? 1 : s.a_step, b += s.b_step) {
      const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
DML_GEMM_UNROLL(GCC unroll 14)
      for (int r = 0; r < MR; ++r) {
        const __m512 av = _mm512_set1_ps(a[rows_a ? r * kRowStride : r]);
        acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (rows == MR && cols == NR) {
DML_GEMM_UNROLL(GCC unroll 14)
      for (int r = 0; r < MR; ++r) {
        float* cr = c + r * ldc;
        __m512 v0 = _mm512_mul_ps(va, acc[r][0]), v1 = _mm512_mul_ps(va, acc[r][1]);
        if (beta != 0.f) {
          v0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr), v0);
          v1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr + 16), v1);
        }
        _mm512_storeu_ps(cr, v0);
        _mm512_storeu_ps(cr + 16, v1);
      }
      return;
    }
    alignas(64) float buf[MR * NR];
DML_GEMM_UNROLL(GCC unroll 14)
    for (int r = 0; r < MR; ++r) {
      _mm512_store_ps(buf + r * NR, acc[r][0]);
      _mm512_store_ps(buf + r * NR + 16, acc[r][1]);
    }
    store_edge(buf, NR, rows, cols, alpha, beta, c, ldc);
  }
};

// The AVX2 + FMA micro-kernel, same contract and the same loops as Avx512's in
// 256-bit intrinsics. A second body rather than a shared template: the target
// attribute cannot be a template parameter, and GCC will not inline one ISA's
// intrinsics into a body compiled for another.
struct Avx2 {
  static constexpr int MR = 6, NR = 16;
  static constexpr std::int64_t KC = 256, MC = 6 * 24, NC = 2048;
  static constexpr std::int64_t kRowStride = KC + 16;

  // B's sliver: pack_by_columns (AVX2 gathers are slow on some of its hosts).
  static void pack_b(const Operand& bt, std::int64_t j0, int live, std::int64_t p0, std::int64_t kc, float* dst) {
    pack_by_columns<NR>(bt, j0, live, p0, kc, dst);
  }

  template <bool rows_a>
  __attribute__((target("avx2,fma"))) static void tile(std::int64_t kc, Sliver s, float alpha, float beta, float* c,
                                                       std::int64_t ldc, int rows, int cols) {
    __m256 acc[MR][2];
DML_GEMM_UNROLL(GCC unroll 6)
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float* a = s.a;
    const float* b = s.b;
    for (std::int64_t p = 0; p < kc; ++p, a += rows_a ? 1 : s.a_step, b += s.b_step) {
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
DML_GEMM_UNROLL(GCC unroll 6)
      for (int r = 0; r < MR; ++r) {
        const __m256 av = _mm256_broadcast_ss(a + (rows_a ? r * kRowStride : r));
        acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
      }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (rows == MR && cols == NR) {
DML_GEMM_UNROLL(GCC unroll 6)
      for (int r = 0; r < MR; ++r) {
        float* cr = c + r * ldc;
        __m256 v0 = _mm256_mul_ps(va, acc[r][0]), v1 = _mm256_mul_ps(va, acc[r][1]);
        if (beta != 0.f) {
          v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), v0);
          v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), v1);
        }
        _mm256_storeu_ps(cr, v0);
        _mm256_storeu_ps(cr + 8, v1);
      }
      return;
    }
    alignas(32) float buf[MR * NR];
DML_GEMM_UNROLL(GCC unroll 6)
    for (int r = 0; r < MR; ++r) {
      _mm256_store_ps(buf + r * NR, acc[r][0]);
      _mm256_store_ps(buf + r * NR + 8, acc[r][1]);
    }
    store_edge(buf, NR, rows, cols, alpha, beta, c, ldc);
  }
};

// A grow-only, 64-byte aligned buffer of one thread (slot 0: packed A, 1: packed B).
inline float* thread_buffer(int slot, std::size_t count) {
  struct Buffer {
    float* data = nullptr;
    std::size_t size = 0;
    ~Buffer() { ::operator delete(data, std::align_val_t(64)); }
  };
  thread_local Buffer buffers[2];
  Buffer& b = buffers[slot];
  if (b.size < count) {
    ::operator delete(b.data, std::align_val_t(64));
    b.data = nullptr;
    b.data = static_cast<float*>(::operator new(count * sizeof(float), std::align_val_t(64)));
    b.size = count;
  }
  return b.data;
}

// Depth of each k block: k cut into equal blocks of at most K::KC, so a depth
// just above KC does not leave a thin last block.
template <class K>
std::int64_t depth_block(std::int64_t k) {
  const std::int64_t blocks = (k + K::KC - 1) / K::KC;
  return (k + blocks - 1) / blocks;
}

// C[i0:i1, j0:j1] = alpha * op(A) op(B) + beta * C on the calling thread.
//
// Both operands are packed: B into k-major slivers (kc x nc per panel), A
// into blocks of mc rows, by rows when A is row-major (one contiguous copy per
// row) and by columns when it is transposed (MR contiguous values per k step).
// Reading the operands in place is slower: a sliver's rows, ld apart, fall
// into a few L1 sets when ld is a multiple of a large power of two, and the
// sliver reused across the block no longer stays in L1 (measured in bench_gemm).
template <class K>
void gemm_block(std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1, std::int64_t k, float alpha,
                const Operand& a, const Operand& b, float beta, float* c, std::int64_t ldc) {
  const std::int64_t kcb = depth_block<K>(k);
  const bool rows_a = !a.trans;
  const std::int64_t a_sliver = rows_a ? K::MR * K::kRowStride : K::MR * kcb;
  float* pa = thread_buffer(0, static_cast<std::size_t>((K::MC / K::MR) * a_sliver));
  float* pb = thread_buffer(1, static_cast<std::size_t>(K::NC * kcb));
  const Operand bt{b.data, b.ld, !b.trans, b.cols};  // op(B)^T: op(B)'s columns as rows
  for (std::int64_t jc = j0; jc < j1; jc += K::NC) {
    const std::int64_t nc = std::min(K::NC, j1 - jc);
    for (std::int64_t pc = 0; pc < k; pc += kcb) {
      const std::int64_t kc = std::min(kcb, k - pc);
      const float beta_block = pc == 0 ? beta : 1.f;
      for (std::int64_t jr = 0; jr < nc; jr += K::NR)
        K::pack_b(bt, jc + jr, static_cast<int>(std::min<std::int64_t>(K::NR, nc - jr)), pc, kc, pb + jr * kc);
      for (std::int64_t ic = i0; ic < i1; ic += K::MC) {
        const std::int64_t mc = std::min(K::MC, i1 - ic);
        for (std::int64_t ir = 0; ir < mc; ir += K::MR) {
          const int live = static_cast<int>(std::min<std::int64_t>(K::MR, mc - ir));
          float* dst = pa + (ir / K::MR) * a_sliver;
          if (rows_a) pack_by_rows(a, ic + ir, live, pc, kc, K::MR, K::kRowStride, dst);
          else pack_by_columns<K::MR>(a, ic + ir, live, pc, kc, dst);
        }
        for (std::int64_t jr = 0; jr < nc; jr += K::NR) {
          const int cols = static_cast<int>(std::min<std::int64_t>(K::NR, nc - jr));
          const Sliver s0{nullptr, K::MR, pb + jr * kc, K::NR};
          for (std::int64_t ir = 0; ir < mc; ir += K::MR) {
            const int rows = static_cast<int>(std::min<std::int64_t>(K::MR, mc - ir));
            Sliver s = s0;
            s.a = pa + (ir / K::MR) * a_sliver;
            float* out = c + (ic + ir) * ldc + jc + jr;
            if (rows_a) K::template tile<true>(kc, s, alpha, beta_block, out, ldc, rows, cols);
            else K::template tile<false>(kc, s, alpha, beta_block, out, ldc, rows, cols);
          }
        }
      }
    }
  }
}

// Below this many multiply-adds a GEMM runs on one thread.
inline constexpr std::int64_t kParallelMacs = std::int64_t(1) << 18;

// C = alpha * op(A) op(B) + beta * C (m x n, depth k > 0), on all threads: one
// stripe of whole micro-tiles per thread, cut along C's longer side.
template <class K>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const Operand& a, const Operand& b, float beta,
          float* c, std::int64_t ldc) {
  const bool by_rows = m >= n;
  const std::int64_t tile = by_rows ? K::MR : K::NR, extent = by_rows ? m : n;
  const std::int64_t tiles = (extent + tile - 1) / tile;
  const std::int64_t cost = m * n * k >= kParallelMacs ? kParallelGrain : 1;  // parallel_ranges' threshold
  parallel_ranges(
      tiles,
      [&](std::int64_t lo, std::int64_t hi) {
        const std::int64_t s0 = lo * tile, s1 = std::min(extent, hi * tile);
        if (by_rows) gemm_block<K>(s0, s1, 0, n, k, alpha, a, b, beta, c, ldc);
        else gemm_block<K>(0, m, s0, s1, k, alpha, a, b, beta, c, ldc);
      },
      cost);
}

#endif  // DML_GEMM_KERNELS

// Whether Gemm's float GEMMs run on one of dml's kernels (not Eigen's).
inline bool active() { return DML_GEMM_KERNELS && chosen_isa() != Isa::eigen; }

// C = alpha * op(A) op(B) + beta * C (m x n, depth k > 0) with the chosen
// kernel; false when the chosen kernel is Eigen's (the caller runs it).
inline bool run(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const Operand& a, const Operand& b,
                float beta, float* c, std::int64_t ldc) {
#if DML_GEMM_KERNELS
  switch (chosen_isa()) {
    case Isa::avx512: gemm<Avx512>(m, n, k, alpha, a, b, beta, c, ldc); return true;
    case Isa::avx2: gemm<Avx2>(m, n, k, alpha, a, b, beta, c, ldc); return true;
    default: return false;
  }
#else
  (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)b, (void)beta, (void)c, (void)ldc;
  return false;
#endif
}

}  // namespace dml::cpu::gemm_kernel
