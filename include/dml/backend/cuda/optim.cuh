// dml/backend/cuda/optim.cuh: running a fused optimiser update on the device.
#pragma once

#include <cstdint>

#include "../optim_functors.hpp"
#include "launch.cuh"

namespace dml::cuda {

struct Optim {
  // Calls op(i) for every i in [0, n) with the grid-stride kernel: one pass
  // over a parameter and its state (ops in backend/optim_functors.hpp, whose
  // pointers are device pointers here). Elements are independent.
  template <class Op>
  static void optim_update(const Op& op, std::int64_t n) {
    detail::for_each(n, op);
  }
};

}  // namespace dml::cuda
