// Every Backend<Cuda> kernel against Backend<Cpu> on random data: elementwise,
// broadcast, reductions (and their run-to-run determinism), GEMM, row kernels.
// Skips without a GPU (fails under DML_REQUIRE_GPU=1).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_test.cuh"

using namespace dml;
using namespace dml_test;

namespace {

// ---- Backend<Cuda> vs Backend<Cpu>: elementwise ----------------------------------------------------

template <class F>
void check_map(const char* name, F f, const std::vector<float>& x, const std::vector<float>& g) {
  i64 n = static_cast<i64>(x.size());
  std::vector<float> y(x.size()), dx(x.size());
  CpuB::map(f, x.data(), y.data(), n);
  CpuB::map_backward(f, x.data(), y.data(), g.data(), dx.data(), n);
  auto dxv = dev(x), dyv = dev(y), dg = dev(g);
  auto gy = dev_empty<float>(n), gdx = dev_empty<float>(n);
  GpuB::map(f, dxv.data(), gy.data(), n);
  GpuB::map_backward(f, dxv.data(), dyv.data(), dg.data(), gdx.data(), n);
  all_close(gy.to_vector(), y, 1e-5, 1e-6, std::string("map ") + name);
  all_close(gdx.to_vector(), dx, 1e-5, 1e-6, std::string("map_backward ") + name);
}

template <class F>
void check_zip(const char* name, F f, const std::vector<double>& a, const std::vector<double>& b) {
  i64 n = static_cast<i64>(a.size());
  std::vector<double> out(a.size());
  CpuB::zip(f, a.data(), b.data(), out.data(), n);
  auto da = dev(a), db = dev(b);
  auto dout = dev_empty<double>(n);
  GpuB::zip(f, da.data(), db.data(), dout.data(), n);
  all_close(dout.to_vector(), out, 1e-14, 0, std::string("zip ") + name);
  // Float, and in place (out aliases a), as the engine's gradient accumulation does.
  std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), outf(a.size());
  CpuB::zip(f, af.data(), bf.data(), outf.data(), n);
  auto daf = dev(af), dbf = dev(bf);
  GpuB::zip(f, daf.data(), dbf.data(), daf.data(), n);
  all_close(daf.to_vector(), outf, 1e-6, 0, std::string("zip in place ") + name);
}

TEST_CASE("cuda backend: fill, map, map_backward, zip and zip3 match the CPU") {
  DML_GPU_OR_SKIP();
  const std::size_t n = (std::size_t(1) << 21) + 7;  // beyond one grid: exercises the grid-stride loop
  auto signed_x = random_vec<float>(n, 1, -3, 3);
  auto pos_x = random_vec<float>(n, 2, 0.1, 3);
  auto g = random_vec<float>(n, 3, -1, 1);
  check_map("neg", fn::Neg{}, signed_x, g);
  check_map("exp", fn::Exp{}, signed_x, g);
  check_map("log", fn::Log{}, pos_x, g);
  check_map("sqrt", fn::Sqrt{}, pos_x, g);
  check_map("square", fn::Square{}, signed_x, g);
  check_map("pow", fn::Pow{2.5}, pos_x, g);
  check_map("clamp", fn::Clamp{-0.5, 1.5}, signed_x, g);
  check_map("relu", fn::Relu{}, signed_x, g);
  check_map("sigmoid", fn::Sigmoid{}, signed_x, g);
  check_map("tanh", fn::Tanh{}, signed_x, g);
  check_map("affine", fn::Affine{-1.5, 0.25}, signed_x, g);

  auto a = random_vec<double>(10007, 4, -2, 2), b = random_vec<double>(10007, 5, 0.5, 2);
  check_zip("add", fn::Add{}, a, b);
  check_zip("sub", fn::Sub{}, a, b);
  check_zip("mul", fn::Mul{}, a, b);
  check_zip("div", fn::Div{}, a, b);

  auto c = random_vec<float>(999, 6, 0.5, 2), gg = random_vec<float>(999, 7), aa = random_vec<float>(999, 8);
  std::vector<float> want(999);
  CpuB::zip3(fn::DivGradB{}, gg.data(), aa.data(), c.data(), want.data(), 999);
  auto dg = dev(gg), da = dev(aa), dc = dev(c);
  auto dout = dev_empty<float>(999);
  GpuB::zip3(fn::DivGradB{}, dg.data(), da.data(), dc.data(), dout.data(), 999);
  all_close(dout.to_vector(), want, 1e-6, 0, "zip3 DivGradB");

  auto f = dev_empty<float>(70001);
  GpuB::fill(f.data(), 70001, 2.5f);
  CHECK(f.to_vector() == std::vector<float>(70001, 2.5f));
  auto fi = dev_empty<i64>(33);
  GpuB::fill(fi.data(), i64(33), i64(-4));
  CHECK(fi.to_vector() == std::vector<i64>(33, -4));
  GpuB::fill(f.data(), 0, 1.f);  // n == 0 launches nothing
}

