// dml/eval/cluster.hpp: seeded k-means++ and clustering agreement scores
// (NMI, AMI) with scikit-learn's definitions (natural log, arithmetic mean).
//
//   MI   = sum_ij (n_ij/N) log(N n_ij / (a_i b_j))        (a, b: row/column sums)
//   H(U) = -sum_i (a_i/N) log(a_i/N)
//   NMI  = MI / ((H(U) + H(V)) / 2)
//   AMI  = (MI - E[MI]) / ((H(U) + H(V)) / 2 - E[MI])
// E[MI] is the exact expectation under the hypergeometric model (Vinh et al.
// 2010), summed with lgamma as sklearn's expected_mutual_information does.
// Edge cases follow sklearn: both labelings with a single (or no) cluster give
// 1.0; NMI with MI = 0 gives 0.0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../backend/cpu/parallel.hpp"
#include "../config.hpp"
#include "host_matrix.hpp"
#include "knn.hpp"

namespace dml::eval {

struct KMeansOptions {
  int k = 0;                 // clusters; cluster_quality() fills 0 with the class count
  int n_init = 10;           // seeded restarts; the lowest inertia wins (first on ties)
  int max_iter = 300;        // Lloyd iterations per restart
  double tol = 1e-4;         // stop when sum |c_new - c_old|^2 <= tol * mean feature variance
  std::uint64_t seed = 0;
};

struct KMeansResult {
  std::vector<std::int64_t> labels;  // cluster of each row, 0..k-1
  std::vector<float> centers;        // k x dim, row-major
  double inertia = 0.0;              // sum of squared distances to the assigned centre
  int iterations = 0;                // Lloyd updates of the winning restart
};

struct ClusterReport {
  double nmi = 0.0;
  double ami = 0.0;
  double inertia = 0.0;
};

namespace detail {

// Nearest centre of every row (ties: lower centre) and its squared distance,
// by the kNN engine (k = 1 among the centres; centers is k x dim row-major;
// xn holds the rows' squared norms, computed once per kmeans call).
inline void kmeans_assign(const float* x, const std::vector<float>& xn, std::int64_t n, std::int64_t dim,
                          const std::vector<float>& centers, std::int64_t k, std::vector<std::int64_t>& labels,
                          std::vector<double>& d2) {
  const std::vector<float> cn = squared_norms(centers.data(), k, dim, "kmeans centres");
  knn_visit_normed(
      x, xn.data(), n, centers.data(), cn.data(), k, dim, 1, Metric::L2, false,
      [&](std::int64_t q, const Neighbor* nb, int) {
        labels[q] = nb[0].index;
        d2[q] = nb[0].dist;
      },
      /*squared=*/true);
}

// Greedy k-means++ (as sklearn): each new centre is the best of 2 + ln(k)
// candidates drawn with probability proportional to D(x)^2. Returns k x dim.
inline std::vector<float> kmeans_plus_plus(const float* x, std::int64_t n, std::int64_t dim,
                                           const std::vector<float>& xn, int k, SplitMix64& rng) {
  const int trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
  const auto row = [&](std::int64_t i) { return x + i * dim; };
  std::vector<float> centers(static_cast<std::size_t>(k * dim));
  // Squared distances of every row to a few candidates (n x m, row-major).
  std::vector<float> d;
  auto dist_to = [&](const float* cand, std::int64_t m) {
    const std::vector<float> cn = squared_norms(cand, m, dim, "kmeans centres");
    d.resize(static_cast<std::size_t>(n * m));
    squared_l2(x, n, cand, m, dim, xn.data(), cn.data(), d.data());
  };
  std::int64_t first = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n)));
  std::copy(row(first), row(first) + dim, centers.begin());
  dist_to(centers.data(), 1);
  std::vector<double> closest(d.begin(), d.end());
  double pot = 0.0;
  for (double v : closest) pot += v;
  std::vector<double> cumsum(static_cast<std::size_t>(n));
  std::vector<float> cand(static_cast<std::size_t>(trials * dim));
  for (int c = 1; c < k; ++c) {
    std::partial_sum(closest.begin(), closest.end(), cumsum.begin());
    for (int t = 0; t < trials; ++t) {
      const double r = rng.uniform() * pot;
      auto it = std::lower_bound(cumsum.begin(), cumsum.end(), r);
      std::int64_t id = std::min<std::int64_t>(it - cumsum.begin(), n - 1);
      std::copy(row(id), row(id) + dim, cand.begin() + t * dim);
    }
    dist_to(cand.data(), trials);
    int best = 0;
    double best_pot = std::numeric_limits<double>::infinity();
    for (int t = 0; t < trials; ++t) {
      double p = 0.0;
      for (std::int64_t i = 0; i < n; ++i) p += std::min<double>(closest[i], d[i * trials + t]);
      if (p < best_pot) best_pot = p, best = t;
    }
    std::copy(cand.begin() + best * dim, cand.begin() + (best + 1) * dim, centers.begin() + c * dim);
    for (std::int64_t i = 0; i < n; ++i) closest[i] = std::min<double>(closest[i], d[i * trials + best]);
    pot = best_pot;
  }
  return centers;
}

