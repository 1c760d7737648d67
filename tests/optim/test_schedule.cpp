// Tests for dml/optim/schedule.hpp: each schedule's values at chosen steps,
// fastai's one-cycle, applying a schedule to an optimiser.
#include "optim_testing.hpp"

#include <dml/optim/schedule.hpp>

#include <cmath>
#include <numbers>

using namespace dml;
using namespace dml::testing;

TEST_CASE("constant schedule") {
  optim::Constant c;
  CHECK(c.lr(0, 10, 0.3) == 0.3);
  CHECK(c.lr(10, 10, 0.3) == 0.3);
  CHECK_FALSE(c.momentum(3, 10).has_value());
}

// Reference lists printed by tests/fixtures/gen_optim.py (torch 1.13 schedulers, base lr 0.5).
TEST_CASE("step decay matches torch.optim.lr_scheduler.StepLR") {
  const double want[] = {0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.0625};
  optim::StepDecay s{.step_size = 3, .gamma = 0.5};
  for (int i = 0; i < 10; ++i) CHECK(s.lr(i, 10, 0.5) == want[i]);
  CHECK_THROWS_AS((optim::StepDecay{.step_size = 0}.lr(0, 10, 0.5)), Error);
  CHECK_THROWS_AS((optim::StepDecay{.gamma = -1}.lr(0, 10, 0.5)), Error);
}

TEST_CASE("cosine matches torch.optim.lr_scheduler.CosineAnnealingLR") {
  const double want[] = {0.5,
                         0.48800884649231263,
                         0.4532091636218621,
                         0.39900738681165593,
                         0.33070916362186215,
                         0.255,
                         0.17929083637813792,
                         0.11099261318834411,
                         0.05679083637813791,
                         0.021991153507687385};
  optim::Cosine s{.eta_min = 0.01};
  // PyTorch computes these recursively; the closed form agrees to rounding.
  for (int i = 0; i < 10; ++i) CHECK(s.lr(i, 10, 0.5) == doctest::Approx(want[i]).epsilon(1e-13).scale(0));
  CHECK(s.lr(10, 10, 0.5) == doctest::Approx(0.01).epsilon(1e-15));  // the end: eta_min
  CHECK(s.lr(5, 10, 0.5) == doctest::Approx((0.5 + 0.01) / 2).epsilon(1e-15));  // the middle
  CHECK_THROWS_AS((optim::Cosine{.eta_min = -1}.lr(0, 10, 0.5)), Error);
}

// Values from fastai 2's formula (fit_one_cycle -> combined_cos -> SchedCos),
// reimplemented in tests/fixtures/gen_optim.py: {step, lr, mom}.
TEST_CASE("one-cycle matches fastai's fit_one_cycle defaults") {
  struct Row {
    std::int64_t step;
    double lr, mom;
  };
  const Row rows[] = {
      {0, 4e-05, 0.95},                                       // start: lr_max / div
      {1, 4.3784943369050675e-05, 0.9496057350657239},
      {12, 0.0004898605506259297, 0.9031395259764656},        // mid warm-up
      {24, 0.0009962150566309494, 0.8503942649342761},
      {25, 0.001, 0.85},                                      // warm-up end: lr_max, mom min
      {26, 0.0009995614194352788, 0.850043858495057},
      {50, 0.0007500025000000001, 0.875},                     // middle of the annealing
      {62, 0.0005104761052295789, 0.8989528790058321},
      {99, 4.4858056472119566e-07, 0.9499561415049429},       // last update
      {100, 9.999999999940612e-09, 0.95},                     // end: lr_max / div_final
  };
  optim::OneCycle s;
  for (const Row& r : rows) {
    INFO("step " << r.step);
    CHECK(s.lr(r.step, 100, 1e-3) == doctest::Approx(r.lr).epsilon(1e-14).scale(0));
    CHECK(s.momentum(r.step, 100).value() == doctest::Approx(r.mom).epsilon(1e-14).scale(0));
  }
}

TEST_CASE("one-cycle with custom settings matches fastai's formula") {
  struct Row {
    std::int64_t step;
    double lr, mom;
  };
  const Row rows[] = {
      {0, 0.01, 0.9},
      {5, 0.04802335301511111, 0.8577518299832099},
      {11, 0.09998197782032447, 0.800020024644084},
      {12, 0.0997023879841449, 0.8001488208900166},
      {20, 0.07358919124508119, 0.8132067250499644},
      {36, 0.00037733663981492915, 0.8498163133114236},
      {37, 9.999999999996123e-06, 0.85},
  };
  optim::OneCycle s{.pct_start = 0.3, .div = 10, .div_final = 1e4, .moms = {0.9, 0.8, 0.85}};
  for (const Row& r : rows) {
    INFO("step " << r.step);
    CHECK(s.lr(r.step, 37, 0.1) == doctest::Approx(r.lr).epsilon(1e-14).scale(0));
    CHECK(s.momentum(r.step, 37).value() == doctest::Approx(r.mom).epsilon(1e-14).scale(0));
  }
  CHECK_FALSE((optim::OneCycle{.cycle_momentum = false}.momentum(3, 37).has_value()));
  // pct_start 0: no warm-up, annealing from lr_max at step 0.
  CHECK(optim::OneCycle{.pct_start = 0}.lr(0, 10, 0.2) == 0.2);
}

