// dml/eval/anomaly.hpp: open-set ("unknown class") detection metrics.
//
// Protocol: for case c, the n unknown classes are rotate(0..C-1, c)[:n], i.e.
// {c, c+1, ..., c+n-1} mod C (Python: (classes[c:] + classes[:c])[:n]); the
// model trains on the other classes only. A test sample's anomaly score is its
// distance to the nearest reference embedding (known classes); ROC-AUC treats
// unknown-class samples as positives, so higher score = more anomalous.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "../config.hpp"
#include "host_matrix.hpp"
#include "knn.hpp"

namespace dml::eval {

// Points of a ROC curve, one per distinct score plus a first point (0, 0):
// sample i is called positive when scores[i] >= thresholds[p]. thresholds
// descend from +infinity (nothing called positive) to the lowest score
// (everything), so fpr and tpr rise from 0 to 1.
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
  std::size_t size() const { return thresholds.size(); }
};

namespace detail {
// Checks scores / positive flags for the ROC functions (named by what) and
// returns the number of positives; throws on a length mismatch, NaN, or an
// empty class.
template <class T>
std::int64_t roc_count_positives(std::span<const T> scores, std::span<const std::uint8_t> positive,
                                 const char* what) {
  DML_CHECK(scores.size() == positive.size(), what, ": ", scores.size(), " scores but ", positive.size(),
            " positive flags");
  std::int64_t n_pos = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    DML_CHECK(!std::isnan(scores[i]), what, ": score ", i, " is NaN");
    n_pos += positive[i] != 0;
  }
  const std::int64_t n_neg = static_cast<std::int64_t>(scores.size()) - n_pos;
  DML_CHECK(n_pos > 0, what, ": no positive (unknown-class) samples among ", scores.size());
  DML_CHECK(n_neg > 0, what, ": no negative (known-class) samples among ", scores.size());
  return n_pos;
}

template <class T>
double roc_auc_impl(std::span<const T> scores, std::span<const std::uint8_t> positive) {
  const std::int64_t n_pos = roc_count_positives(scores, positive, "roc_auc");
  const std::int64_t n_neg = static_cast<std::int64_t>(scores.size()) - n_pos;
  std::vector<std::int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return scores[a] < scores[b]; });
  // Sum of 1-based average ranks of the positives (ties share their mean rank).
  double rank_sum = 0.0;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    std::int64_t pos_in_group = 0;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) pos_in_group += positive[order[j++]] != 0;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of i+1 .. j
    rank_sum += mean_rank * static_cast<double>(pos_in_group);
    i = j;
  }
  const double u = rank_sum - 0.5 * static_cast<double>(n_pos) * static_cast<double>(n_pos + 1);
  return u / (static_cast<double>(n_pos) * static_cast<double>(n_neg));
}

template <class T>
RocCurve roc_curve_impl(std::span<const T> scores, std::span<const std::uint8_t> positive) {
  const std::int64_t n_pos = roc_count_positives(scores, positive, "roc_curve");
  const double n_neg = static_cast<double>(scores.size()) - static_cast<double>(n_pos);
  std::vector<std::int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return scores[a] > scores[b]; });
  RocCurve c;
  c.fpr.push_back(0.0);
  c.tpr.push_back(0.0);
  c.thresholds.push_back(std::numeric_limits<double>::infinity());
  std::int64_t tp = 0, fp = 0;
  for (std::size_t i = 0; i < order.size();) {  // one point per group of equal scores
    const T value = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == value; ++i) (positive[order[i]] != 0 ? tp : fp) += 1;
    c.fpr.push_back(static_cast<double>(fp) / n_neg);
    c.tpr.push_back(static_cast<double>(tp) / static_cast<double>(n_pos));
    c.thresholds.push_back(static_cast<double>(value));
  }
  return c;
}
}  // namespace detail

// Exact ROC-AUC = P(score of a positive > score of a negative) + 0.5 P(tie),
// via the Mann-Whitney U statistic with average ranks. positive[i] != 0 marks
// sample i as positive (unknown class). Throws on length mismatch, NaN scores,
// or when either class is empty.
inline double roc_auc(std::span<const double> scores, std::span<const std::uint8_t> positive) {
  return detail::roc_auc_impl(scores, positive);
}
inline double roc_auc(std::span<const float> scores, std::span<const std::uint8_t> positive) {
  return detail::roc_auc_impl(scores, positive);
}

// The ROC curve behind roc_auc: one (FPR, TPR, threshold) point per distinct
// score, from (0, 0) at threshold +infinity to (1, 1) at the lowest score, as
// scikit-learn's roc_curve(drop_intermediate=False). Its trapezoid area is
// roc_auc. Same arguments and errors as roc_auc.
inline RocCurve roc_curve(std::span<const double> scores, std::span<const std::uint8_t> positive) {
  return detail::roc_curve_impl(scores, positive);
}
inline RocCurve roc_curve(std::span<const float> scores, std::span<const std::uint8_t> positive) {
  return detail::roc_curve_impl(scores, positive);
}

