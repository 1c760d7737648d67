// Tests for dml/optim/adam.hpp: torch.optim.Adam / AdamW semantics, state
// allocation, option validation, convergence.
#include "optim_testing.hpp"

#include <cmath>

using namespace dml;
using namespace dml::testing;

TEST_CASE("Adam's first step moves each element by about lr against its gradient") {
  // t = 1: m^ = g, v^ = g^2, so p -= lr * g / (|g| + eps).
  auto got = run_three_steps<double>(optim::Adam{.lr = 0.1});
  CHECK(got[0][0] == doctest::Approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-15));
  CHECK(got[0][1] == doctest::Approx(-2.0 + 0.1 * 0.3 / (0.3 + 1e-8)).epsilon(1e-15));
  // AdamW first shrinks p by 1 - lr * wd = 0.99, then takes the same step.
  auto w = run_three_steps<double>(optim::AdamW{.lr = 0.1, .weight_decay = 0.1});
  CHECK(w[0][0] == doctest::Approx(0.99 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-15));
  CHECK(w[0][1] == doctest::Approx(-1.98 + 0.1 * 0.3 / (0.3 + 1e-8)).epsilon(1e-15));
  // Adam with L2 weight decay: g' = g + 0.1 * p0 = [0.6, -0.5].
  auto l2 = run_three_steps<double>(optim::Adam{.lr = 0.1, .weight_decay = 0.1});
  CHECK(l2[0][0] == doctest::Approx(1.0 - 0.1 * 0.6 / (0.6 + 1e-8)).epsilon(1e-15));
}

TEST_CASE("Adam's second step by hand") {
  // beta1 0.8, beta2 0.9, eps 1e-3, lr 0.05; element 0: g1 = 0.5, g2 = -0.2.
  const double b1 = 0.8, b2 = 0.9, eps = 1e-3, lr = 0.05;
  double p = 1.0, m = 0, v = 0;
  const double g[2] = {0.5, -0.2};
  for (int t = 1; t <= 2; ++t) {
    m = b1 * m + (1 - b1) * g[t - 1];
    v = b2 * v + (1 - b2) * g[t - 1] * g[t - 1];
    p -= lr / (1 - std::pow(b1, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(b2, t)) + eps);
  }
  auto got = run_three_steps<double>(optim::Adam{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-3});
  CHECK(got[1][0] == doctest::Approx(p).epsilon(1e-14));
}

// Values printed by tests/fixtures/gen_optim.py (torch 1.13, torch.optim.Adam / AdamW).
TEST_CASE("Adam and AdamW match PyTorch in double") {
  SUBCASE("adam") {
    check_steps(run_three_steps<double>(optim::Adam{.lr = 0.1}),
                {{0.900000002, -1.9000000033333333},
                 {0.8654394181165108, -1.9193510436996908},
                 {0.8275002408356956, -1.961312593040585}},
                1e-14);
  }
  SUBCASE("adam betas and eps") {
    check_steps(run_three_steps<double>(optim::Adam{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-3}),
                {{0.9500998003992016, -1.9501661129568106},
                 {0.9352636911133809, -1.962610343602035},
                 {0.9177271817753788, -1.9866591190190865}},
                1e-14);
  }
  SUBCASE("adam weight decay") {
    check_steps(run_three_steps<double>(optim::Adam{.lr = 0.1, .weight_decay = 0.1}),
                {{0.9000000016666666, -1.900000002},
                 {0.8475190629593703, -1.867054116906693},
                 {0.7901621834311943, -1.8491711499326402}},
                1e-14);
  }
  SUBCASE("adamw") {
    check_steps(run_three_steps<double>(optim::AdamW{.lr = 0.1, .weight_decay = 0.1}),
                {{0.890000002, -1.8800000033333333},
                 {0.8465394180965108, -1.8805510436663575},
                 {0.8001348466347304, -1.9037070825705882}},
                1e-14);
  }
}

