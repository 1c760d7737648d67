// dml/backend/cpu/backend.hpp: Backend<Cpu>, the host kernels under one name:
// the portable kernels (backend/kernels/) run by the host's launch, plus the
// host-only ones (GEMM, convolution lowering, sequential reductions).
// The only directory of dml that includes Eigen.
#pragma once

#include "../../core/device.hpp"
#include "../../core/storage.hpp"
#include "../kernels/portable.hpp"
#include "batchnorm.hpp"
#include "conv.hpp"
#include "elementwise.hpp"
#include "gemm.hpp"
#include "launch.hpp"
#include "pool.hpp"
#include "reduce.hpp"
#include "rows.hpp"

namespace dml {

template <>
struct Backend<Cpu> : kernels::Portable<cpu::Launch>, cpu::Elementwise, cpu::Reduce, cpu::Gemm, cpu::Rows, cpu::Conv,
                      cpu::Pool, cpu::BatchNorm {
  // Host pointers are directly readable.
  static constexpr bool kHostAccessible = true;
};

}  // namespace dml
