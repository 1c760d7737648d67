// Backend<Cuda>'s network kernels (cuDNN convolution, pooling, batch norm,
// margins, the sub-centre and AdaCos heads, Center Loss, dropout, optimiser updates) against Backend<Cpu>, and
// their op front ends through the autograd. The device's own pooling gathers
// also run on the host, which needs no GPU; everything else skips without one.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_test.cuh"

// dml_cuda_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_cuda_nn {

using namespace dml;
using namespace dml_test;

namespace {

template <class Op>
void host_for_each(i64 n, const Op& op) {
  for (i64 i = 0; i < n; ++i) op(i);
}

std::string str(const Pool2dGeom& g) {
  return "[" + std::to_string(g.n) + "," + std::to_string(g.c) + "," + std::to_string(g.h) + "," +
         std::to_string(g.w) + "] k" + std::to_string(g.kh) + " s" + std::to_string(g.sh) + " p" + std::to_string(g.ph);
}
std::string str(const AdaptivePoolGeom& g) {
  return "[" + std::to_string(g.n) + "," + std::to_string(g.c) + "," + std::to_string(g.h) + "," +
         std::to_string(g.w) + "] -> " + std::to_string(g.ho) + "x" + std::to_string(g.wo) + " into " +
         std::to_string(g.y_channels) + " channels at " + std::to_string(g.y_offset);
}

// Overlapping windows (the ResNet stem's 3/2/1), exact tiling, stride 1, a global window.
std::vector<Pool2dGeom> pool_geoms() {
  return {Pool2dGeom::make(2, 3, 9, 7, 3, 3, 2, 2, 1, 1), Pool2dGeom::make(2, 2, 8, 8, 2, 2, 2, 2, 0, 0),
          Pool2dGeom::make(1, 2, 5, 6, 3, 3, 1, 1, 1, 1), Pool2dGeom::make(3, 1, 4, 4, 4, 4, 1, 1, 0, 0)};
}

// Cells that overlap (7 -> 3), a global cell, more cells than pixels (3 -> 5); each plain and as the
// second half of a concatenation (y_channels 2c, y_offset c).
std::vector<AdaptivePoolGeom> adaptive_geoms() {
  std::vector<AdaptivePoolGeom> out;
  for (auto [n, c, h, w, ho, wo] : std::vector<std::array<i64, 6>>{
           {2, 3, 7, 5, 3, 2}, {2, 2, 4, 4, 1, 1}, {1, 2, 3, 3, 5, 4}, {2, 4, 1, 1, 1, 1}}) {
    out.push_back(AdaptivePoolGeom{n, c, h, w, ho, wo, c, 0});
    out.push_back(AdaptivePoolGeom{n, c, h, w, ho, wo, 2 * c, c});
  }
  return out;
}

// Values on a coarse grid (many ties) with one NaN.
std::vector<float> pool_input(i64 n, std::uint64_t seed) {
  auto x = random_vec<float>(static_cast<std::size_t>(n), seed, -3, 3);
  for (auto& v : x) v = std::floor(v);
  if (n > 5) x[static_cast<std::size_t>(n / 3)] = std::nanf("");
  return x;
}

i64 numel(const Pool2dGeom& g, bool out) { return g.n * g.c * (out ? g.ho * g.wo : g.h * g.w); }

// The pooling backwards are the device's own algorithm (gathers per input element instead of the
// host's scatters), so the host runs their op structs here against the CPU backend. Every other
// device kernel runs a functor of backend/kernels/, which the CPU tests execute.
TEST_CASE("cuda nn kernels: the device's pooling gathers, run on the host, match the CPU's scatters") {
  namespace cd = cuda::detail;
  std::uint64_t seed = 1200;
  for (const Pool2dGeom& g : pool_geoms()) {
    const i64 in = numel(g, false), out = numel(g, true);
    auto x = pool_input(in, ++seed);
    std::vector<float> y(out);
    std::vector<i64> arg(out);
    CpuB::max_pool2d(g, x.data(), y.data(), arg.data());
    auto gy = random_vec<float>(static_cast<std::size_t>(out), ++seed);
    auto gxw = random_vec<float>(static_cast<std::size_t>(in), ++seed), gxg = gxw;  // the backward accumulates
    CpuB::max_pool2d_backward(g, gy.data(), arg.data(), gxw.data());
    host_for_each(in, cd::MaxPoolBackwardOp<float>{g, gy.data(), arg.data(), gxg.data()});
    all_equal(gxg, gxw, "MaxPoolBackwardOp " + str(g));
  }
  for (const AdaptivePoolGeom& g : adaptive_geoms()) {
    const i64 in = g.n * g.c * g.h * g.w, cells = g.n * g.c * g.ho * g.wo, ys = g.n * g.y_channels * g.ho * g.wo;
    auto x = pool_input(in, ++seed);
    std::vector<float> y(ys, 0.f);
    std::vector<i64> arg(cells);
    CpuB::adaptive_max_pool2d(g, x.data(), y.data(), arg.data());
    auto gy = random_vec<float>(static_cast<std::size_t>(ys), ++seed);
    auto gxw = random_vec<float>(static_cast<std::size_t>(in), ++seed), gxg = gxw;
    CpuB::adaptive_max_pool2d_backward(g, gy.data(), arg.data(), gxw.data());
    host_for_each(in, cd::AdaptiveMaxBackwardOp<float>{g, gy.data(), arg.data(), gxg.data()});
    all_equal(gxg, gxw, "AdaptiveMaxBackwardOp " + str(g));
    CpuB::adaptive_avg_pool2d_backward(g, gy.data(), gxw.data());
    host_for_each(in, cd::AdaptiveAvgBackwardOp<float>{g, gy.data(), gxg.data()});
    all_equal(gxg, gxw, "AdaptiveAvgBackwardOp " + str(g));
  }
}

// ---- convolution -------------------------------------------------------------------------------------

struct ConvCase {
  i64 n, c, h, w, o, k, s, p;
  bool bias;
  std::string str() const {
    return "[" + std::to_string(n) + "," + std::to_string(c) + "," + std::to_string(h) + "," + std::to_string(w) +
           "] * [" + std::to_string(o) + "," + std::to_string(c) + "," + std::to_string(k) + "," + std::to_string(k) +
           "] s" + std::to_string(s) + " p" + std::to_string(p) + (bias ? " +bias" : "");
  }
};

// The ResNet18 shapes at 28x28 (stem, 3x3 blocks, strided 3x3, 1x1 downsample, a 1x1 map that is
// mostly padding) and odd sizes.
const std::vector<ConvCase> kConvCases = {
    {4, 1, 28, 28, 8, 7, 2, 3, true}, {4, 8, 7, 7, 8, 3, 1, 1, false}, {4, 8, 7, 7, 16, 3, 2, 1, true},
    {4, 8, 7, 7, 16, 1, 2, 0, false}, {2, 16, 1, 1, 16, 3, 1, 1, false}, {3, 5, 9, 6, 7, 3, 2, 0, true},
};

template <class T>
void check_conv(const ConvCase& cc, double tol, std::uint64_t seed) {
  const Conv2dGeom g = Conv2dGeom::make(cc.n, cc.c, cc.h, cc.w, cc.o, cc.k, cc.k, cc.s, cc.s, cc.p, cc.p);
  const i64 nx = g.n * g.c * g.h * g.w, nw = g.o * g.c * g.kh * g.kw, ny = g.n * g.o * g.ho * g.wo;
  auto x = random_vec<T>(nx, seed), w = random_vec<T>(nw, seed + 1), b = random_vec<T>(g.o, seed + 2),
       gy = random_vec<T>(ny, seed + 3);
  std::vector<T> y(ny), gx(nx), gw(nw), gb(g.o);
  const T* bias = cc.bias ? b.data() : nullptr;
  CpuB::conv2d_forward(g, x.data(), w.data(), bias, y.data());
  CpuB::conv2d_backward(g, gy.data(), x.data(), w.data(), gx.data(), gw.data(), gb.data());

  auto dx = dev(x), dw = dev(w), db = dev(b), dgy = dev(gy);
  auto dy = dev_empty<T>(ny), dgx = dev_empty<T>(nx), dgw = dev_empty<T>(nw), dgb = dev_empty<T>(g.o);
  GpuB::conv2d_forward(g, dx.data(), dw.data(), cc.bias ? db.data() : nullptr, dy.data());
  GpuB::conv2d_backward(g, dgy.data(), dx.data(), dw.data(), dgx.data(), dgw.data(), dgb.data());
  const std::string name = cc.str() + (sizeof(T) == 4 ? " float" : " double");
  close_rel(dy.to_vector(), y, tol, "conv2d_forward " + name);
  close_rel(dgx.to_vector(), gx, tol, "conv2d_backward gx " + name);
  close_rel(dgw.to_vector(), gw, tol, "conv2d_backward gw " + name);
  close_rel(dgb.to_vector(), gb, tol, "conv2d_backward gbias " + name);
  // Only the weight gradient (as for the stem, whose input needs none).
  auto dgw2 = dev_empty<T>(nw);
  GpuB::conv2d_backward(g, dgy.data(), dx.data(), dw.data(), static_cast<T*>(nullptr), dgw2.data(),
                        static_cast<T*>(nullptr));
  close_rel(dgw2.to_vector(), gw, tol, "conv2d_backward gw alone " + name);
}

struct DeterministicConv {
  DeterministicConv() { cuda::set_conv_deterministic(true); }
  ~DeterministicConv() { cuda::set_conv_deterministic(false); }
};

TEST_CASE("cuda nn kernels: cuDNN conv2d forward and backward match the CPU in float and double") {
  DML_GPU_OR_SKIP();
  std::uint64_t seed = 1500;
  for (const ConvCase& cc : kConvCases) {
    check_conv<float>(cc, 1e-4, seed += 10);  // Winograd / FFT algorithms round differently from a direct sum
    check_conv<double>(cc, 1e-10, seed += 10);
  }
}

TEST_CASE("cuda nn kernels: deterministic conv2d gives the same bits on every run") {
  DML_GPU_OR_SKIP();
  DeterministicConv on;
  CHECK(cuda::conv_deterministic());
  const Conv2dGeom g = Conv2dGeom::make(6, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1);  // a shape no other test plans
  const i64 nx = g.n * g.c * g.h * g.w, nw = g.o * g.c * g.kh * g.kw, ny = g.n * g.o * g.ho * g.wo;
  auto x = dev(random_vec<float>(nx, 1)), w = dev(random_vec<float>(nw, 2)), gy = dev(random_vec<float>(ny, 3));
  std::vector<std::vector<float>> runs[2];
  for (auto& r : runs) {
    auto y = dev_empty<float>(ny), gx = dev_empty<float>(nx), gw = dev_empty<float>(nw);
    GpuB::conv2d_forward(g, x.data(), w.data(), static_cast<const float*>(nullptr), y.data());
    GpuB::conv2d_backward(g, gy.data(), x.data(), w.data(), gx.data(), gw.data(), static_cast<float*>(nullptr));
    r = {y.to_vector(), gx.to_vector(), gw.to_vector()};
  }
  all_equal(runs[1][0], runs[0][0], "deterministic forward");
  all_equal(runs[1][1], runs[0][1], "deterministic backward data");
  all_equal(runs[1][2], runs[0][2], "deterministic backward filter");
}

// ---- pooling, batch norm -----------------------------------------------------------------------------

TEST_CASE("cuda nn kernels: max and adaptive pooling match the CPU bit for bit") {
  DML_GPU_OR_SKIP();
  std::uint64_t seed = 1700;
  for (const Pool2dGeom& g : pool_geoms()) {
    const i64 in = numel(g, false), out = numel(g, true);
    auto x = pool_input(in, ++seed), gy = random_vec<float>(out, ++seed), gx = random_vec<float>(in, ++seed);
    std::vector<float> y(out);
    std::vector<i64> arg(out);
    CpuB::max_pool2d(g, x.data(), y.data(), arg.data());
    auto dx = dev(x), dgy = dev(gy), dgx = dev(gx);
    auto dy = dev_empty<float>(out);
    auto darg = dev_empty<i64>(out);
    GpuB::max_pool2d(g, dx.data(), dy.data(), darg.data());
    CpuB::max_pool2d_backward(g, gy.data(), arg.data(), gx.data());
    GpuB::max_pool2d_backward(g, dgy.data(), darg.data(), dgx.data());
    all_equal(dy.to_vector(), y, "max_pool2d " + str(g));
    all_equal(darg.to_vector(), arg, "max_pool2d argmax " + str(g));
    all_equal(dgx.to_vector(), gx, "max_pool2d_backward " + str(g));
  }
  for (const AdaptivePoolGeom& g : adaptive_geoms()) {
    const i64 in = g.n * g.c * g.h * g.w, cells = g.n * g.c * g.ho * g.wo, ys = g.n * g.y_channels * g.ho * g.wo;
    auto x = pool_input(in, ++seed), gy = random_vec<float>(ys, ++seed), gx = random_vec<float>(in, ++seed);
    std::vector<float> ymax(ys, 0.f), yavg(ys, 0.f);
    std::vector<i64> arg(cells);
    CpuB::adaptive_max_pool2d(g, x.data(), ymax.data(), arg.data());
    CpuB::adaptive_avg_pool2d(g, x.data(), yavg.data());
    auto dx = dev(x), dgy = dev(gy), dgx = dev(gx);
    auto dmax = dev(std::vector<float>(ys, 0.f)), davg = dev(std::vector<float>(ys, 0.f));
    auto darg = dev_empty<i64>(cells);
    GpuB::adaptive_max_pool2d(g, dx.data(), dmax.data(), darg.data());
    GpuB::adaptive_avg_pool2d(g, dx.data(), davg.data());
    all_equal(dmax.to_vector(), ymax, "adaptive_max_pool2d " + str(g));
    all_equal(darg.to_vector(), arg, "adaptive_max_pool2d argmax " + str(g));
    all_equal(davg.to_vector(), yavg, "adaptive_avg_pool2d " + str(g));
    CpuB::adaptive_max_pool2d_backward(g, gy.data(), arg.data(), gx.data());
    CpuB::adaptive_avg_pool2d_backward(g, gy.data(), gx.data());
    GpuB::adaptive_max_pool2d_backward(g, dgy.data(), darg.data(), dgx.data());
    GpuB::adaptive_avg_pool2d_backward(g, dgy.data(), dgx.data());
    all_equal(dgx.to_vector(), gx, "adaptive max + avg backward " + str(g));
  }
}

TEST_CASE("cuda nn kernels: batch norm train, eval and backward match the CPU, running statistics included") {
  DML_GPU_OR_SKIP();
  std::uint64_t seed = 1900;
  for (auto [n, c, s] : std::vector<std::array<i64, 3>>{{4, 3, 50}, {6, 5, 1}, {2, 4, 3000}}) {
    for (bool affine : {true, false}) {
      const std::string name = "[" + std::to_string(n) + "," + std::to_string(c) + "," + std::to_string(s) + "]" +
                               (affine ? " affine" : "");
      const i64 m = n * c * s;
      auto x = random_vec<float>(m, ++seed, -1, 3), gy = random_vec<float>(m, ++seed);
      auto gamma = random_vec<float>(c, ++seed, 0.5, 1.5), beta = random_vec<float>(c, ++seed);
      auto rm = random_vec<float>(c, ++seed), rv = random_vec<float>(c, ++seed, 0.5, 2);
      const float* gp = affine ? gamma.data() : nullptr;
      const float* bp = affine ? beta.data() : nullptr;
      auto dx = dev(x), dgy = dev(gy), dgamma = dev(gamma), dbeta = dev(beta), drm = dev(rm), drv = dev(rv);
      const float* dgp = affine ? dgamma.data() : nullptr;
      const float* dbp = affine ? dbeta.data() : nullptr;
      for (bool train : {true, false}) {
        const std::string what = name + (train ? " train" : " eval");
        std::vector<float> y(m), mean(c), invstd(c), gx(m), gg(c), gb(c);
        auto dy = dev_empty<float>(m), dmean = dev_empty<float>(c), dinv = dev_empty<float>(c);
        if (train) {
          CpuB::batch_norm_train(x.data(), gp, bp, y.data(), mean.data(), invstd.data(), rm.data(), rv.data(), n, c, s,
                                 0.1, 1e-5);
          GpuB::batch_norm_train(dx.data(), dgp, dbp, dy.data(), dmean.data(), dinv.data(), drm.data(), drv.data(), n,
                                 c, s, 0.1, 1e-5);
          close_rel(drm.to_vector(), rm, 1e-6, "running_mean " + what);
          close_rel(drv.to_vector(), rv, 1e-6, "running_var " + what);
        } else {
          CpuB::batch_norm_eval(x.data(), gp, bp, rm.data(), rv.data(), y.data(), mean.data(), invstd.data(), n, c, s,
                                1e-5);
          GpuB::batch_norm_eval(dx.data(), dgp, dbp, drm.data(), drv.data(), dy.data(), dmean.data(), dinv.data(), n,
                                c, s, 1e-5);
        }
        close_rel(dy.to_vector(), y, 1e-6, "batch norm y " + what);
        close_rel(dmean.to_vector(), mean, 1e-6, "batch norm mean " + what);
        close_rel(dinv.to_vector(), invstd, 1e-6, "batch norm invstd " + what);
        // The backward from the CPU's statistics, so both sides start from the same saved values.
        auto cmean = dev(mean), cinv = dev(invstd);
        auto dgx = dev_empty<float>(m), dgg = dev_empty<float>(c), dgb = dev_empty<float>(c);
        CpuB::batch_norm_backward(gy.data(), x.data(), gp, mean.data(), invstd.data(), gx.data(), gg.data(),
                                  gb.data(), n, c, s, train);
        GpuB::batch_norm_backward(dgy.data(), dx.data(), dgp, cmean.data(), cinv.data(), dgx.data(), dgg.data(),
                                  dgb.data(), n, c, s, train);
        close_rel(dgx.to_vector(), gx, 1e-5, "batch norm gx " + what);
        close_rel(dgg.to_vector(), gg, 1e-5, "batch norm ggamma " + what);
        close_rel(dgb.to_vector(), gb, 1e-5, "batch norm gbeta " + what);
        // Only the parameter gradients.
        GpuB::batch_norm_backward(dgy.data(), dx.data(), dgp, cmean.data(), cinv.data(), static_cast<float*>(nullptr),
                                  dgg.data(), static_cast<float*>(nullptr), n, c, s, train);
        close_rel(dgg.to_vector(), gg, 1e-5, "batch norm ggamma alone " + what);
      }
    }
  }
}

// ---- margins, centers, dropout, optimisers -----------------------------------------------------------

template <class P>
void check_margin(const P& p, const std::string& name, std::uint64_t seed) {
  const i64 rows = 33, cols = 10;
  auto cos = random_vec<float>(rows * cols, seed, -0.95, 0.95), g = random_vec<float>(rows * cols, seed + 1);
  auto labels = random_labels(rows, cols, seed + 2);
  std::vector<float> out(cos.size()), dcos(cos.size());
  CpuB::margin_forward(p, cos.data(), labels.data(), out.data(), rows, cols);
  CpuB::margin_backward(p, cos.data(), labels.data(), g.data(), dcos.data(), rows, cols);
  auto dc = dev(cos), dg = dev(g);
  auto dl = dev(labels);
  auto dout = dev_empty<float>(rows * cols), ddcos = dev_empty<float>(rows * cols);
  GpuB::margin_forward(p, dc.data(), dl.data(), dout.data(), rows, cols);
  GpuB::margin_backward(p, dc.data(), dl.data(), dg.data(), ddcos.data(), rows, cols);
  all_close(dout.to_vector(), out, 1e-5, 1e-6, "margin_forward " + name);
  all_close(ddcos.to_vector(), dcos, 1e-5, 1e-6, "margin_backward " + name);
}

TEST_CASE("cuda nn kernels: margins, gather_rows and the center update match the CPU") {
  DML_GPU_OR_SKIP();
  check_margin(heads::Arc{.s = 30, .m = 0.5}, "Arc", 2100);
  check_margin(heads::Arc{.s = 30, .m = 0.5, .easy_margin = true}, "Arc easy margin", 2110);
  check_margin(heads::Cos{.s = 30, .m = 0.35}, "Cos", 2120);
  check_margin(heads::Sphere{}.at_iteration(40), "Sphere", 2130);
  check_margin(heads::Combined{.s = 64, .m1 = 1, .m2 = 0.3, .m3 = 0.2}, "Combined", 2140);

  const i64 classes = 7, dim = 33, rows = 50;
  auto table = random_vec<double>(classes * dim, 2150), x = random_vec<double>(rows * dim, 2151);
  auto labels = random_labels(rows, classes - 1, 2152);  // the last class never appears
  std::vector<double> got(rows * dim);
  CpuB::gather_rows(table.data(), labels.data(), got.data(), rows, dim);
  auto dtable = dev(table), dx = dev(x);
  auto dl = dev(labels);
  auto dgot = dev_empty<double>(rows * dim);
  GpuB::gather_rows(dtable.data(), dl.data(), dgot.data(), rows, dim);
  all_equal(dgot.to_vector(), got, "gather_rows");
  CpuB::center_update(table.data(), x.data(), labels.data(), rows, dim, classes, 0.5);
  GpuB::center_update(dtable.data(), dx.data(), dl.data(), rows, dim, classes, 0.5);
  all_close(dtable.to_vector(), table, 1e-14, 1e-15, "center_update");
}

// One training step of a head on device D, then an inference call: the
// training logits, the gradients of embedding and weight, the policy's scale
// after the step and the inference logits.
template <class P, class D>
std::vector<std::vector<float>> head_step(const P& policy, const std::vector<float>& x, const std::vector<i64>& labels,
                                          i64 dim, i64 classes) {
  heads::MarginHead<P, float, D> head(dim, classes, policy, 31);
  const i64 n = static_cast<i64>(labels.size());
  auto emb = Tensor<float, D>::from_vector(x, Shape{n, dim}).requires_grad_();
  Tensor<float, D> logits = head(emb, Tensor<i64, D>::from_vector(labels));
  ops::sum(logits * logits).backward();
  const float scale = static_cast<float>(head.policy().scale());
  std::vector<float> plain;
  {
    NoGrad ng;
    plain = head(emb).to_vector();
  }
  return {logits.to_vector(), emb.grad().to_vector(), head.weight().grad().to_vector(), {scale}, plain};
}

template <class P>
void check_head(const P& policy, const std::string& name, i64 classes, std::uint64_t seed) {
  const i64 n = 24, dim = 16;
  auto x = random_vec<float>(static_cast<std::size_t>(n * dim), seed);
  auto labels = random_labels(static_cast<std::size_t>(n), classes, seed + 1);
  auto cpu = head_step<P, Cpu>(policy, x, labels, dim, classes);
  auto gpu = head_step<P, Cuda>(policy, x, labels, dim, classes);
  const char* what[] = {": training logits", ": d emb", ": d weight", ": scale after the step", ": inference logits"};
  for (std::size_t i = 0; i < cpu.size(); ++i) close_rel(gpu[i], cpu[i], 1e-5, name + what[i]);
}

TEST_CASE("cuda heads: sub-centre ArcFace and AdaCos (its scale update) match the CPU") {
  DML_GPU_OR_SKIP();
  // The AdaCos statistics kernel on its own, in double.
  const i64 rows = 37, cols = 11;
  auto cos = random_vec<double>(rows * cols, 2170, -0.99, 0.99);
  auto labels = random_labels(rows, cols, 2171);
  std::vector<double> b(rows), theta(rows);
  CpuB::adacos_row_stats(cos.data(), labels.data(), 3.2, b.data(), theta.data(), rows, cols);
  auto dc = dev(cos);
  auto dl = dev(labels);
  auto db = dev_empty<double>(rows), dt = dev_empty<double>(rows);
  GpuB::adacos_row_stats(dc.data(), dl.data(), 3.2, db.data(), dt.data(), rows, cols);
  all_close(db.to_vector(), b, 1e-13, 1e-14, "adacos_row_stats b");
  all_close(dt.to_vector(), theta, 1e-13, 1e-14, "adacos_row_stats theta");
  // Whole heads through the autograd.
  check_head(heads::SubCenter<heads::Arc>{.margin = {.s = 30, .m = 0.5}, .k = 3}, "SubCenter<Arc>", 7, 2180);
  check_head(heads::SubCenter<heads::Cos>{.margin = {.s = 16, .m = 0.35}, .k = 2}, "SubCenter<Cos>", 5, 2190);
  check_head(heads::AdaCos{}, "AdaCos", 10, 2200);
  check_head(heads::AdaCos{.dynamic = false}, "AdaCos fixed", 10, 2210);
}

TEST_CASE("cuda nn kernels: dropout masks equal the CPU's bit for bit; fused SGD and Adam match the CPU") {
  DML_GPU_OR_SKIP();
  for (i64 n : {i64(1), i64(4), i64(1001), i64(1) << 20}) {
    const DropoutMask d{77, 12345, 0.3f};
    std::vector<float> mf(n);
    std::vector<double> md(n);
    CpuB::dropout_mask(d, 1.f / 0.7f, mf.data(), n);
    CpuB::dropout_mask(d, 1.0 / 0.7, md.data(), n);
    auto gf = dev_empty<float>(n);
    auto gd = dev_empty<double>(n);
    GpuB::dropout_mask(d, 1.f / 0.7f, gf.data(), n);
    GpuB::dropout_mask(d, 1.0 / 0.7, gd.data(), n);
    all_equal(gf.to_vector(), mf, "dropout_mask float n=" + std::to_string(n));
    all_equal(gd.to_vector(), md, "dropout_mask double n=" + std::to_string(n));
  }

  const i64 n = 5000;
  auto p = random_vec<float>(n, 2200), g = random_vec<float>(n, 2201);
  std::vector<float> buf(n), m(n, 0.f), v(n, 0.f);
  auto dp = dev(p), dg = dev(g), dbuf = dev_empty<float>(n), dm = dev(m), dv = dev(v);
  for (bool first : {true, false}) {
    kernels::SgdUpdate<float> cpu{p.data(), g.data(), buf.data(), 0.1f, 1e-4f, 0.9f, 1.f, true, first};
    kernels::SgdUpdate<float> gpu{dp.data(), dg.data(), dbuf.data(), 0.1f, 1e-4f, 0.9f, 1.f, true, first};
    CpuB::optim_update(cpu, n);
    GpuB::optim_update(gpu, n);
  }
  all_close(dp.to_vector(), p, 1e-6, 1e-7, "SGD (Nesterov) parameters");
  all_close(dbuf.to_vector(), buf, 1e-6, 1e-7, "SGD momentum buffer");
  for (int t = 1; t <= 2; ++t) {  // AdamW: decoupled decay
    const float step_size = 1e-3f / (1 - std::pow(0.9f, float(t))), bc2 = std::sqrt(1 - std::pow(0.999f, float(t)));
    kernels::AdamUpdate<float> cpu{p.data(), g.data(), m.data(), v.data(), 1 - 1e-5f, 0.f, 0.9f, 0.1f, 0.999f, 1e-3f,
                              step_size, bc2, 1e-8f};
    kernels::AdamUpdate<float> gpu{dp.data(), dg.data(), dm.data(), dv.data(), 1 - 1e-5f, 0.f, 0.9f, 0.1f, 0.999f, 1e-3f,
                              step_size, bc2, 1e-8f};
    CpuB::optim_update(cpu, n);
    GpuB::optim_update(gpu, n);
  }
  all_close(dp.to_vector(), p, 1e-6, 1e-7, "AdamW parameters");
  all_close(dm.to_vector(), m, 1e-6, 1e-8, "AdamW first moment");
  all_close(dv.to_vector(), v, 1e-6, 1e-10, "AdamW second moment");
}

// ---- op front ends: forward + backward through the autograd, Cuda vs Cpu -----------------------------

struct Input {
  Shape shape;
  double lo = -1, hi = 1;
};

template <class D, class Fn>
std::vector<std::vector<float>> run_op(Fn& fn, const std::vector<Input>& inputs, std::uint64_t seed) {
  std::vector<Tensor<float, D>> leaves;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto v = random_vec<float>(static_cast<std::size_t>(inputs[i].shape.numel()), seed + i, inputs[i].lo,
                               inputs[i].hi);
    leaves.push_back(Tensor<float, D>::from_vector(v, inputs[i].shape).requires_grad_());
  }
  Tensor<float, D> out = fn(leaves);
  auto g = random_vec<float>(static_cast<std::size_t>(out.numel()), seed + 99);
  out.backward(Tensor<float, D>::from_vector(g, out.shape()));
  std::vector<std::vector<float>> result{out.to_vector()};
  for (auto& leaf : leaves) result.push_back(leaf.grad().defined() ? leaf.grad().to_vector() : std::vector<float>{});
  return result;
}

