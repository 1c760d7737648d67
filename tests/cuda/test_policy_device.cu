// Device twin of tests/heads/test_margin_policy.cpp: every margin policy,
// evaluated in a __global__ kernel, gives the host's apply/dapply values.
// Skips (and passes) when no CUDA device is present, unless DML_REQUIRE_GPU=1.
#include <dml/heads/margin_policy.hpp>

#include <cuda_runtime.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

namespace {

using namespace dml::heads;

template <class P, class T>
__global__ void evaluate_policy(P policy, const T* cos, T* value, T* slope, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    value[i] = policy.apply(cos[i]);
    slope[i] = policy.dapply(cos[i]);
  }
}

void cuda_ok(cudaError_t err, const char* what) {
  REQUIRE_MESSAGE(err == cudaSuccess, what, ": ", cudaGetErrorString(err));
}

// Runs the kernel for one policy and element type; returns {values, slopes}.
template <class P, class T>
std::pair<std::vector<T>, std::vector<T>> on_device(const P& policy, const std::vector<T>& cos) {
  const int n = static_cast<int>(cos.size());
  const size_t bytes = cos.size() * sizeof(T);
  T *d_cos = nullptr, *d_value = nullptr, *d_slope = nullptr;
  cuda_ok(cudaMalloc(&d_cos, bytes), "cudaMalloc");
  cuda_ok(cudaMalloc(&d_value, bytes), "cudaMalloc");
  cuda_ok(cudaMalloc(&d_slope, bytes), "cudaMalloc");
  cuda_ok(cudaMemcpy(d_cos, cos.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  evaluate_policy<<<(n + 255) / 256, 256>>>(policy, d_cos, d_value, d_slope, n);
  cuda_ok(cudaGetLastError(), "evaluate_policy launch");
  std::vector<T> value(cos.size()), slope(cos.size());
  cuda_ok(cudaMemcpy(value.data(), d_value, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
  cuda_ok(cudaMemcpy(slope.data(), d_slope, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
  cudaFree(d_cos);
  cudaFree(d_value);
  cudaFree(d_slope);
  return {value, slope};
}

template <class T>
std::vector<T> cosine_grid() {
  std::vector<T> c;
  for (int i = -2000; i <= 2000; ++i) c.push_back(T(i) / T(2000));
  for (T e : {T(1e-3), T(1e-5), T(1e-6), T(1e-7), T(0)}) {
    c.push_back(T(1) - e);
    c.push_back(T(-1) + e);
  }
  c.push_back(T(1.0001));
  c.push_back(T(-1.0001));
  return c;
}

// Compares device with host for one policy. Values agree to tol (1 + |host|).
// Slopes get tol (1 + |host| + 2 / sin(theta)) more: a slope divided by
// sin(theta) turns the few-ulp differences of the device's acos/sin/cos into
// ~ulp / sin(theta) near theta = 0 or pi (sin(theta) >= sqrt(2 kCosEps)).
template <class P, class T>
void compare(const P& policy, const char* name, double tol) {
  const std::vector<T> cos = cosine_grid<T>();
  const auto [value, slope] = on_device(policy, cos);
  int bad = 0;
  for (size_t i = 0; i < cos.size(); ++i) {
    const double c = cos[i], hv = policy.apply(cos[i]), hd = policy.dapply(cos[i]);
    const double sin_theta = std::sqrt(std::max(2.0 * kCosEps<T>, (1 - c) * (1 + c)));
    const bool ok = std::abs(value[i] - hv) <= tol * (1 + std::abs(hv)) &&
                    std::abs(slope[i] - hd) <= tol * (1 + std::abs(hd) + 2 / sin_theta) &&
                    std::isfinite(double(value[i])) && std::isfinite(double(slope[i]));
    if (!ok && bad++ == 0) {
      MESSAGE(name, " (", sizeof(T) == 4 ? "float" : "double", ") c = ", cos[i], ": device ",
              value[i], " / ", slope[i], ", host ", hv, " / ", hd);
    }
  }
  CHECK_MESSAGE(bad == 0, name, ": ", bad, " of ", cos.size(), " points differ");
}

}  // namespace

TEST_CASE("margin policies give the host's values in a CUDA kernel") {
  // Not cuda_test.cuh's DML_GPU_OR_SKIP: that pulls in the CUDA backend and
  // the host library (Eigen, cuBLAS, cuDNN), and this test needs only cudart.
  // Same rule, though.
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess || devices == 0) {
    const char* required = std::getenv("DML_REQUIRE_GPU");
    const std::string why = err != cudaSuccess ? cudaGetErrorString(err) : "0 devices";
    if (required && *required && std::string(required) != "0") {
      FAIL("no CUDA device, but DML_REQUIRE_GPU is set (error ", int(err), ": ", why, ")");
    }
    MESSAGE("skipped: no CUDA device (error ", int(err), ": ", why, ")");
    return;
  }
  const auto policies = std::make_tuple(
      std::pair{Arc{}, "Arc"}, std::pair{Arc{.m = 0.5, .easy_margin = true}, "Arc easy"},
      std::pair{Cos{}, "Cos"}, std::pair{Sphere{}, "Sphere"},
      std::pair{Sphere{.m = 3, .lambda = 0}, "Sphere m=3"}, std::pair{Combined{}, "Combined"},
      std::pair{Combined{.m1 = 1.35, .m2 = 0.2, .m3 = 0.1}, "Combined 1.35"},
      std::pair{AdaCos{.s = 5}, "AdaCos"},
      // a sub-centre head's margin is its inner policy's
      std::pair{SubCenter<Arc>{.margin = {.s = 30, .m = 0.45}}.margin, "SubCenter<Arc> margin"});
  std::apply(
      [](const auto&... p) {
        (compare<std::decay_t<decltype(p.first)>, float>(p.first, p.second, 1e-6), ...);
        (compare<std::decay_t<decltype(p.first)>, double>(p.first, p.second, 1e-12), ...);
      },
      policies);
}
