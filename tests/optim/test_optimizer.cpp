// Tests for dml/optim/optimizer.hpp: parameter groups, the default
// weight-decay grouping, per-group learning rates, state export / import.
#include "optim_testing.hpp"

#include <cmath>
#include <memory>

using namespace dml;
using namespace dml::testing;

namespace {

// Deterministic gradients that differ per step, parameter and element.
template <class T>
void set_wavy_grads(const nn::Module<T>& m, int step) {
  int k = 0;
  for (auto& p : m.parameters()) {
    std::vector<T> g(static_cast<std::size_t>(p.numel()));
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = T(std::sin(1.0 + 7.0 * step + 3.0 * k + double(i)));
    p.set_grad(Tensor<T>::from_vector(g, p.shape()));
    ++k;
  }
}

std::vector<std::string> names(std::span<const optim::NamedParam<double>> ps) {
  std::vector<std::string> out;
  for (const auto& p : ps) out.push_back(p.first);
  return out;
}

// Runs `steps` steps on a, exports, continues a and a copy b restored from the
// export for `more` steps, and checks both end bitwise equal.
template <class T, class O>
void check_resume(const O& options, int steps, int more) {
  TinyNet<T> net_a, net_b;
  auto a = optim::make(options, net_a);
  for (int s = 0; s < steps; ++s) {
    set_wavy_grads(net_a, s);
    a.step();
  }
  nn::StateDict<T, Cpu> saved = a.state_dict();
  // The export is a copy: stepping on does not change it.
  const std::string probe = std::string("fc.weight.") + O::kStateNames[0];
  std::vector<T> before = saved.tensor(probe).to_vector();
  net_b.load_state_dict(net_a.state_dict());
  auto b = optim::make(options, net_b);
  b.load_state_dict(saved);
  CHECK(b.steps() == steps);
  for (int s = steps; s < steps + more; ++s) {
    set_wavy_grads(net_a, s);
    set_wavy_grads(net_b, s);
    a.step();
    b.step();
  }
  CHECK(saved.tensor(probe).to_vector() == before);
  auto pa = net_a.parameters(), pb = net_b.parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(same_bits(pa[i], pb[i]));
  for (std::size_t i = 0; i < a.params().size(); ++i) {
    CHECK(a.param_state(i).step == b.param_state(i).step);
    for (std::size_t k = 0; k < O::kStateNames.size(); ++k)
      CHECK(same_bits(a.param_state(i).buffers[k], b.param_state(i).buffers[k]));
  }
}

}  // namespace

TEST_CASE("default groups exempt rank <= 1 parameters from weight decay") {
  TinyNet<double> net;
  auto opt = optim::make(optim::SGD{.lr = 0.1, .weight_decay = 0.5}, net);
  REQUIRE(opt.num_groups() == 2);
  CHECK(names(opt.group_params(0)) == std::vector<std::string>{"conv.weight", "fc.weight"});
  CHECK(names(opt.group_params(1)) == std::vector<std::string>{"bn.weight", "bn.bias", "fc.bias"});
  CHECK(opt.weight_decay(0) == 0.5);
  CHECK(opt.weight_decay(1) == 0.0);
  CHECK(opt.lr(0) == 0.1);
  CHECK(opt.lr(1) == 0.1);

  // With zero gradients only weight decay moves anything: p -= lr * wd * p.
  set_all_grads(net, 0.0);
  opt.step();
  auto sd = net.state_dict();
  CHECK(sd.tensor("conv.weight").at(0, 0, 0, 0) == doctest::Approx(0.5 * 0.95).epsilon(1e-15));
  CHECK(sd.tensor("fc.weight").at(2, 3) == doctest::Approx(-0.5 * 0.95).epsilon(1e-15));
  CHECK(sd.tensor("bn.weight").to_vector() == std::vector<double>{1, 1});
  CHECK(sd.tensor("bn.bias").to_vector() == std::vector<double>{0.25, 0.25});
  CHECK(sd.tensor("fc.bias").to_vector() == std::vector<double>{0.125, 0.125, 0.125});

  // AdamW's decoupled decay follows the same grouping.
  TinyNet<double> net2;
  auto adamw = optim::make(optim::AdamW{.lr = 0.1, .weight_decay = 0.5}, net2);
  set_all_grads(net2, 0.0);
  adamw.step();
  CHECK(net2.state_dict().tensor("fc.weight").at(0, 0) == doctest::Approx(-0.5 * 0.95).epsilon(1e-15));
  CHECK(net2.state_dict().tensor("bn.weight").to_vector() == std::vector<double>{1, 1});
}

