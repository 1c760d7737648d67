// dml/eval/metrics.hpp: retrieval metrics (Precision@1, R-Precision, MAP@R)
// with pytorch-metric-learning's definitions, and classification accuracy.
//
// For a query q with label y, R = number of references labelled y (not
// counting q itself when queries and references are the same rows). Queries
// with R = 0 ("lone" queries: a class with one sample in the same-set case, or
// a label absent from the references) are left out of every average, as
// pytorch-metric-learning does; RetrievalReport::num_lone counts them. With
// the k nearest neighbours of q (k = the largest R, or max_k when set) and
// R' = min(R, k), rel(i) = 1 when neighbour i has label y:
//   Precision@1 = rel(1)
//   R-Precision = (1/R') sum_{i<=R'} rel(i)
//   MAP@R       = (1/R') sum_{i<=R'} rel(i) * (sum_{j<=i} rel(j)) / i
// each averaged over the non-lone queries.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <unordered_map>
#include <vector>

#include "../config.hpp"
#include "host_matrix.hpp"
#include "knn.hpp"

namespace dml::eval {

struct RetrievalOptions {
  Metric metric = Metric::Cosine;
  // Upper bound on k (and so on R'); 0 = no bound: k = the largest R, which is
  // exact. pytorch-metric-learning's older faiss path used 1023.
  std::int64_t max_k = 0;
};

struct RetrievalReport {
  double precision_at_1 = 0.0;
  double r_precision = 0.0;
  double map_at_r = 0.0;
  std::int64_t num_queries = 0;  // queries that entered the averages
  std::int64_t num_lone = 0;     // queries left out because R = 0
  int k = 0;                     // neighbours retrieved per query
};

namespace detail {

// Scores one query from its sorted neighbours (label_at(i) = label of the
// i-th nearest): {P@1, R-precision, AP@R} with R' = r_eff >= 1.
struct QueryScore {
  double p1, rp, ap;
};
template <class LabelAt>
QueryScore score_query(LabelAt&& label_at, std::int64_t r_eff, std::int64_t label) {
  QueryScore s{label_at(0) == label ? 1.0 : 0.0, 0.0, 0.0};
  std::int64_t hits = 0;
  for (std::int64_t i = 0; i < r_eff; ++i) {
    if (label_at(i) != label) continue;
    ++hits;
    s.ap += static_cast<double>(hits) / static_cast<double>(i + 1);
  }
  s.rp = static_cast<double>(hits) / static_cast<double>(r_eff);
  s.ap /= static_cast<double>(r_eff);
  return s;
}

inline std::unordered_map<std::int64_t, std::int64_t> label_counts(std::span<const std::int64_t> labels) {
  std::unordered_map<std::int64_t, std::int64_t> counts;
  for (std::int64_t y : labels) ++counts[y];
  return counts;
}

inline RetrievalReport retrieval_impl(const float* queries, std::int64_t nq, std::span<const std::int64_t> qlabels,
                                      const float* refs, std::int64_t nr, std::span<const std::int64_t> rlabels,
                                      std::int64_t dim, const RetrievalOptions& opt, bool same_set) {
  DML_CHECK(static_cast<std::int64_t>(qlabels.size()) == nq, "retrieval: ", nq, " query rows but ", qlabels.size(),
            " query labels");
  DML_CHECK(static_cast<std::int64_t>(rlabels.size()) == nr, "retrieval: ", nr, " reference rows but ",
            rlabels.size(), " reference labels");
  DML_CHECK(opt.max_k >= 0, "retrieval: max_k must be >= 0, got ", opt.max_k);
  check_matrix(queries, nq, dim, "retrieval queries");
  check_matrix(refs, nr, dim, "retrieval references");

  const auto counts = label_counts(rlabels);
  std::vector<std::int64_t> r_of(static_cast<std::size_t>(nq));
  std::int64_t max_r = 0;
  RetrievalReport rep;
  for (std::int64_t i = 0; i < nq; ++i) {
    auto it = counts.find(qlabels[i]);
    std::int64_t r = it == counts.end() ? 0 : it->second - (same_set ? 1 : 0);
    r_of[i] = r;
    max_r = std::max(max_r, r);
    if (r == 0) ++rep.num_lone;
  }
  rep.num_queries = nq - rep.num_lone;
  if (rep.num_queries == 0) return rep;  // nothing to score: all zeros, like pytorch-metric-learning
  std::int64_t k = opt.max_k > 0 ? std::min(max_r, opt.max_k) : max_r;
  DML_CHECK(k <= std::numeric_limits<int>::max(), "retrieval: k = ", k, " is too large");
  rep.k = static_cast<int>(k);

  std::vector<double> scores(static_cast<std::size_t>(3 * nq), 0.0);
  knn_visit(queries, nq, refs, nr, dim, rep.k, opt.metric, same_set,
            [&](std::int64_t q, const Neighbor* nb, int kk) {
              if (r_of[q] == 0) return;
              const QueryScore s = score_query([&](std::int64_t j) { return rlabels[nb[j].index]; },
                                               std::min<std::int64_t>(r_of[q], kk), qlabels[q]);
              scores[3 * q] = s.p1;
              scores[3 * q + 1] = s.rp;
              scores[3 * q + 2] = s.ap;
            },
            "retrieval queries", "retrieval references");
  double sum[3] = {0, 0, 0};
  for (std::int64_t q = 0; q < nq; ++q)
    for (int t = 0; t < 3; ++t) sum[t] += scores[3 * q + t];
  const double n = static_cast<double>(rep.num_queries);
  rep.precision_at_1 = sum[0] / n;
  rep.r_precision = sum[1] / n;
  rep.map_at_r = sum[2] / n;
  return rep;
}

}  // namespace detail

// Leave-one-out retrieval inside one set: every row of emb (n x dim) queries
// all the other rows. labels: n class ids. Returns P@1, R-Precision and MAP@R
// averaged over queries with R > 0 (see the header comment). Throws on size
// mismatch, NaN/Inf rows, or (cosine) zero rows.
inline RetrievalReport retrieval(const float* emb, std::int64_t n, std::int64_t dim,
                                 std::span<const std::int64_t> labels, const RetrievalOptions& opt) {
  return detail::retrieval_impl(emb, n, labels, emb, n, labels, dim, opt, true);
}
inline RetrievalReport retrieval(const float* emb, std::int64_t n, std::int64_t dim,
                                 std::span<const std::int64_t> labels, Metric metric = Metric::Cosine) {
  return retrieval(emb, n, dim, labels, RetrievalOptions{.metric = metric});
}

// Two-set retrieval: queries (nq x dim) against references (nr x dim), R =
// number of references sharing the query's label. Same contract as above.
inline RetrievalReport retrieval(const float* queries, std::int64_t nq, std::span<const std::int64_t> query_labels,
                                 const float* refs, std::int64_t nr, std::span<const std::int64_t> ref_labels,
                                 std::int64_t dim, const RetrievalOptions& opt = {}) {
  return detail::retrieval_impl(queries, nq, query_labels, refs, nr, ref_labels, dim, opt, false);
}

// Fraction of positions where predictions[i] == labels[i]. Throws if the
// lengths differ or are zero.
inline double accuracy(std::span<const std::int64_t> predictions, std::span<const std::int64_t> labels) {
  DML_CHECK(predictions.size() == labels.size(), "accuracy: ", predictions.size(), " predictions but ",
            labels.size(), " labels");
  DML_CHECK(!labels.empty(), "accuracy: no samples");
  std::int64_t hits = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) hits += predictions[i] == labels[i];
  return static_cast<double>(hits) / static_cast<double>(labels.size());
}

