#include <doctest/doctest.h>

#include <dml/dml.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

using namespace dml;
using TD = Tensor<double>;

TEST_CASE("gradients of a small expression match the hand-derived values") {
  // f = sum(x * y + x^2) -> df/dx = y + 2x, df/dy = x
  auto x = TD::from_vector({1, 2, 3}).requires_grad_();
  auto y = TD::from_vector({4, 5, 6}).requires_grad_();
  auto f = ops::sum(x * y + ops::square(x));
  CHECK(f.item() == doctest::Approx(4 + 10 + 18 + 1 + 4 + 9));
  f.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{6, 9, 12});
  CHECK(y.grad().to_vector() == std::vector<double>{1, 2, 3});
}

TEST_CASE("leaf gradients own their storage, also when an op passes one gradient to two leaves") {
  // x + y hands the same incoming gradient to both leaves, and a reshape
  // passes a view of it: each leaf must still get a buffer of its own (the
  // first contribution is kept without a copy only when nothing else holds it).
  auto x = TD::from_vector({1, 2, 3, 4}).requires_grad_();
  auto y = TD::from_vector({5, 6, 7, 8}).requires_grad_();
  auto w = TD::from_vector({1, 1, 1, 1}).requires_grad_();
  auto z = (x + y).reshape({2, 2}) * w.reshape({2, 2});
  z.backward(TD::from_vector({1, 2, 3, 4}, {2, 2}));
  CHECK(x.grad().to_vector() == std::vector<double>{1, 2, 3, 4});
  CHECK(y.grad().to_vector() == std::vector<double>{1, 2, 3, 4});
  CHECK(x.grad().data() != y.grad().data());
  CHECK(w.grad().to_vector() == std::vector<double>{6, 16, 30, 48});
  x.grad().data()[0] = 100;  // writing one leaf's gradient leaves the other alone
  CHECK(y.grad().to_vector()[0] == 1);
}

TEST_CASE("a tensor used twice accumulates both gradients") {
  auto x = TD::from_vector({2.0}).requires_grad_();
  auto f = ops::sum(x * x * x);  // d/dx x^3 = 3x^2 = 12
  f.backward();
  CHECK(x.grad().item() == doctest::Approx(12));
  // A second graph adds to the leaf's gradient until zero_grad.
  ops::sum(x + x).backward();
  CHECK(x.grad().item() == doctest::Approx(14));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("backward with an explicit output gradient") {
  auto x = TD::from_vector({1, 2, 3}).requires_grad_();
  auto y = x * 3.0;
  y.backward(TD::from_vector({1, 10, 100}));
  CHECK(x.grad().to_vector() == std::vector<double>{3, 30, 300});
  auto z = x * 2.0;
  CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("pass a gradient for a non-scalar output"), Error);
  CHECK_THROWS_WITH_AS(z.backward(TD::ones({2})), doctest::Contains("gradient shape [2] differs from output shape [3]"),
                       Error);
}

TEST_CASE("the graph is freed after backward and a second backward is a clear error") {
  auto x = TD::from_vector({1, 2}).requires_grad_();
  auto y = ops::exp(x);
  auto f = ops::sum(y);
  std::weak_ptr<detail::Node<double, Cpu>> node = y.grad_fn();
  f.backward();
  CHECK(y.grad_fn()->released);
  CHECK(y.grad_fn()->edges.empty());
  CHECK_THROWS_WITH_AS(f.backward(), doctest::Contains("already freed"), Error);
  CHECK(node.lock() != nullptr);  // the node object lives while y does, its contents do not
}

TEST_CASE("NoGrad records no graph and restores the previous mode") {
  auto x = TD::from_vector({1, 2}).requires_grad_();
  {
    NoGrad guard;
    auto y = ops::exp(x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    {
      NoGrad nested;
    }
    CHECK_FALSE(GradMode::enabled());
  }
  CHECK(GradMode::enabled());
  CHECK(ops::exp(x).requires_grad());
}

TEST_CASE("a 200-deep chain does not overflow the stack") {
  auto x = TD::from_vector({0.5, -0.25}).requires_grad_();
  TD y = x;
  for (int i = 0; i < 200; ++i) y = ops::tanh(y) * 1.01 + 0.001;
  ops::sum(y).backward();
  auto g = x.grad().to_vector();
  CHECK(std::isfinite(g[0]));
  CHECK(g[0] > 0);
}

TEST_CASE("a 100000-deep chain is walked iteratively") {
  auto x = TD::from_vector({1.0}).requires_grad_();
  TD y = x;
  for (int i = 0; i < 100000; ++i) y = y + 1.0;
  ops::sum(y).backward();
  CHECK(x.grad().item() == 1.0);
}

TEST_CASE("inputs that need no gradient get none") {
  auto x = TD::from_vector({1, 2}).requires_grad_();
  auto c = TD::from_vector({3, 4});
  ops::sum(x * c).backward();
  CHECK(x.grad().defined());
  CHECK_FALSE(c.grad().defined());
  CHECK_THROWS_WITH_AS(TD::from_vector({1.0}).backward(), doctest::Contains("does not require grad"), Error);
}

TEST_CASE("backward through a reshape view reaches the leaf") {
  auto x = TD::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  auto y = ops::sum(ops::square(x.reshape({3, 2})), 1);
  ops::sum(y).backward();
  CHECK(x.grad().shape() == Shape{2, 3});
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4, 6, 8, 10, 12});
}

