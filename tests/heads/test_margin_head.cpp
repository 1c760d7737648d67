#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include <dml/heads/margin_head.hpp>

#include "../support/fixture_file.hpp"
#include "../support/gradcheck.hpp"

using namespace dml;
using namespace dml::heads;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
using Labels = Tensor<std::int64_t>;

namespace {

testing::FixtureArrays load_reference() { return testing::load_fixture_arrays("heads/head_ref.txt"); }

// Loads the fixture's weights into `head`, runs it in training mode on the
// fixture batch and compares logits and gradients with PyTorch's.
// `weight` names the fixture's weight array (sub-centre heads have their own).
template <class P>
void check_against_reference(const std::string& name, P policy, std::int64_t iteration = 0,
                             const std::string& weight = "weight") {
  auto ref = load_reference();
  const std::int64_t n = 5, dim = 6, classes = 4;
  MarginHead<P, double> head(dim, classes, policy);
  {
    NoGrad ng;
    TD w = head.weight();
    w.copy_(TD::from_vector(ref[weight], head.weight().shape()));
    if (head.bias().defined()) {
      TD b = head.bias();
      b.copy_(TD::from_vector(ref["bias"], {classes}));
    }
    if (iteration) {
      auto sd = head.state_dict();
      auto it = std::get<Labels>(*sd.find("iteration"));
      it.copy_(Labels::from_vector({iteration}));
      head.load_state_dict(sd);  // a head reads its buffers back when state is loaded, not at every step
    }
  }
  std::vector<std::int64_t> lab;
  for (double v : ref["labels"]) lab.push_back(static_cast<std::int64_t>(v));
  auto labels = Labels::from_vector(lab);
  TD emb = TD::from_vector(ref["emb"], {n, dim}).requires_grad_();
  TD logits = head(emb, labels);
  logits.backward(TD::from_vector(ref["proj"], {n, classes}));
  INFO(name);
  testing::check_close(logits.to_vector(), ref[name + ".logits"], 1e-5, "logits");
  testing::check_close(emb.grad().to_vector(), ref[name + ".d_emb"], 1e-5, "d_emb");
  testing::check_close(head.weight().grad().to_vector(), ref[name + ".d_weight"], 1e-5, "d_weight");
  if (head.bias().defined())
    testing::check_close(head.bias().grad().to_vector(), ref[name + ".d_bias"], 1e-5, "d_bias");
}

}  // namespace

TEST_CASE("every head matches the independent PyTorch implementation") {
  check_against_reference("softmax", Softmax{});
  check_against_reference("l2", L2Constrained{.alpha = 16});
  check_against_reference("arc", Arc{.s = 30, .m = 0.5});
  check_against_reference("arc_m08", Arc{.s = 16, .m = 0.8});
  check_against_reference("cos", Cos{.s = 30, .m = 0.4});
  check_against_reference("combined", Combined{.s = 64, .m1 = 1, .m2 = 0.3, .m3 = 0.2});
  check_against_reference("sphere_it0", Sphere{});
  check_against_reference("sphere_it1000", Sphere{}, 1000);
  check_against_reference("subcenter", SubCenter<Arc>{.margin = {.s = 30, .m = 0.5}, .k = 3}, 0, "weight_sub");
  check_against_reference("adacos", AdaCos{});  // s updated from this batch, then the logits
}

namespace {

// A 4-class AdaCos head on the fixture's weight.
struct FixtureAdaCos : MarginHead<AdaCos, double> {
  FixtureAdaCos(std::map<std::string, std::vector<double>>& ref, AdaCos policy = {})
      : MarginHead<AdaCos, double>(6, 4, policy) {
    NoGrad ng;
    TD w = weight();
    w.copy_(TD::from_vector(ref["weight"], {4, 6}));
  }
};

Labels fixture_labels(std::map<std::string, std::vector<double>>& ref, std::size_t n) {
  std::vector<std::int64_t> lab;
  for (std::size_t i = 0; i < n; ++i) lab.push_back(static_cast<std::int64_t>(ref["labels"][i]));
  return Labels::from_vector(lab);
}

}  // namespace

