// bench/resnet18.cpp: ResNet18 (1x28x28 input, 10 classes) inference and
// training steps on the host.
//
//   bench_resnet18                  validate, then time; prints `name: value unit` lines
//   bench_resnet18 --profile        also times each op kind of a training step at batch 128
//   bench_resnet18 --no-cache       turn dml's host block cache off (Memory<Cpu>::set_cache_limit(0))
//
// After the steps it measures the host's FMA peak (host_fma_peak_gflops) and prints the share of
// it a training step's useful FLOPs reach (resnet18_train_b*_share_of_peak, issue 20).
//
// Besides the rates it reports the system allocations per training step once
// warm (large blocks the host cache could not serve: 0 means the steady state
// allocates nothing new) and the peak resident memory. Without the cache, each
// large activation is a fresh mmap whose pages fault in on every step (about
// 2.5x slower training with glibc's defaults).
//
// Validation: a few SGD steps on one fixed batch must give finite, decreasing
// losses. A training step is forward, cross-entropy, backward and p -= lr * g
// under NoGrad (optimisers live elsewhere). FLOP counts are dense im2col
// figures, the convention PyTorch comparisons use: 0.197 GFLOP per image per
// training step at 28x28, a third of that per forward. docs/resnet.md has the
// measured numbers and the command line.
#include <cstdio>
#include <cstring>
#include <string>

#include <omp.h>
#include <sys/resource.h>

#include "resnet18_common.hpp"

using namespace dml;
using namespace bench;
using TF = Tensor<float>;

namespace {

// Useful FLOPs of a training image with dml's padding-aware lowering (docs/resnet.md): the
// figure a share of the FMA peak is computed from, since the dense count includes padding taps.
constexpr double kUsefulTrainGflopPerImage = 0.1061;

// The host's single-precision FMA peak in GFLOP/s on all OpenMP threads: each thread runs
// independent chains of vector FMAs at the build's widest vector (64 bytes with AVX-512, else 32),
// enough chains to cover the FMA latency on two pipes. One FMA is 2 FLOPs per lane.
double fma_peak_gflops() {
#if defined(__AVX512F__)
  constexpr int kBytes = 64;
#else
  constexpr int kBytes = 32;
#endif
  using V = float __attribute__((vector_size(kBytes)));
  constexpr int kLanes = kBytes / 4, kChains = 12;
  constexpr long kIters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
      V acc[kChains];
      const float seed = 1e-3f * float(omp_get_thread_num() + 1);
      for (int c = 0; c < kChains; ++c) acc[c] = V{} + seed * float(c + 1);
      V a = V{} + 0.999999f, b = V{} + 1e-7f;
      for (long i = 0; i < kIters; ++i) {
        for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
        asm volatile("" : "+v"(a));  // keeps the loop from being folded
      }
      for (int c = 0; c < kChains; ++c)
        for (int l = 0; l < kLanes; ++l) sink += acc[c][l];
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (sink == 12345.f) std::printf("#\n");  // uses the result
    best = std::max(best, double(cpu::max_threads()) * kIters * kChains * kLanes * 2 / s / 1e9);
  }
  return best;
}

// Times each conv / BN / pool kernel of one training step at batch n, by
// calling the backend directly on the shapes ResNet18 sees at 28x28.
void profile(std::int64_t n) {
  const float* no_in = nullptr;
  float* no_out = nullptr;
  Generator g(1);
  double total_f = 0, total_b = 0;
  std::printf("# per-kernel times at batch %ld (ms per step, all instances)\n", long(n));
  for (const ConvShape& cs : kResnet18Convs28) {
    ConvTimes t = time_conv<Cpu>(cs, n, 5);
    total_f += t.forward * cs.count;
    total_b += t.backward * cs.count;
    std::printf("# %-28s x%ld  forward %7.2f ms  backward %7.2f ms\n", cs.name, long(cs.count),
                1e3 * t.forward * cs.count, 1e3 * t.backward * cs.count);
  }
  std::printf("# conv total: forward %.1f ms, backward %.1f ms\n", 1e3 * total_f, 1e3 * total_b);
  struct BnShape {
    std::int64_t c, hw, count;
  };
  double bn_f = 0, bn_b = 0;
  for (BnShape bs :
       {BnShape{64, 196, 1}, BnShape{64, 49, 4}, BnShape{128, 16, 5}, BnShape{256, 4, 5}, BnShape{512, 1, 5}}) {
    TF x = TF::randn(Shape{n, bs.c, bs.hw}, g), y = TF::empty(x.shape()), gx = TF::empty(x.shape());
    TF m = TF::empty(Shape{bs.c}), is = TF::empty(Shape{bs.c}), gg = TF::empty(Shape{bs.c}),
       gb = TF::empty(Shape{bs.c});
    bn_f += bs.count * time_median(
                           [&] {
                             Backend<Cpu>::batch_norm_train(x.data(), no_in, no_in, y.data(), m.data(), is.data(),
                                                            no_out, no_out, n, bs.c, bs.hw, 0.1, 1e-5);
                           },
                           5);
    bn_b += bs.count * time_median(
                           [&] {
                             Backend<Cpu>::batch_norm_backward(y.data(), x.data(), no_in, m.data(), is.data(),
                                                               gx.data(), gg.data(), gb.data(), n, bs.c, bs.hw, true);
                           },
                           5);
  }
  std::printf("# batchnorm total: forward %.1f ms, backward %.1f ms\n", 1e3 * bn_f, 1e3 * bn_b);
  TF x = TF::randn(Shape{n, 64, 14, 14}, g), y = TF::empty(Shape{n, 64, 7, 7}), gx = TF::zeros(x.shape());
  Tensor<std::int64_t> arg = Tensor<std::int64_t>::empty(y.shape());
  Pool2dGeom pg = Pool2dGeom::make(n, 64, 14, 14, 3, 3, 2, 2, 1, 1);
  double mp_f = time_median([&] { Backend<Cpu>::max_pool2d(pg, x.data(), y.data(), arg.data()); }, 5);
  double mp_b = time_median([&] { Backend<Cpu>::max_pool2d_backward(pg, y.data(), arg.data(), gx.data()); }, 5);
  std::printf("# max_pool2d: forward %.2f ms, backward %.2f ms\n", 1e3 * mp_f, 1e3 * mp_b);
}

}  // namespace

