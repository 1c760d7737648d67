// dml/backend/dropout.hpp: the dropout mask as a pure function of (seed,
// counter, index), so the CPU loop and a CUDA kernel draw the same mask.
#pragma once

#include <cstdint>

#include "../config.hpp"
#include "../core/random.hpp"

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

}  // namespace dml
