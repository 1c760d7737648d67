#include <doctest/doctest.h>

#include <Eigen/Dense>  // the reference SVD; dml itself keeps Eigen in backend/cpu
#include <algorithm>
#include <cmath>
#include <cstring>
#include <dml/viz/tsne.hpp>
#include <limits>
#include <map>
#include <tuple>
#include <vector>

using dml::viz::TsneOptions;
using dml::viz::TsneResult;

namespace {

struct Blobs {
  std::vector<float> x;
  std::vector<int> labels;
  std::int64_t n = 0, dim = 0;
};

// `clusters` Gaussian blobs of unit variance whose centres are drawn with
// standard deviation `spread` per coordinate.
Blobs make_blobs(int clusters, int per_cluster, int dim, double spread, std::uint64_t seed) {
  dml::viz::detail::TsneRng rng(seed);
  std::vector<double> centres(static_cast<std::size_t>(clusters * dim));
  for (auto& c : centres) c = spread * rng.normal();
  Blobs b;
  b.n = std::int64_t{clusters} * per_cluster;
  b.dim = dim;
  for (int i = 0; i < b.n; ++i) {
    const int c = i % clusters;
    b.labels.push_back(c);
    for (int j = 0; j < dim; ++j) b.x.push_back(static_cast<float>(centres[c * dim + j] + rng.normal()));
  }
  return b;
}

// Leave-one-out k-NN accuracy of the labels in the n x 2 embedding y.
double knn_accuracy(const std::vector<float>& y, const std::vector<int>& labels, int k) {
  const auto n = static_cast<int>(labels.size());
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<std::pair<double, int>> d;
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      d.emplace_back(dx * dx + dy * dy, j);
    }
    std::partial_sort(d.begin(), d.begin() + k, d.end());
    std::map<int, int> votes;
    for (int m = 0; m < k; ++m) ++votes[labels[d[m].second]];
    const auto best =
        std::max_element(votes.begin(), votes.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    correct += best->first == labels[i];
  }
  return static_cast<double>(correct) / n;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("tsne: a fixed seed gives bitwise identical output; another seed differs") {
  const Blobs b = make_blobs(3, 50, 10, 3.0, 7);
  TsneOptions o;
  o.iterations = 300;
  o.threads = 2;
  for (bool pca : {true, false}) {
    CAPTURE(pca);
    o.pca_init = pca;
    o.seed = 42;
    const TsneResult r1 = dml::viz::tsne(b.x, b.n, b.dim, o);
    const TsneResult r2 = dml::viz::tsne(b.x, b.n, b.dim, o);
    CHECK(bitwise_equal(r1.y, r2.y));
    CHECK(r1.kl_divergence == r2.kl_divergence);
    CHECK(r1.kl_history == r2.kl_history);

    o.seed = 43;
    CHECK_FALSE(bitwise_equal(dml::viz::tsne(b.x, b.n, b.dim, o).y, r1.y));
  }
}

TEST_CASE("tsne: the output does not depend on the thread count") {
  // Large enough for two threads (one per 2048 points).
  const Blobs b = make_blobs(6, 700, 8, 3.0, 23);
  TsneOptions o;
  o.iterations = 40;
  o.exaggeration_iters = 20;
  o.report_every = 20;
  o.threads = 1;
  const TsneResult r1 = dml::viz::tsne(b.x, b.n, b.dim, o);
  o.threads = 2;
  const TsneResult r2 = dml::viz::tsne(b.x, b.n, b.dim, o);
  CHECK(bitwise_equal(r1.y, r2.y));
  CHECK(r1.kl_history == r2.kl_history);
}

TEST_CASE("tsne: well-separated Gaussian blobs stay separated, and KL falls after exaggeration") {
  const Blobs b = make_blobs(5, 60, 20, 2.0, 1);
  std::vector<std::pair<int, double>> seen;
  TsneOptions o;
  o.progress = [&](int step, double kl) { seen.emplace_back(step, kl); };
  const TsneResult r = dml::viz::tsne(b.x, b.n, b.dim, o);

  REQUIRE(r.y.size() == static_cast<std::size_t>(2 * b.n));
  CHECK(r.n == b.n);
  CHECK(r.iterations == 1000);
  CHECK(r.effective_perplexity == 30);
  CHECK(r.warnings.empty());
  CHECK(std::all_of(r.y.begin(), r.y.end(), [](float v) { return std::isfinite(v); }));
  CHECK(knn_accuracy(r.y, b.labels, 5) > 0.95);
  CHECK(knn_accuracy(r.y, b.labels, 1) > 0.95);

  // Reports every 50 steps; the last one is the returned KL.
  REQUIRE(r.kl_history.size() == 20);
  CHECK(r.kl_history.front().first == 50);
  CHECK(r.kl_history.back() == std::pair<int, double>{1000, r.kl_divergence});
  CHECK(seen == r.kl_history);
  const auto after = std::find_if(r.kl_history.begin(), r.kl_history.end(),
                                  [&](const auto& h) { return h.first > o.exaggeration_iters; });
  REQUIRE(after != r.kl_history.end());
  CHECK(r.kl_divergence < after->second);
  CHECK(r.kl_divergence > 0);
}

TEST_CASE("tsne: reports fall on multiples of report_every and at the end") {
  const Blobs b = make_blobs(2, 20, 5, 3.0, 3);
  TsneOptions o;
  o.iterations = 250;
  o.report_every = 100;
  const TsneResult r = dml::viz::tsne(b.x, b.n, b.dim, o);
  REQUIRE(r.kl_history.size() == 3);
  CHECK(r.kl_history[0].first == 100);
  CHECK(r.kl_history[1].first == 200);
  CHECK(r.kl_history[2].first == 250);
  CHECK(r.iterations == 250);
}

TEST_CASE("tsne: small n lowers the perplexity with a warning") {
  const Blobs b = make_blobs(2, 10, 4, 3.0, 5);
  const TsneResult r = dml::viz::tsne(b.x, b.n, b.dim);
  CHECK(r.effective_perplexity == doctest::Approx(19.0 / 3.0));
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].find("perplexity") != std::string::npos);
  CHECK(std::all_of(r.y.begin(), r.y.end(), [](float v) { return std::isfinite(v); }));

  const std::vector<float> four{0, 0, 1, 0, 0, 1, 1, 1};  // the smallest accepted input
  const TsneResult tiny = dml::viz::tsne(four, 4, 2);
  CHECK(tiny.effective_perplexity == doctest::Approx(1.0));
  CHECK(tiny.y.size() == 8);
  CHECK(std::isfinite(tiny.kl_divergence));
}

