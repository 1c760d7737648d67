// dml/backend/cuda/dropout.cuh: filling a dropout mask on the device from the
// counter-based Philox stream of backend/dropout.hpp, so a (seed, counter)
// gives the CPU's mask, bit for bit.
#pragma once

#include <cstdint>

#include "../dropout.hpp"
#include "launch.cuh"

namespace dml::cuda {
namespace detail {

// Block k of the mask: elements [4k, 4k + 4) from one Philox draw.
template <class T>
struct DropoutMaskOp {
  DropoutMask d;
  T scale;
  T* mask;
  std::int64_t n;
  DML_HD void operator()(std::int64_t k) const {
    T v[4];
    d.block(static_cast<std::uint64_t>(k), scale, v);
    for (std::int64_t j = 0; j < 4 && 4 * k + j < n; ++j) mask[4 * k + j] = v[j];
  }
};

}  // namespace detail

struct Dropout {
  // mask[i] = scale where element i is kept, 0 where dropped (see DropoutMask).
  template <class T>
  static void dropout_mask(const DropoutMask& d, T scale, T* mask, std::int64_t n) {
    detail::for_each((n + 3) / 4, detail::DropoutMaskOp<T>{d, scale, mask, n});
  }
};

}  // namespace dml::cuda
