// dml/ops/margin.hpp: a margin policy applied to the label column of a cosine
// matrix, and row gathers (embedding lookups).
#pragma once

#include "common.hpp"

namespace dml::ops {

// out = cos with out[r, labels[r]] = policy.apply(cos[r, labels[r]]); every
// other entry passes through unchanged. `policy` is any type with DML_HD
// apply/dapply (see heads/margin_policy.hpp). Throws on shape mismatch or a
// label outside [0, C).
template <class P, class T, class D>
Tensor<T, D> apply_margin(const Tensor<T, D>& cos, const Tensor<std::int64_t, D>& labels, const P& policy) {
  static_assert(Real<T>, "apply_margin needs float or double cosines");
  detail::expect_rank(cos, 2, "apply_margin", "cosines");
  DML_CHECK(labels.defined() && labels.rank() == 1 && labels.dim(0) == cos.dim(0), "apply_margin: labels of shape ",
            labels.defined() ? labels.shape().str() : "undefined", " do not match cosines of shape ",
            cos.shape().str());
  detail::expect_indices(labels, cos.dim(1), "apply_margin");
  std::int64_t rows = cos.dim(0), cols = cos.dim(1);
  Tensor<T, D> out = Tensor<T, D>::empty(cos.shape());
  Backend<D>::margin_forward(policy, cos.data(), labels.data(), out.data(), rows, cols);
  if (detail::tracking(cos))
    detail::record(out, "apply_margin", {&cos},
                   [policy, cs = cos.detach(), labels, rows, cols](const Tensor<T, D>& g, Needs) {
                     Tensor<T, D> dx = Tensor<T, D>::empty(cs.shape());
                     Backend<D>::margin_backward(policy, cs.data(), labels.data(), g.data(), dx.data(), rows, cols);
                     return detail::Grads<T, D>{dx};
                   });
  return out;
}

// Rows of `table` picked by `index`: out[r] = table[index[r]]. Not
// differentiable with respect to `table` (lookups of state such as centers).
template <class T, class D>
Tensor<T, D> gather_rows(const Tensor<T, D>& table, const Tensor<std::int64_t, D>& index) {
  detail::expect_rank(table, 2, "gather_rows", "table");
  DML_CHECK(index.defined() && index.rank() == 1, "gather_rows: index must be 1-D, got ",
            index.defined() ? index.shape().str() : "undefined");
  DML_CHECK(!detail::tracking(table), "gather_rows: the table requires grad, but gather_rows passes no gradient ",
            "to it; detach it or use a differentiable op");
  detail::expect_indices(index, table.dim(0), "gather_rows");
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{index.dim(0), table.dim(1)});
  Backend<D>::gather_rows(table.data(), index.data(), out.data(), index.dim(0), table.dim(1));
  return out;
}

}  // namespace dml::ops
