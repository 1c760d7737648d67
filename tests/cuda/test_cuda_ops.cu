// Every op front end, forward and backward through the autograd, on Cuda
// against Cpu. Skips without a GPU (fails under DML_REQUIRE_GPU=1).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_test.cuh"

// dml_cuda_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_cuda_ops {

using namespace dml;
using namespace dml_test;

namespace {

// ---- op front ends: forward + backward on Cuda vs Cpu ---------------------------------------------------

struct Input {
  Shape shape;
  double lo = -1, hi = 1;
};

// Runs fn on leaves built from `inputs` on D, backpropagates a fixed random
// upstream gradient, and returns the output followed by every input's gradient.
template <class D, class Fn>
std::vector<std::vector<float>> run_op(Fn& fn, const std::vector<Input>& inputs, std::uint64_t seed) {
  std::vector<Tensor<float, D>> leaves;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto v = random_vec<float>(static_cast<std::size_t>(inputs[i].shape.numel()), seed + i, inputs[i].lo,
                               inputs[i].hi);
    leaves.push_back(Tensor<float, D>::from_vector(v, inputs[i].shape).requires_grad_());
  }
  Tensor<float, D> out = fn(leaves);
  auto g = random_vec<float>(static_cast<std::size_t>(out.numel()), seed + 99, -1, 1);
  out.backward(Tensor<float, D>::from_vector(g, out.shape()));
  std::vector<std::vector<float>> result{out.to_vector()};
  for (auto& leaf : leaves) result.push_back(leaf.grad().defined() ? leaf.grad().to_vector() : std::vector<float>{});
  return result;
}

template <class Fn>
void parity(const std::string& name, Fn fn, const std::vector<Input>& inputs, double rtol = 2e-5,
            double atol = 2e-6) {
  std::uint64_t seed = std::hash<std::string>{}(name);
  auto cpu = run_op<Cpu>(fn, inputs, seed);
  auto gpu = run_op<Cuda>(fn, inputs, seed);
  all_close(gpu[0], cpu[0], rtol, atol, name + ": forward");
  for (std::size_t i = 1; i < cpu.size(); ++i)
    all_close(gpu[i], cpu[i], rtol, atol, name + ": gradient of input " + std::to_string(i - 1));
}

template <class Ts>
using DeviceOf = typename std::decay_t<Ts>::value_type::device_type;

template <class Ts>
Tensor<i64, DeviceOf<Ts>> labels_on(const Ts&, std::size_t n, i64 classes, std::uint64_t seed) {
  return Tensor<i64, DeviceOf<Ts>>::from_vector(random_labels(n, classes, seed));
}

TEST_CASE("cuda ops: elementwise front ends match the CPU forward and backward") {
  DML_GPU_OR_SKIP();
  const Shape s{4, 5};
  const Input any{s, -2, 2}, pos{s, 0.2, 2};
  parity("neg", [](auto& in) { return ops::neg(in[0]); }, {any});
  parity("exp", [](auto& in) { return ops::exp(in[0]); }, {any});
  parity("log", [](auto& in) { return ops::log(in[0]); }, {pos});
  parity("sqrt", [](auto& in) { return ops::sqrt(in[0]); }, {pos});
  parity("square", [](auto& in) { return ops::square(in[0]); }, {any});
  parity("relu", [](auto& in) { return ops::relu(in[0]); }, {any});
  parity("sigmoid", [](auto& in) { return ops::sigmoid(in[0]); }, {any});
  parity("tanh", [](auto& in) { return ops::tanh(in[0]); }, {any});
  parity("pow", [](auto& in) { return ops::pow(in[0], 2.5); }, {pos});
  parity("clamp", [](auto& in) { return ops::clamp(in[0], -0.5, 0.5); }, {any});
  parity("affine", [](auto& in) { return ops::affine(in[0], 2.0, -1.0); }, {any});

  const Input a{Shape{4, 1, 5}}, b{Shape{3, 1}, 0.5, 2};
  parity("add", [](auto& in) { return in[0] + in[1]; }, {any, any});
  parity("sub", [](auto& in) { return in[0] - in[1]; }, {any, any});
  parity("mul", [](auto& in) { return in[0] * in[1]; }, {any, any});
  parity("div", [](auto& in) { return in[0] / in[1]; }, {any, pos});
  parity("add broadcast", [](auto& in) { return ops::add(in[0], in[1]); }, {a, b});
  parity("sub broadcast", [](auto& in) { return ops::sub(in[1], in[0]); }, {a, b});
  parity("mul broadcast", [](auto& in) { return ops::mul(in[0], in[1]); }, {a, b});
  parity("div broadcast", [](auto& in) { return ops::div(in[0], in[1]); }, {a, b});
  parity("scalar operators", [](auto& in) { return 2.f / in[0] + (1.f - in[0] * 3.f) / 4.f - (-in[0] + 0.5f); },
         {pos});
}

