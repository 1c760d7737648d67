// bench/resnet18.cu: ResNet18 training and inference on the GPU, and cuDNN
// convolutions against the host's per layer shape. Built as bench_resnet18_cuda.
//
//   bench_resnet18_cuda            validate, then time; prints `name: value unit` lines
//   bench_resnet18_cuda --tf32     let float convolutions use TF32 tensor cores (default off)
//   bench_resnet18_cuda --no-cpu   skip the host side of the per-layer conv comparison
//
// Without a usable CUDA device it prints one `skipped` line and exits 0 (exit 1
// under DML_REQUIRE_GPU=1, as scripts/gpu_check.sh runs it).
//
// Validation: four SGD steps of ResNet18 (1x28x28, 10 classes, torchvision
// head) on one fixed batch must give finite, decreasing losses on the GPU;
// the same run on the host prints its losses beside them, and the first loss
// (a forward pass from the same weights) must agree to 1 %.
//
// Timed (medians after a warm-up step; each timed call ends with a device sync):
//   resnet18_cuda_train_{28,224}_b{128,256}_images_per_s   forward, cross-entropy, backward, SGD
//   resnet18_cuda_forward_{28,224}_b{128,256}_images_per_s eval mode under NoGrad
//   resnet18_cuda_train_28_b128_cuda_mallocs_per_step      0 once the caching allocator is warm
//   resnet18_cuda_peak_mib                                  the allocator's peak bytes in use
//   conv_<layer>_{cuda,cpu}_{fwd,bwd}_us_per_image         ResNet18's 28x28 conv shapes, one instance,
//                                                          GPU at batch 128, host at batch 16
//   conv_total_{cuda,cpu}_us_per_image, conv_total_speedup  all conv instances of one training step
// 28 is the 1x28x28 input with 10 classes, 224 the 3x224x224 input with 1000.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dml/cuda.hpp>

#include "resnet18_common.hpp"

using namespace dml;
using namespace bench;

