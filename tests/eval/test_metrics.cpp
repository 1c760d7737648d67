// Tests for dml/eval/metrics.hpp (retrieval, accuracy) and dml/eval/anomaly.hpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dml/eval/anomaly.hpp>
#include <dml/eval/metrics.hpp>

#ifndef DML_TEST_DATA_DIR
#define DML_TEST_DATA_DIR "tests/fixtures"  // the build passes the absolute path
#endif

// dml_tests is a unity build (tests/CMakeLists.txt): this file's names stay in its namespace.
namespace test_metrics {

using dml::eval::Metric;
using dml::eval::RetrievalOptions;

namespace {

// Whitespace token stream of a fixture file, '#' comment lines dropped.
std::istringstream fixture(const std::string& name) {
  const std::string path = std::string(DML_TEST_DATA_DIR) + "/metrics/" + name;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open fixture " << path);
  std::string line, text;
  while (std::getline(in, line))
    if (line.empty() || line[0] != '#') text += line + "\n";
  return std::istringstream(text);
}

template <class T>
std::vector<T> read_n(std::istringstream& in, const char* key, std::int64_t n) {
  std::string tok;
  in >> tok;
  REQUIRE(tok == key);
  std::vector<T> v(static_cast<std::size_t>(n));
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

// Brute-force AUC: count positive/negative pairs, ties count one half.
double pair_auc(const std::vector<double>& s, const std::vector<std::uint8_t>& pos) {
  double wins = 0, pairs = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    for (std::size_t j = 0; j < s.size(); ++j)
      if (pos[i] && !pos[j]) {
        pairs += 1;
        wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      }
  return wins / pairs;
}

}  // namespace

TEST_CASE("perfectly separated classes give P@1 = R-Precision = MAP@R = 1") {
  std::vector<float> x;
  std::vector<std::int64_t> y;
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 5; ++i) {
      x.push_back(static_cast<float>(c == 0 ? 10 : 0) + 0.01f * i);
      x.push_back(static_cast<float>(c == 1 ? 10 : 0) + 0.01f * i);
      x.push_back(static_cast<float>(c == 2 ? 10 : 0) + 0.01f * i);
      x.push_back(static_cast<float>(c == 3 ? 10 : 0) + 0.01f * i);
      y.push_back(c);
    }
  for (Metric m : {Metric::Cosine, Metric::L2}) {
    auto rep = dml::eval::retrieval(x.data(), 20, 4, y, m);
    CHECK(rep.precision_at_1 == 1.0);
    CHECK(rep.r_precision == 1.0);
    CHECK(rep.map_at_r == 1.0);
    CHECK(rep.num_queries == 20);
    CHECK(rep.num_lone == 0);
    CHECK(rep.k == 4);
  }
}

TEST_CASE("hand-computed retrieval on a line: P@1, R-Precision and MAP@R") {
  // Row: position (label). A = {0,1,3} and B = {2,4,5} give R = 2; C = {6} is a
  // one-sample class: R = 0, so query 6 is "lone" and left out (as in
  // pytorch-metric-learning). Neighbours in order (first R = 2 matter):
  //   q0  x=0   A: 1(A) 2(B)    P@1 1  RP 1/2  AP (1/1)/2 = 1/2
  //   q1  x=1   A: 2(B) 0(A)    P@1 0  RP 1/2  AP (1/2)/2 = 1/4
  //   q2  x=1.5 B: 1(A) 0(A)    P@1 0  RP 0    AP 0
  //   q3  x=3.5 A: 2(B) 1(A)    P@1 0  RP 1/2  AP (1/2)/2 = 1/4
  //   q4  x=10  B: 5(B) 3(A)    P@1 1  RP 1/2  AP (1/1)/2 = 1/2
  //   q5  x=11  B: 4(B) 3(A)    P@1 1  RP 1/2  AP 1/2
  // P@1 = 3/6, R-Precision = 2.5/6, MAP@R = 2/6.
  std::vector<float> x = {0.0f, 1.0f, 1.5f, 3.5f, 10.0f, 11.0f, 20.0f};
  std::vector<std::int64_t> y = {0, 0, 1, 0, 1, 1, 2};
  auto rep = dml::eval::retrieval(x.data(), 7, 1, y, Metric::L2);
  CHECK(rep.precision_at_1 == doctest::Approx(3.0 / 6));
  CHECK(rep.r_precision == doctest::Approx(2.5 / 6));
  CHECK(rep.map_at_r == doctest::Approx(2.0 / 6));
  CHECK(rep.num_queries == 6);
  CHECK(rep.num_lone == 1);
  CHECK(rep.k == 2);
  // Capping k at 1 truncates R to 1: every metric becomes P@1.
  auto capped = dml::eval::retrieval(x.data(), 7, 1, y, RetrievalOptions{.metric = Metric::L2, .max_k = 1});
  CHECK(capped.k == 1);
  CHECK(capped.r_precision == doctest::Approx(0.5));
  CHECK(capped.map_at_r == doctest::Approx(0.5));
}

TEST_CASE("retrieval where every class has one sample scores nothing") {
  std::vector<float> x = {0, 1, 2, 3};
  std::vector<std::int64_t> y = {0, 1, 2, 3};
  auto rep = dml::eval::retrieval(x.data(), 4, 1, y, Metric::L2);
  CHECK(rep.num_queries == 0);
  CHECK(rep.num_lone == 4);
  CHECK(rep.precision_at_1 == 0.0);
  CHECK(rep.map_at_r == 0.0);
}

TEST_CASE("two-set retrieval: R counts references, absent labels are lone") {
  // Queries at 0 (A), 5 (B), 9 (C: absent). References: 1 (A), 4 (B), 6 (A), 100 (B).
  // q0: R=2, neighbours 1(A) 4(B): P@1 1, RP 1/2, AP 1/2.
  // q1: R=2, neighbours 4(B) 6(A): P@1 1, RP 1/2, AP 1/2.
  std::vector<float> q = {0, 5, 9}, r = {1, 4, 6, 100};
  std::vector<std::int64_t> qy = {0, 1, 2}, ry = {0, 1, 0, 1};
  auto rep = dml::eval::retrieval(q.data(), 3, qy, r.data(), 4, ry, 1, RetrievalOptions{.metric = Metric::L2});
  CHECK(rep.num_queries == 2);
  CHECK(rep.num_lone == 1);
  CHECK(rep.precision_at_1 == doctest::Approx(1.0));
  CHECK(rep.r_precision == doctest::Approx(0.5));
  CHECK(rep.map_at_r == doctest::Approx(0.5));
}

TEST_CASE("retrieval matches a NumPy port of pytorch-metric-learning (fixture)") {
  auto in = fixture("retrieval.txt");
  std::string tok, name, metric;
  int cases = 0;
  while (in >> tok) {
    REQUIRE(tok == "case");
    int same = 0;
    std::int64_t nq = 0, nr = 0, dim = 0;
    in >> name >> same >> metric >> nq >> nr >> dim;
    CAPTURE(name);
    auto q = read_n<float>(in, "queries", nq * dim);
    auto qy = read_n<std::int64_t>(in, "query_labels", nq);
    RetrievalOptions opt{.metric = metric == "cosine" ? Metric::Cosine : Metric::L2};
    dml::eval::RetrievalReport rep;
    if (same) {
      rep = dml::eval::retrieval(q.data(), nq, dim, qy, opt);
    } else {
      auto r = read_n<float>(in, "refs", nr * dim);
      auto ry = read_n<std::int64_t>(in, "ref_labels", nr);
      rep = dml::eval::retrieval(q.data(), nq, qy, r.data(), nr, ry, dim, opt);
    }
    CHECK(rep.precision_at_1 == doctest::Approx(read_key(in, "p1")).epsilon(1e-12));
    CHECK(rep.r_precision == doctest::Approx(read_key(in, "rp")).epsilon(1e-12));
    CHECK(rep.map_at_r == doctest::Approx(read_key(in, "map")).epsilon(1e-12));
    CHECK(rep.num_lone == 1);
    ++cases;
  }
  CHECK(cases == 3);
}

TEST_CASE("retrieval rejects mismatched labels and zero rows under cosine") {
  std::vector<float> x = {1, 0, 0, 0, 1, 1};
  std::vector<std::int64_t> y = {0, 0, 1};
  CHECK_THROWS_AS(dml::eval::retrieval(x.data(), 3, 2, std::span<const std::int64_t>(y.data(), 2)), dml::Error);
  CHECK_THROWS_WITH_AS(dml::eval::retrieval(x.data(), 3, 2, y, Metric::Cosine), doctest::Contains("row 1"),
                       dml::Error);
}

TEST_CASE("classification accuracy from predictions and from logits (first max wins ties)") {
  std::vector<std::int64_t> pred = {0, 1, 2, 2}, truth = {0, 1, 1, 2};
  CHECK(dml::eval::accuracy(pred, truth) == doctest::Approx(0.75));
  std::vector<float> logits = {3, 1, 0,   // 0
                               0, 5, 5,   // tie -> 1
                               -1, -2, -0.5f};  // 2
  CHECK(dml::eval::argmax_rows(logits.data(), 3, 3) == std::vector<std::int64_t>{0, 1, 2});
  std::vector<std::int64_t> y = {0, 2, 2};
  CHECK(dml::eval::accuracy_from_logits(logits.data(), 3, 3, y) == doctest::Approx(2.0 / 3));
  CHECK_THROWS_AS(dml::eval::accuracy(pred, std::span<const std::int64_t>(truth.data(), 3)), dml::Error);
  CHECK_THROWS_AS(dml::eval::accuracy({}, {}), dml::Error);
  logits[4] = NAN;
  CHECK_THROWS_WITH_AS(dml::eval::argmax_rows(logits.data(), 3, 3), doctest::Contains("row 1"), dml::Error);
}

TEST_CASE("ROC-AUC equals the brute-force pair count on random scores with ties") {
  dml::eval::detail::SplitMix64 rng(17);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 5 + static_cast<int>(rng.below(120));
    std::vector<double> s(n);
    std::vector<float> sf(n);
    std::vector<std::uint8_t> pos(n);
    for (int i = 0; i < n; ++i) {
      s[i] = static_cast<double>(rng.below(7)) * 0.25;  // few distinct values: many ties
      sf[i] = static_cast<float>(s[i]);
      pos[i] = rng.uniform() < 0.3 + 0.08 * s[i];
    }
    pos[0] = 1, pos[1] = 0;
    const double want = pair_auc(s, pos);
    CHECK(dml::eval::roc_auc(s, pos) == doctest::Approx(want).epsilon(1e-14));
    CHECK(dml::eval::roc_auc(sf, pos) == doctest::Approx(want).epsilon(1e-14));
  }
}

