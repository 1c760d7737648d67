// dml/ops/dropout.hpp: inverted dropout with a counter-based mask.
#pragma once

#include "../backend/kernels/dropout.hpp"
#include "../core/random.hpp"
#include "common.hpp"

namespace dml::ops {

// Zeroes each element with probability p and scales the rest by 1 / (1 - p)
// (p = 1 zeroes all). The mask comes from `gen`: it reads the generator's
// (seed, counter), uses ceil(numel / 4) Philox blocks from there (see
// DropoutMask) and advances the counter past them, so saving gen.state()
// before a step replays the same mask. When training is false or p == 0, x is
// returned unchanged and gen is not touched. Throws when p is outside [0, 1].
template <class T, class D>
Tensor<T, D> dropout(const Tensor<T, D>& x, double p, Generator& gen, bool training = true) {
  static_assert(Real<T>, "dropout needs float or double tensors");
  DML_CHECK(x.defined(), "dropout: input is an undefined tensor");
  DML_CHECK(p >= 0 && p <= 1, "dropout: probability must lie in [0, 1], got ", p);
  if (!training || p == 0) return x;
  Generator::State st = gen.state();
  const std::uint64_t blocks = static_cast<std::uint64_t>((x.numel() + 3) / 4);
  gen.set_state({st.seed, st.counter + blocks, 0});
  Tensor<T, D> mask = Tensor<T, D>::empty(x.shape());
  Backend<D>::dropout_mask(DropoutMask{st.seed, st.counter, static_cast<float>(p)}, p < 1 ? T(1 / (1 - p)) : T(0),
                           mask.data(), x.numel());
  Tensor<T, D> out = Tensor<T, D>::empty(x.shape());
  Backend<D>::zip(fn::Mul{}, x.data(), mask.data(), out.data(), x.numel());
  if (detail::tracking(x))
    detail::record(out, "dropout", {&x}, [mask](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> gx = Tensor<T, D>::empty(mask.shape());
      Backend<D>::zip(fn::Mul{}, g.data(), mask.data(), gx.data(), mask.numel());
      return detail::Grads<T, D>{gx};
    });
  return out;
}

}  // namespace dml::ops
