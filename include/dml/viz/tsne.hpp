// dml/viz/tsne.hpp: Barnes-Hut t-SNE (van der Maaten 2014) on raw row-major
// float data: exact kNN affinities, PCA start, early exaggeration, momentum
// with delta-bar-delta gains, and a per-iteration quadtree for the
// repulsive forces. Seeded and bitwise reproducible for any thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../backend/cpu/parallel.hpp"
#include "../config.hpp"
#include "../eval/host_matrix.hpp"
#include "detail/tsne_affinity.hpp"
#include "detail/tsne_init.hpp"
#include "detail/tsne_quadtree.hpp"
#include "detail/tsne_util.hpp"
#include "svg.hpp"

namespace dml::viz {

struct TsneOptions {
  double perplexity = 30;          // effective neighbours; lowered (with a warning) when n is small
  int iterations = 1000;           // total gradient steps
  int exaggeration_iters = 250;    // steps with early exaggeration and momentum_start; then gains restart
  double early_exaggeration = 12;  // P multiplier during those steps
  double theta = 0.5;              // Barnes-Hut accuracy (0 = exact, O(n^2))
  double learning_rate = 0;        // 0 = auto: max(200, n / 12)
  double momentum_start = 0.5, momentum_final = 0.8;
  std::uint64_t seed = 0;
  bool pca_init = true;                                    // else N(0, 1e-4^2)
  int threads = 0;                                         // 0 = all OpenMP threads; at most one per 2048 points
  std::function<void(int iter, double kl)> progress = {};  // called every report_every steps and at the end
  int report_every = 50;
};

struct TsneResult {
  std::vector<float> y;  // n x 2 row-major
  std::int64_t n = 0;
  double kl_divergence = 0;  // KL(P || Q) of y
  int iterations = 0;
  std::vector<std::pair<int, double>> kl_history;  // (steps done, KL) at each report
  double effective_perplexity = 0;
  std::vector<std::string> warnings;