TEST_CASE("ROC-AUC matches scikit-learn's roc_auc_score (fixture)") {
  auto in = fixture("roc_auc.txt");
  std::string tok, name;
  int cases = 0;
  while (in >> tok) {
    REQUIRE(tok == "case");
    std::int64_t n = 0;
    in >> name >> n;
    CAPTURE(name);
    auto s = read_n<double>(in, "scores", n);
    auto p = read_n<int>(in, "positive", n);
    std::vector<std::uint8_t> pos(p.begin(), p.end());
    CHECK(dml::eval::roc_auc(s, pos) == doctest::Approx(read_key(in, "auc")).epsilon(1e-12));
    ++cases;
  }
  CHECK(cases == 4);
}

TEST_CASE("ROC-AUC rejects empty classes, NaN scores and length mismatch") {
  std::vector<double> s = {0.1, 0.2, 0.3};
  CHECK_THROWS_WITH_AS(dml::eval::roc_auc(s, std::vector<std::uint8_t>{1, 1, 1}), doctest::Contains("negative"),
                       dml::Error);
  CHECK_THROWS_WITH_AS(dml::eval::roc_auc(s, std::vector<std::uint8_t>{0, 0, 0}), doctest::Contains("positive"),
                       dml::Error);
  CHECK_THROWS_AS(dml::eval::roc_auc(s, std::vector<std::uint8_t>{0, 1}), dml::Error);
  s[1] = NAN;
  CHECK_THROWS_AS(dml::eval::roc_auc(s, std::vector<std::uint8_t>{0, 1, 0}), dml::Error);
}