TEST_CASE("AdaCos's scale starts at sqrt(2) log(C - 1) and follows the reference's update step by step") {
  auto ref = load_reference();
  FixtureAdaCos head(ref);
  CHECK(head.policy().s == doctest::Approx(ref["adacos.s0"][0]).epsilon(1e-15));
  CHECK(head.policy().s == doctest::Approx(std::sqrt(2.0) * std::log(3.0)).epsilon(1e-15));
  auto run = [&](const std::string& name, const std::vector<double>& emb, std::int64_t n) {
    INFO(name);
    FixtureAdaCos h(ref);
    TD x = TD::from_vector(emb, {n, 6});
    auto labels = fixture_labels(ref, static_cast<std::size_t>(n));
    std::vector<double> got;
    for (int step = 0; step < 3; ++step) {
      h(x, labels);
      got.push_back(h.policy().s);
    }
    testing::check_close(got, ref[name + ".scales"], 1e-12, "s after each step");
  };
  run("adacos", ref["emb"], 5);  // median target angle above pi/4: cos(pi/4) in the denominator
  run("adacos_close", ref["emb_close"], 5);  // median angle 0.22 < pi/4: cos(theta_med)
  std::vector<double> first4(ref["emb_close"].begin(), ref["emb_close"].begin() + 24);
  run("adacos_even", first4, 4);  // torch.median's lower median of an even batch
}

TEST_CASE("AdaCos updates its scale only on training calls, saves it, and the fixed variant keeps it") {
  auto ref = load_reference();
  FixtureAdaCos head(ref);
  TD x = TD::from_vector(ref["emb"], {5, 6});
  auto labels = fixture_labels(ref, 5);
  const double s0 = head.policy().s;
  auto before = head(x).to_vector();  // inference: s0 * cos
  CHECK(head.policy().s == s0);
  head(x, labels);
  const double s1 = head.policy().s;
  CHECK(s1 == doctest::Approx(ref["adacos.scales"][0]).epsilon(1e-12));
  auto after = head(x).to_vector();
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i] == doctest::Approx(before[i] * s1 / s0));
  head.eval();
  head(x, labels);
  CHECK(head.policy().s == s1);
  auto sd = head.state_dict();
  CHECK(std::get<TD>(*sd.find("scale")).item() == s1);
  MarginHead<AdaCos, double> other(6, 4);
  other.load_state_dict(sd);
  CHECK(other.policy().s == s1);
  CHECK(other(x).to_vector() == after);

  FixtureAdaCos fixed(ref, AdaCos{.dynamic = false});
  fixed(x, labels);
  CHECK(fixed.policy().s == s0);
  FixtureAdaCos given(ref, AdaCos{.s = 10});
  CHECK(given.policy().s == 10);
}

TEST_CASE("sub-centre heads: one sub-centre is the plain head, and the class cosine is the nearest sub-centre's") {
  Generator g(4);
  auto emb = TD::randn({6, 5}, g);
  auto labels = Labels::from_vector({0, 1, 2, 0, 1, 2});
  MarginHead<Arc, double> arc(5, 3, {.s = 20, .m = 0.4}, 3);
  MarginHead<SubCenter<Arc>, double> one(5, 3, {.margin = {.s = 20, .m = 0.4}, .k = 1}, 3);
  CHECK(one.weight().shape() == Shape{3, 5});
  CHECK(one.weight().to_vector() == arc.weight().to_vector());  // same initialisation for k = 1
  CHECK(one(emb, labels).to_vector() == arc(emb, labels).to_vector());

  MarginHead<SubCenter<Cos>, double> head(5, 3, {.margin = {.s = 10, .m = 0.3}, .k = 4}, 5);
  CHECK(head.weight().shape() == Shape{12, 5});
  NoGrad ng;
  auto cos = ops::matmul(ops::l2_normalize(emb), ops::l2_normalize(head.weight()), false, true).to_vector();
  auto plain = head(emb).to_vector(), train = head(emb, labels).to_vector();
  for (std::size_t r = 0; r < 6; ++r)
    for (std::size_t c = 0; c < 3; ++c) {
      double best = -2;
      for (std::size_t j = 0; j < 4; ++j) best = std::max(best, cos[r * 12 + c * 4 + j]);
      CHECK(plain[r * 3 + c] == doctest::Approx(10 * best));
      CHECK(train[r * 3 + c] == doctest::Approx(c == r % 3 ? 10 * (best - 0.3) : 10 * best));
    }
}