// The n unknown classes of protocol case c: {c, c+1, ..., c+n-1} mod
// num_classes. Throws unless 0 <= c < num_classes and 0 <= n <= num_classes.
inline std::vector<std::int64_t> unknown_classes(int c, int n, int num_classes = 10) {
  DML_CHECK(num_classes >= 1, "unknown_classes: num_classes must be >= 1, got ", num_classes);
  DML_CHECK(c >= 0 && c < num_classes, "unknown_classes: case ", c, " outside [0, ", num_classes, ")");
  DML_CHECK(n >= 0 && n <= num_classes, "unknown_classes: n = ", n, " outside [0, ", num_classes, "]");
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out[i] = (c + i) % num_classes;
  return out;
}

// The remaining (known) classes of case c in rotated order:
// {c+n, ..., c+num_classes-1} mod num_classes. Same checks as unknown_classes.
inline std::vector<std::int64_t> known_classes(int c, int n, int num_classes = 10) {
  unknown_classes(c, n, num_classes);  // validates
  std::vector<std::int64_t> out;
  for (int i = n; i < num_classes; ++i) out.push_back((c + i) % num_classes);
  return out;
}

// positive[i] = 1 when labels[i] is one of `classes` (e.g. the unknown ones).
inline std::vector<std::uint8_t> label_mask(std::span<const std::int64_t> labels,
                                            std::span<const std::int64_t> classes) {
  std::vector<std::uint8_t> out(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i)
    out[i] = std::find(classes.begin(), classes.end(), labels[i]) != classes.end();
  return out;
}

// Ascending row indices i with labels[i] in `classes`.
inline std::vector<std::int64_t> rows_with_labels(std::span<const std::int64_t> labels,
                                                  std::span<const std::int64_t> classes) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (std::find(classes.begin(), classes.end(), labels[i]) != classes.end())
      out.push_back(static_cast<std::int64_t>(i));
  return out;
}

// A seeded random half of 0..n-1: floor(n/2) distinct indices, sorted
// ascending (for odd n the complement is one larger). The same (n, seed)
// gives the same half on every platform. Throws if n < 0.
inline std::vector<std::int64_t> seeded_half(std::int64_t n, std::uint64_t seed) {
  DML_CHECK(n >= 0, "seeded_half: n must be >= 0, got ", n);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  detail::SplitMix64 rng(seed);
  const std::int64_t half = n / 2;
  for (std::int64_t i = 0; i < half; ++i) {  // partial Fisher-Yates: perm[0..half) is a uniform sample
    std::int64_t j = i + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n - i)));
    std::swap(perm[i], perm[j]);
  }
  perm.resize(static_cast<std::size_t>(half));
  std::sort(perm.begin(), perm.end());
  return perm;
}

// The indices of 0..n-1 not in `subset` (sorted ascending), e.g. the other half.
inline std::vector<std::int64_t> complement(std::span<const std::int64_t> subset, std::int64_t n) {
  DML_CHECK(n >= 0, "complement: n must be >= 0, got ", n);
  std::vector<std::uint8_t> in(static_cast<std::size_t>(n), 0);
  for (std::int64_t i : subset) {
    DML_CHECK(i >= 0 && i < n, "complement: index ", i, " outside [0, ", n, ")");
    in[i] = 1;
  }
  std::vector<std::int64_t> out;
  for (std::int64_t i = 0; i < n; ++i)
    if (!in[i]) out.push_back(i);
  return out;
}

// Anomaly score of each test row (nt x dim): distance to its nearest
// reference row (nr x dim) under `metric`. Throws like knn().
inline std::vector<float> anomaly_scores(const float* test, std::int64_t nt, const float* refs, std::int64_t nr,
                                         std::int64_t dim, Metric metric = Metric::Cosine) {
  std::vector<float> out(static_cast<std::size_t>(std::max<std::int64_t>(nt, 0)));
  detail::knn_visit(test, nt, refs, nr, dim, 1, metric, false,
                    [&](std::int64_t q, const detail::Neighbor* nb, int) { out[q] = nb[0].dist; },
                    "anomaly test embeddings", "anomaly reference embeddings");
  return out;
}

// ROC-AUC of anomaly scores with positives = samples whose label is in
// `unknown`. Throws like roc_auc().
inline double anomaly_auc(std::span<const float> scores, std::span<const std::int64_t> labels,
                          std::span<const std::int64_t> unknown) {
  DML_CHECK(scores.size() == labels.size(), "anomaly_auc: ", scores.size(), " scores but ", labels.size(),
            " labels");
  std::vector<std::uint8_t> pos = label_mask(labels, unknown);
  return roc_auc(scores, pos);
}

// anomaly_scores on tensors: test [nt, dim] against references [nr, dim]
// (any device; see host_matrix). Throws as above, and when the widths differ.
template <class T, class D>
std::vector<float> anomaly_scores(const Tensor<T, D>& test, const Tensor<T, D>& refs,
                                  Metric metric = Metric::Cosine) {
  const HostMatrix t = host_matrix(test, "anomaly test embeddings");
  const HostMatrix r = host_matrix(refs, "anomaly reference embeddings");
  DML_CHECK(t.cols == r.cols, "anomaly_scores: test embeddings have ", t.cols, " columns but references ", r.cols);
  return anomaly_scores(t.data(), t.rows, r.data(), r.rows, t.cols, metric);
}

}  // namespace dml::eval