TEST_CASE("unknown_classes rotates 0..9 left by the case index") {
  using V = std::vector<std::int64_t>;
  CHECK(dml::eval::unknown_classes(0, 1) == V{0});
  CHECK(dml::eval::unknown_classes(3, 2) == V{3, 4});
  CHECK(dml::eval::unknown_classes(7, 4) == V{7, 8, 9, 0});  // (classes[7:] + classes[:7])[:4]
  CHECK(dml::eval::unknown_classes(9, 3) == V{9, 0, 1});
  CHECK(dml::eval::known_classes(7, 4) == V{1, 2, 3, 4, 5, 6});
  CHECK(dml::eval::unknown_classes(2, 2, 5) == V{2, 3});
  CHECK_THROWS_AS(dml::eval::unknown_classes(10, 1), dml::Error);
  CHECK_THROWS_AS(dml::eval::unknown_classes(-1, 1), dml::Error);
  CHECK_THROWS_AS(dml::eval::unknown_classes(0, 11), dml::Error);
  V labels = {0, 7, 3, 8, 1, 0};
  V unknown = dml::eval::unknown_classes(7, 4);
  CHECK(dml::eval::label_mask(labels, unknown) == std::vector<std::uint8_t>{1, 1, 0, 1, 0, 1});
  CHECK(dml::eval::rows_with_labels(labels, unknown) == V{0, 1, 3, 5});
}