TEST_CASE("the sub-centre gradient reaches only each class's nearest sub-centre") {
  Generator g(8);
  TD emb = TD::randn({1, 4}, g);
  MarginHead<SubCenter<Arc>, double> head(4, 2, {.margin = {.s = 8, .m = 0.3}, .k = 3}, 9);
  ops::sum(head(emb, Labels::from_vector({1}))).backward();
  std::vector<double> cos;
  {
    NoGrad ng;
    cos = ops::matmul(ops::l2_normalize(emb), ops::l2_normalize(head.weight()), false, true).to_vector();
  }
  auto grad = head.weight().grad().to_vector();
  for (std::size_t c = 0; c < 2; ++c) {
    std::size_t best = c * 3;
    for (std::size_t j = c * 3 + 1; j < c * 3 + 3; ++j)
      if (cos[j] > cos[best]) best = j;
    for (std::size_t j = c * 3; j < c * 3 + 3; ++j) {
      double norm = 0;
      for (std::size_t d = 0; d < 4; ++d) norm += std::abs(grad[j * 4 + d]);
      if (j == best) CHECK(norm > 0);
      else CHECK(norm == 0);
    }
  }
}

TEST_CASE("heads pass gradient checks for embedding and weight") {
  auto labels = Labels::from_vector({1, 0, 2, 1});
  auto run = [&](auto policy, const char* name) {
    INFO(name);
    using P = decltype(policy);
    MarginHead<P, double> head(5, 3, policy, 7);
    std::vector<TD> inputs{param({4, 5}, 3)};
    for (auto& p : head.parameters()) inputs.push_back(p);
    testing::GradcheckOptions opt;
    opt.rtol = 1e-4;
    gradcheck(
        [&](std::vector<TD>& v) {
          (void)v;
          if constexpr (PolicyTraits<P>::kScheduled) {
            // keep lambda fixed across the finite-difference calls
            auto sd = head.state_dict();
            Labels it = std::get<Labels>(*sd.find("iteration"));
            it.copy_(Labels::from_vector({100}));
            head.load_state_dict(sd);
          }
          return head(v[0], labels);
        },
        inputs, opt);
  };
  run(Softmax{}, "softmax");
  run(L2Constrained{}, "l2");
  run(Arc{}, "arc");
  run(Cos{}, "cos");
  run(Sphere{}, "sphere");
  run(Combined{}, "combined");
  run(SubCenter<Arc>{}, "subcenter arc");
  run(SubCenter<Combined>{.margin = {.s = 16, .m1 = 1, .m2 = 0.3, .m3 = 0.1}, .k = 2}, "subcenter combined");
  // AdaCos's s is computed without gradient (a constant for autograd, as in the reference),
  // so finite differences see the gradient only with the scale held: the fixed AdaCos.
  run(AdaCos{.dynamic = false}, "adacos fixed");
}

