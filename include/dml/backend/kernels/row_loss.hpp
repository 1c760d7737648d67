// dml/backend/kernels/row_loss.hpp: the two kernels behind every embedding
// loss of losses/: a rule (losses/rules.hpp) sees one row of a pairwise
// matrix at a time (an anchor against every reference, or a proxy against
// every embedding) and returns that row's share of the loss, then writes that
// row's gradient. Each row reads and writes only its own entries, so the
// result does not depend on the launch and needs no atomics.
#pragma once

#include <cstdint>

#include "../../config.hpp"

namespace dml::kernels {

// One row of an [rows, cols] matrix and what a rule needs to read it:
// value(j) = mat[r, j], positive(j) / negative(j) by label, j == self
// excluded from both (the anchor itself when rows and columns are one set).
template <class T>
struct RowView {
  const T* v;
  const std::int64_t* col_labels;
  std::int64_t label, self, cols;
  DML_HD T value(std::int64_t j) const { return v[j]; }
  DML_HD bool positive(std::int64_t j) const { return j != self && col_labels[j] == label; }
  DML_HD bool negative(std::int64_t j) const { return col_labels[j] != label; }
};

// Row r of mat [rows, cols] with its label; the diagonal is excluded when rows and columns are one set.
template <class T>
DML_HD RowView<T> row_view(const T* mat, const std::int64_t* row_labels, const std::int64_t* col_labels,
                           std::int64_t r, std::int64_t cols, bool same_set) {
  return {mat + r * cols, col_labels, row_labels[r], same_set ? r : -1, cols};
}

// A row's share of a loss made of two averaged parts,
//   loss = sum_r a_sum / max(1, sum_r a_count) + sum_r b_sum / max(1, sum_r b_count),
// which covers PML's reducers: the mean over non-zero terms (count the
// non-zero ones), the mean over rows (count 1 per row), and losses with a
// positive and a negative part averaged apart (contrastive, ProxyAnchor).
template <class T>
struct RowTerms {
  T a_sum = T(0), a_count = T(0), b_sum = T(0), b_count = T(0);
};

// 1-D over rows: terms[4 r .. 4 r + 3] = rule.forward(row r).
template <class R, class T>
struct RowLossForward {
  R rule;
  const T* mat;
  const std::int64_t* row_labels;
  const std::int64_t* col_labels;
  T* terms;
  std::int64_t cols;
  bool same_set;
  DML_HD void operator()(std::int64_t r) const {
    const RowView<T> row = row_view(mat, row_labels, col_labels, r, cols, same_set);
    const RowTerms<T> t = rule.forward(row);
    terms[4 * r] = t.a_sum;
    terms[4 * r + 1] = t.a_count;
    terms[4 * r + 2] = t.b_sum;
    terms[4 * r + 3] = t.b_count;
  }
};

// 1-D over rows: grad[r, :] = ga * d(a_sum of row r)/d(row) + gb * d(b_sum)/d(row),
// where ga and gb are the upstream gradient over each part's divisor.
template <class R, class T>
struct RowLossBackward {
  R rule;
  const T* mat;
  const std::int64_t* row_labels;
  const std::int64_t* col_labels;
  T* grad;
  std::int64_t cols;
  bool same_set;
  T ga, gb;
  DML_HD void operator()(std::int64_t r) const {
    const RowView<T> row = row_view(mat, row_labels, col_labels, r, cols, same_set);
    T* out = grad + r * cols;
    for (std::int64_t j = 0; j < cols; ++j) out[j] = T(0);
    rule.backward(row, ga, gb, out);
  }
};

}  // namespace dml::kernels