TEST_CASE("cuda backend: broadcast_zip, reduce_to and transpose2d match the CPU") {
  DML_GPU_OR_SKIP();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {Shape{4, 1, 5}, Shape{3, 1}}, {Shape{6, 7}, Shape{7}}, {Shape{6, 7}, Shape{6, 1}},
      {Shape{}, Shape{2, 3}},        {Shape{2, 1, 3, 1}, Shape{1, 4, 1, 5}}, {Shape{300, 257}, Shape{1, 257}}};
  std::uint64_t seed = 100;
  for (const auto& [sa, sb] : cases) {
    Shape out = broadcast_shapes(sa, sb, "test");
    auto plan = dml::detail::make_broadcast_plan(out, sa, sb);
    auto a = random_vec<float>(sa.numel(), ++seed), b = random_vec<float>(sb.numel(), ++seed);
    std::vector<float> want(out.numel());
    CpuB::broadcast_zip(fn::Mul{}, plan, a.data(), b.data(), want.data());
    auto da = dev(a), db = dev(b);
    auto dout = dev_empty<float>(out.numel());
    GpuB::broadcast_zip(fn::Mul{}, plan, da.data(), db.data(), dout.data());
    all_equal(dout.to_vector(), want, "broadcast_zip " + sa.str() + " x " + sb.str());

    // The gradient of each operand: reduce the output-shaped gradient back.
    auto g = random_vec<float>(out.numel(), ++seed);
    auto dgrad = dev(g);
    for (const Shape& target : {sa, sb}) {
      auto rp = dml::detail::make_reduce_plan(out, target);
      std::vector<float> rwant(target.numel());
      CpuB::reduce_to(rp, g.data(), rwant.data(), target.numel());
      auto dr = dev_empty<float>(target.numel());
      GpuB::reduce_to(rp, dgrad.data(), dr.data(), target.numel());
      all_close(dr.to_vector(), rwant, 2e-5, 2e-5, "reduce_to " + out.str() + " -> " + target.str());
    }
  }
  // A long reduction into few targets (the block-per-target path) and one into many.
  for (const auto& [full, target] : std::vector<std::pair<Shape, Shape>>{{Shape{5000, 3}, Shape{3}},
                                                                         {Shape{40, 600}, Shape{40, 1}},
                                                                         {Shape{9000, 5}, Shape{9000, 1}}}) {
    auto rp = dml::detail::make_reduce_plan(full, target);
    auto x = random_vec<float>(full.numel(), ++seed);
    std::vector<float> want(target.numel());
    CpuB::reduce_to(rp, x.data(), want.data(), target.numel());
    auto dx = dev(x);
    auto dr = dev_empty<float>(target.numel());
    GpuB::reduce_to(rp, dx.data(), dr.data(), target.numel());
    all_close(dr.to_vector(), want, 1e-5, 1e-7 * static_cast<double>(rp.red_count) + 1e-6, "reduce_to " + full.str() + " -> " + target.str());
  }

  for (auto [rows, cols] : std::vector<std::pair<i64, i64>>{{37, 70}, {1, 1}, {64, 32}, {3, 1000}, {1025, 2}}) {
    auto x = random_vec<double>(rows * cols, ++seed);
    std::vector<double> want(x.size());
    CpuB::transpose2d(x.data(), want.data(), rows, cols);
    auto dx = dev(x);
    auto dy = dev_empty<double>(rows * cols);
    GpuB::transpose2d(dx.data(), dy.data(), rows, cols);
    all_equal(dy.to_vector(), want, "transpose2d " + std::to_string(rows) + "x" + std::to_string(cols));
  }
}

// ---- Backend<Cuda> vs Backend<Cpu>: reductions ------------------------------------------------------

