#include <doctest/doctest.h>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;

namespace {
// Naive reference: op(a) @ op(b).
std::vector<double> naive(const TD& a, const TD& b, bool ta, bool tb) {
  auto av = a.to_vector(), bv = b.to_vector();
  std::int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1), n = tb ? b.dim(0) : b.dim(1);
  std::vector<double> c(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t p = 0; p < k; ++p) {
        double x = ta ? av[p * a.dim(1) + i] : av[i * a.dim(1) + p];
        double y = tb ? bv[j * b.dim(1) + p] : bv[p * b.dim(1) + j];
        c[i * n + j] += x * y;
      }
  return c;
}
}  // namespace

TEST_CASE("matmul of hand-written matrices") {
  auto a = TD::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  auto b = TD::from_vector({7, 8, 9, 10, 11, 12}, {3, 2});
  CHECK(ops::matmul(a, b).to_vector() == std::vector<double>{58, 64, 139, 154});
  CHECK(ops::matmul(a, a, false, true).to_vector() == std::vector<double>{14, 32, 32, 77});
  CHECK(ops::matmul(a, a, true, false).shape() == Shape{3, 3});
}

TEST_CASE("matmul matches a naive loop for every transpose combination") {
  Generator g(2);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("ta ", ta, " tb ", tb);
      std::int64_t m = 37, k = 19, n = 23;
      auto a = TD::randn(ta ? Shape{k, m} : Shape{m, k}, g);
      auto b = TD::randn(tb ? Shape{n, k} : Shape{k, n}, g);
      testing::check_close(ops::matmul(a, b, ta, tb).to_vector(), naive(a, b, ta, tb), 1e-12, "matmul");
    }
}

TEST_CASE("matmul passes gradient checks with transposed operands") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("ta ", ta, " tb ", tb);
      Shape sa = ta ? Shape{4, 3} : Shape{3, 4};
      Shape sb = tb ? Shape{5, 4} : Shape{4, 5};
      gradcheck([=](auto& v) { return ops::matmul(v[0], v[1], ta, tb); }, {param(sa, 1), param(sb, 2)});
    }
  gradcheck([](auto& v) { return ops::transpose(v[0]); }, {param({3, 5}, 3)});
}

TEST_CASE("matmul names both shapes on a mismatch") {
  CHECK_THROWS_WITH_AS(ops::matmul(TD::zeros({2, 3}), TD::zeros({2, 3})),
                       doctest::Contains("matmul: inner dimensions differ: [2, 3] @ [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::matmul(TD::zeros({2, 3}), TD::zeros({3})),
                       doctest::Contains("right operand must have rank 2, got shape [3]"), Error);
}
