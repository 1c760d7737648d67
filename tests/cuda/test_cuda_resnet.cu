// Whole networks on the GPU against the CPU: ResNet18 (width 8, fastai head)
// forward and backward, and five SGD steps of ResNet18 + ArcFace + Center
// Loss. Double runs must agree closely (no ReLU or max-pool kink flips at
// 1e-15); float runs are checked at the looser tolerance that train-mode
// BatchNorm over a few values per channel allows. Skips without a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <dml/cuda.hpp>

#include "cuda_test.cuh"

using namespace dml;
using namespace dml_test;

namespace {

constexpr i64 kBatch = 8, kSide = 28, kEmbedding = 32, kClasses = 10;

nn::ResNetOptions small_resnet(std::uint64_t seed) {
  return {.in_channels = 1, .embedding = kEmbedding, .head = nn::Head::Fastai, .width = 8, .seed = seed};
}

// Every value the forward and backward produce: the output, then each
// parameter's gradient and each buffer (running statistics) by name.
template <class T>
struct Snapshot {
  std::vector<std::pair<std::string, std::vector<double>>> values;
  void add(std::string name, const std::vector<T>& v) {
    values.emplace_back(std::move(name), std::vector<double>(v.begin(), v.end()));
  }
};

template <class T, class D>
Snapshot<T> resnet_forward_backward() {
  nn::ResNet18<T, D> net(small_resnet(3));
  auto x = Tensor<T, D>::from_vector(random_vec<T>(kBatch * kSide * kSide, 11), Shape{kBatch, 1, kSide, kSide});
  Tensor<T, D> y = net(x);
  y.backward(Tensor<T, D>::from_vector(random_vec<T>(static_cast<std::size_t>(y.numel()), 12), y.shape()));
  Snapshot<T> s;
  s.add("output", y.to_vector());
  for (const auto& [name, p] : net.named_parameters()) s.add("grad " + name, p.grad().to_vector());
  for (const auto& [name, b] : net.named_buffers())
    if (const auto* t = std::get_if<Tensor<T, D>>(&b)) s.add(name, t->to_vector());
  net.eval();
  NoGrad ng;
  s.add("eval output", net(x).to_vector());
  return s;
}

template <class T>
void compare(const Snapshot<T>& gpu, const Snapshot<T>& cpu, double tol, const std::string& what) {
  REQUIRE(gpu.values.size() == cpu.values.size());
  for (std::size_t i = 0; i < cpu.values.size(); ++i) {
    REQUIRE(gpu.values[i].first == cpu.values[i].first);
    close_rel(gpu.values[i].second, cpu.values[i].second, tol, what + ": " + cpu.values[i].first);
  }
}

TEST_CASE("cuda resnet: ResNet18 forward and backward match the CPU (double tightly, float loosely)") {
  DML_GPU_OR_SKIP();
  compare(resnet_forward_backward<double, Cuda>(), resnet_forward_backward<double, Cpu>(), 1e-9, "double");
  // In float, train-mode BatchNorm over 8 values per channel in layer4 amplifies rounding (the CPU's
  // float32 gradients differ from PyTorch's float64 ones by ~1e-3, see tests/nn/test_resnet.cpp), and
  // on a random batch a ReLU input within rounding of 0 may take the other side on the other device.
  // So float only has to agree to 1e-2 of each tensor's largest value: a wrong kernel is off by O(1).
  compare(resnet_forward_backward<float, Cuda>(), resnet_forward_backward<float, Cpu>(), 1e-2, "float");
}

// Loss after each of `steps` SGD steps of ResNet18 + MarginHead<Arc> + Center Loss on random batches.
template <class T, class D>
std::vector<double> train_losses(int steps) {
  nn::ResNet18<T, D> body(small_resnet(5));
  heads::MarginHead<heads::Arc, T, D> head(kEmbedding, kClasses, {.s = 30, .m = 0.5}, 6);
  losses::CenterLoss<T, D> center(kClasses, kEmbedding, 0.5);
  std::vector<Tensor<T, D>> params = body.parameters();
  for (auto& p : head.parameters()) params.push_back(p);
  auto opt = optim::make(optim::SGD{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4}, params);
  std::vector<double> out;
  for (int step = 0; step < steps; ++step) {
    auto x = Tensor<T, D>::from_vector(random_vec<T>(16 * kSide * kSide, 100 + step), Shape{16, 1, kSide, kSide});
    auto labels = Tensor<i64, D>::from_vector(random_labels(16, kClasses, 200 + step));
    opt.zero_grad();
    Tensor<T, D> emb = body(x);
    Tensor<T, D> loss = ops::cross_entropy(head(emb, labels), labels) + center(emb, labels) * T(0.1);
    loss.backward();
    opt.step();
    out.push_back(static_cast<double>(loss.item()));
  }
  return out;
}

TEST_CASE("cuda resnet: five SGD steps of ResNet18 + ArcFace + Center Loss give the CPU's losses") {
  DML_GPU_OR_SKIP();
  auto cpu_d = train_losses<double, Cpu>(5), gpu_d = train_losses<double, Cuda>(5);
  all_close(gpu_d, cpu_d, 1e-8, 0, "double losses");
  auto cpu_f = train_losses<float, Cpu>(5), gpu_f = train_losses<float, Cuda>(5);
  all_close(gpu_f, cpu_f, 2e-3, 0, "float losses");
  MESSAGE("losses: CPU float ", cpu_f[0], " ... ", cpu_f[4], ", GPU float ", gpu_f[0], " ... ", gpu_f[4]);
}

TEST_CASE("cuda resnet: training is bitwise repeatable with deterministic convolutions") {
  DML_GPU_OR_SKIP();
  struct Deterministic {
    Deterministic() { cuda::set_conv_deterministic(true); }
    ~Deterministic() { cuda::set_conv_deterministic(false); }
  } on;
  auto a = train_losses<float, Cuda>(3), b = train_losses<float, Cuda>(3);
  all_equal(b, a, "float losses of two deterministic runs");
}

}  // namespace