template <class Fn>
void parity(const std::string& name, Fn fn, const std::vector<Input>& inputs, double tol = 1e-5) {
  std::uint64_t seed = std::hash<std::string>{}(name);
  auto cpu = run_op<Cpu>(fn, inputs, seed);
  auto gpu = run_op<Cuda>(fn, inputs, seed);
  close_rel(gpu[0], cpu[0], tol, name + ": forward");
  for (std::size_t i = 1; i < cpu.size(); ++i)
    close_rel(gpu[i], cpu[i], tol, name + ": gradient of input " + std::to_string(i - 1));
}

template <class Ts>
using DeviceOf = typename std::decay_t<Ts>::value_type::device_type;

template <class Ts>
Tensor<i64, DeviceOf<Ts>> labels_on(const Ts&, std::size_t n, i64 classes, std::uint64_t seed) {
  return Tensor<i64, DeviceOf<Ts>>::from_vector(random_labels(n, classes, seed));
}

TEST_CASE("cuda nn ops: conv2d, pooling, batch_norm, dropout and apply_margin match the CPU forward and backward") {
  DML_GPU_OR_SKIP();
  const Input img{Shape{2, 3, 9, 9}}, w{Shape{4, 3, 3, 3}}, b{Shape{4}}, odd{Shape{2, 3, 7, 5}};
  parity("conv2d", [](auto& in) { return ops::conv2d(in[0], in[1], in[2], {.stride = 2, .padding = 1}); },
         {img, w, b}, 1e-4);
  parity("conv2d 1x1", [](auto& in) { return ops::conv2d(in[0], in[1]); }, {img, Input{Shape{5, 3, 1, 1}}}, 1e-4);
  parity("max_pool2d", [](auto& in) { return ops::max_pool2d(in[0], 3, 2, 1); }, {img});
  parity("adaptive_avg_pool2d", [](auto& in) { return ops::adaptive_avg_pool2d(in[0], 3, 2); }, {odd});
  parity("adaptive_max_pool2d", [](auto& in) { return ops::adaptive_max_pool2d(in[0], 2); }, {odd});
  parity("adaptive_concat_pool2d", [](auto& in) { return ops::adaptive_concat_pool2d(in[0], 1); }, {odd});
  parity("batch_norm train",
         [](auto& in) { return ops::batch_norm(in[0], in[1], in[2], {}, {}, {.training = true}); },
         {Input{Shape{4, 3, 5, 5}, -1, 3}, Input{Shape{3}, 0.5, 1.5}, Input{Shape{3}}});
  parity("batch_norm 1d", [](auto& in) { return ops::batch_norm(in[0], in[1], in[2], {}, {}); },
         {Input{Shape{6, 4}}, Input{Shape{4}, 0.5, 1.5}, Input{Shape{4}}});
  parity("dropout",
         [](auto& in) {
           Generator gen(11);
           return ops::dropout(ops::dropout(in[0], 0.3, gen), 0.5, gen);  // the second mask continues the stream
         },
         {Input{Shape{7, 13}}});
  parity("apply_margin Arc",
         [](auto& in) { return ops::apply_margin(in[0], labels_on(in, 12, 10, 3), heads::Arc{.s = 30, .m = 0.5}); },
         {Input{Shape{12, 10}, -0.9, 0.9}});

  // Running statistics move the same way on both devices.
  auto x = random_vec<float>(4 * 3 * 25, 2300, -1, 3);
  auto run = [&]<class D>(D) {
    auto rm = Tensor<float, D>::zeros(Shape{3}), rv = Tensor<float, D>::ones(Shape{3});
    auto xt = Tensor<float, D>::from_vector(x, Shape{4, 3, 5, 5});
    ops::batch_norm(xt, Tensor<float, D>(), Tensor<float, D>(), rm, rv, {.training = true, .momentum = 0.2});
    return std::vector<std::vector<float>>{rm.to_vector(), rv.to_vector()};
  };
  auto cpu = run(Cpu{}), gpu = run(Cuda{});
  close_rel(gpu[0], cpu[0], 1e-6, "batch_norm running_mean");
  close_rel(gpu[1], cpu[1], 1e-6, "batch_norm running_var");
}