template <class T>
void check_sum_all(i64 n, std::uint64_t seed) {
  auto x = random_vec<T>(static_cast<std::size_t>(n), seed, 0, 1);
  T want = T(0);
  CpuB::sum_all(x.data(), n, &want);
  double exact = 0;
  for (T v : x) exact += static_cast<double>(v);
  auto dx = dev(x);
  auto out = dev_empty<T>(1);
  GpuB::sum_all(dx.data(), n, out.data());
  T got = out.item();
  double tol = (sizeof(T) == 4 ? 2e-5 : 1e-12) * (exact + 1);
  INFO("sum_all n=", n, " got ", got, " cpu ", want, " exact ", exact);
  CHECK(std::fabs(static_cast<double>(got) - exact) <= tol);
  CHECK(std::fabs(static_cast<double>(got) - static_cast<double>(want)) <= tol);
  // Deterministic: the same input gives the same bits.
  for (int rep = 0; rep < 3; ++rep) {
    GpuB::sum_all(dx.data(), n, out.data());
    CHECK(out.item() == got);
  }
}

template <class T>
void check_sum_axis(i64 outer, i64 len, i64 inner, std::uint64_t seed) {
  auto x = random_vec<T>(static_cast<std::size_t>(outer * len * inner), seed);
  std::vector<T> want(static_cast<std::size_t>(outer * inner));
  T scale = T(0.5);
  CpuB::sum_axis(x.data(), want.data(), outer, len, inner, scale);
  auto dx = dev(x);
  auto out = dev_empty<T>(outer * inner);
  GpuB::sum_axis(dx.data(), out.data(), outer, len, inner, scale);
  std::string what = "sum_axis [" + std::to_string(outer) + ", " + std::to_string(len) + ", " +
                     std::to_string(inner) + "]";
  auto got = out.to_vector();
  double atol = (sizeof(T) == 4 ? 1e-7 : 1e-15) * static_cast<double>(len) + (sizeof(T) == 4 ? 1e-6 : 1e-15);
  all_close(got, want, sizeof(T) == 4 ? 1e-5 : 1e-12, atol, what);
  GpuB::sum_axis(dx.data(), out.data(), outer, len, inner, scale);
  all_equal(out.to_vector(), got, what + " (repeat)");

  // expand_axis, its reverse.
  auto g = random_vec<T>(static_cast<std::size_t>(outer * inner), seed + 1);
  std::vector<T> ewant(x.size());
  CpuB::expand_axis(g.data(), ewant.data(), outer, len, inner, scale);
  auto dg = dev(g);
  auto eout = dev_empty<T>(outer * len * inner);
  GpuB::expand_axis(dg.data(), eout.data(), outer, len, inner, scale);
  all_equal(eout.to_vector(), ewant, "expand_axis" + what.substr(8));
}

void check_max_axis(i64 outer, i64 len, i64 inner, std::uint64_t seed, bool with_nan = false) {
  // Values on a coarse grid so that ties are common.
  auto x = random_vec<float>(static_cast<std::size_t>(outer * len * inner), seed, 0, 8);
  for (auto& v : x) v = std::floor(v);
  if (with_nan) {
    x[0] = std::nanf("");                                            // row 0 starts with NaN: NaN wins
    if (outer > 1) x[static_cast<std::size_t>(len * inner + 3 * inner)] = std::nanf("");  // row 1: ignored
  }
  std::vector<float> want(static_cast<std::size_t>(outer * inner));
  std::vector<i64> want_arg(want.size());
  CpuB::max_axis(x.data(), want.data(), want_arg.data(), outer, len, inner);
  auto dx = dev(x);
  auto out = dev_empty<float>(outer * inner);
  auto arg = dev_empty<i64>(outer * inner);
  GpuB::max_axis(dx.data(), out.data(), arg.data(), outer, len, inner);
  std::string what = "max_axis [" + std::to_string(outer) + ", " + std::to_string(len) + ", " +
                     std::to_string(inner) + "]";
  all_equal(out.to_vector(), want, what);
  all_equal(arg.to_vector(), want_arg, what + " argmax");

  auto g = random_vec<float>(want.size(), seed + 1);
  std::vector<float> dwant(x.size());
  CpuB::max_axis_backward(g.data(), want_arg.data(), dwant.data(), outer, len, inner);
  auto dg = dev(g);
  auto dd = dev_empty<float>(outer * len * inner);
  GpuB::max_axis_backward(dg.data(), arg.data(), dd.data(), outer, len, inner);
  all_equal(dd.to_vector(), dwant, what + " backward");
}

