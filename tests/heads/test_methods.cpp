#include <doctest/doctest.h>

#include <string>
#include <type_traits>

#include <dml/heads/methods.hpp>

using namespace dml;
using namespace dml::heads;

namespace test_methods {

TEST_CASE("methods by name: the reference six by default, sub-centre ArcFace and AdaCos on request") {
  CHECK(kMethods.size() == 6);
  CHECK(method_info("subcenter").title == "Sub-center ArcFace");
  CHECK(method_info("subcenterarcface").key == "subcenter");
  CHECK(method_info("adacos").key == "adacos");
  CHECK(method_info("arcface").key == "arc");
  CHECK_THROWS_WITH_AS(method_info("magface"),
                       doctest::Contains("unknown method 'magface' (expected one of softmax, l2, arc, cos, sphere, "
                                         "center, subcenter, adacos)"),
                       Error);
  std::string seen;
  with_method("subcenter", [&](auto policy, double center_weight) {
    if constexpr (std::is_same_v<decltype(policy), SubCenter<Arc>>) {
      seen = "subcenter";
      CHECK(policy.k == 3);
      CHECK(policy.margin.s == 30);
      CHECK(policy.margin.m == 0.5);
    }
    CHECK(center_weight == 0);
  });
  with_method("adacos", [&](auto policy, double) {
    if constexpr (std::is_same_v<decltype(policy), AdaCos>) {
      seen += " adacos";
      CHECK(policy.dynamic);
      CHECK(policy.s == 0);  // the head sets sqrt(2) log(C - 1)
    }
  });
  CHECK(seen == "subcenter adacos");
}

}  // namespace test_methods
