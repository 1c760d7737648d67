// Tests for dml/ops/conv.hpp and backend/cpu/conv.hpp (the Conv2d module: tests/nn/test_conv.cpp):
// forward against a naive loop, gradients against central differences, the padding-
// aware blocks, the 1x1 paths and the batch chunking.
#include <doctest/doctest.h>

#include <cmath>
#include <dml/nn/conv.hpp>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_ops_conv {

namespace {

// Naive NCHW cross-correlation with zero padding.
std::vector<double> naive_conv(const TD& x, const TD& w, const TD& b, std::int64_t s, std::int64_t p) {
  auto xv = x.to_vector(), wv = w.to_vector();
  std::int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3), o = w.dim(0), k = w.dim(2), kw = w.dim(3);
  std::int64_t ho = (h + 2 * p - k) / s + 1, wo = (wd + 2 * p - kw) / s + 1;
  std::vector<double> y(static_cast<std::size_t>(n * o * ho * wo), 0.0);
  for (std::int64_t in = 0; in < n; ++in)
    for (std::int64_t oc = 0; oc < o; ++oc)
      for (std::int64_t oh = 0; oh < ho; ++oh)
        for (std::int64_t ow = 0; ow < wo; ++ow) {
          double acc = b.defined() ? b.to_vector()[oc] : 0.0;
          for (std::int64_t ci = 0; ci < c; ++ci)
            for (std::int64_t i = 0; i < k; ++i)
              for (std::int64_t j = 0; j < kw; ++j) {
                std::int64_t ih = oh * s - p + i, iw = ow * s - p + j;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                acc += xv[((in * c + ci) * h + ih) * wd + iw] * wv[((oc * c + ci) * k + i) * kw + j];
              }
          y[((in * o + oc) * ho + oh) * wo + ow] = acc;
        }
  return y;
}

struct Case {
  std::int64_t n, c, h, w, o, k, stride, pad;
  bool bias;
};

const Case kCases[] = {
    {2, 3, 5, 5, 4, 3, 1, 1, true},    // 3x3 pad 1: nine blocks
    {2, 2, 6, 7, 3, 3, 2, 1, false},   // stride 2, non-square input
    {3, 4, 3, 3, 5, 1, 1, 0, true},    // 1x1, batch folded
    {2, 2, 16, 16, 3, 1, 1, 0, true},  // 1x1 on a large map: the input is read in place
    {2, 3, 5, 5, 4, 1, 2, 0, false},   // 1x1 stride 2 (a downsample shortcut)
    {1, 1, 9, 9, 2, 7, 2, 3, false},   // the 7x7/2 stem
    {3, 4, 1, 1, 3, 3, 1, 1, true},    // 1x1 map: only the centre tap is read
    {2, 3, 2, 2, 2, 3, 1, 1, false},   // 2x2 map: four corner blocks
    {2, 3, 2, 2, 2, 3, 2, 1, true},    // 2x2 -> 1x1 with stride 2
    {1, 2, 3, 3, 2, 1, 1, 1, true},    // padding wider than the kernel: border outputs are the bias
    {2, 2, 4, 5, 3, 2, 1, 0, true},    // even kernel, no padding
    // From 16 input channels the channel (channels-last) lowering runs:
    {2, 16, 5, 5, 3, 3, 1, 1, true},   // nine blocks
    {2, 16, 4, 5, 3, 3, 2, 1, false},  // stride 2, non-square
    {3, 16, 1, 1, 4, 3, 1, 1, true},   // 1x1 map: the input rows are the lowered matrix
    {2, 17, 3, 3, 3, 1, 1, 0, true},   // 1x1 conv: likewise
    {2, 16, 5, 5, 4, 1, 2, 0, false},  // 1x1 stride 2
    {2, 16, 2, 2, 3, 3, 1, 1, false},  // 2x2 map
    {1, 16, 3, 3, 2, 1, 1, 1, true},   // border outputs read only padding
    {2, 16, 4, 5, 3, 2, 1, 0, true},   // even kernel
};

}  // namespace

TEST_CASE("conv2d matches a naive loop") {
  Generator g(11);
  for (const Case& cs : kCases) {
    INFO("case n", cs.n, " c", cs.c, " ", cs.h, "x", cs.w, " o", cs.o, " k", cs.k, " s", cs.stride, " p", cs.pad);
    TD x = TD::uniform({cs.n, cs.c, cs.h, cs.w}, g, -1, 1);
    TD w = TD::uniform({cs.o, cs.c, cs.k, cs.k}, g, -1, 1);
    TD b = cs.bias ? TD::uniform({cs.o}, g, -1, 1) : TD();
    TD y = ops::conv2d(x, w, b, {cs.stride, cs.pad});
    std::int64_t ho = (cs.h + 2 * cs.pad - cs.k) / cs.stride + 1, wo = (cs.w + 2 * cs.pad - cs.k) / cs.stride + 1;
    CHECK(y.shape() == Shape{cs.n, cs.o, ho, wo});
    testing::check_close(y.to_vector(), naive_conv(x, w, b, cs.stride, cs.pad), 1e-12, "conv2d");
  }
}

