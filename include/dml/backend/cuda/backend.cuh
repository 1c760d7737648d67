// dml/backend/cuda/backend.cuh: Backend<Cuda>, the device kernels under the
// same names and signatures as Backend<Cpu>: the portable kernels
// (backend/kernels/) run by the device's launch, plus the device-only ones
// (cuBLAS, cuDNN, warp and block reductions). All pointers are device pointers;
// every call is queued on the context's stream and returns without waiting.
#pragma once

#include "../../core/device.hpp"
#include "../kernels/portable.hpp"
#include "batchnorm.cuh"
#include "context.cuh"
#include "conv.cuh"
#include "elementwise.cuh"
#include "error.cuh"
#include "gemm.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "pool.cuh"
#include "reduce.cuh"
#include "rows.cuh"

namespace dml {

template <>
struct Backend<Cuda> : kernels::Portable<cuda::Launch>, cuda::Elementwise, cuda::Reduce, cuda::Gemm, cuda::Rows,
                       cuda::Conv, cuda::Pool, cuda::BatchNorm {
  // Device pointers cannot be read on the host: front ends copy what they inspect.
  static constexpr bool kHostAccessible = false;
};

}  // namespace dml
