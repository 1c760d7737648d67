// Tests for dml/nn/batchnorm.hpp: the BatchNorm1d and BatchNorm2d modules. The op's tests are in tests/ops/test_batchnorm.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#include <dml/nn/batchnorm.hpp>

using namespace dml;
using TD = Tensor<double>;

TEST_CASE("BatchNorm1d running statistics after one step match hand-computed values") {
  nn::BatchNorm1d<double> bn(2);
  // channel 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1: all 5
  TD x = TD::from_vector({1, 5, 2, 5, 3, 5, 6, 5}, {4, 2});
  TD y = bn(x);
  CHECK(bn.num_batches_tracked().item() == 1);
  CHECK(bn.running_mean().at(0) == doctest::Approx(0.3));
  CHECK(bn.running_var().at(0) == doctest::Approx(0.9 + 0.1 * 14.0 / 3.0));
  CHECK(bn.running_mean().at(1) == doctest::Approx(0.5));
  CHECK(bn.running_var().at(1) == doctest::Approx(0.9));
  const double inv = 1 / std::sqrt(3.5 + 1e-5);
  CHECK(y.at(0, 0) == doctest::Approx(-2 * inv));
  CHECK(y.at(3, 0) == doctest::Approx(3 * inv));
  CHECK(y.at(2, 1) == doctest::Approx(0.0));

  SUBCASE("eval mode uses the running statistics and leaves them alone") {
    bn.eval();
    TD z = bn(TD::from_vector({1, 1}, {1, 2}));
    CHECK(z.at(0, 0) == doctest::Approx((1 - 0.3) / std::sqrt(0.9 + 0.1 * 14.0 / 3.0 + 1e-5)));
    CHECK(z.at(0, 1) == doctest::Approx((1 - 0.5) / std::sqrt(0.9 + 1e-5)));
    CHECK(bn.num_batches_tracked().item() == 1);
    CHECK(bn.running_mean().at(0) == doctest::Approx(0.3));
  }
}

TEST_CASE("BatchNorm2d statistics run over batch and space, and the affine parameters apply") {
  nn::BatchNorm2d<double> bn(2, {.momentum = 0.5});
  Generator g(6);
  TD x = TD::uniform({3, 2, 4, 4}, g, -2, 4);
  auto xv = x.to_vector();
  double sum = 0, ss = 0;
  for (std::int64_t n = 0; n < 3; ++n)
    for (std::int64_t q = 0; q < 16; ++q) sum += xv[(n * 2 + 1) * 16 + q];
  const double mean = sum / 48;
  for (std::int64_t n = 0; n < 3; ++n)
    for (std::int64_t q = 0; q < 16; ++q) ss += std::pow(xv[(n * 2 + 1) * 16 + q] - mean, 2);
  {
    NoGrad ng;
    TD w = bn.weight(), b = bn.bias();
    w.copy_(TD::from_vector({1, 2}));
    b.copy_(TD::from_vector({0, -1}));
  }
  TD y = bn(x);
  CHECK(bn.running_mean().at(1) == doctest::Approx(0.5 * mean));
  CHECK(bn.running_var().at(1) == doctest::Approx(0.5 + 0.5 * ss / 47));
  CHECK(y.at(2, 1, 3, 3) == doctest::Approx(2 * (x.at(2, 1, 3, 3) - mean) / std::sqrt(ss / 48 + 1e-5) - 1));
}

TEST_CASE("BatchNorm with momentum nullopt keeps the cumulative average") {
  nn::BatchNorm1d<double> bn(1, {.momentum = std::nullopt});
  bn(TD::from_vector({0, 2}, {2, 1}));  // mean 1, unbiased var 2
  bn(TD::from_vector({4, 4}, {2, 1}));  // mean 4, var 0
  CHECK(bn.running_mean().item() == doctest::Approx(2.5));
  CHECK(bn.running_var().item() == doctest::Approx(1.0));
  CHECK(bn.num_batches_tracked().item() == 2);
}

TEST_CASE("BatchNorm buffers, names and options") {
  nn::BatchNorm2d<float> bn(3);
  CHECK(bn.state_dict().keys() ==
        std::vector<std::string>{"weight", "bias", "running_mean", "running_var", "num_batches_tracked"});
  CHECK(bn.num_parameters() == 6);
  CHECK(bn.num_batches_tracked().shape() == Shape{});
  CHECK(bn.weight().to_vector() == std::vector<float>{1, 1, 1});
  CHECK(bn.running_var().to_vector() == std::vector<float>{1, 1, 1});

  nn::BatchNorm1d<double> plain(2, {.affine = false, .track_running_stats = false});
  CHECK(plain.state_dict().empty());
  plain.eval();  // without running statistics eval mode still normalises by the batch
  TD y = plain(TD::from_vector({1, 0, 3, 0}, {2, 2}));
  CHECK(y.at(0, 0) == doctest::Approx(-1 / std::sqrt(1 + 1e-5)));
}

TEST_CASE("BatchNorm rejects bad input") {
  nn::BatchNorm2d<double> bn2(3);
  nn::BatchNorm1d<double> bn1(3);
  CHECK_THROWS_WITH_AS(bn2(TD::zeros({2, 4, 2, 2})), doctest::Contains("[2, 4, 2, 2]"), Error);
  CHECK_THROWS_AS(bn2(TD::zeros({2, 3})), Error);
  CHECK_THROWS_AS(bn1(TD::zeros({2, 3, 2, 2})), Error);
  CHECK_THROWS_WITH_AS(bn1(TD::zeros({1, 3})), doctest::Contains("more than 1 value per channel"), Error);
  bn1.eval();
  CHECK(bn1(TD::zeros({1, 3})).shape() == Shape{1, 3});  // fine in eval mode
  CHECK_THROWS_AS(ops::batch_norm(TD::zeros({2, 3}), TD(), TD(), TD(), TD(), {.training = false}), Error);
}