// Means of the assigned rows (double sums, parallel over feature slices so
// the result does not depend on the thread count). Empty clusters move to the
// rows farthest from their centres. Returns the squared shift of the centres.
inline double kmeans_update(const float* x, std::int64_t n, std::int64_t dim, const std::vector<std::int64_t>& labels,
                            const std::vector<double>& d2, std::vector<float>& centers, std::int64_t k) {
  std::vector<double> sums(static_cast<std::size_t>(k * dim), 0.0);
  std::vector<std::int64_t> count(static_cast<std::size_t>(k), 0);
  for (std::int64_t i = 0; i < n; ++i) ++count[labels[i]];
  // Each (cluster, feature) sum runs over rows in order whatever thread owns the slice.
  const std::int64_t slices = std::min<std::int64_t>(dim, cpu::max_threads()), width = (dim + slices - 1) / slices;
  cpu::parallel_for(
      slices,
      [&](std::int64_t s) {
        const std::int64_t d0 = s * width, d1 = std::min(dim, d0 + width);
        for (std::int64_t i = 0; i < n; ++i) {
          double* dst = sums.data() + labels[i] * dim;
          const float* src = x + i * dim;
          for (std::int64_t t = d0; t < d1; ++t) dst[t] += src[t];
        }
      },
      n * width);
  std::vector<std::int64_t> far;  // rows by decreasing distance, for empty clusters
  std::int64_t used = 0;
  double shift = 0.0;
  std::vector<float> next(static_cast<std::size_t>(dim));
  for (std::int64_t c = 0; c < k; ++c) {
    if (count[c] > 0) {
      for (std::int64_t t = 0; t < dim; ++t)
        next[t] = static_cast<float>(sums[c * dim + t] / static_cast<double>(count[c]));
    } else {
      if (far.empty()) {
        far.resize(static_cast<std::size_t>(n));
        std::iota(far.begin(), far.end(), std::int64_t{0});
        std::stable_sort(far.begin(), far.end(), [&](std::int64_t a, std::int64_t b) { return d2[a] > d2[b]; });
      }
      const float* src = x + far[std::min<std::int64_t>(used++, n - 1)] * dim;
      std::copy(src, src + dim, next.begin());
    }
    float* centre = centers.data() + c * dim;
    for (std::int64_t t = 0; t < dim; ++t) {
      const double step = static_cast<double>(next[t] - centre[t]);
      shift += step * step;
    }
    std::copy(next.begin(), next.end(), centre);
  }
  return shift;
}

// Contingency table of two labelings as sparse counts plus row/column sums.
struct Contingency {
  std::vector<std::int64_t> a, b;                                  // class / cluster sizes
  std::vector<std::pair<std::pair<std::int64_t, std::int64_t>, std::int64_t>> cells;  // (i, j) -> n_ij > 0
  std::int64_t n = 0;
};

inline Contingency contingency(std::span<const std::int64_t> u, std::span<const std::int64_t> v, const char* who) {
  DML_CHECK(u.size() == v.size(), who, ": ", u.size(), " true labels but ", v.size(), " predicted labels");
  auto dense = [](std::span<const std::int64_t> y) {
    std::map<std::int64_t, std::int64_t> id;
    for (std::int64_t l : y) id.emplace(l, 0);
    std::int64_t next = 0;
    for (auto& kv : id) kv.second = next++;
    std::vector<std::int64_t> out(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) out[i] = id[y[i]];
    return std::make_pair(out, next);
  };
  auto [du, nu] = dense(u);
  auto [dv, nv] = dense(v);
  Contingency t;
  t.n = static_cast<std::int64_t>(u.size());
  t.a.assign(static_cast<std::size_t>(nu), 0);
  t.b.assign(static_cast<std::size_t>(nv), 0);
  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> cells;
  for (std::size_t i = 0; i < du.size(); ++i) {
    ++t.a[du[i]];
    ++t.b[dv[i]];
    ++cells[{du[i], dv[i]}];
  }
  t.cells.assign(cells.begin(), cells.end());
  return t;
}

