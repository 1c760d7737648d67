// dml/backend/cpu/dropout.hpp: filling a dropout mask on the host.
#pragma once

#include <cstdint>

#include "../dropout.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Dropout {
  // mask[i] = scale where element i is kept, 0 where dropped (see DropoutMask).
  template <class T>
  static void dropout_mask(const DropoutMask& d, T scale, T* mask, std::int64_t n) {
    const std::int64_t blocks = (n + 3) / 4;
    parallel_for(
        blocks,
        [&](std::int64_t k) {
          T v[4];
          d.block(static_cast<std::uint64_t>(k), scale, v);
          for (std::int64_t j = 0; j < 4 && 4 * k + j < n; ++j) mask[4 * k + j] = v[j];
        },
        16);
  }
};

}  // namespace dml::cpu
