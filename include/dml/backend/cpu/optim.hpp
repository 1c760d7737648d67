// dml/backend/cpu/optim.hpp: running a fused optimiser update on the host.
#pragma once

#include <cstdint>

#include "../optim_functors.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Optim {
  // Calls op(i) for every i in [0, n): one pass over a parameter and its
  // state (ops in backend/optim_functors.hpp). Elements are independent.
  template <class Op>
  static void optim_update(const Op& op, std::int64_t n) {
    parallel_for(n, op, 8);
  }
};

}  // namespace dml::cpu