TEST_CASE("tsne: duplicate and degenerate inputs give finite embeddings") {
  std::vector<float> x;
  for (int i = 0; i < 40; ++i)
    for (int copy = 0; copy < 2; ++copy) x.insert(x.end(), {static_cast<float>(i % 4), static_cast<float>(i / 4), 0});
  const TsneResult r = dml::viz::tsne(x, 80, 3, {.iterations = 300});
  CHECK(std::all_of(r.y.begin(), r.y.end(), [](float v) { return std::isfinite(v); }));
  CHECK(r.y[0] != r.y[2]);  // seeded jitter separates exact duplicates

  const std::vector<float> same(30 * 3, 1.5f);  // every point identical
  const TsneResult s = dml::viz::tsne(same, 30, 3, {.iterations = 100});
  CHECK(std::all_of(s.y.begin(), s.y.end(), [](float v) { return std::isfinite(v); }));
  CHECK_FALSE(s.warnings.empty());
}

TEST_CASE("tsne: bad input and bad options throw dml::Error") {
  const Blobs b = make_blobs(2, 10, 3, 3.0, 9);
  CHECK_THROWS_AS(dml::viz::tsne(nullptr, 10, 3), dml::Error);
  CHECK_THROWS_AS(dml::viz::tsne(b.x.data(), 3, 3), dml::Error);
  CHECK_THROWS_AS(dml::viz::tsne(b.x.data(), b.n, 0), dml::Error);
  CHECK_THROWS_AS(dml::viz::tsne(b.x, b.n, b.dim + 1), dml::Error);
  CHECK_THROWS_AS(dml::viz::tsne(b.x, b.n - 1, b.dim), dml::Error);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    auto x = b.x;
    x[17] = bad;
    CHECK_THROWS_WITH_AS(dml::viz::tsne(x, b.n, b.dim), doctest::Contains("x[5][2]"), dml::Error);
  }

  auto throws = [&](TsneOptions o) { CHECK_THROWS_AS(dml::viz::tsne(b.x, b.n, b.dim, o), dml::Error); };
  throws({.perplexity = 0.5});
  throws({.perplexity = std::numeric_limits<double>::quiet_NaN()});
  throws({.iterations = 0});
  throws({.exaggeration_iters = -1});
  throws({.early_exaggeration = 0.5});
  throws({.theta = -0.1});
  throws({.theta = 1.5});
  throws({.learning_rate = -1});
  throws({.learning_rate = std::numeric_limits<double>::infinity()});
  throws({.momentum_start = 1.0});
  throws({.momentum_final = -0.1});
  throws({.threads = -1});
  throws({.report_every = 0});
  CHECK_THROWS_WITH_AS(dml::viz::tsne(b.x, b.n, b.dim, {.iterations = 50, .learning_rate = 1e300}),
                       doctest::Contains("diverged"), dml::Error);
}

