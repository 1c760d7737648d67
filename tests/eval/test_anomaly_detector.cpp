// Tests for dml/eval/anomaly_detector.hpp: scores, the false-positive-rate
// threshold, and saving the detector alone or beside other tensors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <vector>

#include "dml/backend/cpu/backend.hpp"
#include "dml/core/random.hpp"
#include "dml/eval/anomaly.hpp"
#include "dml/eval/anomaly_detector.hpp"

using namespace dml;

namespace test_anomaly_detector {

// n rows of width dim near the unit vector e_axis (noise sd 0.1), seeded.
std::vector<float> blob(std::int64_t n, std::int64_t dim, std::int64_t axis, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<float> out(static_cast<std::size_t>(n * dim));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < dim; ++j)
      out[static_cast<std::size_t>(i * dim + j)] = (j == axis ? 1.0f : 0.0f) + 0.1f * gen.normal();
  return out;
}

std::vector<float> concat(std::vector<float> a, const std::vector<float>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_CASE("AnomalyDetector: k = 1 is the nearest-reference score, k > 1 the mean of the k nearest") {
  const std::int64_t dim = 6;
  const std::vector<float> refs = concat(blob(30, dim, 0, 1), blob(30, dim, 1, 2));
  const std::vector<float> queries = concat(blob(10, dim, 0, 3), blob(10, dim, 2, 4));
  for (eval::Metric metric : {eval::Metric::Cosine, eval::Metric::L2}) {
    CAPTURE(eval::metric_name(metric));
    eval::AnomalyDetector nearest({.metric = metric, .k = 1});
    nearest.fit(refs.data(), 60, dim);
    CHECK(nearest.score(queries.data(), 20, dim) == eval::anomaly_scores(queries.data(), 20, refs.data(), 60, dim, metric));

    eval::AnomalyDetector mean3({.metric = metric, .k = 3});
    mean3.fit(refs.data(), 60, dim);
    const std::vector<float> s = mean3.score(queries.data(), 20, dim);
    const eval::KnnResult nb = eval::knn(queries.data(), 20, refs.data(), 60, dim, 3, metric);
    for (std::int64_t q = 0; q < 20; ++q) {
      const double want = (nb.distances[q * 3] + nb.distances[q * 3 + 1] + nb.distances[q * 3 + 2]) / 3.0;
      CHECK(s[static_cast<std::size_t>(q)] == doctest::Approx(want).epsilon(1e-6));
    }
    // The tensor overloads give the same scores.
    auto t = Tensor<float>::from_vector(queries, Shape{20, dim});
    CHECK(mean3.score(t) == s);
  }
}

TEST_CASE("AnomalyDetector::calibrate: the threshold is the ceil((1 - fpr) n)-th held-out score") {
  eval::AnomalyDetector det;
  std::vector<float> known;
  for (int i = 1; i <= 20; ++i) known.push_back(static_cast<float>(i));
  CHECK(det.calibrate(known, 0.05) == 19.0f);  // 1 of 20 above
  CHECK(det.achieved_fpr() == doctest::Approx(0.05));
  CHECK(det.target_fpr() == 0.05);
  std::vector<std::uint8_t> last_only(20, 0);
  last_only[19] = 1;
  CHECK(det.flag(known) == last_only);
  CHECK(det.calibrate(known, 0.12) == 18.0f);  // ceil(17.6) = 18: 2 of 20 (0.10) above, never more than 12 %
  CHECK(det.achieved_fpr() == doctest::Approx(0.10));
  CHECK(det.calibrate(known, 0.0) == 20.0f);   // nothing held out is flagged
  CHECK(det.achieved_fpr() == 0.0);
  // Ties at the threshold: none of them is flagged, so fewer than the target may be.
  const std::vector<float> tied = {1, 2, 3, 3, 3, 3, 3, 3, 3, 3};
  CHECK(det.calibrate(tied, 0.3) == 3.0f);
  CHECK(det.achieved_fpr() == 0.0);

  CHECK_THROWS_WITH_AS(det.calibrate(known, 1.0), doctest::Contains("[0, 1)"), Error);
  CHECK_THROWS_WITH_AS(det.calibrate(known, -0.1), doctest::Contains("[0, 1)"), Error);
  CHECK_THROWS_WITH_AS(det.calibrate(std::vector<float>{}, 0.1), doctest::Contains("no held-out scores"), Error);
  const std::vector<float> nan = {1, std::numeric_limits<float>::quiet_NaN()};
  CHECK_THROWS_WITH_AS(det.calibrate(nan, 0.1), doctest::Contains("held-out score 1 is NaN"), Error);
}

TEST_CASE("AnomalyDetector: an unseen cluster is flagged, held-out known data at about the chosen rate") {
  const std::int64_t dim = 8;
  const std::vector<float> refs = concat(blob(200, dim, 0, 11), blob(200, dim, 1, 12));
  const std::vector<float> held_out = concat(blob(100, dim, 0, 13), blob(100, dim, 1, 14));
  const std::vector<float> known_test = concat(blob(100, dim, 0, 15), blob(100, dim, 1, 16));
  const std::vector<float> unknown = blob(100, dim, 2, 17);

  eval::AnomalyDetector det({.metric = eval::Metric::Cosine, .k = 5});
  det.fit(Tensor<float>::from_vector(refs, Shape{400, dim}));
  det.calibrate(Tensor<float>::from_vector(held_out, Shape{200, dim}), 0.05);
  CHECK(det.achieved_fpr() <= 0.05);

  const std::vector<std::uint8_t> known_flags = det.flag(det.score(known_test.data(), 200, dim));
  const std::vector<std::uint8_t> unknown_flags = det.flag(det.score(unknown.data(), 100, dim));
  std::int64_t false_pos = 0, true_pos = 0;
  for (auto f : known_flags) false_pos += f;
  for (auto f : unknown_flags) true_pos += f;
  CHECK(false_pos <= 25);  // 5 % of 200 is 10; a fresh sample of the same clusters lands near it
  CHECK(true_pos == 100);
}

TEST_CASE("AnomalyDetector: save and load, alone or beside a model's tensors") {
  const std::int64_t dim = 4;
  const std::vector<float> refs = blob(12, dim, 0, 21);
  const std::vector<float> queries = blob(5, dim, 1, 22);
  eval::AnomalyDetector det({.metric = eval::Metric::L2, .k = 2});
  det.fit(refs.data(), 12, dim);
  det.calibrate(det.score(queries.data(), 5, dim), 0.2);

  const auto dir = std::filesystem::temp_directory_path();
  const auto alone = dir / "dml_test_anomaly_detector.safetensors";
  det.save(alone);
  const eval::AnomalyDetector back = eval::AnomalyDetector::load(alone);
  CHECK(back.options().metric == eval::Metric::L2);
  CHECK(back.options().k == 2);
  CHECK(back.reference_count() == 12);
  CHECK(back.threshold() == det.threshold());
  CHECK(back.target_fpr() == det.target_fpr());
  CHECK(back.achieved_fpr() == det.achieved_fpr());
  CHECK(back.score(queries.data(), 5, dim) == det.score(queries.data(), 5, dim));

  // Beside other tensors (e.g. nn::to_tensor_map of the body), under its own prefix.
  io::TensorMap tensors;
  io::StringMap metadata{{"model", "test"}};
  const std::vector<float> w = {1, 2, 3};
  tensors.emplace("body.weight", io::RawTensor::from(w.data(), {3}));
  det.append_to(tensors, metadata, "detector.");
  CHECK_THROWS_WITH_AS(det.append_to(tensors, metadata, "detector."), doctest::Contains("already named"), Error);
  const auto model = dir / "dml_test_anomaly_detector_model.safetensors";
  io::save_safetensors(model, tensors, metadata);
  const eval::AnomalyDetector again = eval::AnomalyDetector::load(model, "detector.");
  CHECK(again.score(queries.data(), 5, dim) == det.score(queries.data(), 5, dim));
  CHECK(io::read_safetensors(model).tensors.at("body.weight").as<float>() == w);
  CHECK_THROWS_WITH_AS(eval::AnomalyDetector::load(model), doctest::Contains("no metadata field 'anomaly.metric'"),
                       Error);

  // An uncalibrated detector saves without a threshold and loads uncalibrated.
  eval::AnomalyDetector raw;
  raw.fit(refs.data(), 12, dim);
  raw.save(alone);
  CHECK_FALSE(eval::AnomalyDetector::load(alone).calibrated());

  // Bad fields name the file and the field.
  auto broken = [&](const char* key, const char* value) {
    io::TensorMap t;
    io::StringMap m;
    det.append_to(t, m);
    m[key] = value;
    return eval::AnomalyDetector::from(t, m, "x.safetensors");
  };
  CHECK_THROWS_WITH_AS(broken("anomaly.metric", "manhattan"), doctest::Contains("x.safetensors: metadata field 'anomaly.metric' is 'manhattan'"), Error);
  CHECK_THROWS_WITH_AS(broken("anomaly.k", "2x"), doctest::Contains("'anomaly.k' is '2x'"), Error);
  CHECK_THROWS_WITH_AS(broken("anomaly.k", "0"), doctest::Contains("expected an integer >= 1"), Error);
  CHECK_THROWS_WITH_AS(broken("anomaly.threshold", "high"), doctest::Contains("'anomaly.threshold' is 'high', not a number"), Error);
  io::TensorMap t;
  io::StringMap m;
  det.append_to(t, m);
  const std::vector<double> d(48, 1.0);
  t["anomaly.references"] = io::RawTensor::from(d.data(), {12, 4});
  CHECK_THROWS_WITH_AS(eval::AnomalyDetector::from(t, m, "y"), doctest::Contains("must be F32 [n, dim], found F64 [12, 4]"), Error);
  std::filesystem::remove(alone);
  std::filesystem::remove(model);
}

TEST_CASE("AnomalyDetector: bad input is an error that says what is wrong") {
  const std::vector<float> refs = {1, 0, 0, 1, 0, 0};  // 3 rows of width 2; the last is zero
  eval::AnomalyDetector cosine;
  CHECK_THROWS_WITH_AS(cosine.score(refs.data(), 1, 2), doctest::Contains("call fit() first"), Error);
  CHECK_THROWS_WITH_AS(cosine.fit(refs.data(), 3, 2), doctest::Contains("row 2 is a zero vector"), Error);
  eval::AnomalyDetector l2({.metric = eval::Metric::L2, .k = 1});
  l2.fit(refs.data(), 3, 2);  // a zero row is fine for L2
  CHECK_THROWS_WITH_AS(l2.score(refs.data(), 2, 3), doctest::Contains("3 columns but the references 2"), Error);
  CHECK_THROWS_WITH_AS(l2.flag(std::vector<float>{0.5f}), doctest::Contains("no threshold"), Error);
  const std::vector<float> nan = {1, std::numeric_limits<float>::quiet_NaN()};
  CHECK_THROWS_WITH_AS(l2.fit(nan.data(), 1, 2), doctest::Contains("row 0 holds NaN/Inf"), Error);
  eval::AnomalyDetector k5({.metric = eval::Metric::L2, .k = 5});
  CHECK_THROWS_WITH_AS(k5.fit(refs.data(), 3, 2), doctest::Contains("3 reference embedding(s) for k = 5"), Error);
  CHECK_THROWS_WITH_AS(eval::AnomalyDetector({.metric = eval::Metric::L2, .k = 0}), doctest::Contains("k must be >= 1"),
                       Error);
  l2.set_threshold(0.25f);
  CHECK(l2.flag(std::vector<float>{0.25f, 0.26f}) == std::vector<std::uint8_t>{0, 1});
  CHECK(std::isnan(l2.target_fpr()));
}

}  // namespace test_anomaly_detector
