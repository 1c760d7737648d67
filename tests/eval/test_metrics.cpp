// Tests for dml/eval/metrics.hpp (retrieval, accuracy) and dml/eval/anomaly.hpp (ROC-AUC, ROC curve,
// the open-set protocol).
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

TEST_CASE("recall@k, full-ranking MAP and per-class averages on a hand-computed imbalanced line") {
  // Row: position (label). A = {0, 1, 2, 5 -> x=0,1,2}, B = {x=2.6, 10}: R = 2 for A, 1 for B.
  // Full leave-one-out rankings (L2), hits marked *:
  //   q0 x=0   A: 1* 2* 2.6 10     first hit 1  AP@R 1    RP 1    AP 1
  //   q1 x=1   A: 0* 2* 2.6 10     (0 and 2 tie at distance 1: index order)  1, 1, 1
  //   q2 x=2   A: 2.6 1* 0* 10     first hit 2  AP@R 1/4  RP 1/2  AP (1/2 + 2/3)/2 = 7/12
  //   q3 x=2.6 B: 2 1 0 10*        first hit 4  AP@R 0    RP 0    AP 1/4
  //   q4 x=10  B: 2.6* 2 1 0       first hit 1  AP@R 1    RP 1    AP 1
  // Plain means over 5 queries; per class: mean of A's 3 and B's 2.
  const std::vector<float> x = {0.0f, 1.0f, 2.0f, 2.6f, 10.0f};
  const std::vector<std::int64_t> y = {0, 0, 0, 1, 1};
  RetrievalOptions opt{.metric = Metric::L2, .recall_at = {1, 2, 3, 4}, .mean_average_precision = true};
  auto rep = dml::eval::retrieval(x.data(), 5, 1, y, opt);
  CHECK(rep.k == 4);  // MAP ranks every other row
  CHECK(rep.num_queries == 5);
  CHECK(rep.num_classes == 2);
  CHECK_FALSE(rep.avg_of_avgs);
  CHECK(rep.precision_at_1 == doctest::Approx(3.0 / 5));
  CHECK(rep.r_precision == doctest::Approx(3.5 / 5));
  CHECK(rep.map_at_r == doctest::Approx(3.25 / 5));
  REQUIRE(rep.mean_average_precision.has_value());
  CHECK(*rep.mean_average_precision == doctest::Approx(23.0 / 30));
  REQUIRE(rep.recall_at_k.size() == 4);
  CHECK(rep.recall_at_k[0].k == 1);
  CHECK(rep.recall_at(1) == doctest::Approx(3.0 / 5));
  CHECK(rep.recall_at(2) == doctest::Approx(4.0 / 5));
  CHECK(rep.recall_at(3) == doctest::Approx(4.0 / 5));
  CHECK(rep.recall_at(4) == 1.0);  // k above every class size: every query finds one
  CHECK_THROWS_WITH_AS(rep.recall_at(5), doctest::Contains("recall@5"), dml::Error);

  opt.avg_of_avgs = true;
  auto pc = dml::eval::retrieval(x.data(), 5, 1, y, opt);
  CHECK(pc.avg_of_avgs);
  CHECK(pc.precision_at_1 == doctest::Approx((2.0 / 3 + 1.0 / 2) / 2));
  CHECK(pc.r_precision == doctest::Approx((2.5 / 3 + 1.0 / 2) / 2));
  CHECK(pc.map_at_r == doctest::Approx((2.25 / 3 + 1.0 / 2) / 2));
  CHECK(*pc.mean_average_precision == doctest::Approx(107.0 / 144));
  CHECK(pc.recall_at(1) == doctest::Approx(7.0 / 12));
  CHECK(pc.recall_at(2) == doctest::Approx(3.0 / 4));
  CHECK(pc.recall_at(4) == 1.0);

  // Without MAP only the largest of R and the recall ks is retrieved, and the
  // R-based metrics do not change; MAP stays unset.
  auto lean = dml::eval::retrieval(x.data(), 5, 1, y, RetrievalOptions{.metric = Metric::L2, .recall_at = {3}});
  CHECK(lean.k == 3);
  CHECK_FALSE(lean.mean_average_precision.has_value());
  CHECK(lean.map_at_r == rep.map_at_r);
  CHECK(lean.recall_at(3) == rep.recall_at(3));
  // max_k caps R' only: recall@3 still looks at 3 neighbours.
  auto capped = dml::eval::retrieval(x.data(), 5, 1, y,
                                     RetrievalOptions{.metric = Metric::L2, .max_k = 1, .recall_at = {3}});
  CHECK(capped.r_precision == doctest::Approx(capped.precision_at_1));
  CHECK(capped.recall_at(3) == doctest::Approx(4.0 / 5));
}

