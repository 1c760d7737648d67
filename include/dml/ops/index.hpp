// dml/ops/index.hpp: picking one column per row (the target logit of a head).
#pragma once

#include "common.hpp"

namespace dml::ops {

// out[r] = x[r, index[r]] for x of shape [N, C] and index of shape [N].
// The backward scatters into a zero matrix. Throws on a shape mismatch or an
// index outside [0, C).
template <class T, class D>
Tensor<T, D> gather(const Tensor<T, D>& x, const Tensor<std::int64_t, D>& index) {
  static_assert(Real<T>, "gather needs a float or double source");
  detail::expect_rank(x, 2, "gather");
  DML_CHECK(index.defined() && index.rank() == 1 && index.dim(0) == x.dim(0), "gather: index of shape ",
            index.defined() ? index.shape().str() : "undefined", " does not give one column per row of ",
            x.shape().str());
  detail::expect_indices(index, x.dim(1), "gather");
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{x.dim(0)});
  Backend<D>::gather_cols(x.data(), index.data(), out.data(), x.dim(0), x.dim(1));
  if (detail::tracking(x))
    detail::record(out, "gather", {&x}, [index, in = x.shape()](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dx = Tensor<T, D>::empty(in);
      Backend<D>::scatter_cols(g.data(), index.data(), dx.data(), in[0], in[1]);
      return detail::Grads<T, D>{dx};
    });
  return out;
}

// The reverse of gather: an [N, C] matrix of zeros with values[r] at (r, index[r]).
template <class T, class D>
Tensor<T, D> scatter(const Tensor<T, D>& values, const Tensor<std::int64_t, D>& index, std::int64_t cols) {
  static_assert(Real<T>, "scatter needs float or double values");
  detail::expect_rank(values, 1, "scatter", "values");
  DML_CHECK(index.defined() && index.shape() == values.shape(), "scatter: index of shape ",
            index.defined() ? index.shape().str() : "undefined", " does not match values of shape ",
            values.shape().str());
  detail::expect_indices(index, cols, "scatter");
  std::int64_t rows = values.dim(0);
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{rows, cols});
  Backend<D>::scatter_cols(values.data(), index.data(), out.data(), rows, cols);
  if (detail::tracking(values))
    detail::record(out, "scatter", {&values}, [index, rows, cols](const Tensor<T, D>& g, Needs) {
      Tensor<T, D> dv = Tensor<T, D>::empty(Shape{rows});
      Backend<D>::gather_cols(g.data(), index.data(), dv.data(), rows, cols);
      return detail::Grads<T, D>{dv};
    });
  return out;
}

}  // namespace dml::ops
