// dml/eval/metrics.hpp: retrieval metrics (Precision@1, R-Precision, MAP@R,
// recall@k, mean average precision) with pytorch-metric-learning's
// definitions, optionally averaged per class, and classification accuracy.
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
//   Recall@k    = 1 if rel(i) = 1 for some i <= k, else 0     (any k, not capped by max_k)
//   MAP         = (1/R) sum_{i<=M} rel(i) * (sum_{j<=i} rel(j)) / i, M = every reference
// each averaged over the non-lone queries, or (avg_of_avgs) over each class's
// non-lone queries first and then over those classes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "../config.hpp"
#include "host_matrix.hpp"
#include "knn.hpp"

namespace dml::eval {

struct RetrievalOptions {
  Metric metric = Metric::Cosine;
  // Upper bound on the k that R-Precision and MAP@R see (and so on R'); 0 = no
  // bound: k = the largest R, which is exact. pytorch-metric-learning's older
  // faiss path used 1023. recall_at and mean_average_precision are not capped.
  std::int64_t max_k = 0;
  // Recall@k for each k listed (each in [1, number of references available]).
  std::vector<int> recall_at = {};
  // Also compute MAP over the whole ranking. Ranks every reference for every
  // query: O(nq * nr log nr) time instead of O(nq * nr log k).
  bool mean_average_precision = false;
  // Average every metric per class first, then over the classes
  // (pytorch-metric-learning's avg_of_avgs); false = one mean over queries.
  bool avg_of_avgs = false;
};

struct RecallAt {
  int k = 0;
  double recall = 0.0;
};

struct RetrievalReport {
  double precision_at_1 = 0.0;
  double r_precision = 0.0;
  double map_at_r = 0.0;
  std::vector<RecallAt> recall_at_k;            // one per RetrievalOptions::recall_at, same order
  std::optional<double> mean_average_precision;  // set when RetrievalOptions::mean_average_precision
  std::int64_t num_queries = 0;  // queries that entered the averages
  std::int64_t num_lone = 0;     // queries left out because R = 0
  std::int64_t num_classes = 0;  // distinct labels among those queries
  int k = 0;                     // neighbours retrieved per query
  bool avg_of_avgs = false;      // whether the averages are per class first

