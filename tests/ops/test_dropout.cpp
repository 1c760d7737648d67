// Tests for dml/ops/dropout.hpp (the module: tests/nn/test_dropout.cpp).
#include <doctest/doctest.h>

#include <dml/nn/dropout.hpp>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_ops_dropout {

TEST_CASE("dropout keeps about 1 - p of the elements, scaled by 1 / (1 - p)") {
  Generator g(1);
  TD x = TD::ones({100000});
  TD y = ops::dropout(x, 0.25, g);
  std::int64_t kept = 0;
  for (double v : y.to_vector()) {
    CHECK((v == 0 || v == doctest::Approx(1 / 0.75)));
    kept += v != 0;
  }
  CHECK(kept == doctest::Approx(75000).epsilon(0.01));
  CHECK(g.state().counter == 25000);  // one Philox block per four elements
}

TEST_CASE("dropout masks replay from a saved generator state and differ otherwise") {
  Generator g(9);
  TD x = TD::ones({4, 33});
  auto saved = g.state();
  auto a = ops::dropout(x, 0.5, g).to_vector();
  auto b = ops::dropout(x, 0.5, g).to_vector();
  g.set_state(saved);
  auto c = ops::dropout(x, 0.5, g).to_vector();
  CHECK(a == c);
  CHECK(a != b);
}

TEST_CASE("dropout is the identity in eval mode and for p = 0; p = 1 zeroes everything") {
  Generator g(2);
  TD x = param({3, 4}, 3);
  CHECK(ops::dropout(x, 0.5, g, false).same(x));
  CHECK(ops::dropout(x, 0.0, g).same(x));
  CHECK(g.state().counter == 0);
  for (double v : ops::dropout(x, 1.0, g).to_vector()) CHECK(v == 0);
  CHECK_THROWS_AS(ops::dropout(x, 1.5, g), Error);
  CHECK_THROWS_AS(ops::dropout(x, -0.1, g), Error);
}

TEST_CASE("dropout gradients with a fixed mask match central differences") {
  auto rep = gradcheck(
      [](std::vector<TD>& v) {
        Generator g(77);  // the same mask on every call
        return ops::dropout(v[0], 0.4, g);
      },
      {param({5, 7}, 4)});
  CHECK(rep.failures == 0);
}

}  // namespace test_ops_dropout
