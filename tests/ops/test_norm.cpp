#include <doctest/doctest.h>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;

TEST_CASE("l2_normalize gives unit rows") {
  auto x = TD::from_vector({3, 4, 0, -2}, {2, 2});
  testing::check_close(ops::l2_normalize(x).to_vector(), {0.6, 0.8, 0, -1}, 1e-15, "rows");
}

TEST_CASE("l2_normalize passes a gradient check") {
  gradcheck([](auto& v) { return ops::l2_normalize(v[0]); }, {param({4, 6}, 3)});
}

TEST_CASE("a zero row stays zero with a finite gradient") {
  auto x = TD::zeros({2, 3}).requires_grad_();
  auto y = ops::l2_normalize(x);
  for (double e : y.to_vector()) CHECK(e == 0.0);
  ops::sum(y).backward();
  for (double e : x.grad().to_vector()) CHECK(std::isfinite(e));
  CHECK_THROWS_WITH_AS(ops::l2_normalize(TD::zeros({3})), doctest::Contains("must have rank 2"), Error);
}