inline double entropy_of(const std::vector<std::int64_t>& sizes, std::int64_t n) {
  if (n == 0) return 1.0;  // sklearn's convention for an empty labeling
  if (sizes.size() == 1) return 0.0;
  double h = 0.0;
  for (std::int64_t s : sizes) h -= (double(s) / double(n)) * (std::log(double(s)) - std::log(double(n)));
  return h;
}

inline double mutual_info_of(const Contingency& t) {
  if (t.a.size() == 1 || t.b.size() == 1) return 0.0;
  const double n = static_cast<double>(t.n), log_n = std::log(n);
  double mi = 0.0;
  for (const auto& [ij, nij] : t.cells) {
    const double p = static_cast<double>(nij) / n;
    const double outer = static_cast<double>(t.a[ij.first] * t.b[ij.second]);
    const double term = p * (std::log(static_cast<double>(nij)) - log_n) + p * (-std::log(outer) + log_n + log_n);
    if (std::abs(term) >= std::numeric_limits<double>::epsilon()) mi += term;
  }
  return std::max(mi, 0.0);
}

inline double expected_mutual_info(const Contingency& t) {
  if (t.a.size() == 1 || t.b.size() == 1) return 0.0;
  const std::int64_t n = t.n;
  const std::int64_t top = std::max(*std::max_element(t.a.begin(), t.a.end()), *std::max_element(t.b.begin(), t.b.end()));
  std::vector<double> log_nnij(static_cast<std::size_t>(top + 1)), gln_nnij(static_cast<std::size_t>(top + 1));
  const double gln_n1 = std::lgamma(double(n) + 1.0);
  for (std::int64_t v = 1; v <= top; ++v) {
    log_nnij[v] = std::log(double(n)) + std::log(double(v));
    gln_nnij[v] = std::lgamma(double(v) + 1.0) + gln_n1;
  }
  double emi = 0.0;
  for (std::int64_t ai : t.a) {
    const double gln_a = std::lgamma(double(ai) + 1.0), gln_na = std::lgamma(double(n - ai) + 1.0);
    for (std::int64_t bj : t.b) {
      const double gln_b = std::lgamma(double(bj) + 1.0), gln_nb = std::lgamma(double(n - bj) + 1.0);
      const double log_a = std::log(double(ai)), log_b = std::log(double(bj));
      const std::int64_t start = std::max<std::int64_t>(1, ai - n + bj), end = std::min(ai, bj) + 1;
      for (std::int64_t v = start; v < end; ++v) {
        const double term2 = log_nnij[v] - log_a - log_b;
        const double gln = gln_a + gln_b + gln_na + gln_nb - gln_nnij[v] - std::lgamma(double(ai - v) + 1.0) -
                           std::lgamma(double(bj - v) + 1.0) - std::lgamma(double(n - ai - bj + v) + 1.0);
        emi += (double(v) / double(n)) * term2 * std::exp(gln);
      }
    }
  }
  return emi;
}

}  // namespace detail

