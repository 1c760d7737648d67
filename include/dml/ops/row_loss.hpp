// dml/ops/row_loss.hpp: an embedding loss rule (losses/rules.hpp) applied to
// a pairwise matrix, row by row (kernels/row_loss.hpp), as one differentiable op.
#pragma once

#include <algorithm>
#include <vector>

#include "common.hpp"

namespace dml::ops {

// The scalar loss of `rule` over mat [rows, cols] (similarities or distances
// from a distance policy), where row r carries row_labels[r] and column j
// col_labels[j]. With same_set, rows and columns are the same embeddings and
// the diagonal is neither a positive nor a negative. The loss is
//   sum_r a_r / max(1, sum_r count_a_r) + sum_r b_r / max(1, sum_r count_b_r)
// (each rule says what its parts and counts are); the counts are constants
// for the gradient, as PML's reducers treat them. Throws on shape mismatch.
template <class R, class T, class D>
Tensor<T, D> row_loss(const R& rule, const Tensor<T, D>& mat, const Tensor<std::int64_t, D>& row_labels,
                      const Tensor<std::int64_t, D>& col_labels, bool same_set, const char* name = "row_loss") {
  static_assert(Real<T>, "row_loss needs a float or double matrix");
  detail::expect_rank(mat, 2, name, "pairwise matrix");
  DML_CHECK(row_labels.defined() && row_labels.rank() == 1 && row_labels.dim(0) == mat.dim(0), name,
            ": row labels of shape ", row_labels.defined() ? row_labels.shape().str() : "undefined",
            " do not match the pairwise matrix of shape ", mat.shape().str());
  DML_CHECK(col_labels.defined() && col_labels.rank() == 1 && col_labels.dim(0) == mat.dim(1), name,
            ": column labels of shape ", col_labels.defined() ? col_labels.shape().str() : "undefined",
            " do not match the pairwise matrix of shape ", mat.shape().str());
  DML_CHECK(!same_set || mat.dim(0) == mat.dim(1), name, ": a matrix of one set with itself must be square, got ",
            mat.shape().str());
  const std::int64_t rows = mat.dim(0), cols = mat.dim(1);
  Tensor<T, D> terms = Tensor<T, D>::empty(Shape{rows, 4});
  if (rows > 0)
    Backend<D>::row_loss_forward(rule, mat.data(), row_labels.data(), col_labels.data(), terms.data(), rows, cols,
                                 same_set);
  // Summed on the host in row order (rows x 4 numbers): the same digits for any launch.
  const std::vector<T> t = terms.to_vector();
  double a = 0, na = 0, b = 0, nb = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    a += static_cast<double>(t[4 * r]);
    na += static_cast<double>(t[4 * r + 1]);
    b += static_cast<double>(t[4 * r + 2]);
    nb += static_cast<double>(t[4 * r + 3]);
  }
  na = std::max(na, 1.0), nb = std::max(nb, 1.0);
  Tensor<T, D> out = Tensor<T, D>::scalar(static_cast<T>(a / na + b / nb));
  if (detail::tracking(mat))
    detail::record(out, name, {&mat},
                   [rule, m = mat.detach(), row_labels, col_labels, same_set, rows, cols, na, nb](const Tensor<T, D>& g,
                                                                                                 Needs) {
                     const double gv = static_cast<double>(g.item());
                     Tensor<T, D> dm = Tensor<T, D>::empty(m.shape());
                     if (rows > 0)
                       Backend<D>::row_loss_backward(rule, m.data(), row_labels.data(), col_labels.data(), dm.data(),
                                                     rows, cols, same_set, static_cast<T>(gv / na),
                                                     static_cast<T>(gv / nb));
                     return detail::Grads<T, D>{dm};
                   });
  return out;
}

}  // namespace dml::ops
