#include <doctest/doctest.h>

#include <dml/losses/center_loss.hpp>
#include <dml/losses/cross_entropy.hpp>

#include "../support/gradcheck.hpp"

using namespace dml;
using TD = Tensor<double>;
using Labels = Tensor<std::int64_t>;

TEST_CASE("center loss value, gradient and update on a hand-worked 3-sample example") {
  losses::CenterLoss<double> loss(2, 2, 0.5);
  {
    TD c = loss.centers();
    c.copy_(TD::from_vector({0, 0, 1, 1}, {2, 2}));  // c0 = (0,0), c1 = (1,1)
  }
  // x0 = (1,0) y=0, x1 = (3,1) y=1, x2 = (0,2) y=0
  TD x = TD::from_vector({1, 0, 3, 1, 0, 2}, {3, 2}).requires_grad_();
  auto y = Labels::from_vector({0, 1, 0});
  TD l = loss(x, y);
  // |x0-c0|^2 = 1, |x1-c1|^2 = 4, |x2-c0|^2 = 4  ->  L = 0.5 * 9 / 3 = 1.5
  CHECK(l.item() == doctest::Approx(1.5));
  l.backward();
  // dL/dx_i = (x_i - c_yi) / 3
  testing::check_close(x.grad().to_vector(), {1.0 / 3, 0, 2.0 / 3, 0, 0, 2.0 / 3}, 1e-15, "grad");
  // delta_0 = ((c0-x0) + (c0-x2)) / (1+2) = ((-1,0) + (0,-2)) / 3 = (-1/3, -2/3); c0 -= 0.5 delta_0 = (1/6, 1/3)
  // delta_1 = (c1-x1) / (1+1) = (-2,0)/2 = (-1, 0);                              c1 -= 0.5 delta_1 = (1.5, 1)
  testing::check_close(loss.centers().to_vector(), {1.0 / 6, 1.0 / 3, 1.5, 1}, 1e-15, "centers");
}

TEST_CASE("center loss does not move centers in eval mode and saves them in the state dict") {
  losses::CenterLoss<double> loss(3, 2);
  loss.eval();
  loss(TD::ones({2, 2}), Labels::from_vector({0, 1}));
  CHECK(loss.centers().to_vector() == std::vector<double>(6, 0.0));
  auto sd = loss.state_dict();
  CHECK(sd.contains("centers"));
  CHECK(loss.parameters().empty());
}

TEST_CASE("center loss passes a gradient check") {
  losses::CenterLoss<double> loss(3, 4);
  {
    TD c = loss.centers();
    Generator g(1);
    c.copy_(TD::randn({3, 4}, g));
  }
  loss.eval();  // keep the centers fixed across the finite differences
  auto y = Labels::from_vector({2, 0, 2, 1, 0});
  testing::gradcheck([&](auto& v) { return loss(v[0], y); }, {testing::param({5, 4}, 2)});
}

TEST_CASE("center loss rejects mismatched input") {
  losses::CenterLoss<double> loss(3, 4);
  CHECK_THROWS_WITH_AS(loss(TD::zeros({2, 5}), Labels::from_vector({0, 1})),
                       doctest::Contains("embedding of shape [2, 5] does not match the centers' dimension 4"), Error);
  CHECK_THROWS_WITH_AS(loss(TD::zeros({2, 4}), Labels::from_vector({0, 3})), doctest::Contains("index 3"), Error);
  CHECK_THROWS_WITH_AS(losses::CenterLoss<double>(3, 4, 0.0), doctest::Contains("alpha must lie in (0, 1]"), Error);
}

TEST_CASE("losses::cross_entropy is the stable op") {
  auto logits = TD::from_vector({1000, 0, 0, 1000}, {2, 2});
  CHECK(losses::cross_entropy(logits, Labels::from_vector({0, 1})).item() == doctest::Approx(0.0));
}
