// Tests for dml/ops/pool.hpp, backend/cpu/pool.hpp (the modules: tests/nn/test_pool.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <dml/nn/pool.hpp>
#include <limits>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_ops_pool {

namespace {

std::vector<double> naive_max_pool(const TD& x, std::int64_t k, std::int64_t s, std::int64_t p) {
  auto xv = x.to_vector();
  std::int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
  std::int64_t ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
  std::vector<double> y;
  for (std::int64_t pl = 0; pl < planes; ++pl)
    for (std::int64_t oh = 0; oh < ho; ++oh)
      for (std::int64_t ow = 0; ow < wo; ++ow) {
        double best = -std::numeric_limits<double>::infinity();
        for (std::int64_t i = 0; i < k; ++i)
          for (std::int64_t j = 0; j < k; ++j) {
            std::int64_t ih = oh * s - p + i, iw = ow * s - p + j;
            if (ih >= 0 && ih < h && iw >= 0 && iw < w) best = std::max(best, xv[(pl * h + ih) * w + iw]);
          }
        y.push_back(best);
      }
  return y;
}

// PyTorch's adaptive cells: [floor(i H / o), ceil((i + 1) H / o)).
std::vector<double> naive_adaptive(const TD& x, std::int64_t oh, std::int64_t ow, bool max) {
  auto xv = x.to_vector();
  std::int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
  std::vector<double> y;
  for (std::int64_t pl = 0; pl < planes; ++pl)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        std::int64_t h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh, w0 = j * w / ow,
                     w1 = ((j + 1) * w + ow - 1) / ow;
        double acc = max ? -1e300 : 0;
        for (std::int64_t a = h0; a < h1; ++a)
          for (std::int64_t b = w0; b < w1; ++b)
            acc = max ? std::max(acc, xv[(pl * h + a) * w + b]) : acc + xv[(pl * h + a) * w + b];
        y.push_back(max ? acc : acc / double((h1 - h0) * (w1 - w0)));
      }
  return y;
}

}  // namespace

TEST_CASE("max_pool2d matches a naive loop, padding never wins") {
  Generator g(1);
  struct P {
    std::int64_t h, w, k, s, p;
  };
  for (P c : {P{7, 7, 3, 2, 1}, P{14, 14, 3, 2, 1}, P{6, 5, 2, 2, 0}, P{5, 5, 3, 1, 1}, P{4, 4, 4, 1, 2}}) {
    INFO(c.h, "x", c.w, " k", c.k, " s", c.s, " p", c.p);
    TD x = TD::uniform({2, 3, c.h, c.w}, g, -3, -1);  // all negative: a zero from padding would win
    TD y = ops::max_pool2d(x, c.k, c.s, c.p);
    CHECK(y.shape() == Shape{2, 3, (c.h + 2 * c.p - c.k) / c.s + 1, (c.w + 2 * c.p - c.k) / c.s + 1});
    CHECK(y.to_vector() == naive_max_pool(x, c.k, c.s, c.p));
  }
}

TEST_CASE("max_pool2d gradients match central differences") {
  struct P {
    std::int64_t h, k, s, p;
  };
  std::uint64_t seed = 30;
  for (P c : {P{7, 3, 2, 1}, P{6, 2, 2, 0}, P{5, 3, 1, 1}}) {
    auto rep = gradcheck([&](std::vector<TD>& v) { return ops::max_pool2d(v[0], c.k, c.s, c.p); },
                         {param({2, 2, c.h, c.h}, seed++)});
    CHECK(rep.failures == 0);
  }
}

TEST_CASE("max_pool2d sends the gradient to the first maximum of a tie") {
  TD x = TD::from_vector({1, 5, 5, 2}, {1, 1, 2, 2}).requires_grad_();
  TD y = ops::max_pool2d(x, 2);
  CHECK(y.item() == 5);
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 1, 0, 0});
}

TEST_CASE("max_pool2d propagates NaN, routing the gradient to the first NaN") {
  TD x = TD::from_vector({1, std::nan(""), 3, std::nan("")}, {1, 1, 2, 2}).requires_grad_();
  TD y = ops::max_pool2d(x, 2);
  CHECK(std::isnan(y.item()));
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 1, 0, 0});
  CHECK(std::isnan(ops::adaptive_max_pool2d(x).item()));
}

TEST_CASE("adaptive pooling matches PyTorch's cells") {
  Generator g(2);
  TD x = TD::uniform({2, 3, 7, 5}, g, -1, 1);
  for (auto [oh, ow] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 3}, {2, 4}, {7, 5}}) {
    INFO(oh, "x", ow);
    testing::check_close(ops::adaptive_avg_pool2d(x, oh, ow).to_vector(), naive_adaptive(x, oh, ow, false), 1e-14,
                         "avg");
    CHECK(ops::adaptive_max_pool2d(x, oh, ow).to_vector() == naive_adaptive(x, oh, ow, true));
  }
  CHECK(ops::adaptive_avg_pool2d(x).shape() == Shape{2, 3, 1, 1});
}

TEST_CASE("adaptive pooling gradients match central differences") {
  for (auto [oh, ow] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 2}}) {
    INFO(oh, "x", ow);
    CHECK(
        gradcheck([&](std::vector<TD>& v) { return ops::adaptive_avg_pool2d(v[0], oh, ow); }, {param({2, 3, 5, 4}, 40)})
            .failures == 0);
    CHECK(
        gradcheck([&](std::vector<TD>& v) { return ops::adaptive_max_pool2d(v[0], oh, ow); }, {param({2, 3, 5, 4}, 41)})
            .failures == 0);
    CHECK(gradcheck([&](std::vector<TD>& v) { return ops::adaptive_concat_pool2d(v[0], oh, ow); },
                    {param({2, 3, 5, 4}, 42)})
              .failures == 0);
  }
}

TEST_CASE("adaptive_concat_pool2d puts max first, then average, as fastai") {
  Generator g(3);
  TD x = TD::uniform({2, 3, 4, 4}, g, -1, 1);
  TD y = ops::adaptive_concat_pool2d(x);
  REQUIRE(y.shape() == Shape{2, 6, 1, 1});
  auto mx = ops::adaptive_max_pool2d(x).to_vector(), av = ops::adaptive_avg_pool2d(x).to_vector();
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t c = 0; c < 3; ++c) {
      CHECK(y.at(n, c, 0, 0) == mx[n * 3 + c]);
      CHECK(y.at(n, 3 + c, 0, 0) == av[n * 3 + c]);
    }
}

TEST_CASE("pooling rejects bad arguments") {
  TD x = TD::zeros({1, 1, 4, 4});
  CHECK_THROWS_AS(ops::max_pool2d(x, 3, 1, 2), Error);  // padding above kernel / 2
  CHECK_THROWS_AS(ops::max_pool2d(x, 0), Error);
  CHECK_THROWS_AS(ops::max_pool2d(x, 6), Error);
  CHECK_THROWS_AS(ops::max_pool2d(TD::zeros({4, 4}), 2), Error);
  CHECK_THROWS_AS(ops::adaptive_avg_pool2d(x, 0), Error);
  CHECK_THROWS_AS(ops::adaptive_max_pool2d(TD::zeros({1, 4, 4}), 1), Error);
  CHECK_THROWS_AS(nn::MaxPool2d<double>(3, 2, 2), Error);
}

}  // namespace test_ops_pool
