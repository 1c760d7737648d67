#include <doctest/doctest.h>

#include <dml/dml.hpp>

using namespace dml;

TEST_CASE("factories fill tensors with the requested values") {
  auto z = Tensor<float>::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.to_vector() == std::vector<float>(6, 0.0f));
  CHECK(Tensor<double>::ones({4}).to_vector() == std::vector<double>(4, 1.0));
  CHECK(Tensor<float>::full({2, 2}, 2.5f).to_vector() == std::vector<float>(4, 2.5f));
  auto v = Tensor<float>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(v.at(1, 2) == 6.0f);
  CHECK(v.at(0, 1) == 2.0f);
  CHECK(Tensor<double>::scalar(3.0).item() == 3.0);
  CHECK(Tensor<std::int64_t>::from_vector({4, 5}).at(1) == 5);
}

TEST_CASE("random factories are seeded") {
  Generator a(9), b(9);
  auto x = Tensor<float>::randn({5, 7}, a);
  auto y = Tensor<float>::randn({5, 7}, b);
  CHECK(x.to_vector() == y.to_vector());
  auto u = Tensor<double>::uniform({100}, a, -2, 3);
  for (double e : u.to_vector()) {
    CHECK(e >= -2.0);
    CHECK(e < 3.0);
  }
}

TEST_CASE("bad factory and access arguments throw with useful text") {
  CHECK_THROWS_WITH_AS(Tensor<float>::from_vector({1, 2, 3}, {2, 2}),
                       doctest::Contains("3 values do not fill shape [2, 2]"), Error);
  auto t = Tensor<float>::zeros({2, 2});
  CHECK_THROWS_WITH_AS(t.at(2, 0), doctest::Contains("index 2 is out of range in dimension 0"), Error);
  CHECK_THROWS_WITH_AS(t.at(0), doctest::Contains("1 indices for a tensor of shape [2, 2]"), Error);
  CHECK_THROWS_WITH_AS(t.item(), doctest::Contains("has 4 elements"), Error);
  Tensor<float> undefined;
  CHECK_FALSE(undefined.defined());
  CHECK_THROWS_WITH_AS(undefined.shape(), doctest::Contains("undefined tensor"), Error);
}

TEST_CASE("reshape views share storage, clone copies") {
  auto t = Tensor<float>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  auto r = t.reshape({3, -1});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.shares_storage(t));
  CHECK(r.at(2, 1) == 6.0f);
  auto c = t.clone();
  CHECK_FALSE(c.shares_storage(t));
  c.data()[0] = 100;
  CHECK(t.at(0, 0) == 1.0f);
  CHECK_THROWS_WITH_AS(t.reshape({4, 2}), doctest::Contains("cannot view shape [2, 3] (6 elements) as [4, 2]"),
                       Error);
  CHECK_THROWS_WITH_AS(t.reshape({-1, -1}), doctest::Contains("more than one -1"), Error);
}

TEST_CASE("transpose of a 2-D tensor") {
  auto t = Tensor<double>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  auto tt = ops::transpose(t);
  CHECK(tt.shape() == Shape{3, 2});
  CHECK(tt.to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
  CHECK_THROWS_WITH_AS(ops::transpose(Tensor<double>::zeros({2, 2, 2})),
                       doctest::Contains("transpose: input must have rank 2, got shape [2, 2, 2]"), Error);
}

TEST_CASE("detach shares data but leaves the graph") {
  auto x = Tensor<double>::from_vector({1, 2}).requires_grad_();
  auto y = ops::exp(x);
  auto d = y.detach();
  CHECK(y.requires_grad());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.shares_storage(y));
}

TEST_CASE("to<Cpu>() on a host tensor is the same tensor") {
  auto x = Tensor<float>::ones({3});
  CHECK(x.to<Cpu>().same(x));
}
