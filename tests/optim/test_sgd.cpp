// Tests for dml/optim/sgd.hpp: torch.optim.SGD semantics, fused in-place
// updates, option validation, convergence.
#include "optim_testing.hpp"

#include <cmath>

using namespace dml;
using namespace dml::testing;

TEST_CASE("SGD steps match hand-computed values") {
  // Plain: p -= 0.1 * g.
  check_steps(run_three_steps<double>(optim::SGD{.lr = 0.1}),
              {{0.95, -1.97}, {0.97, -2.01}, {0.96, -2.035}}, 1e-14);
  // Momentum 0.9: buf1 = g1 = [0.5, -0.3]; buf2 = 0.9 buf1 + g2 = [0.25, 0.13];
  // buf3 = 0.9 buf2 + g3 = [0.325, 0.367].
  check_steps(run_three_steps<double>(optim::SGD{.lr = 0.1, .momentum = 0.9}),
              {{0.95, -1.97}, {0.925, -1.983}, {0.8925, -2.0197}}, 1e-14);
  // Nesterov, first step: d = g1 + 0.9 * buf1 = 1.9 g1 = [0.95, -0.57].
  // Weight decay 0.1, first step: d = g1 + 0.1 p0 = [0.6, -0.5].
  auto nest = run_three_steps<double>(optim::SGD{.lr = 0.1, .momentum = 0.9, .nesterov = true});
  auto wd = run_three_steps<double>(optim::SGD{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
  CHECK(nest[0][0] == doctest::Approx(0.905).epsilon(1e-14));
  CHECK(nest[0][1] == doctest::Approx(-1.943).epsilon(1e-14));
  CHECK(wd[0][0] == doctest::Approx(0.94).epsilon(1e-14));
  CHECK(wd[0][1] == doctest::Approx(-1.95).epsilon(1e-14));
}

// Values printed by tests/fixtures/gen_optim.py (torch 1.13, torch.optim.SGD).
TEST_CASE("SGD matches torch.optim.SGD in double") {
  SUBCASE("plain") {
    check_steps(run_three_steps<double>(optim::SGD{.lr = 0.1}),
                {{0.95, -1.97}, {0.97, -2.01}, {0.96, -2.0349999999999997}}, 1e-15);
  }
  SUBCASE("momentum") {
    check_steps(run_three_steps<double>(optim::SGD{.lr = 0.1, .momentum = 0.9}),
                {{0.95, -1.97}, {0.9249999999999999, -1.9829999999999999}, {0.8925, -2.0197}}, 1e-15);
  }
  SUBCASE("dampening") {
    check_steps(run_three_steps<double>(optim::SGD{.lr = 0.1, .momentum = 0.9, .dampening = 0.5}),
                {{0.95, -1.97}, {0.9149999999999999, -1.963}, {0.8785, -1.9692}}, 1e-15);
  }
  SUBCASE("nesterov") {
    check_steps(run_three_steps<double>(optim::SGD{.lr = 0.1, .momentum = 0.9, .nesterov = true}),
                {{0.905, -1.943}, {0.9025000000000001, -1.9947000000000001}, {0.8632500000000001, -2.05273}},
                1e-15);
  }
  SUBCASE("weight decay") {
    check_steps(run_three_steps<double>(optim::SGD{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1}),
                {{0.94, -1.95}, {0.8966, -1.9255}, {0.8385739999999999, -1.909195}}, 1e-15);
  }
}

TEST_CASE("SGD matches torch.optim.SGD in float") {
  const double rel = 2.5e-7;  // about two float ulps
  check_steps(run_three_steps<float>(optim::SGD{.lr = 0.1}),
              {{0.949999988079071, -1.9700000286102295},
               {0.9699999690055847, -2.009999990463257},
               {0.9599999785423279, -2.0350000858306885}},
              rel);
  check_steps(run_three_steps<float>(optim::SGD{.lr = 0.1, .momentum = 0.9, .dampening = 0.5}),
              {{0.949999988079071, -1.9700000286102295},
               {0.9149999618530273, -1.9630000591278076},
               {0.8784999847412109, -1.9692000150680542}},
              rel);
  check_steps(run_three_steps<float>(optim::SGD{.lr = 0.1, .momentum = 0.9, .nesterov = true}),
              {{0.9049999713897705, -1.9429999589920044},
               {0.9024999737739563, -1.9946999549865723},
               {0.8632499575614929, -2.052729845046997}},
              rel);
  check_steps(run_three_steps<float>(optim::SGD{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1}),
              {{0.9399999976158142, -1.9500000476837158},
               {0.8966000080108643, -1.9255000352859497},
               {0.8385739922523499, -1.909195065498352}},
              rel);
}

TEST_CASE("SGD allocates its momentum buffer once and updates in place") {
  Tensor<double> p = Tensor<double>::from_vector({1.0, 2.0, 3.0});
  p.requires_grad_();
  auto opt = optim::make(optim::SGD{.lr = 0.1, .momentum = 0.9}, std::vector<Tensor<double>>{p});
  CHECK_FALSE(opt.param_state(0).buffers[0].defined());
  const double* pdata = p.data();
  p.set_grad(Tensor<double>::ones(Shape{3}));
  opt.step();
  REQUIRE(opt.param_state(0).buffers[0].defined());
  const double* buf = opt.param_state(0).buffers[0].data();
  for (int i = 0; i < 3; ++i) opt.step();
  CHECK(opt.param_state(0).buffers[0].data() == buf);
  CHECK(p.data() == pdata);
  CHECK(opt.steps() == 4);

  // Without momentum there is no state at all.
  auto plain = optim::make(optim::SGD{.lr = 0.1}, std::vector<Tensor<double>>{p});
  plain.step();
  CHECK_FALSE(plain.param_state(0).buffers[0].defined());
}

TEST_CASE("SGD skips parameters whose gradient is undefined") {
  Tensor<double> a = Tensor<double>::from_vector({1.0, 1.0});
  Tensor<double> b = Tensor<double>::from_vector({2.0, 2.0});
  a.requires_grad_();
  b.requires_grad_();
  auto opt = optim::make(optim::SGD{.lr = 0.5, .momentum = 0.9}, std::vector<Tensor<double>>{a, b});
  a.set_grad(Tensor<double>::ones(Shape{2}));
  opt.step();
  CHECK(a.to_vector() == std::vector<double>{0.5, 0.5});
  CHECK(b.to_vector() == std::vector<double>{2.0, 2.0});
  CHECK_FALSE(opt.param_state(1).buffers[0].defined());
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
  opt.step();  // nothing has a gradient: nothing moves
  CHECK(a.to_vector() == std::vector<double>{0.5, 0.5});
}

TEST_CASE("SGD rejects bad options") {
  Tensor<float> p = Tensor<float>::zeros(Shape{2});
  std::vector<Tensor<float>> ps{p};
  CHECK_THROWS_AS(optim::make(optim::SGD{.lr = -0.1}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.lr = std::nan("")}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.lr = INFINITY}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.momentum = 1.0}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.momentum = -0.1}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.momentum = 0.9, .dampening = 1.5}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.weight_decay = -1}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.nesterov = true}, ps), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{.momentum = 0.9, .dampening = 0.1, .nesterov = true}, ps), Error);
  CHECK_NOTHROW(optim::make(optim::SGD{.lr = 0, .momentum = 0.9, .nesterov = true}, ps));

  auto opt = optim::make(optim::SGD{.lr = 0.1, .momentum = 0.9, .nesterov = true}, ps);
  CHECK_THROWS_AS(opt.set_lr(-1), Error);
  CHECK_THROWS_AS(opt.set_momentum(0), Error);  // Nesterov needs momentum
  CHECK_THROWS_AS(opt.set_momentum(1), Error);
  opt.set_momentum(0.5);
  CHECK(opt.momentum() == 0.5);
  CHECK(opt.options().momentum == 0.9);  // the creation options are kept
}

