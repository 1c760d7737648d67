// Tests for dml/ops/linear.hpp (the module: tests/nn/test_linear.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <dml/nn/linear.hpp>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_ops_linear {

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

}  // namespace test_ops_linear
