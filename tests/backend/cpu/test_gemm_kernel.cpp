// Tests for dml/backend/cpu/gemm_kernel.hpp: dml's AVX2 and AVX-512 float GEMM,
// each kernel the host runs against a double-precision loop, on shapes around
// the micro-tile and depth-block edges, all four transpose cases, alpha/beta,
// leading dimensions wider than the matrices, and any number of threads.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <dml/backend/cpu/gemm.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace test_gemm_kernel {

namespace gk = dml::cpu::gemm_kernel;

// The kernels of dml's own this host can run (none on other architectures).
std::vector<gk::Isa> own_kernels() {
  std::vector<gk::Isa> out;
  for (gk::Isa isa : {gk::Isa::avx2, gk::Isa::avx512})
    if (int(isa) <= int(gk::host_isa())) out.push_back(isa);
  return out;
}

// Restores the kernel choice when a test ends.
struct KernelGuard {
  gk::Isa saved = gk::chosen_isa();
  ~KernelGuard() { gk::use_isa(saved); }
};

// Values in [-1, 1) from a fixed linear congruential sequence.
std::vector<float> values(std::size_t count, std::uint32_t seed) {
  std::vector<float> v(count);
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = float(seed >> 8) / float(1u << 24) * 2.f - 1.f;
  }
  return v;
}

struct Case {
  std::int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;
  std::int64_t pad = 0;  // extra columns of every leading dimension
};

// Worst |C - reference| / (sum |terms| + |beta C|) of one GEMM with the chosen kernel.
double worst_error(const Case& t) {
  const std::int64_t lda = (t.ta ? t.m : t.k) + t.pad, ldb = (t.tb ? t.k : t.n) + t.pad, ldc = t.n + t.pad;
  const auto a = values(std::size_t((t.ta ? t.k : t.m) * lda), 1);
  const auto b = values(std::size_t((t.tb ? t.n : t.k) * ldb), 2);
  const auto c0 = values(std::size_t(t.m * ldc), 3);
  auto c = c0;
  dml::cpu::Gemm::gemm(t.ta, t.tb, t.m, t.n, t.k, t.alpha, a.data(), lda, b.data(), ldb, t.beta, c.data(), ldc);
  double worst = 0;
  for (std::int64_t i = 0; i < t.m; ++i) {
    for (std::int64_t j = 0; j < t.n; ++j) {
      double ref = 0, mag = 0;
      for (std::int64_t p = 0; p < t.k; ++p) {
        const double x = t.ta ? a[std::size_t(p * lda + i)] : a[std::size_t(i * lda + p)];
        const double y = t.tb ? b[std::size_t(j * ldb + p)] : b[std::size_t(p * ldb + j)];
        ref += x * y;
        mag += std::abs(x * y);
      }
      const double old = c0[std::size_t(i * ldc + j)];
      ref = t.alpha * ref + t.beta * old;
      mag = std::abs(t.alpha) * mag + std::abs(t.beta * old) + 1e-30;
      worst = std::max(worst, std::abs(double(c[std::size_t(i * ldc + j)]) - ref) / mag);
    }
    for (std::int64_t j = t.n; j < ldc; ++j)  // the padding columns of C are never written
      if (c[std::size_t(i * ldc + j)] != c0[std::size_t(i * ldc + j)]) return 1.0;
  }
  return worst;
}

TEST_CASE("gemm kernels: the host's choice is one it runs, and names itself") {
  const gk::Isa host = gk::host_isa();
  CHECK(int(gk::chosen_isa()) <= int(host));
  CHECK(std::string(gk::isa_name(host)).size() > 0);
#if defined(__AVX512F__)
  CHECK(host == gk::Isa::avx512);  // a -march=native build on an AVX-512 host
#elif defined(__AVX2__) && defined(__FMA__)
  CHECK(int(host) >= int(gk::Isa::avx2));
#endif
}

TEST_CASE("gemm kernels match a double loop around every tile and block edge") {
  KernelGuard guard;
  // m and n around MR (6, 14) and NR (16, 32) and their multiples; k around the
  // depth block (256) so that the second block is thin or the split uneven.
  const std::int64_t ms[] = {1, 5, 6, 7, 13, 14, 15, 29, 64};
  const std::int64_t ns[] = {1, 15, 16, 17, 31, 32, 33, 70};
  const std::int64_t ks[] = {1, 3, 255, 257, 530};
  for (gk::Isa isa : own_kernels()) {
    gk::use_isa(isa);
    CAPTURE(gk::isa_name(isa));
    for (std::int64_t m : ms)
      for (std::int64_t n : ns)
        for (std::int64_t k : ks) {
          const Case t{m, n, k, (m + k) % 2 == 0, (n + k) % 2 == 1, 1.f, 0.f};
          CAPTURE(m);
          CAPTURE(n);
          CAPTURE(k);
          REQUIRE(worst_error(t) < 1e-5);
        }
  }
}

