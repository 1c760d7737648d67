// Tests for dml/nn/dropout.hpp: the Dropout module. The op's tests are in tests/ops/test_dropout.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#include <dml/nn/dropout.hpp>

using namespace dml;
using TD = Tensor<double>;

TEST_CASE("Dropout module: training switch and saveable mask stream") {
  nn::Dropout<double> drop(0.5, 123);
  TD x = TD::ones({64});
  auto names = drop.named_generators();
  REQUIRE(names.size() == 1);
  CHECK(names[0].first == "generator");
  auto st = drop.rng_state();
  auto a = drop(x).to_vector();
  drop.set_rng_state(st);
  CHECK(drop(x).to_vector() == a);
  drop.eval();
  CHECK(drop(x).to_vector() == x.to_vector());
  CHECK(drop.num_parameters() == 0);
  CHECK_THROWS_AS(nn::Dropout<double>(2.0), Error);
}