TEST_CASE("seeded_half is a reproducible sorted half, rounded down") {
  auto a = dml::eval::seeded_half(101, 5);
  CHECK(a.size() == 50);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
  CHECK(a.front() >= 0);
  CHECK(a.back() < 101);
  CHECK(dml::eval::seeded_half(101, 5) == a);
  CHECK(dml::eval::seeded_half(101, 6) != a);
  auto rest = dml::eval::complement(a, 101);
  CHECK(rest.size() == 51);
  std::vector<std::int64_t> all(a);
  all.insert(all.end(), rest.begin(), rest.end());
  std::sort(all.begin(), all.end());
  for (std::int64_t i = 0; i < 101; ++i) CHECK(all[i] == i);
  CHECK(dml::eval::seeded_half(1, 0).empty());
  CHECK(dml::eval::seeded_half(0, 0).empty());
  CHECK(dml::eval::seeded_half(2, 0).size() == 1);
  CHECK_THROWS_AS(dml::eval::seeded_half(-1, 0), dml::Error);
}

TEST_CASE("anomaly scores are nearest-reference distances; separated unknowns give AUC 1") {
  // References (known classes) near the origin; unknown test points far away.
  std::vector<float> ref = {0, 0, 1, 0, 0, 1};
  std::vector<float> test = {0.1f, 0, 5, 5, 0.9f, 0.2f, -6, 0};
  std::vector<std::int64_t> labels = {0, 8, 1, 9};
  auto scores = dml::eval::anomaly_scores(test.data(), 4, ref.data(), 3, 2, Metric::L2);
  REQUIRE(scores.size() == 4);
  CHECK(scores[0] == doctest::Approx(0.1));
  CHECK(scores[1] == doctest::Approx(std::sqrt(16.0 + 25.0)));
  CHECK(scores[2] == doctest::Approx(std::sqrt(0.01 + 0.04)));
  CHECK(scores[3] == doctest::Approx(6.0));
  auto unknown = dml::eval::unknown_classes(8, 2);  // {8, 9}
  CHECK(dml::eval::anomaly_auc(scores, labels, unknown) == 1.0);
  // Cosine (the default) is undefined for the zero reference row: use the other two.
  CHECK_THROWS_AS(dml::eval::anomaly_scores(test.data(), 4, ref.data(), 3, 2), dml::Error);
  auto knn = dml::eval::knn(test.data(), 4, ref.data() + 2, 2, 2, 1, Metric::Cosine);
  auto cos_scores = dml::eval::anomaly_scores(test.data(), 4, ref.data() + 2, 2, 2);
  for (int i = 0; i < 4; ++i) CHECK(cos_scores[i] == knn.distances[i]);
}