TEST_CASE("requires_grad_ on a non-leaf is an error") {
  auto x = TD::from_vector({1.0}).requires_grad_();
  auto y = ops::exp(x);
  CHECK_THROWS_WITH_AS(y.requires_grad_(), doctest::Contains("only leaf tensors"), Error);
}

TEST_CASE("a deep graph that is never backpropagated is destroyed without recursion") {
  auto x = TD::from_vector({1.0}).requires_grad_();
  {
    TD y = x;
    for (int i = 0; i < 200000; ++i) y = y * 1.0;
  }
  CHECK(x.grad_fn() == nullptr);
}

// ---- DetectAnomaly -------------------------------------------------------------------------

namespace {
std::string anomaly(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("anomaly mode is off by default and scoped by DetectAnomaly") {
  CHECK_FALSE(AnomalyMode::enabled());
  auto y = ops::log(TD::from_vector({-1.0}));  // NaN passes silently without the guard
  CHECK(std::isnan(y.item()));
  {
    DetectAnomaly outer;
    CHECK(AnomalyMode::enabled());
    {
      DetectAnomaly inner;
    }
    CHECK(AnomalyMode::enabled());
  }
  CHECK_FALSE(AnomalyMode::enabled());
}

TEST_CASE("DetectAnomaly names the op, its input shapes and the first NaN of a forward output") {
  DetectAnomaly guard;
  auto x = TD::from_vector({1, -1, 4}).requires_grad_();
  const std::string msg = anomaly([&] { (void)ops::log(x); });
  INFO(msg);
  CHECK(msg == "DetectAnomaly: op 'log' (inputs [3]) produced nan at index 1 = [1] of [3] of its output; "
               "its inputs were finite");
  // Also in inference, where no graph is recorded.
  NoGrad no_grad;
  CHECK(anomaly([] { (void)ops::log(TD::from_vector({2, -3})); }).find("op 'log'") != std::string::npos);
}

TEST_CASE("DetectAnomaly gives a multi-index and says when an input already held the value") {
  DetectAnomaly guard;
  auto a = TD::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  auto b = TD::from_vector({1, 1, 1, 1, 1, 0}, {2, 3});
  std::string msg = anomaly([&] { (void)ops::div(a, b); });
  INFO(msg);
  CHECK(msg == "DetectAnomaly: op 'div' (inputs [2, 3], [2, 3]) produced inf at index 5 = [1, 2] of [2, 3] "
               "of its output; its inputs were finite");
  auto c = TD::from_vector({1, std::nan(""), 3});
  msg = anomaly([&] { (void)ops::exp(c); });
  CHECK(msg.find("op 'exp'") != std::string::npos);
  CHECK(msg.find("input 0 already held nan at index 1 = [1] of [3]") != std::string::npos);
}

TEST_CASE("DetectAnomaly names the op whose backward made a non-finite gradient") {
  auto x = TD::from_vector({0, 4}).requires_grad_();
  std::string msg;
  {
    DetectAnomaly guard;
    auto loss = ops::sum(ops::sqrt(x));  // finite forward: sqrt(0) = 0
    msg = anomaly([&] { loss.backward(); });
  }
  INFO(msg);
  CHECK(msg == "DetectAnomaly: the backward of op 'sqrt' (inputs [2]) produced inf at index 0 = [0] of [2] of "
               "the gradient for input 0; the incoming gradient was finite");
  // Without the guard the same backward runs through.
  auto loss = ops::sum(ops::sqrt(x));
  loss.backward();
  CHECK(std::isinf(x.grad().to_vector()[0]));
}

TEST_CASE("OnLeafGradient: each leaf once, after its last consumer, already holding its final gradient") {
  // f = sum(square(x * w1) * w2 + x): x is used twice, first and last in the forward pass.
  auto x = TD::from_vector({1, 2}).requires_grad_();
  auto w1 = TD::from_vector({3, 4}).requires_grad_();
  auto w2 = TD::from_vector({0.5, -1}).requires_grad_();
  auto c = TD::from_vector({7, 7});  // needs no gradient: never reported
  auto f = ops::sum(ops::square(x * w1) * w2 + x * c);
  std::vector<std::string> order;
  std::vector<std::vector<double>> at_call;
  {
    OnLeafGradient<double, Cpu> hook([&](const TD& leaf) {
      order.push_back(leaf.same(x) ? "x" : leaf.same(w1) ? "w1" : leaf.same(w2) ? "w2" : "?");
      at_call.push_back(leaf.grad().to_vector());
    });
    CHECK(OnLeafGradient<double, Cpu>::current() != nullptr);
    CHECK(OnLeafGradient<float, Cpu>::current() == nullptr);  // one hook per element type and device
    f.backward();
  }
  CHECK(OnLeafGradient<double, Cpu>::current() == nullptr);
  // w2 is final as soon as the product's backward ran; x only after both of its consumers.
  REQUIRE(order.size() == 3);
  CHECK(order[0] == "w2");
  CHECK(std::count(order.begin(), order.end(), "x") == 1);
  CHECK(std::count(order.begin(), order.end(), "w1") == 1);
  const std::vector<double> dx = {2 * 1 * 9 * 0.5 + 7, 2 * 2 * 16 * -1.0 + 7};  // 2 x w1^2 w2 + c
  for (std::size_t i = 0; i < order.size(); ++i) {
    const TD& leaf = order[i] == "x" ? x : order[i] == "w1" ? w1 : w2;
    CHECK(at_call[i] == leaf.grad().to_vector());  // nothing changed it after the call
  }
  CHECK(x.grad().to_vector() == dx);
  // Without the guard, no calls.
  order.clear();
  ops::sum(x * w1).backward();
  CHECK(order.empty());
}