int main(int argc, char** argv) {
  bool want_profile = false, no_cache = false;
  for (int i = 1; i < argc; ++i) {
    want_profile = want_profile || std::strcmp(argv[i], "--profile") == 0;
    no_cache = no_cache || std::strcmp(argv[i], "--no-cache") == 0;
  }
  if (no_cache) Memory<Cpu>::set_cache_limit(0);
  std::printf("# threads: %d, host block cache: %s\n", cpu::max_threads(), no_cache ? "off" : "on");

  // ---- validation ----------------------------------------------------------------------
  {
    if (!validate<Cpu>()) {
      std::printf("resnet18_validation_failed: 1\n");
      return 1;
    }
  }

  // ---- inference -----------------------------------------------------------------------
  {
    nn::ResNet18<float> net({.in_channels = 1, .head = nn::Head::Torchvision, .num_classes = 10, .seed = 2});
    net.eval();
    NoGrad ng;
    for (std::int64_t n : {32, 128, 256}) {
      Batch<Cpu> b = make_batch<Cpu>(n, 3);
      double t = time_median([&] { net(b.x); }, n >= 128 ? 7 : 15);
      std::string name = "resnet18_forward_b" + std::to_string(n);
      print(name + "_images_per_s", double(n) / t, "images/s");
      print(name + "_gflops", double(n) * kForwardGflopPerImage / t, "GFLOP/s");
    }
  }

  // ---- training --------------------------------------------------------------------------
  double train_useful_gflops[2] = {0, 0};
  for (std::int64_t n : {32, 128}) {
    nn::ResNet18<float> net({.in_channels = 1, .head = nn::Head::Torchvision, .num_classes = 10, .seed = 3});
    Batch<Cpu> b = make_batch<Cpu>(n, 4);
    double t = time_median([&] { train_step(net, b, 0.01f); }, n >= 128 ? 7 : 15);
    std::string name = "resnet18_train_b" + std::to_string(n);
    print(name + "_images_per_s", double(n) / t, "images/s");
    print(name + "_gflops", double(n) * kTrainGflopPerImage / t, "GFLOP/s");
    print(name + "_useful_gflops", double(n) * kUsefulTrainGflopPerImage / t, "GFLOP/s");
    train_useful_gflops[n == 32 ? 0 : 1] = double(n) * kUsefulTrainGflopPerImage / t;
    const std::size_t misses = Memory<Cpu>::cache_misses();
    for (int step = 0; step < 3; ++step) train_step(net, b, 0.01f);
    print(name + "_system_allocs_per_step", double(Memory<Cpu>::cache_misses() - misses) / 3, "blocks");
  }
  // ---- the machine's peak, and the share of it a training step uses -------------------------
  const double peak = fma_peak_gflops();
  print("host_fma_peak_gflops", peak, "GFLOP/s");
  print("resnet18_train_b32_share_of_peak", 100 * train_useful_gflops[0] / peak, "%");
  print("resnet18_train_b128_share_of_peak", 100 * train_useful_gflops[1] / peak, "%");
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  print("resnet18_peak_rss", double(usage.ru_maxrss) / 1024, "MiB");

  if (want_profile) profile(128);
  return 0;
}
