// dml/viz/detail/tsne_init.hpp: initial t-SNE embeddings. The top-2
// principal component scores (exact eigen-decomposition of the covariance
// for moderate dimension, randomized subspace iteration above that) and the
// random Gaussian start.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../../backend/cpu/linalg.hpp"
#include "../../backend/cpu/parallel.hpp"
#include "tsne_util.hpp"

namespace dml::viz::detail {

inline constexpr std::int64_t kPcaExactMaxDim = 1024;

// A dense column-major double matrix (Eigen's default layout, so tests can
// map it), just enough for the PCA start.
struct DenseMatrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;
  DenseMatrix() = default;
  DenseMatrix(std::int64_t r, std::int64_t c) : rows(r), cols(c), v(static_cast<std::size_t>(r * c), 0.0) {}
  double& operator()(std::int64_t i, std::int64_t j) { return v[static_cast<std::size_t>(j * rows + i)]; }
  double operator()(std::int64_t i, std::int64_t j) const { return v[static_cast<std::size_t>(j * rows + i)]; }
  double* data() { return v.data(); }
  const double* data() const { return v.data(); }
  const double* col(std::int64_t j) const { return v.data() + j * rows; }
};

// Column means of the n x dim row-major x, in double.
inline std::vector<double> column_means(const float* x, std::int64_t n, std::int64_t dim) {
  std::vector<double> mean(static_cast<std::size_t>(dim), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < dim; ++j) mean[j] += x[i * dim + j];
  for (auto& m : mean) m /= static_cast<double>(n);
  return mean;
}

// out (n x c) = (x - mean) * m for a dim x c matrix m. Every output is a
// sequential dot product: deterministic whatever the thread count.
inline DenseMatrix centered_times(const float* x, std::int64_t n, std::int64_t dim, const std::vector<double>& mean,
                                  const DenseMatrix& m, [[maybe_unused]] int threads) {
  std::vector<double> shift(static_cast<std::size_t>(m.cols), 0.0);
  for (std::int64_t c = 0; c < m.cols; ++c)
    for (std::int64_t j = 0; j < dim; ++j) shift[c] += m(j, c) * mean[j];
  DenseMatrix out(n, m.cols);
  cpu::parallel_dynamic(
      n,
      [&](std::int64_t i, int) {
        for (std::int64_t c = 0; c < m.cols; ++c) {
          const double* mc = m.col(c);
          double acc = 0;
          for (std::int64_t j = 0; j < dim; ++j) acc += static_cast<double>(x[i * dim + j]) * mc[j];
          out(i, c) = acc - shift[c];
        }
      },
      256, threads);
  return out;
}

// out (dim x c) = (x - mean)^T * q for an n x c matrix q: per-chunk partials
// over fixed row ranges, added in chunk order.
inline DenseMatrix centered_transpose_times(const float* x, std::int64_t n, std::int64_t dim,
                                            const std::vector<double>& mean, const DenseMatrix& q,
                                            [[maybe_unused]] int threads) {
  constexpr std::int64_t kChunk = 1024;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk, w = q.cols;
  std::vector<std::vector<double>> partial(static_cast<std::size_t>(chunks));
  cpu::parallel_dynamic(
      chunks,
      [&](std::int64_t c, int) {
        std::vector<double> acc(static_cast<std::size_t>(w * dim), 0.0);  // w x dim, column j at acc[j * w]
        std::vector<double> qi(static_cast<std::size_t>(w));
        for (std::int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
          for (std::int64_t t = 0; t < w; ++t) qi[t] = q(i, t);
          for (std::int64_t j = 0; j < dim; ++j) {
            const double xv = x[i * dim + j] - mean[j];
            for (std::int64_t t = 0; t < w; ++t) acc[j * w + t] += xv * qi[t];
          }
        }
        partial[c] = std::move(acc);
      },
      1, threads);
  DenseMatrix out(dim, w);
  for (const auto& p : partial)
    for (std::int64_t j = 0; j < dim; ++j)
      for (std::int64_t t = 0; t < w; ++t) out(j, t) += p[j * w + t];
  return out;
}

// q's columns made orthonormal (thin QR).
inline DenseMatrix orthonormal(const DenseMatrix& a) {
  DenseMatrix q(a.rows, a.cols);
  cpu::Linalg::orthonormal_columns(a.data(), a.rows, a.cols, q.data());
  return q;
}

