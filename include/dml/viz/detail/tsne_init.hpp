// dml/viz/detail/tsne_init.hpp: initial t-SNE embeddings. The top-2
// principal component scores (exact eigen-decomposition of the covariance
// for moderate dimension, randomized subspace iteration above that) and the
// random Gaussian start.
#pragma once

// Eigen 3.4's AVX-512 bfloat16 code trips -Wunused-variable under -march=native.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#endif
#include <Eigen/Dense>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tsne_util.hpp"

namespace dml::viz::detail {

inline constexpr std::int64_t kPcaExactMaxDim = 1024;

// Column means of the n x dim row-major x, in double.
inline Eigen::VectorXd column_means(const float* x, std::int64_t n, std::int64_t dim) {
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(dim);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < dim; ++j) mean[j] += x[i * dim + j];
  return mean / static_cast<double>(n);
}

// out (n x c) = (x - mean) * m for a dim x c matrix m. Every output is a
// sequential dot product: deterministic whatever the thread count.
inline Eigen::MatrixXd centered_times(const float* x, std::int64_t n, std::int64_t dim, const Eigen::VectorXd& mean,
                                      const Eigen::MatrixXd& m, [[maybe_unused]] int threads) {
  const Eigen::VectorXd shift = m.transpose() * mean;
  Eigen::MatrixXd out(n, m.cols());
  DML_TSNE_OMP(parallel for num_threads(threads) schedule(static))
  for (std::int64_t i = 0; i < n; ++i) {
    Eigen::VectorXd row(dim);
    for (std::int64_t j = 0; j < dim; ++j) row[j] = x[i * dim + j];
    for (Eigen::Index c = 0; c < m.cols(); ++c) out(i, c) = row.dot(m.col(c)) - shift[c];
  }
  return out;
}

// out (dim x c) = (x - mean)^T * q for an n x c matrix q: per-chunk partials
// over fixed row ranges, added in chunk order.
inline Eigen::MatrixXd centered_transpose_times(const float* x, std::int64_t n, std::int64_t dim,
                                                const Eigen::VectorXd& mean, const Eigen::MatrixXd& q,
                                                [[maybe_unused]] int threads) {
  constexpr std::int64_t kChunk = 1024;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Eigen::MatrixXd> partial(chunks);
  DML_TSNE_OMP(parallel for num_threads(threads) schedule(dynamic, 1))
  for (std::int64_t c = 0; c < chunks; ++c) {
    Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(q.cols(), dim);  // transposed: columns contiguous
    Eigen::VectorXd qi(q.cols());
    for (std::int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      qi = q.row(i).transpose();
      for (std::int64_t j = 0; j < dim; ++j) acc.col(j) += (x[i * dim + j] - mean[j]) * qi;
    }
    partial[c] = std::move(acc);
  }
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(q.cols(), dim);
  for (const auto& p : partial) out += p;
  return out.transpose();
}

// Scores of the n x dim row-major x on its top two principal components,
// n x 2. Each component's sign makes its largest-magnitude score positive.
inline Eigen::MatrixXd pca_scores(const float* x, std::int64_t n, std::int64_t dim, std::uint64_t seed, int threads) {
  const Eigen::VectorXd mean = column_means(x, n, dim);
  Eigen::MatrixXd scores;
  if (dim <= kPcaExactMaxDim) {
    // Covariance by rank updates on fixed row chunks: Eigen's triangular
    // product is single-threaded, so the sum order never changes.
    constexpr std::int64_t kChunk = 256;
    Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(dim, dim);
    Eigen::MatrixXd block;
    for (std::int64_t r0 = 0; r0 < n; r0 += kChunk) {
      const std::int64_t rows = std::min(kChunk, n - r0);
      block.resize(dim, rows);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < dim; ++j) block(j, r) = x[(r0 + r) * dim + j] - mean[j];
      cov.selfadjointView<Eigen::Lower>().rankUpdate(block);
    }
    Eigen::MatrixXd top = Eigen::MatrixXd::Zero(dim, 2);
    eigen_serial([&] {
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov.selfadjointView<Eigen::Lower>());
      for (int c = 0; c < 2 && c < dim; ++c) top.col(c) = eig.eigenvectors().col(dim - 1 - c);
    });
    scores = centered_times(x, n, dim, mean, top, threads);
  } else {
    // Randomized subspace iteration (Halko et al.): 2 + 8 oversampled
    // directions, 7 power steps with re-orthonormalisation.
    constexpr int kWidth = 10, kPowerSteps = 7;
    const int width = static_cast<int>(std::min<std::int64_t>(kWidth, n));
    TsneRng rng(seed ^ 0x5ca1ab1e0ddba11ULL);
    Eigen::MatrixXd omega(dim, width);
    for (Eigen::Index c = 0; c < width; ++c)
      for (std::int64_t j = 0; j < dim; ++j) omega(j, c) = rng.normal();
    auto orthonormal = [&](const Eigen::MatrixXd& a) {
      Eigen::MatrixXd q(a.rows(), a.cols());
      eigen_serial([&] {
        Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
        q = qr.householderQ() * Eigen::MatrixXd::Identity(a.rows(), a.cols());
      });
      return q;
    };
    Eigen::MatrixXd q = orthonormal(centered_times(x, n, dim, mean, omega, threads));
    for (int step = 0; step < kPowerSteps; ++step) {
      const Eigen::MatrixXd z = orthonormal(centered_transpose_times(x, n, dim, mean, q, threads));
      q = orthonormal(centered_times(x, n, dim, mean, z, threads));
    }
    const Eigen::MatrixXd bt = centered_transpose_times(x, n, dim, mean, q, threads);  // B^T, dim x width
    eigen_serial([&] {
      // B = U S V^T and x_c ~ q B, so the scores x_c V are q U S.
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(bt.transpose() * bt);
      Eigen::MatrixXd top = Eigen::MatrixXd::Zero(width, 2);
      for (int c = 0; c < 2 && c < width; ++c)
        top.col(c) = eig.eigenvectors().col(width - 1 - c) * std::sqrt(std::max(0.0, eig.eigenvalues()[width - 1 - c]));
      scores = q * top;
    });
  }
  for (int c = 0; c < 2; ++c) {
    Eigen::Index arg = 0;
    scores.col(c).cwiseAbs().maxCoeff(&arg);
    if (scores(arg, c) < 0) scores.col(c) *= -1.0;
  }
  return scores;
}

}  // namespace dml::viz::detail