TEST_CASE("cuda backend: sum_all is deterministic and matches the CPU") {
  DML_GPU_OR_SKIP();
  for (i64 n : {i64(0), i64(1), i64(31), i64(4096), i64(4097), i64(65537), i64(1000003), i64(5000000)})
    check_sum_all<float>(n, static_cast<std::uint64_t>(n) + 1);
  for (i64 n : {i64(3), i64(1000003)}) check_sum_all<double>(n, static_cast<std::uint64_t>(n) + 2);
}

TEST_CASE("cuda backend: sum_axis, expand_axis, max_axis and its backward match the CPU") {
  DML_GPU_OR_SKIP();
  check_sum_axis<float>(7, 5, 1, 1);        // warp per row
  check_sum_axis<float>(3, 5000, 1, 2);     // block per row
  check_sum_axis<float>(4, 37, 9, 3);       // thread per column
  check_sum_axis<float>(2, 3000, 3, 4);     // split column sums
  check_sum_axis<float>(1, 600, 8192, 5);   // many columns
  check_sum_axis<float>(5, 0, 3, 6);        // empty axis: zeros
  check_sum_axis<double>(6, 700, 2, 7);
  check_sum_axis<double>(300, 10, 1, 8);

  check_max_axis(6, 100, 1, 11);          // warp per row
  check_max_axis(6, 100, 1, 12, true);    // NaN semantics of the CPU scan
  check_max_axis(5, 20, 1, 13);           // short rows: the scan
  check_max_axis(4, 7, 3, 14);            // columns
  check_max_axis(4, 7, 3, 15, true);
  check_max_axis(1, 5000, 1, 16);
  check_max_axis(3, 1, 4, 17);
}

// ---- Backend<Cuda> vs Backend<Cpu>: gemm ------------------------------------------------------------

template <class T>
void check_gemm(bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, T beta, std::uint64_t seed) {
  i64 a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  i64 lda = a_cols + 3, ldb = b_cols + 2, ldc = n + 5;
  auto a = random_vec<T>(static_cast<std::size_t>(a_rows * lda), seed);
  auto b = random_vec<T>(static_cast<std::size_t>(b_rows * ldb), seed + 1);
  auto c = random_vec<T>(static_cast<std::size_t>(m * ldc), seed + 2);
  std::vector<T> want = c;
  CpuB::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, want.data(), ldc);
  auto da = dev(a), db = dev(b), dc = dev(c);
  GpuB::gemm(ta, tb, m, n, k, alpha, da.data(), lda, db.data(), ldb, beta, dc.data(), ldc);
  std::string what = std::string("gemm ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " m=" + std::to_string(m) +
                     " n=" + std::to_string(n) + " k=" + std::to_string(k) + " beta=" + std::to_string(beta);
  double eps = sizeof(T) == 4 ? 1e-6 : 1e-14;
  all_close(dc.to_vector(), want, 10 * eps, eps * static_cast<double>(k + 1) * 4, what);
}

TEST_CASE("cuda backend: gemm matches the CPU for every transpose, leading dimension and beta") {
  DML_GPU_OR_SKIP();
  std::uint64_t seed = 500;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_gemm<float>(ta, tb, 37, 29, 53, 1.5f, 0.f, seed += 3);
      check_gemm<float>(ta, tb, 37, 29, 53, 1.f, 0.5f, seed += 3);
      check_gemm<double>(ta, tb, 17, 40, 9, 1.f, 0.25, seed += 3);
    }
  check_gemm<float>(false, false, 128, 256, 512, 1.f, 0.f, seed += 3);
  check_gemm<float>(false, true, 5, 6, 0, 1.f, 0.5f, seed += 3);  // k == 0: C = beta C
  check_gemm<float>(true, false, 5, 6, 0, 1.f, 0.f, seed += 3);
  check_gemm<double>(false, false, 1, 1, 1, 2.0, 0.0, seed += 3);
}

// ---- Backend<Cuda> vs Backend<Cpu>: rows --------------------------------------------------------------