TEST_CASE("recall@k and MAP on the line example: per-class equals plain for equal class sizes") {
  // The line of the P@1 test above (A A B A B B C). Full rankings: q0 A B A B B C, q1 B A A B B C,
  // q2 A A A B B C, q3 B A A B B C, q4 B A B A A C (x0 and x6 tie at 10: index order),
  // q5 B A C B A A. AP: 5/6, 7/12, 13/40, 7/12, 5/6, 3/4 -> MAP = 469/720.
  const std::vector<float> x = {0.0f, 1.0f, 1.5f, 3.5f, 10.0f, 11.0f, 20.0f};
  const std::vector<std::int64_t> y = {0, 0, 1, 0, 1, 1, 2};
  for (bool per_class : {false, true}) {
    CAPTURE(per_class);
    auto rep = dml::eval::retrieval(x.data(), 7, 1, y,
                                    RetrievalOptions{.metric = Metric::L2, .recall_at = {6, 1, 2, 3, 4},
                                                     .mean_average_precision = true, .avg_of_avgs = per_class});
    CHECK(rep.num_lone == 1);
    CHECK(rep.num_classes == 2);  // the lone class C is in no average
    CHECK(*rep.mean_average_precision == doctest::Approx(469.0 / 720));
    CHECK(rep.precision_at_1 == doctest::Approx(3.0 / 6));
    CHECK(rep.recall_at_k[0].k == 6);  // the order of RetrievalOptions::recall_at
    CHECK(rep.recall_at(6) == 1.0);    // k = n - 1 is allowed
    CHECK(rep.recall_at(1) == doctest::Approx(3.0 / 6));
    CHECK(rep.recall_at(2) == doctest::Approx(5.0 / 6));
    CHECK(rep.recall_at(3) == doctest::Approx(5.0 / 6));
    CHECK(rep.recall_at(4) == 1.0);
  }
}

TEST_CASE("recall@k and MAP with tied distances follow the lower reference index") {
  // Query at 0 (class 0); references at distances 1, 1, 5, 5; two of them are class 0.
  const std::vector<float> q = {0.0f};
  const std::vector<float> refs = {1.0f, -1.0f, 5.0f, -5.0f};
  const std::vector<std::int64_t> ql = {0};
  const RetrievalOptions opt{.metric = Metric::L2, .recall_at = {1, 2}, .mean_average_precision = true};
  // Ranking by (distance, index): labels 1 0 1 0 -> hits at 2 and 4.
  auto a = dml::eval::retrieval(q.data(), 1, ql, refs.data(), 4, std::vector<std::int64_t>{1, 0, 1, 0}, 1, opt);
  CHECK(a.k == 4);
  CHECK(a.recall_at(1) == 0.0);
  CHECK(a.recall_at(2) == 1.0);
  CHECK(*a.mean_average_precision == doctest::Approx((1.0 / 2 + 2.0 / 4) / 2));
  // Labels 0 1 1 0 -> hits at 1 and 4.
  auto b = dml::eval::retrieval(q.data(), 1, ql, refs.data(), 4, std::vector<std::int64_t>{0, 1, 1, 0}, 1, opt);
  CHECK(b.recall_at(1) == 1.0);
  CHECK(*b.mean_average_precision == doctest::Approx((1.0 + 2.0 / 4) / 2));
}