// k-means on x (n x dim, row-major): k-means++ seeding, Lloyd iterations to
// convergence (labels unchanged or centre shift <= tol) or max_iter, n_init
// seeded restarts keeping the lowest inertia. Deterministic for a given seed,
// independent of the thread count. Throws if k < 1, n < k, or rows hold NaN/Inf.
inline KMeansResult kmeans(const float* x, std::int64_t n, std::int64_t dim, const KMeansOptions& opt) {
  detail::check_matrix(x, n, dim, "kmeans data");
  DML_CHECK(opt.k >= 1, "kmeans: k must be >= 1, got ", opt.k);
  DML_CHECK(n >= opt.k, "kmeans: ", n, " rows cannot form k = ", opt.k, " clusters");
  DML_CHECK(opt.n_init >= 1 && opt.max_iter >= 1, "kmeans: n_init and max_iter must be >= 1");
  const std::vector<float> xn = detail::squared_norms(x, n, dim, "kmeans data");
  std::vector<double> sum(static_cast<std::size_t>(dim), 0.0), sq(static_cast<std::size_t>(dim), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t t = 0; t < dim; ++t) {
      const double v = x[i * dim + t];
      sum[t] += v;
      sq[t] += v * v;
    }
  double var = 0.0;  // mean over features of the per-feature variance
  for (std::int64_t t = 0; t < dim; ++t) var += std::max(0.0, sq[t] / double(n) - (sum[t] / double(n)) * (sum[t] / double(n)));
  const double tol = opt.tol * var / double(dim);

  detail::SplitMix64 rng(opt.seed);
  KMeansResult best;
  best.inertia = std::numeric_limits<double>::infinity();
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n)), previous;
  std::vector<double> d2(static_cast<std::size_t>(n));
  for (int init = 0; init < opt.n_init; ++init) {
    std::vector<float> centers = detail::kmeans_plus_plus(x, n, dim, xn, opt.k, rng);
    detail::kmeans_assign(x, xn, n, dim, centers, opt.k, labels, d2);
    int iter = 0;
    while (iter < opt.max_iter) {
      const double shift = detail::kmeans_update(x, n, dim, labels, d2, centers, opt.k);
      ++iter;
      previous = labels;
      detail::kmeans_assign(x, xn, n, dim, centers, opt.k, labels, d2);
      if (labels == previous || shift <= tol) break;
    }
    double inertia = 0.0;
    for (double v : d2) inertia += v;
    if (inertia < best.inertia) {
      best.inertia = inertia;
      best.iterations = iter;
      best.labels = labels;
      best.centers = std::move(centers);
    }
  }
  return best;
}

// Mutual information (nats) between two labelings of the same samples.
inline double mutual_info(std::span<const std::int64_t> labels_true, std::span<const std::int64_t> labels_pred) {
  return detail::mutual_info_of(detail::contingency(labels_true, labels_pred, "mutual_info"));
}

// Normalized mutual information, arithmetic normalisation (sklearn's
// normalized_mutual_info_score default). Throws on length mismatch.
inline double nmi(std::span<const std::int64_t> labels_true, std::span<const std::int64_t> labels_pred) {
  const auto t = detail::contingency(labels_true, labels_pred, "nmi");
  if (t.a.size() == t.b.size() && t.a.size() <= 1) return 1.0;
  const double mi = detail::mutual_info_of(t);
  if (mi == 0.0) return 0.0;
  return mi / (0.5 * (detail::entropy_of(t.a, t.n) + detail::entropy_of(t.b, t.n)));
}

// Adjusted mutual information, arithmetic normalisation (sklearn's
// adjusted_mutual_info_score default). Throws on length mismatch.
inline double ami(std::span<const std::int64_t> labels_true, std::span<const std::int64_t> labels_pred) {
  const auto t = detail::contingency(labels_true, labels_pred, "ami");
  if (t.a.size() == t.b.size() && t.a.size() <= 1) return 1.0;
  const double mi = detail::mutual_info_of(t);
  const double emi = detail::expected_mutual_info(t);
  const double norm = 0.5 * (detail::entropy_of(t.a, t.n) + detail::entropy_of(t.b, t.n));
  double denom = norm - emi;
  const double eps = std::numeric_limits<double>::epsilon();
  denom = denom < 0 ? std::min(denom, -eps) : std::max(denom, eps);
  return (mi - emi) / denom;
}

// Clusters emb (n x dim, used as given: normalise rows first for cosine
// embeddings) with k-means, k = number of distinct labels unless opt.k > 0,
// and scores the clusters against labels. Throws like kmeans()/nmi().
inline ClusterReport cluster_quality(const float* emb, std::int64_t n, std::int64_t dim,
                                     std::span<const std::int64_t> labels, KMeansOptions opt = {}) {
  DML_CHECK(static_cast<std::int64_t>(labels.size()) == n, "cluster_quality: ", n, " rows but ", labels.size(),
            " labels");
  if (opt.k == 0) {
    std::vector<std::int64_t> u(labels.begin(), labels.end());
    std::sort(u.begin(), u.end());
    opt.k = static_cast<int>(std::unique(u.begin(), u.end()) - u.begin());
  }
  KMeansResult km = kmeans(emb, n, dim, opt);
  return {nmi(labels, km.labels), ami(labels, km.labels), km.inertia};
}

// cluster_quality on an [N, dim] embedding tensor (any device; see
// host_matrix). Throws as above.
template <class T, class D>
ClusterReport cluster_quality(const Tensor<T, D>& emb, std::span<const std::int64_t> labels,
                              KMeansOptions opt = {}) {
  const HostMatrix m = host_matrix(emb, "cluster_quality");
  return cluster_quality(m.data(), m.rows, m.cols, labels, opt);
}

}  // namespace dml::eval
