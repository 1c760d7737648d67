// bench/anomaly.cpp: the cost of DetectAnomaly (dml/core/autograd.hpp) on a
// ResNet18 (1x28x28, 10 classes) training step and inference pass on the host.
//
//   bench_anomaly [batch=32] [repeats=5]
//
// Validates first: with the guard on, a finite step gives bit for bit the loss
// and gradients it gives without it, and a NaN put in the input on purpose
// throws naming the first op that saw it. Then times the best of `repeats`
// runs, alternating off and on, and prints `name: value unit` lines: seconds
// per training step (forward, cross-entropy, backward) and per inference
// forward (NoGrad) with the guard off and on, and the ratios.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#include <dml/nn/nn.hpp>

using namespace dml;
using TF = Tensor<float>;
using Clock = std::chrono::steady_clock;

namespace {

nn::ResNet18<float> make_net() {
  return nn::ResNet18<float>({.in_channels = 1, .head = nn::Head::Torchvision, .num_classes = 10, .seed = 1});
}

double train_step(nn::ResNet18<float>& net, const TF& x, const Tensor<std::int64_t>& y) {
  for (auto& p : net.parameters()) p.zero_grad();
  TF loss = ops::cross_entropy(net(x), y);
  loss.backward();
  return loss.item();
}

template <class F>
double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t batch = argc > 1 ? std::atoll(argv[1]) : 32;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  Generator gen(7);
  TF x = TF::uniform({batch, 1, 28, 28}, gen);
  std::vector<std::int64_t> labels(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) labels[static_cast<std::size_t>(i)] = i % 10;
  auto y = Tensor<std::int64_t>::from_vector(labels, Shape{batch});

  // ---- validate ----
  auto net = make_net();
  net.train(true);
  auto grads = [&] {
    std::vector<std::vector<float>> g;
    for (const auto& p : net.parameters()) g.push_back(p.grad().to_vector());
    return g;
  };
  auto state = nn::to_tensor_map(net);
  const double plain = train_step(net, x, y);
  const auto plain_grads = grads();
  nn::load_tensor_map(net, state);  // undo the running-statistics update
  double guarded = 0;
  {
    DetectAnomaly guard;
    guarded = train_step(net, x, y);
  }
  if (guarded != plain || grads() != plain_grads) {
    std::fprintf(stderr, "bench_anomaly: the guard changed the step (loss %.9g vs %.9g)\n", guarded, plain);
    return 1;
  }
  TF bad = x.clone();
  bad.data()[5] = std::numeric_limits<float>::quiet_NaN();
  std::string msg;
  try {
    DetectAnomaly guard;
    (void)train_step(net, bad, y);
  } catch (const Error& e) {
    msg = e.what();
  }
  if (msg.find("op 'conv2d'") == std::string::npos || msg.find("input 0 already held nan") == std::string::npos) {
    std::fprintf(stderr, "bench_anomaly: a NaN input was not caught at conv1: '%s'\n", msg.c_str());
    return 1;
  }
  std::printf("anomaly_validate: ok (%s)\n", msg.c_str());

  // ---- time: best of `repeats`, alternating ----
  double train_off = 1e300, train_on = 1e300, infer_off = 1e300, infer_on = 1e300;
  train_step(net, x, y);  // warm the caches
  for (int r = 0; r < repeats; ++r) {
    train_off = std::min(train_off, seconds([&] { train_step(net, x, y); }));
    train_on = std::min(train_on, seconds([&] {
                          DetectAnomaly guard;
                          train_step(net, x, y);
                        }));
    net.train(false);
    infer_off = std::min(infer_off, seconds([&] {
                           NoGrad ng;
                           (void)net(x);
                         }));
    infer_on = std::min(infer_on, seconds([&] {
                          NoGrad ng;
                          DetectAnomaly guard;
                          (void)net(x);
                        }));
    net.train(true);
  }
  std::printf("anomaly_batch: %lld images\n", static_cast<long long>(batch));
  std::printf("anomaly_train_step_off: %.4f s\n", train_off);
  std::printf("anomaly_train_step_on: %.4f s\n", train_on);
  std::printf("anomaly_train_ratio: %.3f x\n", train_on / train_off);
  std::printf("anomaly_inference_off: %.4f s\n", infer_off);
  std::printf("anomaly_inference_on: %.4f s\n", infer_on);
  std::printf("anomaly_inference_ratio: %.3f x\n", infer_on / infer_off);
  return 0;
}