TEST_CASE("recall@k, MAP and avg_of_avgs match the NumPy port and sklearn (fixture)") {
  auto in = fixture("retrieval_breadth.txt");
  std::string tok, name, metric;
  int cases = 0;
  std::int64_t lone_total = 0;
  while (in >> tok) {
    REQUIRE(tok == "case");
    int same = 0;
    std::int64_t nq = 0, nr = 0, dim = 0, m = 0;
    in >> name >> same >> metric >> nq >> nr >> dim >> m;
    CAPTURE(name);
    auto q = read_n<float>(in, "queries", nq * dim);
    auto qy = read_n<std::int64_t>(in, "query_labels", nq);
    std::vector<float> r;
    std::vector<std::int64_t> ry;
    if (!same) {
      r = read_n<float>(in, "refs", nr * dim);
      ry = read_n<std::int64_t>(in, "ref_labels", nr);
    }
    auto ks = read_n<int>(in, "recall_ks", m);
    const auto lone = static_cast<std::int64_t>(read_key(in, "lone"));
    lone_total += lone;
    for (int per_class = 0; per_class < 2; ++per_class) {
      CAPTURE(per_class);
      REQUIRE(static_cast<int>(read_key(in, "avg")) == per_class);
      RetrievalOptions opt{.metric = metric == "cosine" ? Metric::Cosine : Metric::L2,
                           .recall_at = ks,
                           .mean_average_precision = true,
                           .avg_of_avgs = per_class == 1};
      const auto rep = same ? dml::eval::retrieval(q.data(), nq, dim, qy, opt)
                            : dml::eval::retrieval(q.data(), nq, qy, r.data(), nr, ry, dim, opt);
      CHECK(rep.num_lone == lone);
      CHECK(rep.precision_at_1 == doctest::Approx(read_key(in, "p1")).epsilon(1e-12));
      CHECK(rep.r_precision == doctest::Approx(read_key(in, "rp")).epsilon(1e-12));
      CHECK(rep.map_at_r == doctest::Approx(read_key(in, "mapr")).epsilon(1e-12));
      CHECK(*rep.mean_average_precision == doctest::Approx(read_key(in, "map")).epsilon(1e-12));
      auto want = read_n<double>(in, "recall", m);
      REQUIRE(rep.recall_at_k.size() == ks.size());
      for (std::int64_t i = 0; i < m; ++i) {
        CAPTURE(ks[i]);
        CHECK(rep.recall_at_k[i].k == ks[i]);
        CHECK(rep.recall_at_k[i].recall == doctest::Approx(want[i]).epsilon(1e-12));
      }
      CHECK(rep.recall_at(1) == rep.precision_at_1);
      // Without MAP (fewer neighbours retrieved) the other metrics are the same numbers.
      opt.mean_average_precision = false;
      const auto lean = same ? dml::eval::retrieval(q.data(), nq, dim, qy, opt)
                             : dml::eval::retrieval(q.data(), nq, qy, r.data(), nr, ry, dim, opt);
      CHECK(lean.k <= rep.k);
      CHECK(lean.map_at_r == rep.map_at_r);
      for (std::int64_t i = 0; i < m; ++i) CHECK(lean.recall_at_k[i].recall == rep.recall_at_k[i].recall);
    }
    ++cases;
  }
  CHECK(cases == 3);
  CHECK(lone_total == 2);  // two of the three cases have a lone query
}

TEST_CASE("retrieval rejects recall k below 1 or beyond the references, naming recall_at") {
  const std::vector<float> x = {0, 1, 2, 3};
  const std::vector<std::int64_t> y = {0, 0, 1, 1};
  auto run = [&](std::vector<int> ks) {
    return dml::eval::retrieval(x.data(), 4, 1, y, RetrievalOptions{.metric = Metric::L2, .recall_at = ks});
  };
  CHECK_THROWS_WITH_AS(run({1, 0}), doctest::Contains("recall_at[1] = 0"), dml::Error);
  CHECK_THROWS_WITH_AS(run({-2}), doctest::Contains("recall_at[0] = -2"), dml::Error);
  CHECK_THROWS_WITH_AS(run({4}), doctest::Contains("recall_at[0] = 4 but only 3"), dml::Error);  // k >= n
  CHECK(run({3}).recall_at(3) == 1.0);
  // Two-set: k may reach the reference count, not pass it.
  const std::vector<float> q = {0.5f};
  const std::vector<std::int64_t> qy = {1};
  CHECK_THROWS_WITH_AS(dml::eval::retrieval(q.data(), 1, qy, x.data(), 4, y, 1, RetrievalOptions{.recall_at = {5}}),
                       doctest::Contains("recall_at[0] = 5 but only 4"), dml::Error);
  // Checked even when every query is lone, and before the label count is trusted.
  const std::vector<std::int64_t> singles = {0, 1, 2, 3};
  CHECK_THROWS_WITH_AS(dml::eval::retrieval(x.data(), 4, 1, singles, RetrievalOptions{.recall_at = {0}}),
                       doctest::Contains("recall_at"), dml::Error);
  CHECK_THROWS_WITH_AS(
      dml::eval::retrieval(x.data(), 4, 1, std::span<const std::int64_t>(y.data(), 3), RetrievalOptions{}),
      doctest::Contains("3 query labels"), dml::Error);
  // All lone: zeros, one entry per requested k, MAP set to 0.
  auto lone = dml::eval::retrieval(x.data(), 4, 1, singles,
                                   RetrievalOptions{.recall_at = {1, 2}, .mean_average_precision = true});
  CHECK(lone.num_queries == 0);
  CHECK(lone.recall_at_k.size() == 2);
  CHECK(lone.recall_at(2) == 0.0);
  CHECK(*lone.mean_average_precision == 0.0);
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

TEST_CASE("ROC curve: hand-computed points with ties, first point at +infinity") {
  // Scores 0.9(+) 0.7(-) 0.7(+) 0.4(-) 0.1(-): the tie at 0.7 is one point.
  const std::vector<double> s = {0.7, 0.1, 0.9, 0.4, 0.7};
  const std::vector<std::uint8_t> pos = {1, 0, 1, 0, 0};
  const auto c = dml::eval::roc_curve(s, pos);
  REQUIRE(c.size() == 5);
  CHECK(std::isinf(c.thresholds[0]));
  CHECK(c.thresholds[0] > 0);
  CHECK(c.thresholds == std::vector<double>{c.thresholds[0], 0.9, 0.7, 0.4, 0.1});
  CHECK(c.fpr == std::vector<double>{0, 0, 1.0 / 3, 2.0 / 3, 1});
  CHECK(c.tpr == std::vector<double>{0, 0.5, 1, 1, 1});
  // float scores give the same curve
  const std::vector<float> sf = {0.75f, 0.125f, 0.875f, 0.5f, 0.75f};
  const auto cf = dml::eval::roc_curve(sf, pos);
  CHECK(cf.thresholds[2] == 0.75);
  CHECK(cf.fpr == c.fpr);
  CHECK(cf.tpr == c.tpr);
}

TEST_CASE("the ROC curve's trapezoid area is roc_auc on random scores with ties") {
  dml::eval::detail::SplitMix64 rng(29);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 5 + static_cast<int>(rng.below(120));
    std::vector<double> s(n);
    std::vector<std::uint8_t> pos(n);
    for (int i = 0; i < n; ++i) {
      s[i] = static_cast<double>(rng.below(9)) * 0.5;
      pos[i] = rng.uniform() < 0.25 + 0.05 * s[i];
    }
    pos[0] = 1, pos[1] = 0;
    const auto c = dml::eval::roc_curve(s, pos);
    double area = 0;
    for (std::size_t i = 1; i < c.size(); ++i) {
      CHECK(c.fpr[i] >= c.fpr[i - 1]);
      CHECK(c.tpr[i] >= c.tpr[i - 1]);
      CHECK(c.thresholds[i] < c.thresholds[i - 1]);
      area += (c.fpr[i] - c.fpr[i - 1]) * (c.tpr[i] + c.tpr[i - 1]) / 2;
    }
    CHECK(c.fpr.back() == 1.0);
    CHECK(c.tpr.back() == 1.0);
    CHECK(area == doctest::Approx(pair_auc(s, pos)).epsilon(1e-12));
  }
}