TEST_CASE("tsne: Barnes-Hut repulsion matches the exact sums") {
  dml::viz::detail::TsneRng rng(11);
  const int n = 1500;
  std::vector<double> y(2 * n);
  for (int i = 0; i < n; ++i) {
    const int c = i % 6;
    y[2 * i] = 2.0 * rng.normal() + 25.0 * std::cos(c);
    y[2 * i + 1] = 2.0 * rng.normal() + 25.0 * std::sin(c);
  }
  std::vector<double> exact(2 * n, 0.0), exact_w(n, 0.0);
  double exact_z = 0;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      const double w = 1.0 / (1.0 + dx * dx + dy * dy);
      exact_w[i] += w;
      exact[2 * i] += w * w * dx;
      exact[2 * i + 1] += w * w * dy;
    }
    exact_z += exact_w[i];
  }
  for (auto [theta, force_tol, z_tol] : {std::tuple{0.0, 1e-5, 1e-6}, std::tuple{0.5, 2e-2, 1e-2}}) {
    CAPTURE(theta);
    dml::viz::detail::QuadTree tree;
    tree.build(y.data(), n);
    std::vector<double> rep(2 * n), w(n);
    tree.repulsion(theta, 2, rep.data(), w.data());
    double err = 0, norm = 0, z = 0;
    for (int c = 0; c < 2 * n; ++c) {
      err += (rep[c] - exact[c]) * (rep[c] - exact[c]);
      norm += exact[c] * exact[c];
    }
    for (double v : w) z += v;
    CHECK(std::sqrt(err / norm) < force_tol);
    CHECK(std::abs(z - exact_z) / exact_z < z_tol);
  }
}

