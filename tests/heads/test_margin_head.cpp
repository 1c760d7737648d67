#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include <dml/heads/margin_head.hpp>

#include "../gradcheck.hpp"

using namespace dml;
using namespace dml::heads;
using testing::gradcheck;
using testing::param;
using TD = Tensor<double>;
using Labels = Tensor<std::int64_t>;

namespace {

std::map<std::string, std::vector<double>> load_reference() {
  std::ifstream in(std::string(DML_TEST_DATA_DIR) + "/heads/head_ref.txt");
  REQUIRE_MESSAGE(in.good(), "missing fixture tests/fixtures/heads/head_ref.txt");
  std::map<std::string, std::vector<double>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string name;
    std::size_t n;
    ls >> name >> n;
    std::vector<double> v(n);
    for (auto& x : v) ls >> x;
    REQUIRE_MESSAGE(!ls.fail(), "malformed fixture line for ", name);
    out[name] = v;
  }
  return out;
}

// Loads the fixture's weights into `head`, runs it in training mode on the
// fixture batch and compares logits and gradients with PyTorch's.
template <class P>
void check_against_reference(const std::string& name, P policy, std::int64_t iteration = 0) {
  auto ref = load_reference();
  const std::int64_t n = 5, dim = 6, classes = 4;
  MarginHead<P, double> head(dim, classes, policy);
  {
    NoGrad ng;
    TD w = head.weight();
    w.copy_(TD::from_vector(ref["weight"], {classes, dim}));
    if (head.bias().defined()) {
      TD b = head.bias();
      b.copy_(TD::from_vector(ref["bias"], {classes}));
    }
    if (iteration) {
      auto sd = head.state_dict();
      auto it = std::get<Labels>(*sd.find("iteration"));
      it.copy_(Labels::from_vector({iteration}));
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
  CHECK(other.iteration() == 2);
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
}

TEST_CASE("heads reject bad shapes and hyper-parameters") {
  MarginHead<Cos, double> head(4, 3);
  CHECK_THROWS_WITH_AS(head(TD::zeros({2, 5})),
                       doctest::Contains("embedding of shape [2, 5] does not match the head's dimension 4"), Error);
  CHECK_THROWS_WITH_AS(head(TD::zeros({2, 4}), Labels::from_vector({0, 3})),
                       doctest::Contains("index 3 at position 1 is outside [0, 3)"), Error);
  CHECK_THROWS_AS(MarginHead<Arc>(4, 3, {.s = -1}), Error);
  CHECK_THROWS_WITH_AS(MarginHead<Cos>(0, 3), doctest::Contains("dim and classes must be >= 1"), Error);
}
