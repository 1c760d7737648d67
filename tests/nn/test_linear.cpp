// Tests for dml/nn/linear.hpp: the Linear module. The op's tests are in tests/ops/test_linear.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#include <dml/nn/linear.hpp>

using namespace dml;
using TD = Tensor<double>;

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
