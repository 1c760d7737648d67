// dml/backend/cpu/backend.hpp: Backend<Cpu>, the host kernels under one name.
// The only directory of dml that includes Eigen.
#pragma once

#include "../../core/device.hpp"
#include "../../core/storage.hpp"
#include "batchnorm.hpp"
#include "conv.hpp"
#include "dropout.hpp"
#include "elementwise.hpp"
#include "gemm.hpp"
#include "margin.hpp"
#include "optim.hpp"
#include "pool.hpp"
#include "reduce.hpp"
#include "rows.hpp"

namespace dml {

template <>
struct Backend<Cpu> : cpu::Elementwise, cpu::Reduce, cpu::Gemm, cpu::Rows, cpu::Margin, cpu::Conv, cpu::Pool, cpu::BatchNorm,
                      cpu::Dropout, cpu::Optim {
  // Host pointers are directly readable.
  static constexpr bool kHostAccessible = true;
};

}  // namespace dml
