// dml/backend/cpu/dot_rows.hpp: dot products of float rows, C = A * B^T, by a
// packed register-blocked kernel (Goto/BLIS layout) written with GCC vector
// extensions. The host's distance GEMM: eval's kNN, k-means and t-SNE's
// neighbour search all go through it (eval/knn.hpp, detail::knn_visit).
//
// Unlike Eigen's general GEMM (backend/cpu/gemm.hpp), every C entry is one FMA
// chain over k in order, whatever the tile, block or thread that computes it:
// equal rows give bit-identical dot products wherever they sit, and results do
// not depend on the thread count or the blocking. It is also faster than
// Eigen's for this shape (docs/performance.md).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

namespace dml::cpu {

namespace detail {
#if defined(__AVX512F__)
inline constexpr int kDotLanes = 16, kDotMr = 12;  // 24 of 32 zmm registers hold C
#elif defined(__AVX__)
inline constexpr int kDotLanes = 8, kDotMr = 6;    // 12 of 16 ymm registers
#else
inline constexpr int kDotLanes = 4, kDotMr = 6;    // 12 of 16 xmm registers
#endif
inline constexpr int kDotNr = 2 * kDotLanes;
inline constexpr std::int64_t kDotKc = 256, kDotMc = 120;
typedef float DotVec __attribute__((vector_size(kDotLanes * sizeof(float))));
typedef float DotVecU __attribute__((vector_size(kDotLanes * sizeof(float)), aligned(alignof(float))));

// Rows [0, rows) of x, columns [p0, p0 + kc), into panels of `width` rows
// stored k-major (panel[kk * width + r]); missing rows are zero.
inline void pack_panels(const float* x, std::int64_t ld, std::int64_t rows, std::int64_t p0, std::int64_t kc,
                        int width, float* out) {
  for (std::int64_t r0 = 0; r0 < rows; r0 += width, out += kc * width) {
    const std::int64_t h = std::min<std::int64_t>(width, rows - r0);
    for (std::int64_t r = 0; r < width; ++r) {
      const float* src = x + (r0 + r) * ld + p0;
      if (r < h)
        for (std::int64_t kk = 0; kk < kc; ++kk) out[kk * width + r] = src[kk];
      else
        for (std::int64_t kk = 0; kk < kc; ++kk) out[kk * width + r] = 0.0f;
    }
  }
}

// C[h x w] (+)= A (h x kc) * Bp (kc x kNr), h <= kMr, w <= kNr. A is packed
// (ap, kc x kMr k-major, lda unused) or, when kPackedA is false, read in place
// (rows ap + i * lda; rows past h repeat row h - 1, whose results are dropped).
// Both read the same values in the same order: the same FMA chains.
template <bool kPackedA>
inline void dot_micro_kernel(const float* __restrict ap, std::int64_t lda, const DotVec* __restrict bp,
                             std::int64_t kc, float* c, std::int64_t ldc, std::int64_t h, std::int64_t w,
                             bool accumulate) {
  DotVec acc0[kDotMr], acc1[kDotMr];
  for (int i = 0; i < kDotMr; ++i) acc0[i] = DotVec{}, acc1[i] = DotVec{};
  const float* rows[kDotMr];
  for (int i = 0; i < kDotMr; ++i) rows[i] = ap + std::min<std::int64_t>(i, h - 1) * lda;
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const DotVec b0 = bp[2 * kk], b1 = bp[2 * kk + 1];
    for (int i = 0; i < kDotMr; ++i) {
      const float a = kPackedA ? ap[kk * kDotMr + i] : rows[i][kk];
      acc0[i] += a * b0;
      acc1[i] += a * b1;
    }
  }
  if (h == kDotMr && w == kDotNr) {
    for (int i = 0; i < kDotMr; ++i) {
      DotVecU* d0 = reinterpret_cast<DotVecU*>(c + i * ldc);
      DotVecU* d1 = reinterpret_cast<DotVecU*>(c + i * ldc + kDotLanes);
      *d0 = accumulate ? *d0 + acc0[i] : acc0[i];
      *d1 = accumulate ? *d1 + acc1[i] : acc1[i];
    }
    return;
  }
  for (std::int64_t i = 0; i < h; ++i)
    for (std::int64_t j = 0; j < w; ++j) {
      const float v = j < kDotLanes ? acc0[i][j] : acc1[i][j - kDotLanes];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
    }
}
}  // namespace detail

// Scratch for dot_rows: packed B (up to n_max rows x kDotKc) and packed A
// (kDotMc x kDotKc). One per thread; reusable across calls with n <= n_max.
struct DotRowsWorkspace {
  std::unique_ptr<detail::DotVec[]> b, a;
  std::int64_t n_max = 0;
  explicit DotRowsWorkspace(std::int64_t n)
      : b(std::make_unique_for_overwrite<detail::DotVec[]>(
            static_cast<std::size_t>((n + detail::kDotNr - 1) / detail::kDotNr * detail::kDotKc * 2))),
        a(std::make_unique_for_overwrite<detail::DotVec[]>(static_cast<std::size_t>(
            ((detail::kDotMc + detail::kDotMr - 1) / detail::kDotMr * detail::kDotMr * detail::kDotKc +
             detail::kDotLanes - 1) /
            detail::kDotLanes))),
        n_max(n) {}
};

// C (m x n, row stride ldc) = A (m x k) * B (n x k)^T, A and B row-major and
// dense (row stride k), n <= ws.n_max. Runs on the calling thread.
inline void dot_rows(const float* a, std::int64_t m, const float* b, std::int64_t n, std::int64_t k, float* c,
                     std::int64_t ldc, DotRowsWorkspace& ws) {
  using namespace detail;
  const std::int64_t panels = (n + kDotNr - 1) / kDotNr;
  float* bpack = reinterpret_cast<float*>(ws.b.get());
  float* apack = reinterpret_cast<float*>(ws.a.get());
  for (std::int64_t p0 = 0; p0 < k; p0 += kDotKc) {
    const std::int64_t kc = std::min(kDotKc, k - p0);
    pack_panels(b, k, n, p0, kc, kDotNr, bpack);
    if (panels == 1) {
      // One panel of B (n <= kDotNr: k-means' centres): each row of A is used
      // once, so packing it would cost as much as the products. Read it in place.
      const DotVec* bp = reinterpret_cast<const DotVec*>(bpack);
      for (std::int64_t i = 0; i < m; i += kDotMr)
        dot_micro_kernel<false>(a + i * k + p0, k, bp, kc, c + i * ldc, ldc, std::min<std::int64_t>(kDotMr, m - i), n,
                                p0 > 0);
      continue;
    }
    for (std::int64_t i0 = 0; i0 < m; i0 += kDotMc) {
      const std::int64_t mc = std::min(kDotMc, m - i0);
      pack_panels(a + i0 * k, k, mc, p0, kc, kDotMr, apack);
      for (std::int64_t jp = 0; jp < panels; ++jp) {
        const DotVec* bp = reinterpret_cast<const DotVec*>(bpack + jp * kc * kDotNr);
        const std::int64_t w = std::min<std::int64_t>(kDotNr, n - jp * kDotNr);
        for (std::int64_t ip = 0; ip * kDotMr < mc; ++ip)
          dot_micro_kernel<true>(apack + ip * kc * kDotMr, 0, bp, kc, c + (i0 + ip * kDotMr) * ldc + jp * kDotNr,
                                 ldc, std::min<std::int64_t>(kDotMr, mc - ip * kDotMr), w, p0 > 0);
      }
    }
  }
}

}  // namespace dml::cpu