TEST_CASE("set_momentum changes the SGD update") {
  // After set_momentum(0.5): buf2 = 0.5 * g1 + g2 = [0.05, 0.25].
  Tensor<double> p = Tensor<double>::from_vector(kP0);
  p.requires_grad_();
  auto opt = optim::make(optim::SGD{.lr = 0.1, .momentum = 0.9}, std::vector<Tensor<double>>{p});
  p.set_grad(Tensor<double>::from_vector(kGrads[0]));
  opt.step();
  opt.set_momentum(0.5);
  p.set_grad(Tensor<double>::from_vector(kGrads[1]));
  opt.step();
  CHECK(p.at(0) == doctest::Approx(0.95 - 0.005).epsilon(1e-14));
  CHECK(p.at(1) == doctest::Approx(-1.97 - 0.025).epsilon(1e-14));
}

TEST_CASE("SGD minimises a quadratic") {
  // f(p) = 0.5 * sum a_i (p_i - c_i)^2, gradient a * (p - c).
  const std::vector<double> a = {1.0, 10.0, 0.5}, c = {3.0, -1.0, 0.25};
  for (optim::SGD o : {optim::SGD{.lr = 0.05}, optim::SGD{.lr = 0.02, .momentum = 0.9},
                       optim::SGD{.lr = 0.02, .momentum = 0.9, .nesterov = true}}) {
    Tensor<double> p = Tensor<double>::zeros(Shape{3});
    p.requires_grad_();
    auto opt = optim::make(o, std::vector<Tensor<double>>{p});
    for (int it = 0; it < 2000; ++it) {
      std::vector<double> v = p.to_vector(), g(3);
      for (int i = 0; i < 3; ++i) g[i] = a[i] * (v[i] - c[i]);
      p.set_grad(Tensor<double>::from_vector(g));
      opt.step();
    }
    for (int i = 0; i < 3; ++i) CHECK(p.at(i) == doctest::Approx(c[i]).epsilon(1e-6));
  }
}