TEST_CASE("explicit groups: body and head with their own learning rates") {
  TinyNet<double> body, head;
  auto groups = optim::decay_groups(optim::named_params(body, "body."), 0.01);
  for (auto& g : optim::decay_groups(optim::named_params(head, "head."), 0.1)) groups.push_back(std::move(g));
  auto opt = optim::make(optim::AdamW{.lr = 1e-3, .weight_decay = 0.05}, groups);
  REQUIRE(opt.num_groups() == 4);
  CHECK(opt.lr(0) == 0.01);
  CHECK(opt.lr(1) == 0.01);
  CHECK(opt.lr(2) == 0.1);
  CHECK(opt.base_lr(3) == 0.1);
  CHECK(opt.weight_decay(0) == 0.05);
  CHECK(opt.weight_decay(1) == 0.0);
  CHECK(opt.weight_decay(2) == 0.05);
  CHECK(names(opt.group_params(2)) == std::vector<std::string>{"head.conv.weight", "head.fc.weight"});

  opt.set_lr(2, 0.5);
  CHECK(opt.lr(2) == 0.5);
  CHECK(opt.lr(3) == 0.1);
  CHECK(opt.base_lr(2) == 0.1);
  opt.set_lr(0.25);
  for (std::size_t g = 0; g < 4; ++g) CHECK(opt.lr(g) == 0.25);
  CHECK_THROWS_AS(opt.set_lr(4, 0.1), Error);
  CHECK_THROWS_AS(opt.lr(7), Error);

  // A hand-made group (aggregate with designated initialisers).
  Tensor<double> w = Tensor<double>::ones(Shape{2, 2});
  std::vector<optim::ParamGroup<double>> mine{{.params = {{"w", w}}, .lr = 0.5, .weight_decay = 0.0}};
  auto sgd = optim::make(optim::SGD{.lr = 0.1, .weight_decay = 1.0}, mine);
  w.set_grad(Tensor<double>::ones(Shape{2, 2}));
  sgd.step();
  CHECK(w.to_vector() == std::vector<double>(4, 0.5));
}

TEST_CASE("parameter groups reject bad input") {
  TinyNet<double> a, b;
  // The same names twice (two modules without prefixes).
  auto groups = optim::default_groups(a);
  for (auto& g : optim::default_groups(b)) groups.push_back(std::move(g));
  CHECK_THROWS_AS(optim::make(optim::SGD{}, groups), Error);
  // The same tensor twice.
  Tensor<double> p = Tensor<double>::zeros(Shape{2});
  CHECK_THROWS_AS(optim::make(optim::SGD{}, std::vector<Tensor<double>>{p, p}), Error);
  // Nothing to optimise, an undefined tensor, a bad group value.
  CHECK_THROWS_AS(optim::make(optim::SGD{}, std::vector<Tensor<double>>{}), Error);
  CHECK_THROWS_AS(optim::make(optim::SGD{}, std::vector<Tensor<double>>{Tensor<double>()}), Error);
  std::vector<optim::ParamGroup<double>> neg{{.params = {{"p", p}}, .lr = -1.0, .weight_decay = std::nullopt}};
  CHECK_THROWS_AS(optim::make(optim::SGD{}, neg), Error);
  // Unnamed parameters are named by index.
  Tensor<double> q = Tensor<double>::zeros(Shape{3});
  auto opt = optim::make(optim::SGD{}, std::vector<Tensor<double>>{p, q});
  CHECK(opt.params()[0].first == "0");
  CHECK(opt.params()[1].first == "1");
}

