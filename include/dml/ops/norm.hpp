// dml/ops/norm.hpp: row-wise L2 normalisation.
#pragma once

#include "common.hpp"

namespace dml::ops {

// Each row of a 2-D x divided by max(|row|, eps). A row with norm below eps is
// divided by eps instead (so a zero row stays zero, never NaN), and its
// gradient is then g / eps.
template <class T, class D>
Tensor<T, D> l2_normalize(const Tensor<T, D>& x, double eps = 1e-12) {
  static_assert(Real<T>, "l2_normalize needs float or double tensors");
  detail::expect_rank(x, 2, "l2_normalize");
  DML_CHECK(eps > 0, "l2_normalize: eps must be positive, got ", eps);
  std::int64_t rows = x.dim(0), cols = x.dim(1);
  Tensor<T, D> out = Tensor<T, D>::empty(x.shape());
  Tensor<T, D> norms = Tensor<T, D>::empty(Shape{rows});
  Backend<D>::l2_normalize(x.data(), out.data(), norms.data(), rows, cols, T(eps));
  if (detail::tracking(x))
    detail::record(out, "l2_normalize", {&x}, [ys = out.detach(), norms, eps](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(ys.shape());
      Backend<D>::l2_normalize_backward(g.data(), ys.data(), norms.data(), dx.data(), ys.dim(0), ys.dim(1), T(eps));
      return detail::Grads<T, D>{dx};
    });
  return out;
}

}  // namespace dml::ops
