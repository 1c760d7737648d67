// dml/backend/cuda/error.cuh: CUDA, cuBLAS and cuDNN status checks that throw
// dml::Error, and the "is there a GPU at all" question.
#pragma once

#if !defined(__CUDACC__)
#error "dml/backend/cuda/*.cuh need nvcc: compile this file as CUDA (.cu) and link dml::cuda"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <source_location>
#include <string>

#include "../../config.hpp"

namespace dml::cuda {
namespace detail {

// Throws dml::Error naming the failing call, the CUDA error and the call site.
inline void check_cuda(cudaError_t status, const char* call, std::source_location where) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw Error(::dml::detail::concat("CUDA error ", static_cast<int>(status), " ", cudaGetErrorName(status), " (",
                                    cudaGetErrorString(status), ") in ", call),
              where);
}

// Throws dml::Error naming the failing call, the cuBLAS status and the call site.
inline void check_cublas(cublasStatus_t status, const char* call, std::source_location where) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(::dml::detail::concat("cuBLAS error ", static_cast<int>(status), " ", cublasGetStatusName(status), " (",
                                    cublasGetStatusString(status), ") in ", call),
              where);
}

// Throws dml::Error naming the failing call, the cuDNN status and the call site.
inline void check_cudnn(cudnnStatus_t status, const char* call, std::source_location where) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  throw Error(::dml::detail::concat("cuDNN error ", static_cast<int>(status), " (", cudnnGetErrorString(status),
                                    ") in ", call),
              where);
}

}  // namespace detail

// Why no device is usable, or an empty string when one is. Never throws.
inline std::string device_status() noexcept {
  try {
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      cudaGetLastError();
      return ::dml::detail::concat("cudaGetDeviceCount failed with error ", static_cast<int>(status), " (",
                                   cudaGetErrorName(status), ": ", cudaGetErrorString(status), ")");
    }
    if (count == 0) return "cudaGetDeviceCount found 0 devices";
    return {};
  } catch (...) {
    return "device query failed";
  }
}

// Whether at least one CUDA device can be used. Never throws.
inline bool device_available() noexcept { return device_status().empty(); }

// Throws dml::Error("no CUDA device: <reason>") when no device can be used.
inline void require_device(std::source_location where = std::source_location::current()) {
  std::string why = device_status();
  if (!why.empty()) throw Error("no CUDA device: " + why, where);
}

}  // namespace dml::cuda

// DML_CUDA_CHECK(expr) evaluates a cudaError_t expression and throws dml::Error
// with the expression's text, the error name and string, file and line.
#define DML_CUDA_CHECK(expr) ::dml::cuda::detail::check_cuda((expr), #expr, std::source_location::current())
// DML_CUBLAS_CHECK(expr) does the same for a cublasStatus_t expression.
#define DML_CUBLAS_CHECK(expr) ::dml::cuda::detail::check_cublas((expr), #expr, std::source_location::current())
// DML_CUDNN_CHECK(expr) does the same for a cudnnStatus_t expression.
#define DML_CUDNN_CHECK(expr) ::dml::cuda::detail::check_cudnn((expr), #expr, std::source_location::current())
// DML_CUDA_CHECK_LAUNCH() after a <<<...>>> launch: throws on a bad configuration.
#define DML_CUDA_CHECK_LAUNCH() \
  ::dml::cuda::detail::check_cuda(cudaGetLastError(), "kernel launch", std::source_location::current())
