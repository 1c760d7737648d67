// Tests for dml/eval/knn.hpp: blocked GEMM k-NN against a naive O(N^2) loop.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <dml/eval/knn.hpp>

using dml::eval::KnnResult;
using dml::eval::Metric;

namespace {

struct NaiveHit {
  double dist;
  std::int64_t index;
};

// Full sorted neighbour list of query i, distances in double.
std::vector<NaiveHit> naive_row(const std::vector<float>& q, std::int64_t i, const std::vector<float>& r,
                                std::int64_t nr, std::int64_t dim, Metric metric, bool exclude_self) {
  std::vector<NaiveHit> hits;
  for (std::int64_t j = 0; j < nr; ++j) {
    if (exclude_self && j == i) continue;
    double dot = 0, qq = 0, rr = 0, d2 = 0;
    for (std::int64_t t = 0; t < dim; ++t) {
      const double a = q[i * dim + t], b = r[j * dim + t];
      dot += a * b, qq += a * a, rr += b * b, d2 += (a - b) * (a - b);
    }
    const double d = metric == Metric::L2 ? std::sqrt(d2) : std::max(0.0, 1.0 - dot / std::sqrt(qq * rr));
    hits.push_back({d, j});
  }
  std::sort(hits.begin(), hits.end(),
            [](const NaiveHit& a, const NaiveHit& b) { return a.dist < b.dist || (a.dist == b.dist && a.index < b.index); });
  return hits;
}

std::vector<float> integer_data(std::int64_t n, std::int64_t dim, std::uint64_t seed, int range) {
  dml::eval::detail::SplitMix64 rng(seed);
  std::vector<float> x(static_cast<std::size_t>(n * dim));
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng.below(2 * range + 1)) - range);
  return x;
}

std::vector<float> gaussian_like(std::int64_t n, std::int64_t dim, std::uint64_t seed) {
  dml::eval::detail::SplitMix64 rng(seed);
  std::vector<float> x(static_cast<std::size_t>(n * dim));
  for (auto& v : x) v = static_cast<float>(rng.uniform() + rng.uniform() + rng.uniform() - 1.5);
  return x;
}

// Checks one result row against the naive list: same distances position by
// position (to tol), every index is a true neighbour at that distance, and
// exactly equal returned distances come in ascending index order.
void check_row(const KnnResult& res, std::int64_t i, const std::vector<NaiveHit>& naive, double tol) {
  auto idx = res.row_indices(i);
  auto dst = res.row_distances(i);
  std::vector<std::int64_t> seen;
  for (int j = 0; j < res.k; ++j) {
    CAPTURE(i);
    CAPTURE(j);
    CHECK(std::abs(dst[j] - naive[j].dist) <= tol);
    const auto it = std::find_if(naive.begin(), naive.end(), [&](const NaiveHit& h) { return h.index == idx[j]; });
    REQUIRE(it != naive.end());
    CHECK(std::abs(it->dist - naive[j].dist) <= tol);
    if (j > 0) {
      CHECK(dst[j] >= dst[j - 1]);
      if (dst[j] == dst[j - 1]) CHECK(idx[j] > idx[j - 1]);
    }
    seen.push_back(idx[j]);
  }
  std::sort(seen.begin(), seen.end());
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
}

}  // namespace

TEST_CASE("knn L2 on integer data matches the naive loop exactly, ties by lower index") {
  // Small integer coordinates make every dot product exact and ties common.
  const std::int64_t n = 150, dim = 3;
  auto x = integer_data(n, dim, 7, 2);
  for (bool exclude : {false, true}) {
    for (int k : {1, 4, 17}) {
      KnnResult res = dml::eval::knn(x.data(), n, x.data(), n, dim, k, Metric::L2, exclude);
      REQUIRE(res.indices.size() == static_cast<std::size_t>(n * k));
      for (std::int64_t i = 0; i < n; ++i) {
        auto naive = naive_row(x, i, x, n, dim, Metric::L2, exclude);
        for (int j = 0; j < k; ++j) {
          CAPTURE(i);
          CAPTURE(j);
          CHECK(res.indices[i * k + j] == naive[j].index);
          CHECK(res.distances[i * k + j] == static_cast<float>(naive[j].dist));
        }
      }
    }
  }
}

TEST_CASE("knn L2 merges candidates across several reference blocks") {
  // nr > kRefBlock (4096) forces the per-row heaps to merge across GEMM tiles.
  const std::int64_t nq = 40, nr = 5000, dim = 4;
  auto q = integer_data(nq, dim, 11, 3);
  auto r = integer_data(nr, dim, 12, 3);
  // k = 9 and k = 300 both refill and cut back the candidate buffer many times,
  // with plenty of ties exactly at the k-th distance.
  for (int k : {9, 300}) {
    KnnResult res = dml::eval::knn(q.data(), nq, r.data(), nr, dim, k, Metric::L2, false);
    for (std::int64_t i = 0; i < nq; ++i) {
      auto naive = naive_row(q, i, r, nr, dim, Metric::L2, false);
      for (int j = 0; j < k; ++j) {
        CAPTURE(i);
        CAPTURE(j);
        CHECK(res.indices[i * k + j] == naive[j].index);
      }
    }
  }
}

