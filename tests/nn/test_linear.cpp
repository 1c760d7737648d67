// Tests for dml/ops/linear.hpp and nn/linear.hpp.
#include <doctest/doctest.h>

#include <cmath>
#include <dml/nn/linear.hpp>

#include "../gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;

TEST_CASE("linear computes x W^T + b") {
  TD x = TD::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  TD w = TD::from_vector({1, 0, -1, 2, 1, 0}, {2, 3});
  TD b = TD::from_vector({10, 20});
  CHECK(ops::linear(x, w, b).to_vector() == std::vector<double>{8, 24, 8, 33});
  CHECK(ops::linear(x, w).to_vector() == std::vector<double>{-2, 4, -2, 13});
}

TEST_CASE("linear gradients match central differences") {
  CHECK(gradcheck([](std::vector<TD>& v) { return ops::linear(v[0], v[1], v[2]); },
                  {param({4, 5}, 1), param({3, 5}, 2), param({3}, 3)})
            .failures == 0);
  CHECK(gradcheck([](std::vector<TD>& v) { return ops::linear(v[0], v[1]); }, {param({2, 6}, 4), param({1, 6}, 5)})
            .failures == 0);
}

TEST_CASE("linear rejects mismatched shapes") {
  CHECK_THROWS_WITH_AS(ops::linear(TD::zeros({2, 3}), TD::zeros({4, 5})), doctest::Contains("[4, 5]"), Error);
  CHECK_THROWS_AS(ops::linear(TD::zeros({2, 3}), TD::zeros({4, 3}), TD::zeros({3})), Error);
  CHECK_THROWS_AS(ops::linear(TD::zeros({3}), TD::zeros({4, 3})), Error);
}

TEST_CASE("Linear: names, shapes and PyTorch's default init") {
  nn::Linear<double> fc(50, 10, true, 3);
  CHECK(fc.state_dict().keys() == std::vector<std::string>{"weight", "bias"});
  CHECK(fc.weight().shape() == Shape{10, 50});
  CHECK(fc.num_parameters() == 510);
  const double bound = 1 / std::sqrt(50.0);
  double mx = 0;
  for (double v : fc.weight().to_vector()) mx = std::max(mx, std::abs(v));
  CHECK(mx <= bound);
  CHECK(mx > 0.9 * bound);
  Generator g(1);
  CHECK(fc(TD::uniform({7, 50}, g)).shape() == Shape{7, 10});

  nn::Linear<double> kn(400, 300, true, Generator(2), nn::LinearInit::KaimingNormal);
  for (double v : kn.bias().to_vector()) CHECK(v == 0);
  double ss = 0;
  for (double v : kn.weight().to_vector()) ss += v * v;
  CHECK(std::sqrt(ss / 120000) == doctest::Approx(std::sqrt(2.0 / 400)).epsilon(0.02));

  nn::Linear<float> nobias(3, 2, false);
  CHECK(nobias.state_dict().keys() == std::vector<std::string>{"weight"});
  CHECK_THROWS_AS(nn::Linear<float>(0, 2), Error);
}
