// Tests for dml/nn/pool.hpp: the pooling modules (MaxPool2d, the adaptive pools). The op's tests are in tests/ops/test_pool.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#include <dml/nn/pool.hpp>

using namespace dml;
using TD = Tensor<double>;

TEST_CASE("pooling modules") {
  Generator g(4);
  TD x = TD::uniform({2, 3, 28, 28}, g);
  nn::MaxPool2d<double> mp(3, 2, 1);
  CHECK(mp(x).shape() == Shape{2, 3, 14, 14});
  CHECK(nn::AdaptiveAvgPool2d<double>()(x).shape() == Shape{2, 3, 1, 1});
  CHECK(nn::AdaptiveMaxPool2d<double>(2, 3)(x).shape() == Shape{2, 3, 2, 3});
  CHECK(nn::AdaptiveConcatPool2d<double>()(x).shape() == Shape{2, 6, 1, 1});
  CHECK(mp.num_parameters() == 0);
}
