#include <doctest/doctest.h>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
using Labels = Tensor<std::int64_t>;

TEST_CASE("gather picks one column per row and scatters its gradient back") {
  auto x = TD::from_vector({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
  auto idx = Labels::from_vector({1, 0, 1});
  auto y = ops::gather(x, idx);
  CHECK(y.to_vector() == std::vector<double>{2, 3, 6});
  y.backward(TD::from_vector({10, 20, 30}));
  CHECK(x.grad().to_vector() == std::vector<double>{0, 10, 20, 0, 0, 30});
  CHECK(ops::scatter(TD::from_vector({7, 8}), Labels::from_vector({2, 0}), 3).to_vector() ==
        std::vector<double>{0, 0, 7, 8, 0, 0});
}

TEST_CASE("gather and scatter pass gradient checks") {
  auto idx = Labels::from_vector({2, 0, 3, 3});
  gradcheck([&](auto& v) { return ops::gather(v[0], idx); }, {param({4, 5}, 1)});
  gradcheck([&](auto& v) { return ops::scatter(v[0], idx, 5); }, {param({4}, 2)});
}

TEST_CASE("gather rejects out-of-range and mis-shaped indices") {
  auto x = TD::zeros({3, 2});
  CHECK_THROWS_WITH_AS(ops::gather(x, Labels::from_vector({0, 2, 1})),
                       doctest::Contains("index 2 at position 1 is outside [0, 2)"), Error);
  CHECK_THROWS_WITH_AS(ops::gather(x, Labels::from_vector({0, -1, 1})), doctest::Contains("index -1"), Error);
  CHECK_THROWS_WITH_AS(ops::gather(x, Labels::from_vector({0, 1})),
                       doctest::Contains("index of shape [2] does not give one column per row of [3, 2]"), Error);
}

TEST_CASE("VouchedIndices: a host-checked index tensor skips the ops' check only within its bound and scope") {
  using Vouch = dml::detail::VouchedIndices<Cpu>;
  auto idx = Labels::from_vector({0, 2, 1});
  CHECK_FALSE(Vouch::covers(idx, 3));
  {
    const Vouch vouch(idx, idx);  // bound max + 1 = 3
    CHECK(Vouch::covers(idx, 3));
    CHECK(Vouch::covers(idx, 10));
    CHECK_FALSE(Vouch::covers(idx, 2));                          // a smaller limit: the op checks for itself
    CHECK_FALSE(Vouch::covers(Labels::from_vector({0, 2, 1}), 3));  // other memory, same values: not vouched for
    auto x = TD::zeros({3, 2});
    CHECK_THROWS_WITH_AS(ops::gather(x, idx), doctest::Contains("index 2 at position 1 is outside [0, 2)"), Error);
    {
      auto other = Labels::from_vector({1, 0, 1});
      const Vouch inner(other, other);
      CHECK(Vouch::covers(other, 2));
      CHECK(Vouch::covers(idx, 3));
    }
    CHECK(Vouch::covers(idx, 3));
  }
  CHECK_FALSE(Vouch::covers(idx, 3));  // the scope ended
  auto negative = Labels::from_vector({0, -1, 1});
  const Vouch none(negative, negative);  // a negative index vouches for nothing
  CHECK_FALSE(Vouch::covers(negative, 3));
  CHECK_THROWS_WITH_AS(ops::gather(TD::zeros({3, 2}), negative), doctest::Contains("index -1"), Error);
  CHECK_THROWS_WITH_AS(Vouch(idx, Labels::from_vector({0, 1})), doctest::Contains("the index tensor's size"), Error);
}