TEST_CASE("ROC curve matches scikit-learn's roc_curve(drop_intermediate=False) (fixture)") {
  auto in = fixture("roc_curve.txt");
  std::string tok, name;
  int cases = 0;
  while (in >> tok) {
    REQUIRE(tok == "case");
    std::int64_t n = 0, points = 0;
    in >> name >> n >> points;
    CAPTURE(name);
    auto s = read_n<double>(in, "scores", n);
    auto p = read_n<int>(in, "positive", n);
    auto fpr = read_n<double>(in, "fpr", points);
    auto tpr = read_n<double>(in, "tpr", points);
    auto thr = read_n<double>(in, "thresholds", points);
    std::vector<std::uint8_t> pos(p.begin(), p.end());
    const auto c = dml::eval::roc_curve(s, pos);
    REQUIRE(static_cast<std::int64_t>(c.size()) == points);
    CHECK(std::isinf(c.thresholds[0]));  // sklearn 1.2 writes max + 1 here; later releases +inf
    for (std::int64_t i = 0; i < points; ++i) {
      CAPTURE(i);
      CHECK(c.fpr[i] == doctest::Approx(fpr[i]).epsilon(1e-15));
      CHECK(c.tpr[i] == doctest::Approx(tpr[i]).epsilon(1e-15));
      if (i > 0) CHECK(c.thresholds[i] == thr[i]);
    }
    ++cases;
  }
  CHECK(cases == 4);
}

TEST_CASE("ROC curve rejects empty classes, NaN scores and length mismatch, naming roc_curve") {
  std::vector<double> s = {0.1, 0.2, 0.3};
  CHECK_THROWS_WITH_AS(dml::eval::roc_curve(s, std::vector<std::uint8_t>{1, 1, 1}),
                       doctest::Contains("roc_curve: no negative"), dml::Error);
  CHECK_THROWS_WITH_AS(dml::eval::roc_curve(s, std::vector<std::uint8_t>{0, 0, 0}),
                       doctest::Contains("roc_curve: no positive"), dml::Error);
  CHECK_THROWS_WITH_AS(dml::eval::roc_curve(s, std::vector<std::uint8_t>{0, 1}),
                       doctest::Contains("3 scores but 2 positive flags"), dml::Error);
  s[2] = NAN;
  CHECK_THROWS_WITH_AS(dml::eval::roc_curve(s, std::vector<std::uint8_t>{0, 1, 0}),
                       doctest::Contains("score 2 is NaN"), dml::Error);
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