  // The map as a class-coloured scatter SVG (see save_scatter_svg): labels
  // holds one class per point. Throws on a size mismatch or an I/O failure.
  void save_svg(const std::string& path, std::span<const std::int64_t> labels, const ScatterOptions& opt = {}) const {
    save_scatter_svg(path, y.data(), n, labels, opt);
  }
};

namespace detail {

inline constexpr std::int64_t kTsneMinPoints = 4;
inline constexpr std::int64_t kTsnePointsPerThread = 2048;  // fewer points per thread: fewer threads
inline constexpr double kPcaInitStd = 1e-4;                 // std of the first coordinate, as sklearn
inline constexpr double kPcaInitJitter = 1e-8;              // seeded noise that breaks exact ties
inline constexpr double kGainMin = 0.01;

inline void check_tsne_options(const TsneOptions& o) {
  auto finite = [](double v) { return std::isfinite(v); };
  DML_CHECK(finite(o.perplexity) && o.perplexity >= 1, "tsne: perplexity must be >= 1, got ", o.perplexity);
  DML_CHECK(o.iterations >= 1, "tsne: iterations must be >= 1, got ", o.iterations);
  DML_CHECK(o.exaggeration_iters >= 0, "tsne: exaggeration_iters must be >= 0, got ", o.exaggeration_iters);
  DML_CHECK(finite(o.early_exaggeration) && o.early_exaggeration >= 1, "tsne: early_exaggeration must be >= 1, got ",
            o.early_exaggeration);
  DML_CHECK(finite(o.theta) && o.theta >= 0 && o.theta <= 1, "tsne: theta must be in [0, 1], got ", o.theta);
  DML_CHECK(finite(o.learning_rate) && o.learning_rate >= 0, "tsne: learning_rate must be >= 0 (0 = auto), got ",
            o.learning_rate);
  DML_CHECK(finite(o.momentum_start) && o.momentum_start >= 0 && o.momentum_start < 1,
            "tsne: momentum_start must be in [0, 1), got ", o.momentum_start);
  DML_CHECK(finite(o.momentum_final) && o.momentum_final >= 0 && o.momentum_final < 1,
            "tsne: momentum_final must be in [0, 1), got ", o.momentum_final);
  DML_CHECK(o.report_every >= 1, "tsne: report_every must be >= 1, got ", o.report_every);
  DML_CHECK(o.threads >= 0, "tsne: threads must be >= 0, got ", o.threads);
}

inline void check_tsne_input(const float* x, std::int64_t n, std::int64_t dim) {
  DML_CHECK(x != nullptr, "tsne: x is null");
  DML_CHECK(n >= kTsneMinPoints, "tsne: need at least ", kTsneMinPoints, " points, got n = ", n);
  DML_CHECK(n <= std::numeric_limits<std::int32_t>::max() / 2, "tsne: too many points, n = ", n);
  DML_CHECK(dim >= 1, "tsne: dim must be >= 1, got ", dim);
  DML_CHECK(dim <= std::numeric_limits<std::int64_t>::max() / n, "tsne: n * dim overflows (", n, " x ", dim, ")");
  for (std::int64_t i = 0; i < n * dim; ++i)
    DML_CHECK(std::isfinite(x[i]), "tsne: x[", i / dim, "][", i % dim, "] = ", x[i], " is not finite");
}

// The n x 2 starting positions (double, row-major).
inline std::vector<double> tsne_initial(const float* x, std::int64_t n, std::int64_t dim, const TsneOptions& o,
                                        int threads, std::vector<std::string>& warnings) {
  std::vector<double> y(static_cast<std::size_t>(2 * n));
  TsneRng rng(o.seed);
  if (o.pca_init) {
    const DenseMatrix s = pca_scores(x, n, dim, o.seed, threads);
    double mean = 0, ss = 0;
    for (std::int64_t i = 0; i < n; ++i) mean += s(i, 0);
    mean /= static_cast<double>(n);
    for (std::int64_t i = 0; i < n; ++i) ss += (s(i, 0) - mean) * (s(i, 0) - mean);
    const double sd = std::sqrt(ss / static_cast<double>(n));
    if (sd > 0 && std::isfinite(sd)) {
      const double scale = kPcaInitStd / sd;
      for (std::int64_t i = 0; i < n; ++i)
        for (int c = 0; c < 2; ++c) y[2 * i + c] = s(i, c) * scale + kPcaInitJitter * rng.normal();
      return y;
    }
    warnings.push_back("tsne: PCA initialisation is degenerate (all points identical?); used a random start");
  }
  for (auto& v : y) v = kPcaInitStd * rng.normal();
  return y;
}

}  // namespace detail

// Embeds the n x dim row-major points x in 2-D. Returns the embedding and
// diagnostics; warnings note a lowered perplexity or unconverged bandwidths.
// Throws dml::Error for a null x, n < 4, dim < 1, a NaN/Inf value, bad
// options, or a run that diverges to non-finite positions.
inline TsneResult tsne(const float* x, std::int64_t n, std::int64_t dim, const TsneOptions& options = {}) {
  detail::check_tsne_options(options);
  detail::check_tsne_input(x, n, dim);
  // Short steps gain nothing from a second thread but pay a join per step,
  // which stalls badly on a busy host. The output does not depend on it.
  const int threads = static_cast<int>(std::min<std::int64_t>(
      detail::tsne_threads(options.threads), std::max<std::int64_t>(1, n / detail::kTsnePointsPerThread)));

  TsneResult result;
  result.n = n;
  double perplexity = options.perplexity;
  if (3.0 * perplexity > static_cast<double>(n - 1)) {
    perplexity = static_cast<double>(n - 1) / 3.0;
    result.warnings.push_back(::dml::detail::concat("tsne: perplexity ", options.perplexity,
                                                    " needs 3 * perplexity <= n - 1 = ", n - 1,
                                                    " neighbours; lowered to ", perplexity));
  }
  result.effective_perplexity = perplexity;
  const int k = static_cast<int>(std::min<double>(static_cast<double>(n - 1), std::floor(3.0 * perplexity + 1e-9)));

  detail::SparseAffinity p;
  {
    const detail::KnnGraph knn = detail::exact_knn(x, n, dim, k, threads);
    std::vector<double> p_cond;
    const std::int64_t failed = detail::conditional_affinities(knn, perplexity, threads, p_cond);
    if (failed > 0)
      result.warnings.push_back(::dml::detail::concat("tsne: bandwidth search did not reach perplexity ", perplexity,
                                                      " for ", failed, " of ", n, " points (duplicate points?)"));
    p = detail::symmetrize(knn, p_cond);
  }

  const double neg_entropy = detail::negative_entropy(p);
  std::vector<double> y = detail::tsne_initial(x, n, dim, options, threads, result.warnings);
  const double rate =
      options.learning_rate > 0 ? options.learning_rate : std::max(200.0, static_cast<double>(n) / 12.0);
  std::vector<double> y_next(2 * n), rep(2 * n), sumw(n), update(2 * n, 0.0), gains(2 * n, 1.0);
  detail::QuadTree tree;

  // Repulsion and Z for the current y; Z is added in point order.
  auto repulsion = [&](int step) {
    tree.build(y.data(), n);
    tree.repulsion(options.theta, threads, rep.data(), sumw.data());
    double z = 0;
    for (double w : sumw) z += w;
    DML_CHECK(std::isfinite(z), "tsne: diverged to non-finite positions after ", step, " steps (learning_rate ", rate,
              " too large?)");
    return std::max(z, std::numeric_limits<double>::min());
  };
  auto report = [&](int step, double z) {
    const double kl = detail::kl_divergence(p, neg_entropy, y.data(), z, threads);
    result.kl_history.emplace_back(step, kl);
    if (options.progress) options.progress(step, kl);
    return kl;
  };

  for (int it = 0; it < options.iterations; ++it) {
    const bool explore = it < options.exaggeration_iters;
    const double exaggeration = explore ? options.early_exaggeration : 1.0;
    const double momentum = explore ? options.momentum_start : options.momentum_final;
    if (it == options.exaggeration_iters && it > 0) {
      // A fresh start for the second phase, as sklearn: the gains and the
      // momentum built up under exaggeration would overshoot without it.
      std::fill(update.begin(), update.end(), 0.0);
      std::fill(gains.begin(), gains.end(), 1.0);
    }
    const double z = repulsion(it);
    if (it > 0 && it % options.report_every == 0) report(it, z);
    // One parallel pass per step: attraction, gradient, gains and momentum
    // for each point, reading y and writing y_next (two joins per step).
    cpu::parallel_dynamic(
        n,
        [&](std::int64_t i, int) {
          const std::array<double, 2> attr = detail::attractive_force(p, y.data(), i);
          for (int d = 0; d < 2; ++d) {
            const std::int64_t c = 2 * i + d;
            // Gradient without the constant 4 (the bhtsne/openTSNE convention
            // that the auto learning rate max(200, n/12) assumes).
            const double grad = exaggeration * attr[d] - rep[c] / z;
            gains[c] = update[c] * grad < 0.0 ? gains[c] + 0.2 : gains[c] * 0.8;
            gains[c] = std::max(gains[c], detail::kGainMin);
            update[c] = momentum * update[c] - rate * gains[c] * grad;
            y_next[c] = y[c] + update[c];
          }
        },
        256, threads);
    y.swap(y_next);
  }
  result.kl_divergence = report(options.iterations, repulsion(options.iterations));
  result.iterations = options.iterations;
  result.y.assign(y.begin(), y.end());
  return result;
}

// As above for a vector holding n * dim values; throws dml::Error when its
// size differs.
inline TsneResult tsne(const std::vector<float>& x, std::int64_t n, std::int64_t dim, const TsneOptions& options = {}) {
  DML_CHECK(n >= 0 && dim >= 0 && (dim == 0 || n <= std::numeric_limits<std::int64_t>::max() / dim) &&
                static_cast<std::int64_t>(x.size()) == n * dim,
            "tsne: x has ", x.size(), " values, expected n * dim = ", n, " * ", dim);
  return tsne(x.data(), n, dim, options);
}

// As above for the rows of an [N, dim] tensor (float or double, any device:
// a Cuda tensor is copied to the host), e.g. viz::tsne(eval::embed(body, ds)).
template <class T, class D>
TsneResult tsne(const Tensor<T, D>& x, const TsneOptions& options = {}) {
  const eval::HostMatrix m = eval::host_matrix(x, "tsne");
  return tsne(m.data(), m.rows, m.cols, options);
}

}  // namespace dml::viz
