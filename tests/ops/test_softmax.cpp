#include <doctest/doctest.h>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
using Labels = Tensor<std::int64_t>;

TEST_CASE("log_softmax rows sum to one in probability and survive huge logits") {
  auto x = TD::from_vector({1, 2, 3, 1000, 1001, 1002}, {2, 3});
  auto y = ops::log_softmax(x).to_vector();
  double want[3] = {-2.4076059644443806, -1.4076059644443806, -0.4076059644443806};
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) CHECK(y[static_cast<std::size_t>(r * 3 + c)] == doctest::Approx(want[c]).epsilon(1e-12));
}

TEST_CASE("cross_entropy matches the definition, with and without label smoothing") {
  auto logits = TD::from_vector({2, 1, 0.1, 0.5, 2.5, 0.3}, {2, 3});
  auto labels = Labels::from_vector({0, 2});
  auto lp = ops::log_softmax(logits).to_vector();
  double plain = -(lp[0] + lp[5]) / 2;
  CHECK(ops::cross_entropy(logits, labels).item() == doctest::Approx(plain).epsilon(1e-14));
  double eps = 0.1;
  double smooth = 0;
  for (int r = 0; r < 2; ++r) {
    double s = 0;
    for (int c = 0; c < 3; ++c) s += lp[static_cast<std::size_t>(r * 3 + c)];
    smooth += -(1 - eps) * lp[static_cast<std::size_t>(r * 3 + (r == 0 ? 0 : 2))] - eps / 3 * s;
  }
  CHECK(ops::cross_entropy(logits, labels, eps).item() == doctest::Approx(smooth / 2).epsilon(1e-14));
  // Huge logits stay finite.
  auto huge = TD::from_vector({1e4, -1e4, 0, 0}, {2, 2});
  CHECK(std::isfinite(ops::cross_entropy(huge, Labels::from_vector({1, 0})).item()));
}

TEST_CASE("log_softmax and cross_entropy pass gradient checks") {
  gradcheck([](auto& v) { return ops::log_softmax(v[0]); }, {param({3, 5}, 1, -2, 2)});
  auto labels = Labels::from_vector({4, 0, 2});
  gradcheck([&](auto& v) { return ops::cross_entropy(v[0], labels); }, {param({3, 5}, 2, -2, 2)});
  gradcheck([&](auto& v) { return ops::cross_entropy(v[0], labels, 0.2); }, {param({3, 5}, 3, -2, 2)});
  // Scaled upstream gradient reaches the logits.
  gradcheck([&](auto& v) { return ops::cross_entropy(v[0], labels) * 3.0; }, {param({3, 5}, 4, -2, 2)});
}

TEST_CASE("cross_entropy rejects bad labels with useful text") {
  auto logits = TD::zeros({2, 3});
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, Labels::from_vector({0, 3})),
                       doctest::Contains("cross_entropy: index 3 at position 1 is outside [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, Labels::from_vector({0})),
                       doctest::Contains("labels of shape [1] do not match logits of shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, Labels::from_vector({0, 1}), 1.5),
                       doctest::Contains("label_smoothing must lie in [0, 1]"), Error);
}
