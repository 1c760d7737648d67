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

#include "cuda_test.cuh"
#include "resnet_parity.hpp"

// dml_cuda_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_cuda_resnet {

using namespace dml;
using namespace dml_test;

namespace {

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

}  // namespace test_cuda_resnet