// Row-wise argmax of logits (n x num_classes, row-major); the first maximum
// wins a tie. Throws on NaN or bad sizes, naming the row.
inline std::vector<std::int64_t> argmax_rows(const float* logits, std::int64_t n, std::int64_t num_classes) {
  DML_CHECK(n >= 0 && num_classes >= 1, "argmax_rows: bad shape ", n, " x ", num_classes);
  DML_CHECK(n == 0 || logits != nullptr, "argmax_rows: null logits");
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * num_classes;
    std::int64_t best = 0;
    for (std::int64_t c = 0; c < num_classes; ++c) {
      DML_CHECK(!std::isnan(row[c]), "argmax_rows: NaN in logits row ", i, " column ", c);
      if (row[c] > row[best]) best = c;
    }
    out[i] = best;
  }
  return out;
}

// Classification accuracy of argmax(logits) against labels (n of them).
inline double accuracy_from_logits(const float* logits, std::int64_t n, std::int64_t num_classes,
                                   std::span<const std::int64_t> labels) {
  DML_CHECK(static_cast<std::int64_t>(labels.size()) == n, "accuracy_from_logits: ", n, " rows but ",
            labels.size(), " labels");
  std::vector<std::int64_t> pred = argmax_rows(logits, n, num_classes);
  return accuracy(pred, labels);
}

// ---- Tensor front ends ----------------------------------------------------
// The same functions on an [N, dim] embedding tensor (float or double, any
// device: a Cuda tensor is copied to the host) and labels as a vector/span or
// an int64 tensor. Throw as the raw versions, and for an undefined tensor.

template <class T, class D>
RetrievalReport retrieval(const Tensor<T, D>& emb, std::span<const std::int64_t> labels,
                          const RetrievalOptions& opt) {
  const HostMatrix m = host_matrix(emb, "retrieval");
  return retrieval(m.data(), m.rows, m.cols, labels, opt);
}
template <class T, class D>
RetrievalReport retrieval(const Tensor<T, D>& emb, std::span<const std::int64_t> labels,
                          Metric metric = Metric::Cosine) {
  return retrieval(emb, labels, RetrievalOptions{.metric = metric});
}
template <class T, class D, class DL>
RetrievalReport retrieval(const Tensor<T, D>& emb, const Tensor<std::int64_t, DL>& labels,
                          const RetrievalOptions& opt) {
  return retrieval(emb, host_labels(labels, "retrieval"), opt);
}
template <class T, class D, class DL>
RetrievalReport retrieval(const Tensor<T, D>& emb, const Tensor<std::int64_t, DL>& labels,
                          Metric metric = Metric::Cosine) {
  return retrieval(emb, host_labels(labels, "retrieval"), RetrievalOptions{.metric = metric});
}

// Two-set retrieval on tensors: queries [nq, dim] against references [nr, dim].
template <class T, class D>
RetrievalReport retrieval(const Tensor<T, D>& queries, std::span<const std::int64_t> query_labels,
                          const Tensor<T, D>& refs, std::span<const std::int64_t> ref_labels,
                          const RetrievalOptions& opt = {}) {
  const HostMatrix q = host_matrix(queries, "retrieval queries");
  const HostMatrix r = host_matrix(refs, "retrieval references");
  DML_CHECK(q.cols == r.cols, "retrieval: queries have ", q.cols, " columns but references ", r.cols);
  return retrieval(q.data(), q.rows, query_labels, r.data(), r.rows, ref_labels, q.cols, opt);
}

// Accuracy of argmax(logits) for an [N, classes] logits tensor.
template <class T, class D>
double accuracy_from_logits(const Tensor<T, D>& logits, std::span<const std::int64_t> labels) {
  const HostMatrix m = host_matrix(logits, "accuracy_from_logits");
  return accuracy_from_logits(m.data(), m.rows, m.cols, labels);
}

}  // namespace dml::eval