TEST_CASE("cuda backend: gather, scatter, l2_normalize, log_softmax and cross-entropy kernels match the CPU") {
  DML_GPU_OR_SKIP();
  for (auto [rows, cols] : std::vector<std::pair<i64, i64>>{{5, 3}, {64, 10}, {33, 100}, {7, 1000}, {1, 1}}) {
    std::string shape = " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    std::uint64_t seed = static_cast<std::uint64_t>(rows * 1000 + cols);
    auto x = random_vec<float>(static_cast<std::size_t>(rows * cols), seed, -3, 3);
    if (rows > 2)
      for (i64 c = 0; c < cols; ++c) x[static_cast<std::size_t>(cols + c)] = 0.f;  // a zero row: the eps branch
    auto labels = random_labels(static_cast<std::size_t>(rows), cols, seed + 1);
    auto g_rows = random_vec<float>(static_cast<std::size_t>(rows), seed + 2);
    auto g_full = random_vec<float>(x.size(), seed + 3);
    auto dx = dev(x), dgr = dev(g_rows), dgf = dev(g_full);
    auto dlab = dev(labels);
    std::size_t nx = x.size(), nr = static_cast<std::size_t>(rows);

    std::vector<float> want(nr), want_full(nx), norm(nr);
    CpuB::gather_cols(x.data(), labels.data(), want.data(), rows, cols);
    auto out = dev_empty<float>(rows);
    GpuB::gather_cols(dx.data(), dlab.data(), out.data(), rows, cols);
    all_equal(out.to_vector(), want, "gather_cols" + shape);

    CpuB::scatter_cols(g_rows.data(), labels.data(), want_full.data(), rows, cols);
    auto full = dev_empty<float>(rows * cols);
    GpuB::scatter_cols(dgr.data(), dlab.data(), full.data(), rows, cols);
    all_equal(full.to_vector(), want_full, "scatter_cols" + shape);

    const float eps = 1e-6f;
    CpuB::l2_normalize(x.data(), want_full.data(), norm.data(), rows, cols, eps);
    auto dnorm = dev_empty<float>(rows);
    GpuB::l2_normalize(dx.data(), full.data(), dnorm.data(), rows, cols, eps);
    all_close(full.to_vector(), want_full, 1e-5, 1e-6, "l2_normalize" + shape);
    all_close(dnorm.to_vector(), norm, 1e-5, 1e-6, "l2_normalize norms" + shape);
    std::vector<float> y = want_full, dwant(nx);
    auto dy = dev(y), dnorm_cpu = dev(norm);
    CpuB::l2_normalize_backward(g_full.data(), y.data(), norm.data(), dwant.data(), rows, cols, eps);
    auto dd = dev_empty<float>(rows * cols);
    GpuB::l2_normalize_backward(dgf.data(), dy.data(), dnorm_cpu.data(), dd.data(), rows, cols, eps);
    all_close(dd.to_vector(), dwant, 1e-5, 1e-5, "l2_normalize_backward" + shape);

    std::vector<float> logp(nx);
    CpuB::log_softmax(x.data(), logp.data(), rows, cols);
    GpuB::log_softmax(dx.data(), full.data(), rows, cols);
    all_close(full.to_vector(), logp, 1e-5, 1e-5, "log_softmax" + shape);
    auto dlogp = dev(logp);
    CpuB::log_softmax_backward(g_full.data(), logp.data(), dwant.data(), rows, cols);
    GpuB::log_softmax_backward(dgf.data(), dlogp.data(), dd.data(), rows, cols);
    all_close(dd.to_vector(), dwant, 1e-5, 1e-5, "log_softmax_backward" + shape);

    for (float smooth : {0.f, 0.1f}) {
      std::string what = shape + " eps=" + std::to_string(smooth);
      CpuB::nll_smoothed(logp.data(), labels.data(), want.data(), rows, cols, smooth);
      GpuB::nll_smoothed(dlogp.data(), dlab.data(), out.data(), rows, cols, smooth);
      all_close(out.to_vector(), want, 1e-5, 1e-5, "nll_smoothed" + what);
      float g0 = 0.75f;
      auto dg0 = dev(std::vector<float>{g0});
      CpuB::cross_entropy_backward(logp.data(), labels.data(), &g0, dwant.data(), rows, cols, smooth);
      GpuB::cross_entropy_backward(dlogp.data(), dlab.data(), dg0.data(), dd.data(), rows, cols, smooth);
      all_close(dd.to_vector(), dwant, 1e-5, 1e-6, "cross_entropy_backward" + what);
    }
  }
}

}  // namespace
