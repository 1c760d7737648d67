// Tests for dml/nn/conv.hpp: the Conv2d module. The op's tests are in tests/ops/test_conv.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#include <dml/nn/conv.hpp>

using namespace dml;
using TD = Tensor<double>;

TEST_CASE("Conv2d registers weight and optional bias with PyTorch's default init bounds") {
  nn::Conv2d<double> conv(3, 4, 3, {.stride = 1, .padding = 1}, 7);
  auto names = conv.state_dict().keys();
  CHECK(names == std::vector<std::string>{"weight", "bias"});
  CHECK(conv.weight().shape() == Shape{4, 3, 3, 3});
  CHECK(conv.weight().requires_grad());
  const double bound = 1 / std::sqrt(27.0);
  for (double v : conv.weight().to_vector()) CHECK(std::abs(v) <= bound);
  for (double v : conv.bias().to_vector()) CHECK(std::abs(v) <= bound);

  nn::Conv2d<float> nobias(1, 64, 7,
                           {.stride = 2, .padding = 3, .bias = false, .init = nn::ConvInit::KaimingNormalFanOut}, 1);
  CHECK(nobias.state_dict().keys() == std::vector<std::string>{"weight"});
  CHECK(!nobias.bias().defined());
  // kaiming_normal_ fan_out: std = sqrt(2 / (64 * 49))
  double ss = 0;
  auto wv = nobias.weight().to_vector();
  for (float v : wv) ss += double(v) * v;
  CHECK(std::sqrt(ss / wv.size()) == doctest::Approx(std::sqrt(2.0 / (64 * 49))).epsilon(0.08));

  Generator g(1);
  auto y = nobias(Tensor<float>::uniform({2, 1, 28, 28}, g));
  CHECK(y.shape() == Shape{2, 64, 14, 14});
}