TEST_CASE("tsne: affinities use the exact neighbours, reach the perplexity and are symmetric") {
  const Blobs b = make_blobs(4, 50, 8, 1.5, 13);
  const int k = 45;
  const auto g = dml::viz::detail::exact_knn(b.x.data(), b.n, b.dim, k, 2);
  for (std::int64_t i = 0; i < b.n; ++i) {
    std::vector<std::pair<double, int>> d;
    for (std::int64_t j = 0; j < b.n; ++j)
      if (j != i) d.emplace_back(dml::viz::detail::squared_distance(&b.x[i * b.dim], &b.x[j * b.dim], b.dim), j);
    std::sort(d.begin(), d.end());
    for (int m = 0; m < k; ++m) {
      // Same distance at every rank: the same neighbours up to exact ties.
      CHECK(g.dist2[i * k + m] == doctest::Approx(d[m].first).epsilon(1e-5));
    }
  }

  std::vector<double> p_cond;
  CHECK(dml::viz::detail::conditional_affinities(g, 15.0, 2, p_cond) == 0);
  for (std::int64_t i = 0; i < b.n; ++i) {
    double sum = 0, entropy = 0;
    for (int m = 0; m < k; ++m) {
      const double p = p_cond[i * k + m];
      sum += p;
      entropy -= p > 0 ? p * std::log(p) : 0.0;
    }
    CHECK(sum == doctest::Approx(1.0));
    CHECK(entropy == doctest::Approx(std::log(15.0)).epsilon(1e-4));
  }

  const auto p = dml::viz::detail::symmetrize(g, p_cond);
  std::map<std::pair<int, int>, double> entries;
  double total = 0;
  for (std::int64_t i = 0; i < p.n; ++i)
    for (std::int64_t e = p.row_ptr[i]; e < p.row_ptr[i + 1]; ++e) {
      if (e > p.row_ptr[i]) CHECK(p.col[e - 1] < p.col[e]);
      entries[{static_cast<int>(i), p.col[e]}] = p.val[e];
      total += p.val[e];
    }
  CHECK(total == doctest::Approx(1.0));
  for (const auto& [ij, v] : entries) {
    const auto t = entries.find({ij.second, ij.first});
    REQUIRE(t != entries.end());
    CHECK(t->second == v);
  }
}

TEST_CASE("tsne: the kNN GEMM rounds the same for every thread count") {
  // Large enough that the distance engine splits the work across threads.
  const Blobs b = make_blobs(3, 200, 512, 0.3, 19);
  const auto g1 = dml::viz::detail::exact_knn(b.x.data(), b.n, b.dim, 20, 1);
#ifdef _OPENMP
  const int before = omp_get_max_threads();
  omp_set_num_threads(before > 1 ? 1 : 2);  // the engine runs on all OpenMP threads
  const auto g2 = dml::viz::detail::exact_knn(b.x.data(), b.n, b.dim, 20, 2);
  omp_set_num_threads(before);
#else
  const auto g2 = dml::viz::detail::exact_knn(b.x.data(), b.n, b.dim, 20, 2);
#endif
  CHECK(g1.index == g2.index);
  CHECK(g1.dist2 == g2.dist2);
}

TEST_CASE("tsne: PCA start spans the leading principal components") {
  for (const int dim : {12, 1100}) {  // exact eigen-decomposition, then randomized subspace iteration
    CAPTURE(dim);
    dml::viz::detail::TsneRng rng(17);
    const int n = 120;
    // Two strong directions (variances 100 and 25) plus unit noise.
    Eigen::VectorXd u(dim), v(dim);
    for (int j = 0; j < dim; ++j) u[j] = rng.normal();
    for (int j = 0; j < dim; ++j) v[j] = rng.normal();
    u.normalize();
    v = (v - v.dot(u) * u).normalized();
    std::vector<float> x(static_cast<std::size_t>(n) * dim);
    for (int i = 0; i < n; ++i) {
      const double a = 10 * rng.normal(), c = 5 * rng.normal();
      for (int j = 0; j < dim; ++j) x[i * dim + j] = static_cast<float>(3.0 + a * u[j] + c * v[j] + 0.3 * rng.normal());
    }
    const dml::viz::detail::DenseMatrix scores = dml::viz::detail::pca_scores(x.data(), n, dim, 0, 2);
    REQUIRE(scores.rows == n);
    REQUIRE(scores.cols == 2);
    const Eigen::Map<const Eigen::MatrixXd> s(scores.data(), n, 2);
    Eigen::MatrixXd xc =
        Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(x.data(), n, dim)
            .cast<double>();
    xc.rowwise() -= xc.colwise().mean();
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(xc, Eigen::ComputeThinU);
    for (int c = 0; c < 2; ++c) {
      const Eigen::VectorXd ref = svd.matrixU().col(c) * svd.singularValues()[c];
      CHECK(std::abs(s.col(c).dot(ref)) / (s.col(c).norm() * ref.norm()) > 0.9999);
      CHECK(s.col(c).norm() == doctest::Approx(ref.norm()).epsilon(1e-3));
    }
  }
}
