// Tests for dml/eval/cluster.hpp: NMI/AMI against scikit-learn, k-means++.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dml/eval/cluster.hpp>

#ifndef DML_TEST_DATA_DIR
#define DML_TEST_DATA_DIR "tests/fixtures"  // the build passes the absolute path
#endif

// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_cluster {

namespace {

std::istringstream mutual_info_fixture() {
  const std::string path = std::string(DML_TEST_DATA_DIR) + "/metrics/mutual_info.txt";
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open fixture " << path);
  std::string line, text;
  while (std::getline(in, line))
    if (line.empty() || line[0] != '#') text += line + "\n";
  return std::istringstream(text);
}

std::vector<std::int64_t> read_labels(std::istringstream& in, const char* key, std::int64_t n) {
  std::string tok;
  in >> tok;
  REQUIRE(tok == key);
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (auto& x : v) in >> x;
  REQUIRE(!in.fail());
  return v;
}

double read_key(std::istringstream& in, const char* key) {
  std::string tok;
  double v = 0;
  in >> tok >> v;
  REQUIRE(tok == key);
  return v;
}

// n points per blob around k centres far apart, dim 3; labels = blob.
void blobs(int k, int per, std::vector<float>& x, std::vector<std::int64_t>& y, std::uint64_t seed) {
  dml::eval::detail::SplitMix64 rng(seed);
  x.clear();
  y.clear();
  for (int i = 0; i < per; ++i)
    for (int c = 0; c < k; ++c) {  // interleaved so clusters are not contiguous rows
      x.push_back(static_cast<float>(20.0 * c + rng.uniform() - 0.5));
      x.push_back(static_cast<float>(10.0 * (c % 3) + rng.uniform() - 0.5));
      x.push_back(static_cast<float>(rng.uniform() - 0.5));
      y.push_back(c);
    }
}

}  // namespace

TEST_CASE("MI, NMI and AMI match scikit-learn (fixture)") {
  auto in = mutual_info_fixture();
  std::string tok, name;
  int cases = 0;
  while (in >> tok) {
    REQUIRE(tok == "case");
    std::int64_t n = 0;
    in >> name >> n;
    CAPTURE(name);
    auto a = read_labels(in, "true", n);
    auto b = read_labels(in, "pred", n);
    const double mi = read_key(in, "mi"), nmi = read_key(in, "nmi"), ami = read_key(in, "ami");
    CHECK(dml::eval::mutual_info(a, b) == doctest::Approx(mi).epsilon(1e-12));
    CHECK(dml::eval::nmi(a, b) == doctest::Approx(nmi).epsilon(1e-12));
    CHECK(std::abs(dml::eval::ami(a, b) - ami) <= 1e-12 * std::max(1.0, std::abs(ami)));
    ++cases;
  }
  CHECK(cases == 9);
}

TEST_CASE("NMI and AMI are symmetric and label-permutation invariant") {
  std::vector<std::int64_t> a = {0, 0, 1, 1, 1, 2, 2, 0, 1, 2, 2, 2};
  std::vector<std::int64_t> b = {1, 1, 0, 0, 2, 2, 2, 1, 0, 0, 2, 2};
  std::vector<std::int64_t> b_renamed;
  for (auto v : b) b_renamed.push_back(v * 10 - 3);
  CHECK(dml::eval::nmi(a, b) == doctest::Approx(dml::eval::nmi(b, a)).epsilon(1e-14));
  CHECK(dml::eval::ami(a, b) == doctest::Approx(dml::eval::ami(b, a)).epsilon(1e-12));
  CHECK(dml::eval::nmi(a, b) == doctest::Approx(dml::eval::nmi(a, b_renamed)).epsilon(1e-14));
  CHECK(dml::eval::ami(a, b) == doctest::Approx(dml::eval::ami(a, b_renamed)).epsilon(1e-14));
  CHECK_THROWS_AS(dml::eval::nmi(a, std::span<const std::int64_t>(b.data(), 3)), dml::Error);
}

TEST_CASE("k-means++ recovers well-separated blobs") {
  std::vector<float> x;
  std::vector<std::int64_t> y;
  blobs(6, 40, x, y, 1);
  const std::int64_t n = static_cast<std::int64_t>(y.size());
  auto km = dml::eval::kmeans(x.data(), n, 3, {.k = 6, .n_init = 3, .seed = 4});
  CHECK(km.labels.size() == y.size());
  CHECK(km.centers.size() == 18u);
  CHECK(dml::eval::nmi(y, km.labels) == doctest::Approx(1.0));
  CHECK(dml::eval::ami(y, km.labels) == doctest::Approx(1.0));
  CHECK(km.iterations >= 1);
  // Inertia: within-blob scatter only (coordinates jitter by at most 0.5 per axis).
  CHECK(km.inertia < n * 3 * 0.25);
  auto rep = dml::eval::cluster_quality(x.data(), n, 3, y);  // k = 6 classes
  CHECK(rep.nmi == doctest::Approx(1.0));
  CHECK(rep.ami == doctest::Approx(1.0));
}

TEST_CASE("k-means is reproducible for a seed and independent of the thread count") {
  std::vector<float> x;
  std::vector<std::int64_t> y;
  blobs(5, 30, x, y, 2);
  for (auto& v : x) v *= 0.05f;  // overlapping blobs: the seed matters
  const std::int64_t n = static_cast<std::int64_t>(y.size());
  dml::eval::KMeansOptions opt{.k = 5, .n_init = 4, .seed = 11};
  auto a = dml::eval::kmeans(x.data(), n, 3, opt);
  auto b = dml::eval::kmeans(x.data(), n, 3, opt);
  CHECK(a.labels == b.labels);
  CHECK(a.centers == b.centers);
  CHECK(a.inertia == b.inertia);
#ifdef _OPENMP
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  auto c = dml::eval::kmeans(x.data(), n, 3, opt);
  omp_set_num_threads(before);
  CHECK(a.labels == c.labels);
  CHECK(a.centers == c.centers);
#endif
  // More restarts can only lower (or keep) the best inertia of a prefix of the same stream.
  opt.n_init = 1;
  auto one = dml::eval::kmeans(x.data(), n, 3, opt);
  CHECK(a.inertia <= one.inertia);
}

TEST_CASE("k-means handles duplicate points and k = n") {
  std::vector<float> x = {0, 0, 0, 0, 5, 5, 5, 5, 9, 1, 9, 1, 0, 0, 9, 1};  // 8 rows x 2, 3 distinct
  auto km = dml::eval::kmeans(x.data(), 8, 2, {.k = 3, .seed = 1});
  CHECK(km.inertia == doctest::Approx(0.0));
  std::vector<std::int64_t> truth = {0, 0, 1, 1, 2, 2, 0, 2};
  CHECK(dml::eval::nmi(truth, km.labels) == doctest::Approx(1.0));
  std::vector<float> distinct = {0, 1, 2, 3, 4};
  auto each = dml::eval::kmeans(distinct.data(), 5, 1, {.k = 5, .n_init = 2});
  CHECK(each.inertia == doctest::Approx(0.0));
  CHECK_THROWS_AS(dml::eval::kmeans(distinct.data(), 5, 1, {.k = 6}), dml::Error);
  CHECK_THROWS_AS(dml::eval::kmeans(distinct.data(), 5, 1, {.k = 0}), dml::Error);
}

}  // namespace test_cluster