namespace {

struct Input {
  const char* tag;
  std::int64_t channels, side, classes;
};
constexpr Input kInputs[] = {{"28", 1, 28, 10}, {"224", 3, 224, 1000}};

nn::ResNetOptions resnet_options(const Input& in, std::uint64_t seed) {
  return {.in_channels = in.channels, .head = nn::Head::Torchvision, .num_classes = in.classes, .seed = seed};
}

bool require_gpu() {
  const char* env = std::getenv("DML_REQUIRE_GPU");
  return env && *env && std::strcmp(env, "0") != 0;
}

// Training steps per second at batch n.
void bench_training(const Input& in, std::int64_t n) {
  nn::ResNet18<float, Cuda> net(resnet_options(in, 3));
  Batch<Cuda> b = make_batch<Cuda>(n, 4, in.channels, in.side, in.classes);
  const int reps = in.side >= 224 ? 3 : 10;
  double t = time_median([&] { train_step(net, b, 0.01f); }, reps);  // item() waits for the device
  std::string name = std::string("resnet18_cuda_train_") + in.tag + "_b" + std::to_string(n);
  print(name + "_images_per_s", double(n) / t, "images/s");
  if (in.side == 28 && n == 128) {
    const auto before = cuda::memory_stats().cuda_malloc_count;
    for (int step = 0; step < 3; ++step) train_step(net, b, 0.01f);
    print(name + "_cuda_mallocs_per_step", double(cuda::memory_stats().cuda_malloc_count - before) / 3, "calls");
  }
}

// Inference images per second at batch n.
void bench_forward(const Input& in, std::int64_t n) {
  nn::ResNet18<float, Cuda> net(resnet_options(in, 2));
  net.eval();
  NoGrad ng;
  Batch<Cuda> b = make_batch<Cuda>(n, 3, in.channels, in.side, in.classes);
  const int reps = in.side >= 224 ? 5 : 20;
  double t = time_median(
      [&] {
        net(b.x);
        device_sync<Cuda>();
      },
      reps);
  print(std::string("resnet18_cuda_forward_") + in.tag + "_b" + std::to_string(n) + "_images_per_s", double(n) / t,
        "images/s");
}

// cuDNN against the host's convolutions, per ResNet18 shape at 28x28.
void bench_convs(bool with_cpu) {
  constexpr std::int64_t kGpuBatch = 128, kCpuBatch = 16;
  std::printf("# conv per image, one instance (us): GPU batch %ld, host batch %ld on %d threads\n", long(kGpuBatch),
              long(kCpuBatch), cpu::max_threads());
  double total_gpu = 0, total_cpu = 0;
  for (const ConvShape& cs : kResnet18Convs28) {
    ConvTimes g = time_conv<Cuda>(cs, kGpuBatch, 20);
    const double gf = 1e6 * g.forward / kGpuBatch, gb = 1e6 * g.backward / kGpuBatch;
    const std::string name = std::string("conv_") + cs.id;
    print(name + "_cuda_fwd_us_per_image", gf, "us");
    print(name + "_cuda_bwd_us_per_image", gb, "us");
    total_gpu += cs.count * (gf + gb);
    if (!with_cpu) continue;
    ConvTimes c = time_conv<Cpu>(cs, kCpuBatch, 3);
    const double cf = 1e6 * c.forward / kCpuBatch, cb = 1e6 * c.backward / kCpuBatch;
    print(name + "_cpu_fwd_us_per_image", cf, "us");
    print(name + "_cpu_bwd_us_per_image", cb, "us");
    total_cpu += cs.count * (cf + cb);
    std::printf("# %-28s x%ld  GPU fwd %8.3f bwd %8.3f   host fwd %8.2f bwd %8.2f   speedup %6.1fx\n", cs.name,
                long(cs.count), gf, gb, cf, cb, (cf + cb) / (gf + gb));
  }
  print("conv_total_cuda_us_per_image", total_gpu, "us");
  if (with_cpu) {
    print("conv_total_cpu_us_per_image", total_cpu, "us");
    print("conv_total_speedup", total_cpu / total_gpu, "x");
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool tf32 = false, with_cpu = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tf32") == 0) {
      tf32 = true;
    } else if (std::strcmp(argv[i], "--no-cpu") == 0) {
      with_cpu = false;
    } else {
      std::fprintf(stderr, "bench_resnet18_cuda: unknown argument '%s' (--tf32, --no-cpu)\n", argv[i]);
      return 2;
    }
  }
  const std::string why = cuda::device_status();
  if (!why.empty()) {
    std::printf("bench_resnet18_cuda: skipped: no CUDA device (%s)\n", why.c_str());
    return require_gpu() ? 1 : 0;
  }
  try {
    const cuda::Context& ctx = cuda::context();
    std::printf("# device: %s (sm_%d, %d SMs)\n", ctx.name.c_str(), ctx.compute_capability, ctx.sm_count);
  } catch (const std::exception& e) {
    std::printf("bench_resnet18_cuda: skipped: CUDA context failed (%s)\n", e.what());
    return require_gpu() ? 1 : 0;
  }
  cuda::set_conv_tf32(tf32);
  std::printf("# float convolutions: %s; host threads: %d\n", tf32 ? "TF32 allowed" : "FMA (no TF32)",
              cpu::max_threads());

  try {
    // ---- validation --------------------------------------------------------------------
    std::vector<float> gpu_losses, cpu_losses;
    if (!validate<Cuda>(&gpu_losses)) {
      std::printf("resnet18_cuda_validation_failed: 1\n");
      return 1;
    }
    validate<Cpu>(&cpu_losses);  // the same run on the host, for comparison
    auto rel = [&](std::size_t i) { return std::fabs(double(gpu_losses[i]) - cpu_losses[i]) / cpu_losses[i]; };
    double worst = 0;
    for (std::size_t i = 0; i < gpu_losses.size(); ++i) worst = std::fmax(worst, rel(i));
    std::printf("# validation: GPU vs host (the second line): first loss to a relative %.2e, all to %.2e\n", rel(0),
                worst);
    // The first loss is a forward pass from the same weights: it must agree. Later ones may drift
    // apart (float rounding through SGD steps on a batch the network memorises).
    if (!(rel(0) <= 1e-2)) {
      std::printf("resnet18_cuda_validation_failed: 1\n");
      return 1;
    }

    // ---- training, then inference ------------------------------------------------------
    for (const Input& in : kInputs)
      for (std::int64_t n : {128, 256}) bench_training(in, n);
    for (const Input& in : kInputs)
      for (std::int64_t n : {128, 256}) bench_forward(in, n);
    print("resnet18_cuda_peak_mib", double(cuda::memory_stats().peak_bytes_in_use) / (1 << 20), "MiB");

    // ---- per-layer convolutions --------------------------------------------------------
    bench_convs(with_cpu);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_resnet18_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
