// dml/viz/detail/tsne_affinity.hpp: input affinities for t-SNE. Exact kNN,
// per-point bandwidth search, the symmetric sparse P, and the two sums that
// read P during optimisation (attractive force, KL divergence).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "../../backend/cpu/parallel.hpp"
#include "../../eval/knn.hpp"
#include "tsne_util.hpp"

namespace dml::viz::detail {

// k nearest neighbours of every point, row-major n x k, nearest first
// (ties by index); dist2 holds squared Euclidean distances.
struct KnnGraph {
  std::int64_t n = 0;
  int k = 0;
  std::vector<std::int32_t> index;
  std::vector<double> dist2;
};

// Symmetric sparse affinities in CSR form; values sum to 1.
struct SparseAffinity {
  std::int64_t n = 0;
  std::vector<std::int64_t> row_ptr;
  std::vector<std::int32_t> col;
  std::vector<double> val;
};

// Exact brute-force kNN in float by eval's distance engine
// (eval::detail::knn_visit, squared L2, self excluded, ties by lower index) on
// the centred data: centring keeps |a|^2 + |b|^2 - 2 a.b accurate for data far
// from the origin. The engine rounds the same for every thread count.
inline KnnGraph exact_knn(const float* x, std::int64_t n, std::int64_t dim, int k, [[maybe_unused]] int threads) {
  std::vector<double> mean(dim, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < dim; ++j) mean[j] += x[i * dim + j];
  for (auto& m : mean) m /= static_cast<double>(n);
  std::vector<float> xc(static_cast<std::size_t>(n * dim));
  cpu::parallel_for(
      n,
      [&](std::int64_t i) {
        for (std::int64_t j = 0; j < dim; ++j) xc[i * dim + j] = static_cast<float>(x[i * dim + j] - mean[j]);
      },
      dim);

  KnnGraph g;
  g.n = n;
  g.k = k;
  g.index.resize(n * k);
  g.dist2.resize(n * k);
  eval::detail::knn_visit(
      xc.data(), n, xc.data(), n, dim, k, eval::Metric::L2, /*exclude_self=*/true,
      [&](std::int64_t i, const eval::detail::Neighbor* nb, int kk) {
        for (int m = 0; m < kk; ++m) {
          g.index[i * kk + m] = static_cast<std::int32_t>(nb[m].index);
          g.dist2[i * kk + m] = nb[m].dist;
        }
      },
      "tsne: x", "tsne: x", /*squared=*/true);
  return g;
}

// Conditional affinities p(j|i) over the kNN graph, row-major n x k: a
// Gaussian whose bandwidth is found by bisection on beta = 1/(2 sigma^2) so
// that the row's entropy is log(perplexity) within `tolerance` (nats), at
// most `max_steps` steps. Returns the number of rows that did not converge.
inline std::int64_t conditional_affinities(const KnnGraph& g, double perplexity, [[maybe_unused]] int threads,
                                           std::vector<double>& p, double tolerance = 1e-5, int max_steps = 100) {
  const int k = g.k;
  const double target = std::log(perplexity);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  p.assign(g.n * k, 0.0);
  std::atomic<std::int64_t> failed{0};
  cpu::parallel_dynamic(
      g.n,
      [&](std::int64_t i, int) {
        // Distances are shifted by the nearest one: the normalised row is
        // unchanged and exp() never underflows to an all-zero row.
        const double* d = g.dist2.data() + i * k;
        double* row = p.data() + i * k;
        const double d0 = d[0];
        double beta = 1.0, lo = -kInf, hi = kInf, sum = 0.0;
        bool converged = false;
        for (int step = 0; step < max_steps; ++step) {
          sum = 0.0;
          double weighted = 0.0;
          for (int m = 0; m < k; ++m) {
            const double e = std::exp(-(d[m] - d0) * beta);
            row[m] = e;
            sum += e;
            weighted += (d[m] - d0) * e;
          }
          const double diff = std::log(sum) + beta * weighted / sum - target;
          if (std::abs(diff) <= tolerance) {
            converged = true;
            break;
          }
          if (diff > 0) {
            lo = beta;
            beta = hi == kInf ? beta * 2.0 : (beta + hi) / 2.0;
          } else {
            hi = beta;
            beta = lo == -kInf ? beta / 2.0 : (beta + lo) / 2.0;
          }
        }
        for (int m = 0; m < k; ++m) row[m] /= sum;
        if (!converged) failed.fetch_add(1, std::memory_order_relaxed);
      },
      64, threads);
  return failed.load();
}

// P = (P_cond + P_cond^T) / (2n) as CSR, columns ascending per row.
inline SparseAffinity symmetrize(const KnnGraph& g, const std::vector<double>& p_cond) {
  const std::int64_t n = g.n;
  const int k = g.k;
  SparseAffinity s;
  s.n = n;
  std::vector<std::int64_t> count(n, k);
  for (std::int64_t e = 0; e < n * k; ++e) ++count[g.index[e]];
  std::vector<std::int64_t> start(n + 1, 0);
  for (std::int64_t i = 0; i < n; ++i) start[i + 1] = start[i] + count[i];
  std::vector<std::pair<std::int32_t, double>> entries(start.back());
  std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
  for (std::int64_t i = 0; i < n; ++i) {
    for (int m = 0; m < k; ++m) {
      const std::int32_t j = g.index[i * k + m];
      const double v = p_cond[i * k + m];
      entries[fill[i]++] = {j, v};
      entries[fill[j]++] = {static_cast<std::int32_t>(i), v};
    }
  }
  const double scale = 1.0 / (2.0 * static_cast<double>(n));
  s.row_ptr.assign(n + 1, 0);
  s.col.reserve(entries.size());
  s.val.reserve(entries.size());
  for (std::int64_t i = 0; i < n; ++i) {
    auto first = entries.begin() + start[i];
    auto last = entries.begin() + start[i + 1];
    std::sort(first, last, [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto it = first; it != last;) {
      // At most two entries share a column (p(j|i) and p(i|j)); a + b is
      // commutative, so the unstable sort cannot change the sum.
      double v = it->second;
      const std::int32_t c = it->first;
      for (++it; it != last && it->first == c; ++it) v += it->second;
      s.col.push_back(c);
      s.val.push_back(v * scale);
    }
    s.row_ptr[i + 1] = static_cast<std::int64_t>(s.col.size());
  }
  return s;
}

// Attractive part of point i's gradient (without the factor 4):
// sum_j p_ij (y_i - y_j) / (1 + |y_i - y_j|^2), summed over kLanes
// independent lanes (vectorised gathers) combined in a fixed order.
inline std::array<double, 2> attractive_force(const SparseAffinity& p, const double* y, std::int64_t i) {
  constexpr int kLanes = 8;
  const double xi = y[2 * i], yi = y[2 * i + 1];
  double ax[kLanes] = {}, ay[kLanes] = {};
  const std::int64_t end = p.row_ptr[i + 1];
  std::int64_t e = p.row_ptr[i];
  for (; e + kLanes <= end; e += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const std::int64_t j = p.col[e + l];
      const double dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
      const double w = p.val[e + l] / (1.0 + dx * dx + dy * dy);
      ax[l] += w * dx;
      ay[l] += w * dy;
    }
  }
  for (int l = 0; e < end; ++e, ++l) {
    const std::int64_t j = p.col[e];
    const double dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
    const double w = p.val[e] / (1.0 + dx * dx + dy * dy);
    ax[l] += w * dx;
    ay[l] += w * dy;
  }
  return {((ax[0] + ax[1]) + (ax[2] + ax[3])) + ((ax[4] + ax[5]) + (ax[6] + ax[7])),
          ((ay[0] + ay[1]) + (ay[2] + ay[3])) + ((ay[4] + ay[5]) + (ay[6] + ay[7]))};
}

// sum_ij p_ij log p_ij: the constant part of KL(P || Q).
inline double negative_entropy(const SparseAffinity& p) {
  double s = 0;
  for (double v : p.val) s += v > 0 ? v * std::log(v) : 0.0;
  return s;
}

// KL(P || Q) with q_ij = (1 + |y_i - y_j|^2)^-1 / z, summed over the nonzero
// p_ij (exact given z): neg_entropy + sum p_ij log(1 + d_ij^2) + log z, as P
// sums to 1. Per-row partials are added in row order.
inline double kl_divergence(const SparseAffinity& p, double neg_entropy, const double* y, double z,
                            [[maybe_unused]] int threads) {
  std::vector<double> rows(p.n);
  cpu::parallel_dynamic(
      p.n,
      [&](std::int64_t i, int) {
        double acc = 0;
        for (std::int64_t e = p.row_ptr[i]; e < p.row_ptr[i + 1]; ++e) {
          const std::int64_t j = p.col[e];
          const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
          acc += p.val[e] * std::log1p(dx * dx + dy * dy);
        }
        rows[i] = acc;
      },
      256, threads);
  double kl = neg_entropy + std::log(z);
  for (double r : rows) kl += r;
  return kl;
}

}  // namespace dml::viz::detail
