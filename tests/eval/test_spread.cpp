// Tests for dml/eval/spread.hpp: intra- and inter-class spread of an embedding.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "dml/backend/cpu/backend.hpp"
#include "dml/eval/spread.hpp"

using namespace dml;

TEST_CASE("class_spread: distances to the centroids and between them, by hand") {
  // Class 0 at (0, +-1), class 1 at (4, +-1): centroids (0, 0) and (4, 0).
  const std::vector<float> emb = {0, 1, 0, -1, 4, 1, 4, -1};
  const std::vector<std::int64_t> labels = {0, 0, 1, 1};
  const eval::SpreadReport l2 = eval::class_spread(emb.data(), 4, 2, labels, eval::Metric::L2);
  CHECK(l2.classes == 2);
  CHECK(l2.intra == doctest::Approx(1.0));
  CHECK(l2.inter == doctest::Approx(4.0));
  CHECK(l2.ratio == doctest::Approx(0.25));
  // Cosine: rows normalised first; class 1 becomes (4, +-1) / sqrt(17).
  const eval::SpreadReport cs = eval::class_spread(emb.data(), 4, 2, labels, eval::Metric::Cosine);
  const double s = 1 / std::sqrt(17.0);
  CHECK(cs.intra == doctest::Approx((1.0 + s) / 2));
  CHECK(cs.inter == doctest::Approx(4 * s));
}

TEST_CASE("class_spread: scaling the embedding leaves the ratio alone; bad input is an error") {
  const std::vector<float> a = {0, 1, 0, -1, 4, 1, 4, -1, 1, 2};
  std::vector<float> b = a;
  for (float& v : b) v *= 10;
  const std::vector<std::int64_t> labels = {0, 0, 1, 1, 0};
  CHECK(eval::class_spread(a.data(), 5, 2, labels, eval::Metric::L2).ratio ==
        doctest::Approx(eval::class_spread(b.data(), 5, 2, labels, eval::Metric::L2).ratio));
  auto t = Tensor<float>::from_vector(a, Shape{5, 2});
  CHECK(eval::class_spread(t, labels).ratio == doctest::Approx(eval::class_spread(a.data(), 5, 2, labels).ratio));
  const std::vector<std::int64_t> one_class = {0, 0, 0, 0, 0};
  CHECK_THROWS_WITH_AS(eval::class_spread(a.data(), 5, 2, one_class), doctest::Contains("at least two classes"), Error);
  CHECK_THROWS_WITH_AS(eval::class_spread(a.data(), 4, 2, labels), doctest::Contains("5 labels for 4 embeddings"), Error);
  std::vector<float> bad = a;
  bad[3] = NAN;
  CHECK_THROWS_WITH_AS(eval::class_spread(bad.data(), 5, 2, labels), doctest::Contains("row 1 holds a non-finite"), Error);
}