TEST_CASE("gemm kernels: all transpose cases, alpha, beta and wide leading dimensions") {
  KernelGuard guard;
  for (gk::Isa isa : own_kernels()) {
    gk::use_isa(isa);
    CAPTURE(gk::isa_name(isa));
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.f, 1.f, -0.5f}) {
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(beta);
          CHECK(worst_error({67, 45, 131, ta, tb, 0.75f, beta, 0}) < 1e-5);
          CHECK(worst_error({40, 100, 300, ta, tb, -2.f, beta, 7}) < 1e-5);
          // Large enough to run on several threads, over two column panels (NC = 2048).
          CHECK(worst_error({30, 2100, 20, ta, tb, 1.f, beta, 3}) < 1e-5);
        }
  }
}

TEST_CASE("gemm kernels: beta = 0 overwrites C without reading it") {
  KernelGuard guard;
  for (gk::Isa isa : own_kernels()) {
    gk::use_isa(isa);
    CAPTURE(gk::isa_name(isa));
    const std::int64_t m = 20, n = 40, k = 9;
    const auto a = values(std::size_t(m * k), 4), b = values(std::size_t(k * n), 5);
    std::vector<float> c(std::size_t(m * n), std::numeric_limits<float>::quiet_NaN());
    dml::cpu::Gemm::gemm(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
    for (float v : c) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("gemm kernels give the same bits on one thread and on all of them") {
  KernelGuard guard;
  const std::int64_t m = 300, n = 200, k = 600;  // over the parallel threshold, both split directions
  const auto a = values(std::size_t(m * k), 6), b = values(std::size_t(k * m), 7);  // room for both shapes
  for (gk::Isa isa : own_kernels()) {
    gk::use_isa(isa);
    CAPTURE(gk::isa_name(isa));
    for (bool wide : {false, true}) {  // m >= n splits by rows; n > m by columns
      const std::int64_t rows = wide ? n : m, cols = wide ? m : n;
      std::vector<float> all(std::size_t(rows * cols)), one(std::size_t(rows * cols));
      dml::cpu::Gemm::gemm(false, false, rows, cols, k, 1.f, a.data(), k, b.data(), cols, 0.f, all.data(), cols);
#ifdef _OPENMP
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
#endif
      dml::cpu::Gemm::gemm(false, false, rows, cols, k, 1.f, a.data(), k, b.data(), cols, 0.f, one.data(), cols);
#ifdef _OPENMP
      omp_set_num_threads(threads);
#endif
      CHECK(all == one);
    }
  }
}

TEST_CASE("gemm kernels read an operand's columns through an offset table") {
  // Each operand in turn is a gather of a wider stored matrix (stored column
  // offsets[j] for logical column j, as the convolution reads a block's taps
  // from its weight); the result must equal the GEMM of the gathered copy.
  KernelGuard guard;
  const std::int64_t m = 37, n = 70, k = 300, wide = 3;  // stored rows are `wide` times longer
  for (gk::Isa isa : own_kernels()) {
    gk::use_isa(isa);
    CAPTURE(gk::isa_name(isa));
    for (int which = 0; which < 2; ++which)  // 0: A carries the table, 1: B does
      for (bool trans : {false, true}) {
        CAPTURE(which);
        CAPTURE(trans);
        // The operand with the table: logical rows x cols, stored rows x (cols * wide).
        const std::int64_t rows = which == 0 ? (trans ? k : m) : (trans ? n : k);
        const std::int64_t cols = which == 0 ? (trans ? m : k) : (trans ? k : n);
        std::vector<std::int64_t> offsets(static_cast<std::size_t>(cols));
        for (std::int64_t j = 0; j < cols; ++j) offsets[std::size_t(j)] = (j * 7) % cols * wide + j % wide;
        const auto stored = values(std::size_t(rows * cols * wide), 8);
        std::vector<float> dense(std::size_t(rows * cols));
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j)
            dense[std::size_t(i * cols + j)] = stored[std::size_t(i * cols * wide + offsets[std::size_t(j)])];
        const gk::Operand gathered{stored.data(), cols * wide, trans, offsets.data()}, plain{dense.data(), cols, trans};
        // The other operand, plain.
        const bool other_trans = !trans;
        const std::int64_t orows = which == 0 ? (other_trans ? n : k) : (other_trans ? k : m);
        const std::int64_t ocols = which == 0 ? (other_trans ? k : n) : (other_trans ? m : k);
        const auto other_values = values(std::size_t(orows * ocols), 9);
        const gk::Operand other{other_values.data(), ocols, other_trans};
        std::vector<float> got(std::size_t(m * n)), want(std::size_t(m * n));
        if (which == 0) {
          REQUIRE(gk::run(m, n, k, 1.f, gathered, other, 0.f, got.data(), n));
          REQUIRE(gk::run(m, n, k, 1.f, plain, other, 0.f, want.data(), n));
        } else {
          REQUIRE(gk::run(m, n, k, 1.f, other, gathered, 0.f, got.data(), n));
          REQUIRE(gk::run(m, n, k, 1.f, other, plain, 0.f, want.data(), n));
        }
        CHECK(got == want);
      }
  }
}

}  // namespace test_gemm_kernel
