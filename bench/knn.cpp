// bench/knn.cpp: exact 1-NN of 10k queries x 10k references x 512-d (L2).
//
// Validates a sample of rows against a naive double-precision loop, then times
// the best of a few runs and prints `knn_10k_seconds: <t> s`. Compare with
// bench/knn_numpy.py (docs/evaluation.md has the numbers and the command).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <dml/eval/knn.hpp>

int main(int argc, char** argv) {
  using namespace dml::eval;
  const std::int64_t n = 10000, dim = 512;
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 3;
  dml::eval::detail::SplitMix64 rng(42);
  std::vector<float> q(n * dim), r(n * dim);
  for (auto& v : q) v = static_cast<float>(rng.uniform() * 2.0 - 1.0);
  for (auto& v : r) v = static_cast<float>(rng.uniform() * 2.0 - 1.0);

  KnnResult res = knn(q.data(), n, r.data(), n, dim, 1, Metric::L2, false);
  // Validate 64 rows: the returned neighbour must be within float noise of the true minimum.
  int bad = 0;
  for (std::int64_t s = 0; s < 64; ++s) {
    const std::int64_t i = (s * 7919) % n;
    double best = 1e300;
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t t = 0; t < dim; ++t) {
        double d = double(q[i * dim + t]) - double(r[j * dim + t]);
        acc += d * d;
      }
      best = std::min(best, acc);
    }
    const std::int64_t got = res.indices[i];
    double acc = 0;
    for (std::int64_t t = 0; t < dim; ++t) {
      double d = double(q[i * dim + t]) - double(r[got * dim + t]);
      acc += d * d;
    }
    if (std::sqrt(acc) > std::sqrt(best) + 1e-3 || std::abs(res.distances[i] - std::sqrt(acc)) > 1e-2) ++bad;
  }
  if (bad) {
    std::printf("knn_validation_failures: %d rows\n", bad);
    return 1;
  }

  double best_s = 1e300;
  for (int rep = 0; rep < repeats; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    KnnResult again = knn(q.data(), n, r.data(), n, dim, 1, Metric::L2, false);
    auto t1 = std::chrono::steady_clock::now();
    best_s = std::min(best_s, std::chrono::duration<double>(t1 - t0).count());
    if (again.indices != res.indices) {
      std::printf("knn_nondeterministic: 1\n");
      return 1;
    }
  }
  std::printf("knn_10k_seconds: %.3f s\n", best_s);
  return 0;
}