TEST_CASE("margins apply only in training; eval and head(emb) give plain scaled cosines") {
  MarginHead<Arc, double> head(4, 3, {.s = 10, .m = 0.5}, 1);
  Generator g(2);
  auto emb = TD::randn({6, 4}, g);
  auto labels = Labels::from_vector({0, 1, 2, 0, 1, 2});
  NoGrad ng;
  auto plain = head(emb).to_vector();
  auto cos = ops::matmul(ops::l2_normalize(emb), ops::l2_normalize(head.weight()), false, true).to_vector();
  for (std::size_t i = 0; i < cos.size(); ++i) CHECK(plain[i] == doctest::Approx(10 * cos[i]));
  auto train = head(emb, labels).to_vector();
  for (std::size_t r = 0; r < 6; ++r)
    for (std::size_t c = 0; c < 3; ++c) {
      if (c == r % 3) CHECK(train[r * 3 + c] < plain[r * 3 + c]);  // the margin lowers the target logit
      else CHECK(train[r * 3 + c] == plain[r * 3 + c]);
    }
  head.eval();
  CHECK(head(emb, labels).to_vector() == plain);
}

TEST_CASE("SphereFace's iteration counter advances only on training steps and is saved") {
  MarginHead<Sphere, double> head(4, 3);
  Generator g(3);
  auto emb = TD::randn({2, 4}, g);
  auto labels = Labels::from_vector({0, 2});
  CHECK(head.iteration() == 0);
  CHECK(head.policy().lambda == doctest::Approx(1000));
  head(emb, labels);
  head(emb, labels);
  CHECK(head.iteration() == 2);
  CHECK(head.policy().lambda == doctest::Approx(1000 / 1.24));
  head(emb);
  head.eval();
  head(emb, labels);
  CHECK(head.iteration() == 2);
  auto sd = head.state_dict();
  CHECK(std::get<Labels>(*sd.find("iteration")).item() == 2);
  MarginHead<Sphere, double> other(4, 3);
  other.load_state_dict(sd);
  CHECK(other.iteration() == 2);  // the host copy a step reads was refreshed from the loaded buffer
  CHECK(other.policy().lambda == doctest::Approx(1000 / 1.24));
  other(emb, labels);
  CHECK(other.iteration() == 3);
  CHECK(std::get<Labels>(*other.state_dict().find("iteration")).item() == 3);  // and the buffer follows it
}

TEST_CASE("SphereFace's lambda reaches lambda_min at the planned end of the fit, and a second fit keeps it there") {
  MarginHead<Sphere, double> head(4, 3);  // anneal_fraction 0.5
  Generator g(3);
  auto emb = TD::randn({2, 4}, g);
  auto labels = Labels::from_vector({0, 2});
  head.plan_schedule(20);  // a fit of 20 steps: lambda bottoms out after 10
  CHECK(head.policy().anneal_steps == 10);
  CHECK(head.policy().lambda == doctest::Approx(1000));
  for (int i = 0; i < 9; ++i) head(emb, labels);
  CHECK(head.policy().lambda > 5);
  CHECK(head.policy().lambda < 1000);
  head(emb, labels);
  CHECK(head.iteration() == 10);
  CHECK(head.policy().lambda == doctest::Approx(5));
  head.plan_schedule(1000);  // already at the end: not stretched again
  CHECK(head.policy().anneal_steps == 10);
  CHECK(head.policy().lambda == doctest::Approx(5));
  // The planned end is state: saved and loaded with the head.
  MarginHead<Sphere, double> other(4, 3);
  other.load_state_dict(head.state_dict());
  CHECK(other.policy().lambda == doctest::Approx(5));
  // anneal_fraction 0 keeps the reference schedule.
  MarginHead<Sphere, double> reference(4, 3, Sphere{.anneal_fraction = 0});
  reference.plan_schedule(20);
  CHECK(reference.policy().anneal_steps == 0);
  CHECK(reference.policy().decay_rate() == doctest::Approx(0.12));
  CHECK_THROWS_WITH_AS(MarginHead<Sphere>(4, 3, Sphere{.anneal_fraction = 1.5}),
                       doctest::Contains("anneal_fraction must lie in [0, 1]"), Error);
}