TEST_CASE("schedules reject bad input") {
  optim::OneCycle s;
  CHECK_THROWS_AS(s.lr(0, 0, 1e-3), Error);   // total 0
  CHECK_THROWS_AS(s.lr(-1, 10, 1e-3), Error);
  CHECK_THROWS_AS(s.lr(11, 10, 1e-3), Error);
  CHECK_THROWS_AS(optim::Constant{}.lr(0, 0, 1.0), Error);
  CHECK_THROWS_AS(optim::Cosine{}.lr(0, -5, 1.0), Error);
  CHECK_THROWS_AS((optim::OneCycle{.pct_start = 1.0}.lr(0, 10, 1.0)), Error);
  CHECK_THROWS_AS((optim::OneCycle{.div = 0}.lr(0, 10, 1.0)), Error);
  CHECK_THROWS_AS((optim::OneCycle{.div_final = -1}.lr(0, 10, 1.0)), Error);
  CHECK_THROWS_AS((optim::OneCycle{.moms = {0.95, 1.0, 0.95}}.momentum(0, 10)), Error);
}

TEST_CASE("apply sets every group's lr from its base lr, and the momentum") {
  TinyNet<double> body, head;
  auto groups = optim::default_groups(body, "body.", 1e-4);
  for (auto& g : optim::default_groups(head, "head.", 1e-3)) groups.push_back(std::move(g));
  auto opt = optim::make(optim::AdamW{.lr = 1e-3}, groups);
  const optim::Schedule sched = optim::OneCycle{};
  optim::apply(sched, opt, 25, 100);
  CHECK(opt.lr(0) == doctest::Approx(1e-4).epsilon(1e-15));
  CHECK(opt.lr(3) == doctest::Approx(1e-3).epsilon(1e-15));
  CHECK(opt.momentum(0) == doctest::Approx(0.85).epsilon(1e-15));  // beta1
  optim::apply(sched, opt, 0, 100);
  CHECK(opt.lr(1) == doctest::Approx(1e-4 / 25).epsilon(1e-15));
  CHECK(opt.lr(2) == doctest::Approx(1e-3 / 25).epsilon(1e-15));
  CHECK(opt.momentum(2) == doctest::Approx(0.95).epsilon(1e-15));
  CHECK(optim::lr_at(sched, 0, 100, 1e-3) == opt.lr(2));
  CHECK(optim::momentum_at(sched, 0, 100).value() == opt.momentum(2));
  optim::apply(optim::Cosine{}, opt, 50, 100);
  CHECK(opt.lr(0) == doctest::Approx(5e-5).epsilon(1e-15));
  CHECK(opt.momentum(0) == doctest::Approx(0.95).epsilon(1e-15));  // cosine leaves momentum alone

  // SGD without momentum ignores the momentum cycle (as fastai's SGD with mom 0).
  TinyNet<double> net;
  auto sgd = optim::make(optim::SGD{.lr = 0.1}, net);
  optim::apply(optim::OneCycle{}, sgd, 25, 100);
  CHECK(sgd.momentum() == 0.0);
  CHECK(sgd.lr() == doctest::Approx(0.1).epsilon(1e-15));
  auto msgd = optim::make(optim::SGD{.lr = 0.1, .momentum = 0.9, .nesterov = true}, net);
  optim::apply(optim::OneCycle{}, msgd, 25, 100);
  CHECK(msgd.momentum() == doctest::Approx(0.85).epsilon(1e-15));
}

TEST_CASE("one-cycle training converges and resumes exactly") {
  // Minimise a quadratic under the one-cycle schedule with AdamW; a run split
  // at step 40 (state exported, schedule recomputed) ends bitwise equal.
  const std::vector<double> a = {1.0, 10.0}, c = {3.0, -1.0};
  const std::int64_t total = 400;
  auto train = [&](Tensor<double>& p, optim::Optimizer<double>& opt, std::int64_t from, std::int64_t to) {
    for (std::int64_t s = from; s < to; ++s) {
      optim::apply(optim::OneCycle{}, opt, s, total);
      std::vector<double> v = p.to_vector(), g(2);
      for (int i = 0; i < 2; ++i) g[i] = a[i] * (v[i] - c[i]);
      p.set_grad(Tensor<double>::from_vector(g));
      opt.step();
    }
  };
  Tensor<double> p = Tensor<double>::zeros(Shape{2});
  auto opt = optim::make(optim::AdamW{.lr = 0.5, .weight_decay = 0}, std::vector<Tensor<double>>{p});
  train(p, opt, 0, 40);
  auto saved = opt.state_dict();
  Tensor<double> q = p.clone();
  auto resumed = optim::make(optim::AdamW{.lr = 0.5, .weight_decay = 0}, std::vector<Tensor<double>>{q});
  resumed.load_state_dict(saved);
  train(p, opt, 40, total);
  train(q, resumed, std::get<Tensor<std::int64_t>>(saved.at("steps")).item(), total);
  CHECK(same_bits(p, q));
  CHECK(p.at(0) == doctest::Approx(3.0).epsilon(1e-4));
  CHECK(p.at(1) == doctest::Approx(-1.0).epsilon(1e-4));
}