TEST_CASE("Adam and AdamW match PyTorch in float") {
  const double rel = 5e-7;  // a few float ulps
  check_steps(run_three_steps<float>(optim::Adam{.lr = 0.1}),
              {{0.9000000357627869, -1.899999976158142},
               {0.8654394745826721, -1.9193509817123413},
               {0.8275002837181091, -1.9613125324249268}},
              rel);
  check_steps(run_three_steps<float>(optim::Adam{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-3}),
              {{0.9500998258590698, -1.95016610622406},
               {0.9352636933326721, -1.9626103639602661},
               {0.9177271723747253, -1.9866591691970825}},
              rel);
  check_steps(run_three_steps<float>(optim::Adam{.lr = 0.1, .weight_decay = 0.1}),
              {{0.9000000357627869, -1.899999976158142},
               {0.8475190997123718, -1.8670541048049927},
               {0.790162205696106, -1.8491711616516113}},
              rel);
  check_steps(run_three_steps<float>(optim::AdamW{.lr = 0.1, .weight_decay = 0.1}),
              {{0.89000004529953, -1.8799999952316284},
               {0.8465394973754883, -1.8805509805679321},
               {0.8001348972320557, -1.9037070274353027}},
              rel);
}

TEST_CASE("Adam keeps a step count per parameter and allocates its moments once") {
  Tensor<double> a = Tensor<double>::from_vector({1.0, 2.0});
  Tensor<double> b = Tensor<double>::from_vector({3.0});
  auto opt = optim::make(optim::AdamW{}, std::vector<Tensor<double>>{a, b});
  a.set_grad(Tensor<double>::ones(Shape{2}));
  opt.step();
  REQUIRE(opt.param_state(0).buffers[0].defined());
  CHECK_FALSE(opt.param_state(1).buffers[0].defined());  // b had no gradient
  const double* m = opt.param_state(0).buffers[0].data();
  const double* v = opt.param_state(0).buffers[1].data();
  b.set_grad(Tensor<double>::ones(Shape{1}));
  opt.step();
  opt.step();
  CHECK(opt.param_state(0).step == 3);
  CHECK(opt.param_state(1).step == 2);
  CHECK(opt.steps() == 3);
  CHECK(opt.param_state(0).buffers[0].data() == m);
  CHECK(opt.param_state(0).buffers[1].data() == v);
  // b's first update used t = 1: it matches a parameter updated twice from scratch.
  Tensor<double> c = Tensor<double>::from_vector({3.0});
  auto single = optim::make(optim::AdamW{}, std::vector<Tensor<double>>{c});
  c.set_grad(Tensor<double>::ones(Shape{1}));
  single.step();
  single.step();
  CHECK(c.at(0) == b.at(0));
}

TEST_CASE("Adam rejects bad options") {
  std::vector<Tensor<double>> ps{Tensor<double>::zeros(Shape{2})};
  CHECK_THROWS_AS(optim::make(optim::Adam{.lr = -1e-3}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::Adam{.beta1 = 1.0}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::Adam{.beta1 = -0.1}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::AdamW{.beta2 = 1.0}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::AdamW{.eps = -1e-8}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::AdamW{.weight_decay = -0.01}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::AdamW{.beta1 = std::nan("")}, ps), Error);
  auto opt = optim::make(optim::AdamW{.lr = 1e-3}, ps);
  CHECK(opt.has_momentum());
  CHECK(opt.momentum() == 0.9);  // beta1
  CHECK_THROWS_AS(opt.set_momentum(1.0), Error);
  opt.set_momentum(0.85);
  CHECK(opt.momentum() == 0.85);
  CHECK(std::string(opt.name()) == "AdamW");
}

TEST_CASE("Adam and AdamW minimise a quadratic") {
  const std::vector<double> a = {1.0, 10.0, 0.5}, c = {3.0, -1.0, 0.25};
  auto minimise = [&](const auto& options) {
    Tensor<double> p = Tensor<double>::zeros(Shape{3});
    auto opt = optim::make(options, std::vector<Tensor<double>>{p});
    for (int it = 0; it < 3000; ++it) {
      std::vector<double> v = p.to_vector(), g(3);
      for (int i = 0; i < 3; ++i) g[i] = a[i] * (v[i] - c[i]);
      p.set_grad(Tensor<double>::from_vector(g));
      if (it == 2000) opt.set_lr(opt.lr() / 100);  // settle the oscillation
      opt.step();
    }
    return p.to_vector();
  };
  auto p = minimise(optim::Adam{.lr = 0.05});
  for (int i = 0; i < 3; ++i) CHECK(p[i] == doctest::Approx(c[i]).epsilon(1e-3));
  auto w = minimise(optim::AdamW{.lr = 0.05, .weight_decay = 0});
  for (int i = 0; i < 3; ++i) CHECK(w[i] == doctest::Approx(c[i]).epsilon(1e-3));
}