// Scores of the n x dim row-major x on its top two principal components,
// n x 2. Each component's sign makes its largest-magnitude score positive.
inline DenseMatrix pca_scores(const float* x, std::int64_t n, std::int64_t dim, std::uint64_t seed, int threads) {
  const std::vector<double> mean = column_means(x, n, dim);
  DenseMatrix scores;
  if (dim <= kPcaExactMaxDim) {
    // Covariance by rank updates on fixed row chunks: Eigen's triangular
    // product is single-threaded, so the sum order never changes.
    constexpr std::int64_t kChunk = 256;
    DenseMatrix cov(dim, dim);
    std::vector<double> block;
    for (std::int64_t r0 = 0; r0 < n; r0 += kChunk) {
      const std::int64_t rows = std::min(kChunk, n - r0);
      block.resize(static_cast<std::size_t>(dim * rows));  // dim x rows, column-major
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < dim; ++j) block[r * dim + j] = x[(r0 + r) * dim + j] - mean[j];
      cpu::Linalg::syrk_lower(block.data(), dim, rows, cov.data());
    }
    std::vector<double> values(static_cast<std::size_t>(dim));
    DenseMatrix vectors(dim, dim), top(dim, 2);
    cpu::Linalg::symmetric_eigen(cov.data(), dim, values.data(), vectors.data());
    for (std::int64_t c = 0; c < 2 && c < dim; ++c)
      for (std::int64_t j = 0; j < dim; ++j) top(j, c) = vectors(j, dim - 1 - c);
    scores = centered_times(x, n, dim, mean, top, threads);
  } else {
    // Randomized subspace iteration (Halko et al.): 2 + 8 oversampled
    // directions, 7 power steps with re-orthonormalisation.
    constexpr int kWidth = 10, kPowerSteps = 7;
    const int width = static_cast<int>(std::min<std::int64_t>(kWidth, n));
    TsneRng rng(seed ^ 0x5ca1ab1e0ddba11ULL);
    DenseMatrix omega(dim, width);
    for (std::int64_t c = 0; c < width; ++c)
      for (std::int64_t j = 0; j < dim; ++j) omega(j, c) = rng.normal();
    DenseMatrix q = orthonormal(centered_times(x, n, dim, mean, omega, threads));
    for (int step = 0; step < kPowerSteps; ++step) {
      const DenseMatrix z = orthonormal(centered_transpose_times(x, n, dim, mean, q, threads));
      q = orthonormal(centered_times(x, n, dim, mean, z, threads));
    }
    const DenseMatrix bt = centered_transpose_times(x, n, dim, mean, q, threads);  // B^T, dim x width
    // B = U S V^T and x_c ~ q B, so the scores x_c V are q U S.
    DenseMatrix gram(width, width);  // B B^T
    for (std::int64_t a = 0; a < width; ++a)
      for (std::int64_t b = 0; b < width; ++b) {
        double acc = 0;
        for (std::int64_t j = 0; j < dim; ++j) acc += bt(j, a) * bt(j, b);
        gram(a, b) = acc;
      }
    std::vector<double> values(static_cast<std::size_t>(width));
    DenseMatrix vectors(width, width);
    cpu::Linalg::symmetric_eigen(gram.data(), width, values.data(), vectors.data());
    DenseMatrix top(width, 2);
    for (std::int64_t c = 0; c < 2 && c < width; ++c) {
      const double sv = std::sqrt(std::max(0.0, values[width - 1 - c]));
      for (std::int64_t a = 0; a < width; ++a) top(a, c) = vectors(a, width - 1 - c) * sv;
    }
    scores = DenseMatrix(n, 2);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t c = 0; c < 2; ++c) {
        double acc = 0;
        for (std::int64_t a = 0; a < width; ++a) acc += q(i, a) * top(a, c);
        scores(i, c) = acc;
      }
  }
  for (int c = 0; c < 2; ++c) {
    std::int64_t arg = 0;
    for (std::int64_t i = 1; i < n; ++i)
      if (std::abs(scores(i, c)) > std::abs(scores(arg, c))) arg = i;
    if (scores(arg, c) < 0)
      for (std::int64_t i = 0; i < n; ++i) scores(i, c) = -scores(i, c);
  }
  return scores;
}

}  // namespace dml::viz::detail