TEST_CASE("conv2d in float matches the naive loop on every GEMM kernel") {
  // The forward in float runs on dml's own GEMM where the host has one, which
  // reads the weight in place (backend/cpu/conv_channels.hpp), and on Eigen
  // otherwise: both paths against the double naive loop.
  namespace gk = cpu::gemm_kernel;
  const gk::Isa saved = gk::chosen_isa();
  Generator g(12);
  for (gk::Isa isa : {gk::Isa::eigen, gk::Isa::avx2, gk::Isa::avx512}) {
    if (int(isa) > int(gk::host_isa())) continue;
    gk::use_isa(isa);
    for (const Case& cs : kCases) {
      INFO(gk::isa_name(isa), " case n", cs.n, " c", cs.c, " ", cs.h, "x", cs.w, " o", cs.o, " k", cs.k, " s",
           cs.stride, " p", cs.pad);
      TD x = TD::uniform({cs.n, cs.c, cs.h, cs.w}, g, -1, 1);
      TD w = TD::uniform({cs.o, cs.c, cs.k, cs.k}, g, -1, 1);
      TD b = cs.bias ? TD::uniform({cs.o}, g, -1, 1) : TD();
      auto as_float = [](const TD& t) {
        const auto v = t.to_vector();
        return Tensor<float>::from_vector(std::vector<float>(v.begin(), v.end()), t.shape());
      };
      Tensor<float> y = ops::conv2d(as_float(x), as_float(w), cs.bias ? as_float(b) : Tensor<float>(),
                                    {cs.stride, cs.pad});
      std::vector<double> yd;
      for (float v : y.to_vector()) yd.push_back(v);
      testing::check_close(yd, naive_conv(x, w, b, cs.stride, cs.pad), 1e-5, "conv2d float");
    }
  }
  gk::use_isa(saved);
}

TEST_CASE("conv2d gradients match central differences") {
  std::uint64_t seed = 100;
  for (const Case& cs : kCases) {
    INFO("case n", cs.n, " c", cs.c, " ", cs.h, "x", cs.w, " o", cs.o, " k", cs.k, " s", cs.stride, " p", cs.pad);
    std::vector<TD> in{param({cs.n, cs.c, cs.h, cs.w}, seed++), param({cs.o, cs.c, cs.k, cs.k}, seed++)};
    if (cs.bias) in.push_back(param({cs.o}, seed++));
    auto rep = gradcheck(
        [&](std::vector<TD>& v) {
          return ops::conv2d(v[0], v[1], v.size() > 2 ? v[2] : TD(), {cs.stride, cs.pad});
        },
        in);
    CHECK(rep.failures == 0);
  }
}

TEST_CASE("conv2d computes only the gradients that are needed") {
  Generator g(3);
  TD x = TD::uniform({2, 3, 5, 5}, g, -1, 1);  // no grad: the stem's input
  TD w = param({4, 3, 3, 3}, 5);
  TD y = ops::conv2d(x, w, TD(), {1, 1});
  ops::sum(y).backward();
  CHECK(w.grad().defined());
  CHECK(!x.grad().defined());
  // d sum(y) / d w[o, 0, 1, 1] is the sum of every pixel of input channel 0:
  // with stride 1 and padding 1 the centre tap reads each pixel exactly once.
  double channel0 = 0;
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t h = 0; h < 5; ++h)
      for (std::int64_t v = 0; v < 5; ++v) channel0 += x.at(n, 0, h, v);
  CHECK(w.grad().at(0, 0, 1, 1) == doctest::Approx(channel0));
  CHECK(w.grad().at(3, 0, 1, 1) == doctest::Approx(channel0));
}

TEST_CASE("conv2d in float splits large batches into chunks without changing results") {
  using TF = Tensor<float>;
  for (std::int64_t c : {3, 16}) {
    INFO("channels ", c);
    Generator g(21);
    TF x = TF::uniform({5, c, 6, 6}, g, -1, 1).requires_grad_();
    TF w = TF::uniform({4, c, 3, 3}, g, -1, 1).requires_grad_();
    TF b = TF::uniform({4}, g, -1, 1).requires_grad_();
    TF r = TF::uniform({5, 4, 6, 6}, g, -1, 1);
    auto run = [&] {
      x.zero_grad();
      w.zero_grad();
      b.zero_grad();
      TF y = ops::conv2d(x, w, b, {1, 1});
      ops::sum(y * r).backward();
      return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector(), w.grad().to_vector(),
                                             b.grad().to_vector()};
    };
    auto whole = run();
    const std::int64_t saved = cpu::conv_detail::col_budget;
    cpu::conv_detail::col_budget = 2 * c * 9 * 36;  // two images per GEMM: chunks of 2, 2, 1
    auto chunked = run();
    cpu::conv_detail::col_budget = saved;
    for (std::size_t i = 0; i < whole.size(); ++i) testing::check_close(chunked[i], whole[i], 1e-5, "chunked");
  }
}

TEST_CASE("conv2d rejects bad arguments with the shapes in the message") {
  TD x = TD::zeros({1, 3, 5, 5});
  CHECK_THROWS_WITH_AS(ops::conv2d(x, TD::zeros({2, 4, 3, 3})), doctest::Contains("[2, 4, 3, 3]"), Error);
  CHECK_THROWS_AS(ops::conv2d(x, TD::zeros({2, 3, 3, 3}), TD::zeros({3})), Error);
  CHECK_THROWS_AS(ops::conv2d(x, TD::zeros({2, 3, 7, 7})), Error);                // kernel larger than the padded input
  CHECK_THROWS_AS(ops::conv2d(x, TD::zeros({2, 3, 7, 7}), TD(), {3, 0}), Error);  // (5 - 7) / 3 + 1 truncates to 1
  CHECK(ops::conv2d(x, TD::zeros({2, 3, 7, 7}), TD(), {3, 1}).shape() == Shape{1, 2, 1, 1});
  CHECK_THROWS_AS(ops::conv2d(x, TD::zeros({2, 3, 3, 3}), TD(), {0, 0}), Error);
  CHECK_THROWS_AS(ops::conv2d(TD::zeros({3, 5, 5}), TD::zeros({2, 3, 3, 3})), Error);
}

}  // namespace test_ops_conv
