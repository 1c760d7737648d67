// Tests for dml/ops/batchnorm.hpp, backend/cpu/batchnorm.hpp: the op's gradients (the modules: tests/nn/test_batchnorm.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <dml/nn/batchnorm.hpp>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_ops_batchnorm {

TEST_CASE("batch_norm gradients in training mode match central differences") {
  for (Shape s : {Shape{3, 2, 3, 3}, Shape{5, 4}, Shape{4, 3, 2}, Shape{2, 3, 1, 1}}) {
    INFO("shape ", s.str());
    const std::int64_t c = s[1];
    auto rep = gradcheck(
        [&](std::vector<TD>& v) {
          return ops::batch_norm(v[0], v[1], v[2], TD(), TD(), {.training = true, .momentum = 0.1, .eps = 1e-5});
        },
        {param(s, 1), param({c}, 2, 0.5, 1.5), param({c}, 3)});
    CHECK(rep.failures == 0);
  }
}

TEST_CASE("batch_norm gradients in eval mode match central differences") {
  Generator g(5);
  TD rm = TD::uniform({3}, g, -0.5, 0.5), rv = TD::uniform({3}, g, 0.5, 2);
  auto rep =
      gradcheck([&](std::vector<TD>& v) { return ops::batch_norm(v[0], v[1], v[2], rm, rv, {.training = false}); },
                {param({2, 3, 2, 2}, 4), param({3}, 5), param({3}, 6)});
  CHECK(rep.failures == 0);
}

}  // namespace test_ops_batchnorm
