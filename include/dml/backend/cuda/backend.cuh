// dml/backend/cuda/backend.cuh: Backend<Cuda>, the device kernels under the
// same names and signatures as Backend<Cpu>. All pointers are device pointers;
// every call is queued on the context's stream and returns without waiting.
#pragma once

#include "../../core/device.hpp"
#include "batchnorm.cuh"
#include "context.cuh"
#include "conv.cuh"
#include "dropout.cuh"
#include "elementwise.cuh"
#include "error.cuh"
#include "gemm.cuh"
#include "margin.cuh"
#include "memory.cuh"
#include "optim.cuh"
#include "pool.cuh"
#include "reduce.cuh"
#include "rows.cuh"

namespace dml {

template <>
struct Backend<Cuda> : cuda::Elementwise, cuda::Reduce, cuda::Gemm, cuda::Rows, cuda::Margin, cuda::Conv, cuda::Pool,
                       cuda::BatchNorm, cuda::Dropout, cuda::Optim {
  // Device pointers cannot be read on the host: front ends copy what they inspect.
  static constexpr bool kHostAccessible = false;
};

}  // namespace dml
