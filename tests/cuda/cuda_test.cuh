// tests/cuda/cuda_test.cuh: what every GPU test needs: the skip-or-fail rule
// for machines without a device, and CPU-vs-GPU comparison helpers.
//
// Without a device a GPU test reports "skipped: no CUDA device (...)" and
// passes, so the suite runs on build machines. With DML_REQUIRE_GPU=1 (set by
// scripts/gpu_check.sh) a missing device is a test failure instead.
//
// GPU test files include this, not <dml/cuda.hpp>: the umbrella also pulls in
// t-SNE, evaluation, training and I/O, whose inline Eigen code nvcc would parse
// and instantiate once per architecture and once more for the host in every
// test file (dml.hpp alone is ~24 s of g++ front-end time, headers.hpp ~5 s).
// headers.hpp lists what the tests use; the umbrella itself is compiled by the
// header check and the benches.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dml/backend/cuda/backend.cuh>

#include "headers.hpp"
#include "parity.hpp"

namespace dml_test {

inline bool gpu_required() {
  const char* env = std::getenv("DML_REQUIRE_GPU");
  return env && *env && std::strcmp(env, "0") != 0;
}

// True when a CUDA device is usable; otherwise reports a skip (or, under
// DML_REQUIRE_GPU=1, a failure) and returns false.
inline bool have_gpu() {
  std::string why = dml::cuda::device_status();
  if (why.empty()) return true;
  if (gpu_required()) {
    FAIL_CHECK("no CUDA device, but DML_REQUIRE_GPU is set: ", why);
  } else {
    MESSAGE("skipped: no CUDA device (", why, ")");
  }
  return false;
}

using GpuB = dml::Backend<dml::Cuda>;

// A 1-D device tensor holding v, or n uninitialised elements.
template <class T>
dml::Tensor<T, dml::Cuda> dev(const std::vector<T>& v) {
  return dml::Tensor<T, dml::Cuda>::from_vector(v);
}
template <class T>
dml::Tensor<T, dml::Cuda> dev_empty(i64 n) {
  return dml::Tensor<T, dml::Cuda>::empty(dml::Shape{n});
}

}  // namespace dml_test

// First statement of a GPU test: returns (skip or failure) without a device.
#define DML_GPU_OR_SKIP()                    \
  do {                                       \
    if (!::dml_test::have_gpu()) return;     \
  } while (0)