TEST_CASE("embedding on its class weight, zero embeddings and cos = -1 stay finite") {
  auto finite = [](const TD& t) {
    for (double v : t.to_vector())
      if (!std::isfinite(v)) return false;
    return true;
  };
  auto run = [&](auto policy, const char* name) {
    INFO(name);
    MarginHead<decltype(policy), double> head(3, 2, policy, 5);
    TD w = head.weight();
    TD e0 = TD::from_vector({w.at(0, 0), w.at(0, 1), w.at(0, 2)}, {1, 3});   // exactly on class 0
    TD e1 = TD::from_vector({-w.at(1, 0), -w.at(1, 1), -w.at(1, 2)}, {1, 3});  // opposite class 1: cos = -1
    TD zero = TD::zeros({1, 3});
    for (TD e : {e0, e1, zero}) {
      TD x = e.clone().requires_grad_();
      head.zero_grad();
      TD out = head(x, Labels::from_vector({e.same(e1) ? 1 : 0}));
      CHECK(finite(out));
      ops::sum(out).backward();
      CHECK(finite(x.grad()));
      CHECK(finite(head.weight().grad()));
    }
  };
  run(Softmax{}, "softmax");
  run(L2Constrained{}, "l2");
  run(Arc{}, "arc");
  run(Arc{.easy_margin = true}, "arc easy");
  run(Cos{}, "cos");
  run(Sphere{}, "sphere");
  run(Combined{}, "combined");
  run(SubCenter<Arc>{}, "subcenter");
  run(AdaCos{.s = 4}, "adacos");
}

TEST_CASE("heads reject bad shapes and hyper-parameters") {
  MarginHead<Cos, double> head(4, 3);
  CHECK_THROWS_WITH_AS(head(TD::zeros({2, 5})),
                       doctest::Contains("embedding of shape [2, 5] does not match the head's dimension 4"), Error);
  CHECK_THROWS_WITH_AS(head(TD::zeros({2, 4}), Labels::from_vector({0, 3})),
                       doctest::Contains("index 3 at position 1 is outside [0, 3)"), Error);
  CHECK_THROWS_AS(MarginHead<Arc>(4, 3, {.s = -1}), Error);
  CHECK_THROWS_WITH_AS(MarginHead<Cos>(0, 3), doctest::Contains("dim and classes must be >= 1"), Error);
  CHECK_THROWS_WITH_AS((MarginHead<SubCenter<Arc>>(4, 3, {.k = 0})),
                       doctest::Contains("heads::SubCenter: k (sub-centres per class) must be >= 1, got k = 0"), Error);
  CHECK_THROWS_WITH_AS((MarginHead<SubCenter<Arc>>(4, 3, {.margin = {.m = 4}})),
                       doctest::Contains("heads::Arc: m must lie in [0, pi)"), Error);
  CHECK_THROWS_WITH_AS(MarginHead<AdaCos>(4, 2), doctest::Contains("needs C >= 3 classes, got C = 2"), Error);
  CHECK_THROWS_WITH_AS(MarginHead<AdaCos>(4, 3, {.s = -1}), doctest::Contains("heads::AdaCos: s must be >= 0"), Error);
  MarginHead<AdaCos, double> ada(4, 3);
  CHECK_THROWS_WITH_AS(ada(TD::zeros({2, 4}), Labels::from_vector({0, 3})),
                       doctest::Contains("index 3 at position 1 is outside [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(adapt(AdaCos{.s = 2}, TD::zeros({2, 3}), Labels::from_vector({0})),
                       doctest::Contains("labels of shape [1] do not match cosines of shape [2, 3]"), Error);
  CHECK(ada.policy().s == doctest::Approx(std::sqrt(2.0) * std::log(2.0)));  // a rejected batch changes nothing
}