TEST_CASE("cuda nn: BatchNorm2d counts batches on the device and gives the CPU's running statistics") {
  DML_GPU_OR_SKIP();
  auto run = [&]<class D>(D, std::optional<double> momentum) {
    nn::BatchNorm2d<float, D> bn(3, {.momentum = momentum});
    for (int step = 0; step < 3; ++step)
      bn(Tensor<float, D>::from_vector(random_vec<float>(4 * 3 * 25, 2500 + step, -1, 3), Shape{4, 3, 5, 5}));
    return std::tuple{bn.running_mean().to_vector(), bn.running_var().to_vector(), bn.num_batches_tracked().item()};
  };
  for (std::optional<double> momentum : {std::optional<double>(0.1), std::optional<double>()}) {
    const std::string what = momentum ? " (momentum 0.1)" : " (momentum nullopt: cumulative average)";
    auto [cm, cv, cn] = run(Cpu{}, momentum);
    auto [gm, gv, gn] = run(Cuda{}, momentum);
    CHECK(cn == 3);
    CHECK(gn == 3);
    close_rel(gm, cm, 1e-6, "running_mean" + what);
    close_rel(gv, cv, 1e-6, "running_var" + what);
  }
}

TEST_CASE("cuda nn ops: CenterLoss gives the CPU's loss, gradient and center update") {
  DML_GPU_OR_SKIP();
  auto emb = random_vec<float>(12 * 16, 2400), emb2 = random_vec<float>(12 * 16, 2401);
  auto labels = random_labels(12, 5, 2402);
  auto run = [&]<class D>(D) {
    losses::CenterLoss<float, D> center(5, 16, 0.5);
    auto l = Tensor<i64, D>::from_vector(labels);
    auto x = Tensor<float, D>::from_vector(emb, Shape{12, 16}).requires_grad_();
    center(x, l);  // moves the centers away from zero
    auto x2 = Tensor<float, D>::from_vector(emb2, Shape{12, 16}).requires_grad_();
    auto loss = center(x2, l);
    loss.backward();
    return std::vector<std::vector<float>>{{loss.item()}, x2.grad().to_vector(), center.centers().to_vector()};
  };
  auto cpu = run(Cpu{}), gpu = run(Cuda{});
  close_rel(gpu[0], cpu[0], 1e-5, "CenterLoss loss");
  close_rel(gpu[1], cpu[1], 1e-5, "CenterLoss gradient");
  close_rel(gpu[2], cpu[2], 1e-5, "CenterLoss centers after two updates");
}

