// bench/resnet18_common.hpp: what bench/resnet18.cpp (host) and
// bench/resnet18.cu (GPU) share: random batches, the plain SGD training step,
// the validation run, median timing, the output format and ResNet18's
// convolution shapes at 28x28. Templated on the device tag; include
// <dml/cuda.hpp> first for Cuda.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include <dml/dml.hpp>
#include <dml/nn/nn.hpp>

namespace bench {

using namespace dml;
using Clock = std::chrono::steady_clock;

// Dense im2col FLOPs per image at 1x28x28 (the convention PyTorch comparisons
// use): a training step is about three forwards.
constexpr double kTrainGflopPerImage = 0.197;
constexpr double kForwardGflopPerImage = kTrainGflopPerImage / 3;

// Waits for the device's queued work (nothing to wait for on the host).
template <class D>
void device_sync() {
#if defined(__CUDACC__)
  if constexpr (std::is_same_v<D, Cuda>) cuda::synchronize();
#endif
}

template <class D>
struct Batch {
  Tensor<float, D> x;
  Tensor<std::int64_t, D> y;
};

// n random images of c x side x side with labels below `classes`, drawn on the
// host (the same values on every device for a seed).
template <class D>
Batch<D> make_batch(std::int64_t n, std::uint64_t seed, std::int64_t c = 1, std::int64_t side = 28,
                    std::int64_t classes = 10) {
  Generator g(seed);
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (auto& l : labels) l = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(classes)));
  return {Tensor<float>::randn(Shape{n, c, side, side}, g).template to<D>(),
          Tensor<std::int64_t>::from_vector(labels).template to<D>()};
}

// p - lr * g, the plain SGD update (a DML_HD functor: the GPU runs it too).
struct SgdStep {
  float lr;
  DML_HD float operator()(float p, float g) const { return p - lr * g; }
};

// Forward, cross-entropy, backward and p -= lr * g under NoGrad (optimisers
// live elsewhere). Returns the loss, which waits for the device.
template <class D>
float train_step(nn::ResNet18<float, D>& net, const Batch<D>& b, float lr) {
  net.zero_grad();
  Tensor<float, D> loss = ops::cross_entropy(net(b.x), b.y);
  loss.backward();
  NoGrad ng;
  for (Tensor<float, D>& p : net.parameters()) {
    Tensor<float, D> g = p.grad();
    Backend<D>::zip(SgdStep{lr}, p.data(), g.data(), p.data(), p.numel());
  }
  return loss.item();
}

// A few SGD steps on one fixed batch (ResNet18, 1x28x28, 10 classes): the
// losses must be finite and decrease. Prints them; returns the verdict.
template <class D>
bool validate(std::vector<float>* losses_out = nullptr) {
  nn::ResNet18<float, D> net({.in_channels = 1, .head = nn::Head::Torchvision, .num_classes = 10, .seed = 1});
  Batch<D> b = make_batch<D>(32, 7);
  std::vector<float> losses;
  for (int step = 0; step < 4; ++step) losses.push_back(train_step(net, b, 0.05f));
  std::printf("# validation losses:");
  for (float l : losses) std::printf(" %.4f", l);
  std::printf("\n");
  bool ok = std::all_of(losses.begin(), losses.end(), [](float l) { return std::isfinite(l); });
  for (std::size_t i = 1; i < losses.size(); ++i) ok = ok && losses[i] < losses[i - 1];
  if (losses_out) *losses_out = losses;
  return ok;
}

// Seconds per call of f: the median of `reps` timed calls after one warm-up.
// f must leave no device work queued (call device_sync<D>() at its end).
template <class F>
double time_median(F&& f, int reps) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// One `name: value unit` line.
inline void print(const std::string& name, double value, const char* unit) {
  std::printf("%s: %.4g %s\n", name.c_str(), value, unit);
  std::fflush(stdout);
}

// ResNet18's convolutions at a 1x28x28 input: the stem, then per stage the
// 3x3 convolutions and the 1x1 stride-2 shortcut; count = instances per step.
struct ConvShape {
  const char* name;  // for `#` comment lines
  const char* id;    // for `name: value` lines
  std::int64_t c, h, o, k, s, p, count;
};
inline constexpr ConvShape kResnet18Convs28[] = {
    {"conv1 1->64 7x7/2 28", "conv1_7x7s2_28", 1, 28, 64, 7, 2, 3, 1},
    {"layer1 3x3 64 7", "layer1_3x3_64_7", 64, 7, 64, 3, 1, 1, 4},
    {"layer2.0.conv1 3x3/2 7->4", "layer2_0_conv1_3x3s2_7", 64, 7, 128, 3, 2, 1, 1},
    {"layer2 3x3 128 4", "layer2_3x3_128_4", 128, 4, 128, 3, 1, 1, 3},
    {"layer2 ds 1x1/2", "layer2_ds_1x1s2_7", 64, 7, 128, 1, 2, 0, 1},
    {"layer3.0.conv1 3x3/2 4->2", "layer3_0_conv1_3x3s2_4", 128, 4, 256, 3, 2, 1, 1},
    {"layer3 3x3 256 2", "layer3_3x3_256_2", 256, 2, 256, 3, 1, 1, 3},
    {"layer3 ds 1x1/2", "layer3_ds_1x1s2_4", 128, 4, 256, 1, 2, 0, 1},
    {"layer4.0.conv1 3x3/2 2->1", "layer4_0_conv1_3x3s2_2", 256, 2, 512, 3, 2, 1, 1},
    {"layer4 3x3 512 1", "layer4_3x3_512_1", 512, 1, 512, 3, 1, 1, 3},
    {"layer4 ds 1x1/2", "layer4_ds_1x1s2_2", 256, 2, 512, 1, 2, 0, 1},
};

struct ConvTimes {
  double forward = 0, backward = 0;  // seconds per call, one instance
};

// Times Backend<D>'s conv2d_forward and conv2d_backward (data and filter
// gradients; no data gradient for the 1-channel stem, as in the network) on
// one shape at batch n: medians of `reps` calls.
template <class D>
ConvTimes time_conv(const ConvShape& cs, std::int64_t n, int reps) {
  using TF = Tensor<float, D>;
  Generator g(1);
  Conv2dGeom geo = Conv2dGeom::make(n, cs.c, cs.h, cs.h, cs.o, cs.k, cs.k, cs.s, cs.s, cs.p, cs.p);
  TF x = Tensor<float>::randn(Shape{n, cs.c, cs.h, cs.h}, g).template to<D>();
  TF w = Tensor<float>::randn(Shape{cs.o, cs.c, cs.k, cs.k}, g).template to<D>();
  TF y = TF::empty(Shape{n, cs.o, geo.ho, geo.wo}), gx = TF::empty(x.shape()), gw = TF::empty(w.shape());
  const float* no_in = nullptr;
  float* no_out = nullptr;
  ConvTimes t;
  t.forward = time_median(
      [&] {
        Backend<D>::conv2d_forward(geo, x.data(), w.data(), no_in, y.data());
        device_sync<D>();
      },
      reps);
  t.backward = time_median(
      [&] {
        Backend<D>::conv2d_backward(geo, y.data(), x.data(), w.data(), cs.c == 1 ? no_out : gx.data(), gw.data(),
                                    no_out);
        device_sync<D>();
      },
      reps);
  return t;
}

}  // namespace bench