  // Recall@k for a k that was requested; throws dml::Error naming k otherwise.
  double recall_at(int k_wanted) const {
    for (const RecallAt& r : recall_at_k)
      if (r.k == k_wanted) return r.recall;
    DML_CHECK(false, "RetrievalReport::recall_at: recall@", k_wanted,
              " was not computed (list it in RetrievalOptions::recall_at)");
    return 0.0;
  }
};

namespace detail {

// Per-query scores, in this order of slots (see the header comment):
// P@1, R-Precision, AP@R, then AP over the whole ranking when with_map, then
// one 0/1 per recall k.
struct ScoreLayout {
  bool with_map = false;
  std::span<const int> recall_ks;
  int width() const { return 3 + (with_map ? 1 : 0) + static_cast<int>(recall_ks.size()); }
};

// Scores one query from its kk sorted neighbours (label_at(i) = label of the
// i-th nearest) into out[0, layout.width()). r_eff = R' >= 1; r = R, and
// with_map needs kk = every reference (so all R relevant items are ranked).
template <class LabelAt>
void score_query(LabelAt&& label_at, std::int64_t kk, std::int64_t r_eff, std::int64_t r, std::int64_t label,
                 const ScoreLayout& layout, double* out) {
  const std::int64_t scan = layout.with_map ? kk : r_eff;
  std::int64_t hits = 0, hits_at_r = 0, first_hit = kk;  // first_hit: 0-based rank, kk = none
  double ap_at_r = 0.0, ap = 0.0;
  for (std::int64_t i = 0; i < scan; ++i) {
    if (label_at(i) != label) continue;
    if (hits == 0) first_hit = i;
    ++hits;
    const double precision = static_cast<double>(hits) / static_cast<double>(i + 1);
    ap += precision;
    if (i < r_eff) ++hits_at_r, ap_at_r += precision;
  }
  if (first_hit == kk && !layout.recall_ks.empty())  // AP@R only scanned R' ranks: find the first hit
    for (std::int64_t i = scan; i < kk; ++i)
      if (label_at(i) == label) {
        first_hit = i;
        break;
      }
  out[0] = first_hit == 0 ? 1.0 : 0.0;
  out[1] = static_cast<double>(hits_at_r) / static_cast<double>(r_eff);
  out[2] = ap_at_r / static_cast<double>(r_eff);
  int slot = 3;
  if (layout.with_map) out[slot++] = ap / static_cast<double>(r);
  for (int k : layout.recall_ks) out[slot++] = first_hit < k ? 1.0 : 0.0;
}

inline std::unordered_map<std::int64_t, std::int64_t> label_counts(std::span<const std::int64_t> labels) {
  std::unordered_map<std::int64_t, std::int64_t> counts;
  for (std::int64_t y : labels) ++counts[y];
  return counts;
}

// Means of the score columns (scores: nq x width) over the non-lone queries
// (r_of[q] > 0): one mean over queries, or (per_class) the mean over classes
// of each class's mean. Sums run in query order, classes in ascending label
// order. num_classes = distinct labels among the non-lone queries.
inline std::vector<double> average_scores(const std::vector<double>& scores, int width,
                                          std::span<const std::int64_t> qlabels,
                                          const std::vector<std::int64_t>& r_of, bool per_class,
                                          std::int64_t& num_classes) {
  struct Group {
    std::vector<double> sums;
    std::int64_t count = 0;
  };
  std::map<std::int64_t, Group> by_class;
  Group all{std::vector<double>(static_cast<std::size_t>(width), 0.0), 0};
  for (std::size_t q = 0; q < qlabels.size(); ++q) {
    if (r_of[q] == 0) continue;
    Group& own = by_class[qlabels[q]];  // also counts the classes when !per_class
    Group& g = per_class ? own : all;
    if (g.sums.empty()) g.sums.assign(static_cast<std::size_t>(width), 0.0);
    for (int t = 0; t < width; ++t) g.sums[t] += scores[q * width + t];
    ++g.count;
  }
  num_classes = static_cast<std::int64_t>(by_class.size());
  std::vector<double> out(static_cast<std::size_t>(width), 0.0);
  if (!per_class) {
    for (int t = 0; t < width; ++t) out[t] = all.sums[t] / static_cast<double>(all.count);
    return out;
  }
  for (const auto& [label, g] : by_class)
    for (int t = 0; t < width; ++t) out[t] += g.sums[t] / static_cast<double>(g.count);
  for (double& v : out) v /= static_cast<double>(num_classes);
  return out;
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
  const std::int64_t available = same_set ? nr - 1 : nr;  // references a query can retrieve
  int max_recall_k = 0;
  for (std::size_t i = 0; i < opt.recall_at.size(); ++i) {
    const int k = opt.recall_at[i];
    DML_CHECK(k >= 1, "retrieval: recall_at[", i, "] = ", k, " must be >= 1");
    DML_CHECK(k <= available, "retrieval: recall_at[", i, "] = ", k, " but only ", available,
              " references are available", same_set ? " (leave-one-out: n - 1)" : "");
    max_recall_k = std::max(max_recall_k, k);
  }

  const auto counts = label_counts(rlabels);
  std::vector<std::int64_t> r_of(static_cast<std::size_t>(nq));
  std::int64_t max_r = 0;
  RetrievalReport rep;
  rep.avg_of_avgs = opt.avg_of_avgs;
  for (int k : opt.recall_at) rep.recall_at_k.push_back({k, 0.0});
  if (opt.mean_average_precision) rep.mean_average_precision = 0.0;
  for (std::int64_t i = 0; i < nq; ++i) {
    auto it = counts.find(qlabels[i]);
    std::int64_t r = it == counts.end() ? 0 : it->second - (same_set ? 1 : 0);
    r_of[i] = r;
    max_r = std::max(max_r, r);
    if (r == 0) ++rep.num_lone;
  }
  rep.num_queries = nq - rep.num_lone;
  if (rep.num_queries == 0) return rep;  // nothing to score: all zeros, like pytorch-metric-learning
  // r_cap bounds R' (R-Precision, MAP@R); the neighbours retrieved also cover
  // the largest recall k, or every reference for MAP.
  const std::int64_t r_cap = opt.max_k > 0 ? std::min(max_r, opt.max_k) : max_r;
  const std::int64_t k =
      opt.mean_average_precision ? available : std::max<std::int64_t>(r_cap, max_recall_k);
  DML_CHECK(k <= std::numeric_limits<int>::max(), "retrieval: k = ", k, " is too large");
  rep.k = static_cast<int>(k);

  const ScoreLayout layout{opt.mean_average_precision, opt.recall_at};
  const int width = layout.width();
  std::vector<double> scores(static_cast<std::size_t>(width * nq), 0.0);
  knn_visit(queries, nq, refs, nr, dim, rep.k, opt.metric, same_set,
            [&](std::int64_t q, const Neighbor* nb, int kk) {
              if (r_of[q] == 0) return;
              score_query([&](std::int64_t j) { return rlabels[nb[j].index]; }, kk, std::min(r_of[q], r_cap),
                          r_of[q], qlabels[q], layout, scores.data() + q * width);
            },
            "retrieval queries", "retrieval references");
  const std::vector<double> mean = average_scores(scores, width, qlabels, r_of, opt.avg_of_avgs, rep.num_classes);
  rep.precision_at_1 = mean[0];
  rep.r_precision = mean[1];
  rep.map_at_r = mean[2];
  int slot = 3;
  if (opt.mean_average_precision) rep.mean_average_precision = mean[slot++];
  for (RecallAt& r : rep.recall_at_k) r.recall = mean[slot++];
  return rep;
}

}  // namespace detail

// Leave-one-out retrieval inside one set: every row of emb (n x dim) queries
// all the other rows. labels: n class ids. Returns P@1, R-Precision, MAP@R and
// whatever opt asks for (recall@k, MAP, per-class averages), averaged over
// queries with R > 0 (see the header comment). Throws on size mismatch, a
// recall k outside [1, n - 1], NaN/Inf rows, or (cosine) zero rows.
inline RetrievalReport retrieval(const float* emb, std::int64_t n, std::int64_t dim,
                                 std::span<const std::int64_t> labels, const RetrievalOptions& opt) {
  return detail::retrieval_impl(emb, n, labels, emb, n, labels, dim, opt, true);
}
inline RetrievalReport retrieval(const float* emb, std::int64_t n, std::int64_t dim,
                                 std::span<const std::int64_t> labels, Metric metric = Metric::Cosine) {
  return retrieval(emb, n, dim, labels, RetrievalOptions{.metric = metric});
}

// Two-set retrieval: queries (nq x dim) against references (nr x dim), R =
// number of references sharing the query's label. Same contract as above,
// with recall k in [1, nr].
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