// Makers for the embedding-loss parity case: one loss type on either device.
template <class T, class D>
struct MakeTripletBatchHard {
  static auto make(i64, i64) {
    return std::make_unique<losses::TripletMargin<miners::BatchHard, distances::Euclidean, T, D>>(
        losses::rules::TripletMargin<miners::BatchHard, distances::Euclidean>{.margin = 0.2});
  }
};
template <class T, class D>
struct MakeMultiSimilarity {
  static auto make(i64, i64) {
    return std::make_unique<losses::MultiSimilarity<miners::MultiSimilarity, distances::Cosine, T, D>>();
  }
};
template <class T, class D>
struct MakeSupCon {
  static auto make(i64, i64) { return std::make_unique<losses::SupCon<miners::AllPairs, distances::Cosine, T, D>>(); }
};
template <class T, class D>
struct MakeProxyAnchor {
  static auto make(i64 c, i64 dim) { return std::make_unique<losses::ProxyAnchor<distances::Cosine, T, D>>(c, dim); }
};
template <class T, class D>
struct MakeProxyNca {
  static auto make(i64 c, i64 dim) {
    return std::make_unique<losses::ProxyNCA<distances::SquaredEuclidean, T, D>>(c, dim);
  }
};

TEST_CASE("cuda losses: embedding and proxy losses give the CPU's loss and gradients") {
  DML_GPU_OR_SKIP();
  const i64 n = 24, dim = 16, classes = 6;
  auto emb = random_vec<float>(n * dim, 2500);
  auto labels = random_labels(n, classes, 2501);
  // One run of `Loss` on device D: the loss, d/d(embeddings) and, for proxy losses, d/d(proxies).
  auto run = [&]<class Loss, class D>(Loss& loss, D) {
    auto l = Tensor<i64, D>::from_vector(labels);
    auto x = Tensor<float, D>::from_vector(emb, Shape{n, dim}).requires_grad_();
    auto value = loss(x, l);
    value.backward();
    std::vector<std::vector<float>> out{{value.item()}, x.grad().to_vector()};
    if constexpr (requires { loss.proxies(); }) out.push_back(loss.proxies().grad().to_vector());
    return out;
  };
  auto both = [&]<template <class, class> class Make>(const std::string& name) {
    auto cpu_loss = Make<float, Cpu>::make(classes, dim);
    auto gpu_loss = Make<float, Cuda>::make(classes, dim);
    auto cpu = run(*cpu_loss, Cpu{}), gpu = run(*gpu_loss, Cuda{});
    REQUIRE(cpu.size() == gpu.size());
    for (std::size_t k = 0; k < cpu.size(); ++k) close_rel(gpu[k], cpu[k], 1e-4, name + " output " + std::to_string(k));
  };
  both.template operator()<MakeTripletBatchHard>("TripletMargin<BatchHard>");
  both.template operator()<MakeMultiSimilarity>("MultiSimilarity<MultiSimilarity>");
  both.template operator()<MakeSupCon>("SupCon");
  both.template operator()<MakeProxyAnchor>("ProxyAnchor");
  both.template operator()<MakeProxyNca>("ProxyNCA");
}

}  // namespace

}  // namespace test_cuda_nn