TEST_CASE("knn cosine matches the naive loop on random data with duplicated rows") {
  const std::int64_t n = 120, dim = 16;
  auto x = gaussian_like(n, dim, 3);
  for (std::int64_t j : {40, 41, 90}) std::copy_n(x.begin() + 5 * dim, dim, x.begin() + j * dim);  // ties
  for (bool exclude : {false, true}) {
    KnnResult res = dml::eval::knn(x.data(), n, x.data(), n, dim, 6, Metric::Cosine, exclude);
    for (std::int64_t i = 0; i < n; ++i) check_row(res, i, naive_row(x, i, x, n, dim, Metric::Cosine, exclude), 2e-6);
  }
  // Row 5 and its copies 40, 41, 90 are at distance 0 from each other: ascending order.
  KnnResult res = dml::eval::knn(x.data(), n, x.data(), n, dim, 3, Metric::Cosine, true);
  CHECK(res.row_indices(5)[0] == 40);
  CHECK(res.row_indices(5)[1] == 41);
  CHECK(res.row_indices(5)[2] == 90);
  CHECK(res.row_indices(41)[0] == 5);
  CHECK(res.row_indices(41)[1] == 40);
  CHECK(res.row_indices(41)[2] == 90);
  CHECK(res.row_distances(41)[0] == res.row_distances(41)[1]);
}

TEST_CASE("knn L2 on random float data stays within float error of the naive loop") {
  const std::int64_t nq = 70, nr = 333, dim = 24;
  auto q = gaussian_like(nq, dim, 21);
  auto r = gaussian_like(nr, dim, 22);
  KnnResult res = dml::eval::knn(q.data(), nq, r.data(), nr, dim, 5, Metric::L2, false);
  for (std::int64_t i = 0; i < nq; ++i) check_row(res, i, naive_row(q, i, r, nr, dim, Metric::L2, false), 1e-4);
}

TEST_CASE("exclude_self never returns the query's own row, k may reach n - 1") {
  const std::int64_t n = 30, dim = 5;
  auto x = gaussian_like(n, dim, 5);
  KnnResult res = dml::eval::knn_self(x.data(), n, dim, static_cast<int>(n - 1), Metric::L2);
  for (std::int64_t i = 0; i < n; ++i) {
    auto row = res.row_indices(i);
    CHECK(std::find(row.begin(), row.end(), i) == row.end());
    std::vector<std::int64_t> sorted(row.begin(), row.end());
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  }
  CHECK_THROWS_AS(dml::eval::knn_self(x.data(), n, dim, static_cast<int>(n), Metric::L2), dml::Error);
}

TEST_CASE("knn results do not depend on the thread count") {
  const std::int64_t n = 700, dim = 8;
  auto x = gaussian_like(n, dim, 9);
  KnnResult a = dml::eval::knn_self(x.data(), n, dim, 7, Metric::Cosine);
#ifdef _OPENMP
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  KnnResult b = dml::eval::knn_self(x.data(), n, dim, 7, Metric::Cosine);
  omp_set_num_threads(before);
#else
  KnnResult b = dml::eval::knn_self(x.data(), n, dim, 7, Metric::Cosine);
#endif
  CHECK(a.indices == b.indices);
  CHECK(a.distances == b.distances);
}

TEST_CASE("knn rejects bad input with errors that name the row") {
  std::vector<float> x = {1, 0, 0, 1, 0, 0, 2, 2};  // 4 rows x 2, row 2 is zero
  try {
    (void)dml::eval::knn(x.data(), 4, x.data(), 4, 2, 1, Metric::Cosine, true);
    FAIL("expected dml::Error");
  } catch (const dml::Error& e) {
    CHECK(std::string(e.what()).find("row 2") != std::string::npos);
    CHECK(std::string(e.what()).find("zero") != std::string::npos);
  }
  CHECK_NOTHROW(dml::eval::knn(x.data(), 4, x.data(), 4, 2, 1, Metric::L2, true));  // L2 is fine with zeros
  std::vector<float> bad = {1, 2, 3, NAN};
  try {
    (void)dml::eval::knn(bad.data(), 2, x.data(), 4, 2, 1, Metric::L2, false);
    FAIL("expected dml::Error");
  } catch (const dml::Error& e) {
    CHECK(std::string(e.what()).find("row 1") != std::string::npos);
  }
  CHECK_THROWS_AS(dml::eval::knn(x.data(), 4, x.data(), 4, 2, 0, Metric::L2, false), dml::Error);
  CHECK_THROWS_AS(dml::eval::knn(x.data(), 4, x.data(), 4, 2, 5, Metric::L2, false), dml::Error);
  CHECK_THROWS_AS(dml::eval::knn(x.data(), 4, x.data(), 4, 0, 1, Metric::L2, false), dml::Error);
  KnnResult empty = dml::eval::knn(x.data(), 0, x.data(), 4, 2, 2, Metric::L2, false);
  CHECK(empty.num_queries == 0);
  CHECK(empty.indices.empty());
}

TEST_CASE("L2 distances are Euclidean, not squared; cosine distance is 1 - cos") {
  std::vector<float> q = {0, 0, 1, 1};
  std::vector<float> r = {3, 4, 2, 0};
  KnnResult l2 = dml::eval::knn(q.data(), 1, r.data(), 2, 2, 2, Metric::L2, false);
  CHECK(l2.indices == std::vector<std::int64_t>{1, 0});
  CHECK(l2.distances[0] == doctest::Approx(2.0));
  CHECK(l2.distances[1] == doctest::Approx(5.0));
  KnnResult cs = dml::eval::knn(q.data() + 2, 1, r.data(), 2, 2, 2, Metric::Cosine, false);
  CHECK(cs.indices == std::vector<std::int64_t>{0, 1});  // cos 7/(5 sqrt2) > cos 1/sqrt2
  CHECK(cs.distances[0] == doctest::Approx(1.0 - 7.0 / (5.0 * std::sqrt(2.0))));
  CHECK(cs.distances[1] == doctest::Approx(1.0 - 1.0 / std::sqrt(2.0)));
}