TEST_CASE("cuda ops: matmul, transpose, reductions and reshape match the CPU forward and backward") {
  DML_GPU_OR_SKIP();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Input a{ta ? Shape{7, 6} : Shape{6, 7}}, b{tb ? Shape{5, 7} : Shape{7, 5}};
      parity(std::string("matmul ") + (ta ? "T" : "N") + (tb ? "T" : "N"),
             [ta, tb](auto& in) { return ops::matmul(in[0], in[1], ta, tb); }, {a, b}, 1e-5, 1e-5);
    }
  const Input x{Shape{6, 9}}, x3{Shape{3, 4, 5}};
  parity("transpose", [](auto& in) { return ops::transpose(in[0]); }, {x});
  parity("sum", [](auto& in) { return ops::sum(in[0]); }, {x3});
  parity("sum axis", [](auto& in) { return ops::sum(in[0], 1); }, {x3});
  parity("sum axis keepdim", [](auto& in) { return ops::sum(in[0], 0, true); }, {x3});
  parity("mean", [](auto& in) { return ops::mean(in[0]); }, {x3});
  parity("mean last axis", [](auto& in) { return ops::mean(in[0], -1); }, {x3});
  parity("max axis 1", [](auto& in) { return ops::max(in[0], 1); }, {x3});
  parity("max axis 0 keepdim", [](auto& in) { return ops::max(in[0], 0, true); }, {x3});
  parity("max long rows", [](auto& in) { return ops::max(in[0], 1); }, {Input{Shape{4, 300}}});
  parity("reshape", [](auto& in) { return ops::sum(in[0].reshape({5, -1}) * in[1], 0); },
         {Input{Shape{2, 10}}, Input{Shape{5, 4}}});
}

TEST_CASE("cuda ops: gather, scatter, l2_normalize, log_softmax and cross_entropy match the CPU") {
  DML_GPU_OR_SKIP();
  const Input logits{Shape{8, 10}, -3, 3};
  parity("gather", [](auto& in) { return ops::gather(in[0], labels_on(in, 8, 10, 1)); }, {logits});
  parity("scatter", [](auto& in) { return ops::scatter(in[0], labels_on(in, 8, 10, 2), 10); }, {Input{Shape{8}}});
  parity("l2_normalize", [](auto& in) { return ops::l2_normalize(in[0]); }, {Input{Shape{6, 40}}});
  parity("log_softmax", [](auto& in) { return ops::log_softmax(in[0]); }, {logits});
  parity("log_softmax rank 3", [](auto& in) { return ops::log_softmax(in[0]); }, {Input{Shape{2, 3, 7}, -4, 4}});
  parity("cross_entropy", [](auto& in) { return ops::cross_entropy(in[0], labels_on(in, 8, 10, 3)); }, {logits});
  parity("cross_entropy smoothed",
         [](auto& in) { return ops::cross_entropy(in[0], labels_on(in, 8, 10, 4), 0.1); }, {logits});
  // A cosine-softmax head: the composition a metric-learning step runs.
  parity("cosine head",
         [](auto& in) {
           auto cos = ops::matmul(ops::l2_normalize(in[0]), ops::l2_normalize(in[1]), false, true);
           auto labels = labels_on(in, 16, 10, 5);
           auto target = ops::gather(cos, labels);
           auto logits = (cos + ops::scatter(target * -0.1f, labels, 10)) * 30.f;
           return ops::cross_entropy(logits, labels, 0.05) + ops::mean(ops::square(target)) * 0.5f;
         },
         {Input{Shape{16, 24}}, Input{Shape{10, 24}}}, 1e-4, 1e-5);

  // Index validation copies the indices to the host and throws as on the CPU.
  auto x = Tensor<float, Cuda>::zeros(Shape{2, 3});
  auto bad = Tensor<i64, Cuda>::from_vector({0, 3});
  CHECK_THROWS_WITH_AS(ops::gather(x, bad), doctest::Contains("index 3 at position 1 is outside [0, 3)"), Error);
}

TEST_CASE("cuda ops: gradients accumulate across two backward passes, and leaves seed correctly") {
  DML_GPU_OR_SKIP();
  auto x = Tensor<float, Cuda>::from_vector({1.f, 2.f, 3.f}).requires_grad_();
  ops::sum(ops::square(x)).backward();
  ops::sum(ops::square(x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{4.f, 8.f, 12.f});
  auto s = Tensor<float, Cuda>::scalar(2.f).requires_grad_();
  s.backward();
  s.backward();
  CHECK(s.grad().item() == 2.f);
  {
    NoGrad ng;
    auto y = ops::exp(x);
    CHECK(!y.requires_grad());
  }
}

}  // namespace

}  // namespace test_cuda_ops
