// The training loop on the GPU: train::Learner (a frozen epoch, then an
// unfrozen one-cycle epoch of ResNet18 + ArcFace + Center Loss with AdamW),
// eval::embed, and checkpoints that move between devices. Double runs must
// follow the CPU's batch losses closely; float runs only loosely (see
// test_cuda_resnet.cu). Skips without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../support/temp_dir.hpp"
#include "cuda_test.cuh"
#include "learner_parity.hpp"

#include <dml/optim/sgd.hpp>

// dml_cuda_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_cuda_train {

using namespace dml;
using namespace dml_test;

namespace {

void compare(const LearnerRun& gpu, const LearnerRun& cpu, double tol, const std::string& what) {
  all_close(gpu.batch_losses, cpu.batch_losses, tol, 0, what + ": batch losses");
  all_close(gpu.valid_loss, cpu.valid_loss, tol, 0, what + ": valid losses");
  all_close(gpu.accuracy, cpu.accuracy, 0, 0, what + ": accuracies");
  close_rel(gpu.embeddings, cpu.embeddings, tol, what + ": embeddings");
  close_rel(gpu.logits, cpu.logits, tol, what + ": logits");
}

TEST_CASE("cuda train: Learner + embed on the GPU follow the CPU (frozen and unfrozen one-cycle epochs)") {
  DML_GPU_OR_SKIP();
  dml::testing::TempDir dir("dml_cuda_train");
  const LearnerRun gpu = learner_run<double, Cuda>(dir / "gpu.ckpt");
  const LearnerRun cpu = learner_run<double, Cpu>(dir / "cpu.ckpt");
  REQUIRE(cpu.batch_losses.size() == 6);  // 48 images in batches of 16, two epochs
  compare(gpu, cpu, 1e-7, "double");
  MESSAGE("double: losses ", gpu.batch_losses.front(), " ... ", gpu.batch_losses.back(), ", accuracy ",
          gpu.accuracy.back());

  const LearnerRun gpu_f = learner_run<float, Cuda>(dir / "gpu_f.ckpt");
  const LearnerRun cpu_f = learner_run<float, Cpu>(dir / "cpu_f.ckpt");
  all_close(gpu_f.batch_losses, cpu_f.batch_losses, 1e-2, 0, "float: batch losses");
}

TEST_CASE("cuda train: a checkpoint written on one device loads on the other") {
  DML_GPU_OR_SKIP();
  dml::testing::TempDir dir("dml_cuda_ckpt");
  const LearnerRun gpu = learner_run<double, Cuda>(dir / "gpu.ckpt");
  const LearnerRun cpu = learner_run<double, Cpu>(dir / "cpu.ckpt");
  // Same weights, other device: the last epoch's validation and the embeddings again.
  const LearnerRun gpu_on_cpu = reload_run<double, Cpu>(dir / "gpu.ckpt");
  all_close(gpu_on_cpu.valid_loss, std::vector<double>{gpu.valid_loss.back()}, 1e-9, 0, "GPU checkpoint on the CPU");
  close_rel(gpu_on_cpu.embeddings, gpu.embeddings, 1e-9, "GPU checkpoint on the CPU: embeddings");
  const LearnerRun cpu_on_gpu = reload_run<double, Cuda>(dir / "cpu.ckpt");
  all_close(cpu_on_gpu.valid_loss, std::vector<double>{cpu.valid_loss.back()}, 1e-9, 0, "CPU checkpoint on the GPU");
  close_rel(cpu_on_gpu.logits, cpu.logits, 1e-9, "CPU checkpoint on the GPU: logits");
}

// Device-to-host copies of each training step after the first of its epoch (the first also
// pays for whatever the fit does before it): a step copies back its loss and nothing else.
template <class Policy>
std::vector<std::uint64_t> copies_per_step(Policy policy, bool center) {
  dml::nn::ResNet18<float, Cuda> body(small_resnet(21));
  dml::heads::MarginHead<Policy, float, Cuda> head(kEmbedding, 3, policy, 22);
  dml::losses::CenterLoss<float, Cuda> center_loss(3, kEmbedding);
  dml::train::Learner<float, Cuda> learn(body, head, {squares16(64, 1), squares16(16, 2)},
                                         dml::optim::SGD{.lr = 0.01, .momentum = 0.9, .nesterov = true},
                                         {.batch_size = 16, .seed = 7, .prefetch = false, .quiet = true});
  if (center) learn.add_loss(center_loss, 1.0 / 8, "center", 0.5);
  std::vector<std::uint64_t> per_step;
  std::uint64_t last = 0;
  learn.add_callback({.on_batch_end = [&](dml::train::Learner<float, Cuda>&, const dml::train::BatchInfo& b) {
    const std::uint64_t now = cuda::device_to_host_copies();
    if (b.batch > 0) per_step.push_back(now - last);
    last = now;
  }});
  learn.fit_one_cycle(2);
  return per_step;
}

TEST_CASE("cuda train: a training step copies one value back to the host (its loss)") {
  DML_GPU_OR_SKIP();
  for (const auto& [what, steps] :
       {std::pair{"ArcFace + Center Loss", copies_per_step(dml::heads::Arc{.s = 16, .m = 0.5}, true)},
        std::pair{"SphereFace", copies_per_step(dml::heads::Sphere{}, false)},
        std::pair{"softmax", copies_per_step(dml::heads::Softmax{}, false)}}) {
    INFO(what);
    REQUIRE(steps.size() == 6);  // 2 epochs of 4 batches, the first of each left out
    for (std::uint64_t n : steps) CHECK(n == 1);
  }
}

}  // namespace

}  // namespace test_cuda_train
