#include <doctest/doctest.h>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;

TEST_CASE("sum and mean over everything and along an axis") {
  auto x = TD::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(ops::sum(x).item() == 21);
  CHECK(ops::sum(x).rank() == 0);
  CHECK(ops::mean(x).item() == 3.5);
  CHECK(ops::sum(x, 0).to_vector() == std::vector<double>{5, 7, 9});
  CHECK(ops::sum(x, 0).shape() == Shape{3});
  CHECK(ops::sum(x, 0, true).shape() == Shape{1, 3});
  CHECK(ops::sum(x, -1).to_vector() == std::vector<double>{6, 15});
  CHECK(ops::mean(x, 1, true).shape() == Shape{2, 1});
  CHECK(ops::mean(x, 1).to_vector() == std::vector<double>{2, 5});
  auto y = TD::from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  CHECK(ops::sum(y, 1).to_vector() == std::vector<double>{4, 6, 12, 14});
  CHECK_THROWS_WITH_AS(ops::sum(x, 2), doctest::Contains("axis 2 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::mean(TD::zeros({0})), doctest::Contains("mean of an empty tensor"), Error);
}

TEST_CASE("sum of many elements does not depend on the thread count") {
  Generator g(5);
  auto x = Tensor<float>::randn({100003}, g);
  float a = ops::sum(x).item();
  double ref = 0;
  for (float v : x.to_vector()) ref += v;
  CHECK(a == doctest::Approx(ref).epsilon(1e-4));
  CHECK(ops::sum(x).item() == a);  // bitwise repeatable
}

TEST_CASE("max along an axis returns the first maximum and routes its gradient") {
  auto x = TD::from_vector({1, 5, 3, 7, 2, 7}, {2, 3}).requires_grad_();
  auto m = ops::max(x, 1);
  CHECK(m.to_vector() == std::vector<double>{5, 7});
  ops::sum(m).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 1, 0, 1, 0, 0});
  CHECK(ops::max(x, 0, true).shape() == Shape{1, 3});
}

TEST_CASE("reductions pass gradient checks") {
  Shape s{2, 3, 4};
  gradcheck([](auto& v) { return ops::sum(v[0]); }, {param(s, 1)});
  gradcheck([](auto& v) { return ops::mean(v[0]); }, {param(s, 2)});
  for (int axis : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      INFO("axis ", axis, " keepdim ", keep);
      gradcheck([=](auto& v) { return ops::sum(v[0], axis, keep); }, {param(s, 3)});
      gradcheck([=](auto& v) { return ops::mean(v[0], axis, keep); }, {param(s, 4)});
      gradcheck([=](auto& v) { return ops::max(v[0], axis, keep); }, {param(s, 5)});
    }
}
