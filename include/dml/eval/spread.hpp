// dml/eval/spread.hpp: how tight the classes of an embedding are, the figure
// Center Loss is meant to improve.
//
//   auto s = eval::class_spread(emb, labels, eval::Metric::Cosine);
//   s.intra   mean distance of a sample to its class centroid
//   s.inter   mean distance between two class centroids
//   s.ratio   intra / inter: smaller is tighter, and comparable across methods
//             whose embeddings have different scales
//
// Distances are Euclidean; with Metric::Cosine every row is L2-normalised
// first (the space the cosine retrieval and anomaly scores work in).
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "../config.hpp"
#include "../core/tensor.hpp"
#include "knn.hpp"

namespace dml::eval {

struct SpreadReport {
  double intra = 0, inter = 0, ratio = 0;
  std::int64_t classes = 0;
};

// Class spread of n rows of emb (row-major [n, dim]) under `metric`. Throws
// dml::Error for a label count other than n, fewer than two classes, or a
// non-finite value.
inline SpreadReport class_spread(const float* emb, std::int64_t n, std::int64_t dim,
                                 std::span<const std::int64_t> labels, Metric metric = Metric::Cosine) {
  DML_CHECK(static_cast<std::int64_t>(labels.size()) == n, "class_spread: ", labels.size(), " labels for ", n,
            " embeddings");
  DML_CHECK(dim >= 1, "class_spread: dim must be >= 1, got ", dim);
  std::vector<double> rows(static_cast<std::size_t>(n * dim));
  for (std::int64_t i = 0; i < n; ++i) {
    double norm2 = 0;
    for (std::int64_t k = 0; k < dim; ++k) {
      const double v = emb[i * dim + k];
      DML_CHECK(std::isfinite(v), "class_spread: embedding row ", i, " holds a non-finite value");
      norm2 += v * v;
    }
    const double scale = metric == Metric::Cosine && norm2 > 0 ? 1 / std::sqrt(norm2) : 1.0;
    for (std::int64_t k = 0; k < dim; ++k) rows[i * dim + k] = emb[i * dim + k] * scale;
  }
  std::map<std::int64_t, std::vector<std::int64_t>> members;
  for (std::int64_t i = 0; i < n; ++i) members[labels[i]].push_back(i);
  DML_CHECK(members.size() >= 2, "class_spread: needs at least two classes, got ", members.size());

  std::vector<std::vector<double>> centroids;
  double intra = 0;
  for (const auto& [label, idx] : members) {
    std::vector<double> c(static_cast<std::size_t>(dim), 0.0);
    for (std::int64_t i : idx)
      for (std::int64_t k = 0; k < dim; ++k) c[k] += rows[i * dim + k];
    for (double& v : c) v /= static_cast<double>(idx.size());
    for (std::int64_t i : idx) {
      double d2 = 0;
      for (std::int64_t k = 0; k < dim; ++k) d2 += (rows[i * dim + k] - c[k]) * (rows[i * dim + k] - c[k]);
      intra += std::sqrt(d2);
    }
    centroids.push_back(std::move(c));
  }
  double inter = 0;
  std::int64_t pairs = 0;
  for (std::size_t a = 0; a < centroids.size(); ++a)
    for (std::size_t b = a + 1; b < centroids.size(); ++b, ++pairs) {
      double d2 = 0;
      for (std::int64_t k = 0; k < dim; ++k) d2 += (centroids[a][k] - centroids[b][k]) * (centroids[a][k] - centroids[b][k]);
      inter += std::sqrt(d2);
    }
  SpreadReport r;
  r.classes = static_cast<std::int64_t>(centroids.size());
  r.intra = intra / static_cast<double>(n);
  r.inter = inter / static_cast<double>(pairs);
  r.ratio = r.inter > 0 ? r.intra / r.inter : INFINITY;
  return r;
}

// The same for a [N, dim] tensor (copied to the host).
template <class T, class D>
SpreadReport class_spread(const Tensor<T, D>& emb, std::span<const std::int64_t> labels,
                          Metric metric = Metric::Cosine) {
  DML_CHECK(emb.defined() && emb.rank() == 2, "class_spread: expected [N, dim] embeddings, got ",
            emb.defined() ? emb.shape().str() : "undefined");
  const std::vector<T> v = emb.to_vector();
  const std::vector<float> f(v.begin(), v.end());
  return class_spread(f.data(), emb.dim(0), emb.dim(1), labels, metric);
}

}  // namespace dml::eval