TEST_CASE("retrieval on random embeddings scores at chance level, and MAP@R never exceeds R-Precision") {
  dml::eval::detail::SplitMix64 rng(23);
  const std::int64_t n = 1200, dim = 16, classes = 4;
  std::vector<float> x(static_cast<std::size_t>(n * dim));
  for (auto& v : x) v = static_cast<float>(rng.uniform() - 0.5);
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[i] = i % classes;
  for (Metric metric : {Metric::Cosine, Metric::L2}) {
    const auto rep = dml::eval::retrieval(x.data(), n, dim, labels, metric);
    CHECK(rep.precision_at_1 == doctest::Approx(0.25).epsilon(0.2));  // 1/classes, within sampling noise
    CHECK(rep.r_precision == doctest::Approx(0.25).epsilon(0.1));
    CHECK(rep.map_at_r <= rep.r_precision);
    CHECK(rep.map_at_r < 0.2);
  }
}

TEST_CASE("retrieval with tied distances: the lower reference index ranks first") {
  // One query at 0 (class 0); references at distances 1, 1, 5, 5 (R = 2 of class 0).
  const std::vector<float> q = {0.0f};
  const std::vector<float> refs = {1.0f, -1.0f, 5.0f, -5.0f};
  const std::vector<std::int64_t> ql = {0};
  const RetrievalOptions l2{.metric = Metric::L2};
  // Tie at distance 1: the class-1 reference (index 0) ranks before the class-0 one.
  auto a = dml::eval::retrieval(q.data(), 1, ql, refs.data(), 4, std::vector<std::int64_t>{1, 0, 1, 0}, 1, l2);
  CHECK(a.precision_at_1 == 0.0);
  CHECK(a.r_precision == doctest::Approx(0.5));
  CHECK(a.map_at_r == doctest::Approx(0.25));  // (1/2) * (hit at rank 2: 1/2)
  // The same geometry with the tied labels swapped.
  auto b = dml::eval::retrieval(q.data(), 1, ql, refs.data(), 4, std::vector<std::int64_t>{0, 1, 1, 0}, 1, l2);
  CHECK(b.precision_at_1 == 1.0);
  CHECK(b.r_precision == doctest::Approx(0.5));
  CHECK(b.map_at_r == doctest::Approx(0.5));
}

TEST_CASE("ROC-AUC: all scores tied gives 0.5, perfect ranking 1, inverted ranking 0") {
  const std::vector<std::uint8_t> pos = {1, 0, 1, 0, 0};
  CHECK(dml::eval::roc_auc(std::vector<double>(5, 0.3), pos) == 0.5);
  CHECK(dml::eval::roc_auc(std::vector<double>{0.9, 0.1, 0.8, 0.2, 0.3}, pos) == 1.0);
  CHECK(dml::eval::roc_auc(std::vector<double>{0.1, 0.9, 0.2, 0.8, 0.7}, pos) == 0.0);
  // One tie across the classes counts one half: 5.5 of 6 pairs.
  CHECK(dml::eval::roc_auc(std::vector<double>{0.9, 0.1, 0.3, 0.2, 0.3}, pos) == doctest::Approx(5.5 / 6));
}

}  // namespace test_metrics
