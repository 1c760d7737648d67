// dml/backend/kernels/dropout.hpp: the dropout mask as a pure function of
// (seed, counter, index), and the kernel that fills it, so both devices draw
// the same mask bit for bit.
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../../core/random.hpp"

namespace dml {

// The mask of dropout with drop probability p: element i reads word i % 4 of
// Philox block (counter + i / 4) under key seed and is kept (value `scale`)
// when its 24-bit uniform is >= p, else dropped (0). A mask of n elements
// consumes ceil(n / 4) counter values.
struct DropoutMask {
  std::uint64_t seed = 0, counter = 0;
  float p = 0.5f;

  // All four mask values of block k, written to out[0..4).
  template <class T>
  DML_HD void block(std::uint64_t k, T scale, T* out) const {
    Philox4 r = philox4x32(counter + k, seed);
    for (int j = 0; j < 4; ++j) out[j] = uniform_float(r.v[j]) >= p ? scale : T(0);
  }
  template <class T>
  DML_HD T operator()(std::uint64_t i, T scale) const {
    Philox4 r = philox4x32(counter + i / 4, seed);
    return uniform_float(r.v[i % 4]) >= p ? scale : T(0);
  }
};

namespace kernels {

// Block k of a mask of n elements: elements [4k, 4k + 4) from one Philox
// draw. 1-D over the ceil(n / 4) blocks.
template <class T>
struct DropoutFill {
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

}  // namespace kernels
}  // namespace dml