TEST_CASE("the type-erased optimiser steps through the base class") {
  TinyNet<float> net;
  std::unique_ptr<optim::Optimizer<float>> opt = optim::make_unique(optim::SGD{.lr = 1.0}, net);
  CHECK(std::string(opt->name()) == "SGD");
  CHECK_FALSE(opt->has_momentum());
  set_all_grads(net, 0.125f);
  opt->step();
  CHECK(net.state_dict().tensor("fc.bias").to_vector() == std::vector<float>(3, 0.0f));
  opt->zero_grad();
  for (auto& p : net.parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("state_dict names every buffer and step count") {
  TinyNet<double> net;
  auto sgd = optim::make(optim::SGD{.lr = 0.1, .momentum = 0.9}, net);
  CHECK(sgd.state_dict().keys() == std::vector<std::string>{"steps"});
  set_wavy_grads(net, 0);
  for (auto& p : net.parameters())
    if (p.numel() == 3) p.zero_grad();  // fc.bias gets no gradient: no state
  sgd.step();
  auto sd = sgd.state_dict();
  CHECK(sd.keys() == std::vector<std::string>{"steps", "conv.weight.momentum_buffer", "fc.weight.momentum_buffer",
                                               "bn.weight.momentum_buffer", "bn.bias.momentum_buffer"});
  CHECK(std::get<Tensor<std::int64_t>>(sd.at("steps")).item() == 1);

  TinyNet<float> fnet;
  auto adam = optim::make(optim::Adam{}, fnet);
  set_wavy_grads(fnet, 0);
  adam.step();
  adam.step();
  auto asd = adam.state_dict();
  CHECK(asd.size() == 1 + 5 * 3);
  CHECK(asd.tensor("fc.weight.exp_avg").shape() == Shape{3, 4});
  CHECK(asd.tensor("bn.bias.exp_avg_sq").shape() == Shape{2});
  CHECK(std::get<Tensor<std::int64_t>>(asd.at("conv.weight.step")).item() == 2);
}

TEST_CASE("state export / import resumes bitwise identically") {
  check_resume<double>(optim::SGD{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true}, 3, 3);
  check_resume<float>(optim::SGD{.lr = 0.05, .momentum = 0.8, .dampening = 0.1}, 2, 4);
  check_resume<double>(optim::Adam{.lr = 1e-2, .weight_decay = 1e-3}, 3, 3);
  check_resume<float>(optim::AdamW{.lr = 1e-2}, 4, 3);
}

TEST_CASE("load_state_dict rejects malformed state and changes nothing") {
  TinyNet<double> net;
  auto opt = optim::make(optim::Adam{}, net);
  set_wavy_grads(net, 0);
  opt.step();
  const nn::StateDict<double, Cpu> good = opt.state_dict();
  auto with = [&](auto edit) {
    nn::StateDict<double, Cpu> sd;
    for (const auto& [k, v] : good) sd.insert(k, v);
    edit(sd);
    return sd;
  };
  using IntT = Tensor<std::int64_t>;
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.insert("fc.gamma.exp_avg", Tensor<double>::zeros(Shape{2})); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.insert("fc.weight.momentum", Tensor<double>::zeros(Shape{3, 4})); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.set("fc.weight.exp_avg", Tensor<double>::zeros(Shape{4, 3})); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.set("fc.weight.exp_avg", IntT::zeros(Shape{3, 4})); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.erase("fc.weight.exp_avg_sq"); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.erase("fc.weight.step"); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.set("fc.weight.step", IntT::scalar(0)); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.set("fc.weight.step", Tensor<double>::scalar(1)); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.erase("steps"); })), Error);
  CHECK_THROWS_AS(opt.load_state_dict(with([](auto& sd) { sd.set("steps", IntT::scalar(-1)); })), Error);
  try {
    opt.load_state_dict(with([](auto& sd) {
      sd.erase("steps");
      sd.insert("nope", Tensor<double>::zeros(Shape{1}));
    }));
    FAIL("expected dml::Error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("steps: missing") != std::string::npos);
    CHECK(std::string(e.what()).find("nope: unknown name") != std::string::npos);
  }
  CHECK(opt.steps() == 1);
  CHECK(opt.param_state(0).step == 1);

  // A parameter absent from the dict starts fresh.
  opt.step();
  opt.load_state_dict(with([](auto& sd) {
    sd.erase("fc.weight.exp_avg");
    sd.erase("fc.weight.exp_avg_sq");
    sd.erase("fc.weight.step");
  }));
  CHECK(opt.steps() == 1);
  CHECK(opt.param_state(0).step == 1);  // conv.weight, restored
  CHECK(opt.param_state(1).step == 0);  // fc.weight, fresh
  CHECK_FALSE(opt.param_state(1).buffers[0].defined());
  // SGD has no per-parameter step.
  auto sgd = optim::make(optim::SGD{.momentum = 0.9}, net);
  CHECK_THROWS_AS(sgd.load_state_dict(good), Error);
}
