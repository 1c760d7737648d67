// tests/cuda/resnet_parity.hpp: the ResNet18 runs test_cuda_resnet.cu compares
// across devices, templated on the element type and the device. The Cpu
// instantiations live in resnet_parity_cpu.cpp (g++, once); the .cu file
// instantiates only the Cuda ones, so nvcc never compiles the host network.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "parity.hpp"

namespace dml_test {

constexpr i64 kBatch = 8, kSide = 28, kEmbedding = 32, kClasses = 10;

inline dml::nn::ResNetOptions small_resnet(std::uint64_t seed) {
  return {.in_channels = 1, .embedding = kEmbedding, .head = dml::nn::Head::Fastai, .width = 8, .seed = seed};
}

// Every value the forward and backward produce: the output, then each
// parameter's gradient and each buffer (running statistics) by name.
template <class T>
struct Snapshot {
  std::vector<std::pair<std::string, std::vector<double>>> values;
  template <class U>
  void add(std::string name, const std::vector<U>& v) {
    values.emplace_back(std::move(name), std::vector<double>(v.begin(), v.end()));
  }
};

template <class T, class D>
Snapshot<T> resnet_forward_backward() {
  dml::nn::ResNet18<T, D> net(small_resnet(3));
  auto x = dml::Tensor<T, D>::from_vector(random_vec<T>(kBatch * kSide * kSide, 11),
                                          dml::Shape{kBatch, 1, kSide, kSide});
  dml::Tensor<T, D> y = net(x);
  y.backward(dml::Tensor<T, D>::from_vector(random_vec<T>(static_cast<std::size_t>(y.numel()), 12), y.shape()));
  Snapshot<T> s;
  s.add("output", y.to_vector());
  for (const auto& [name, p] : net.named_parameters()) s.add("grad " + name, p.grad().to_vector());
  for (const auto& [name, b] : net.named_buffers()) {
    if (const auto* t = std::get_if<dml::Tensor<T, D>>(&b)) s.add(name, t->to_vector());
    if (const auto* t = std::get_if<dml::Tensor<i64, D>>(&b)) s.add(name, t->to_vector());  // num_batches_tracked
  }
  net.eval();
  dml::NoGrad ng;
  s.add("eval output", net(x).to_vector());
  return s;
}

// Loss after each of `steps` SGD steps of ResNet18 + MarginHead<Arc> + Center Loss on random batches.
template <class T, class D>
std::vector<double> train_losses(int steps) {
  dml::nn::ResNet18<T, D> body(small_resnet(5));
  dml::heads::MarginHead<dml::heads::Arc, T, D> head(kEmbedding, kClasses, {.s = 30, .m = 0.5}, 6);
  dml::losses::CenterLoss<T, D> center(kClasses, kEmbedding, 0.5);
  std::vector<dml::Tensor<T, D>> params = body.parameters();
  for (auto& p : head.parameters()) params.push_back(p);
  auto opt = dml::optim::make(dml::optim::SGD{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4}, params);
  std::vector<double> out;
  for (int step = 0; step < steps; ++step) {
    auto x = dml::Tensor<T, D>::from_vector(random_vec<T>(16 * kSide * kSide, 100 + step),
                                            dml::Shape{16, 1, kSide, kSide});
    auto labels = dml::Tensor<i64, D>::from_vector(random_labels(16, kClasses, 200 + step));
    opt.zero_grad();
    dml::Tensor<T, D> emb = body(x);
    dml::Tensor<T, D> loss = dml::ops::cross_entropy(head(emb, labels), labels) + center(emb, labels) * T(0.1);
    loss.backward();
    opt.step();
    out.push_back(static_cast<double>(loss.item()));
  }
  return out;
}

extern template Snapshot<float> resnet_forward_backward<float, dml::Cpu>();
extern template Snapshot<double> resnet_forward_backward<double, dml::Cpu>();
extern template std::vector<double> train_losses<float, dml::Cpu>(int);
extern template std::vector<double> train_losses<double, dml::Cpu>(int);

}  // namespace dml_test
