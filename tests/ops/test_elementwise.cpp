#include <doctest/doctest.h>

#include "../support/gradcheck.hpp"

using namespace dml;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;

TEST_CASE("unary ops compute the expected values") {
  auto x = TD::from_vector({-2, -0.5, 0.5, 2});
  testing::check_close(ops::neg(x).to_vector(), {2, 0.5, -0.5, -2}, 1e-15, "neg");
  testing::check_close(ops::relu(x).to_vector(), {0, 0, 0.5, 2}, 1e-15, "relu");
  testing::check_close(ops::square(x).to_vector(), {4, 0.25, 0.25, 4}, 1e-15, "square");
  testing::check_close(ops::clamp(x, -1, 1).to_vector(), {-1, -0.5, 0.5, 1}, 1e-15, "clamp");
  testing::check_close(ops::exp(x).to_vector(), {std::exp(-2.0), std::exp(-0.5), std::exp(0.5), std::exp(2.0)}, 1e-15,
                       "exp");
  testing::check_close(ops::sigmoid(x).to_vector(), {0.11920292202211755, 0.3775406687981454, 0.6224593312018546,
                                                     0.8807970779778823}, 1e-14, "sigmoid");
  testing::check_close(ops::tanh(x).to_vector(), {std::tanh(-2.0), std::tanh(-0.5), std::tanh(0.5), std::tanh(2.0)},
                       1e-15, "tanh");
  auto p = TD::from_vector({0.25, 4, 9});
  testing::check_close(ops::sqrt(p).to_vector(), {0.5, 2, 3}, 1e-15, "sqrt");
  testing::check_close(ops::log(p).to_vector(), {std::log(0.25), std::log(4.0), std::log(9.0)}, 1e-15, "log");
  testing::check_close(ops::pow(p, 1.5).to_vector(), {0.125, 8, 27}, 1e-14, "pow");
  // Sigmoid must not overflow for large magnitudes.
  auto big = ops::sigmoid(TD::from_vector({-800, 800})).to_vector();
  CHECK(big[0] == 0.0);
  CHECK(big[1] == 1.0);
}

TEST_CASE("unary ops pass gradient checks") {
  // Inputs stay away from kinks: relu and clamp avoid 0 and the bounds.
  auto away = [](std::uint64_t seed) {
    TD t = param({3, 4}, seed, 0.1, 1.0);
    NoGrad ng;
    double* p = t.data();
    for (int i = 0; i < 12; i += 2) p[i] = -p[i];
    return t;
  };
  using F = std::function<TD(std::vector<TD>&)>;
  std::vector<std::pair<const char*, F>> cases = {
      {"neg", [](auto& v) { return ops::neg(v[0]); }},
      {"exp", [](auto& v) { return ops::exp(v[0]); }},
      {"square", [](auto& v) { return ops::square(v[0]); }},
      {"relu", [](auto& v) { return ops::relu(v[0]); }},
      {"sigmoid", [](auto& v) { return ops::sigmoid(v[0]); }},
      {"tanh", [](auto& v) { return ops::tanh(v[0]); }},
      {"clamp", [](auto& v) { return ops::clamp(v[0], -0.5, 0.55); }},
      {"affine", [](auto& v) { return 3.0 - v[0] * 2.0 / 4.0 + 1.0; }},
  };
  for (auto& [name, f] : cases) {
    INFO(name);
    gradcheck(f, {away(11)});
  }
  // log, sqrt and pow need positive inputs.
  for (auto& [name, f] : std::vector<std::pair<const char*, F>>{
           {"log", [](auto& v) { return ops::log(v[0]); }},
           {"sqrt", [](auto& v) { return ops::sqrt(v[0]); }},
           {"pow", [](auto& v) { return ops::pow(v[0], 2.5); }},
           {"pow-neg", [](auto& v) { return ops::pow(v[0], -1.5); }},
       }) {
    INFO(name);
    gradcheck(f, {param({3, 4}, 5, 0.5, 2.0)});
  }
}

TEST_CASE("binary ops broadcast rows, columns and scalars") {
  auto m = TD::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  auto row = TD::from_vector({10, 20, 30}, {1, 3});
  auto col = TD::from_vector({100, 200}, {2, 1});
  CHECK((m + row).to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
  CHECK((m + col).to_vector() == std::vector<double>{101, 102, 103, 204, 205, 206});
  CHECK((m - TD::from_vector({1, 1, 1})).to_vector() == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK((m * TD::scalar(2)).to_vector() == std::vector<double>{2, 4, 6, 8, 10, 12});
  CHECK((row / m).shape() == Shape{2, 3});
  CHECK((col * row).shape() == Shape{2, 3});
  CHECK((12.0 / m).to_vector() == std::vector<double>{12, 6, 4, 3, 2.4, 2});
  CHECK_THROWS_WITH_AS(m + TD::zeros({2}), doctest::Contains("add: shapes [2, 3] and [2] cannot be broadcast"), Error);
  CHECK_THROWS_WITH_AS(m / 0.0, doctest::Contains("by the scalar 0"), Error);
}

TEST_CASE("binary ops pass gradient checks with and without broadcasting") {
  using F = std::function<TD(std::vector<TD>&)>;
  std::vector<std::pair<const char*, F>> ops_list = {
      {"add", [](auto& v) { return v[0] + v[1]; }},
      {"sub", [](auto& v) { return v[0] - v[1]; }},
      {"mul", [](auto& v) { return v[0] * v[1]; }},
      {"div", [](auto& v) { return v[0] / v[1]; }},
  };
  std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{3, 4}, {1, 4}}, {{3, 4}, {3, 1}}, {{3, 4}, {4}}, {{3, 4}, {}}, {{3, 1}, {1, 4}},
      {{1, 4}, {3, 4}}, {{}, {2, 2}},     {{2, 3, 4}, {3, 1}}};
  for (auto& [name, f] : ops_list)
    for (auto& [sa, sb] : shapes) {
      INFO(name, " ", sa.str(), " ", sb.str());
      gradcheck(f, {param(sa, 1, 0.5, 1.5), param(sb, 2, 0.5, 1.5)});
    }
}

TEST_CASE("a scalar on the left divides elementwise and differentiates") {
  gradcheck([](auto& v) { return 2.0 / v[0]; }, {param({2, 3}, 4, 0.5, 1.5)});
}
