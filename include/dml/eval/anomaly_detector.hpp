// dml/eval/anomaly_detector.hpp: anomaly scoring for new data, outside the
// benchmark protocol of anomaly.hpp.
//
//   eval::AnomalyDetector det({.metric = eval::Metric::Cosine, .k = 1});
//   det.fit(reference_embeddings);            // known-class embeddings [n, dim]
//   det.calibrate(held_out_known, 0.05);      // threshold at a 5 % false-positive rate
//   std::vector<float> s = det.score(new_embeddings);
//   std::vector<std::uint8_t> flag = det.flag(s);   // 1 = anomalous
//   det.save("detector.safetensors");          // or append_to() beside a model's weights
//
// The score of an embedding is its distance to the nearest reference (k = 1),
// or the mean distance to its k nearest references (k > 1), under the cosine
// or L2 distance of knn.hpp. Higher means more anomalous.
//
// The threshold: with held-out known-class scores s_1 <= ... <= s_n and a target
// false-positive rate f, it is s_m with m = ceil((1 - f) n) (1-based), and a
// sample is flagged when its score is above it. So at most floor(f n) of the
// held-out samples are flagged (fewer when scores tie at the threshold), and
// achieved_fpr() says how many were.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../io/raw_tensor.hpp"
#include "../io/safetensors.hpp"
#include "host_matrix.hpp"
#include "knn.hpp"

namespace dml::eval {

struct AnomalyOptions {
  Metric metric = Metric::Cosine;
  int k = 1;  // 1: distance to the nearest reference; > 1: mean distance to the k nearest
};

class AnomalyDetector {
 public:
  // The names under which append_to() stores a detector (prefix + these).
  static constexpr const char* kReferences = "references";  // F32 [n, dim]
  static constexpr const char* kDefaultPrefix = "anomaly.";

  explicit AnomalyDetector(AnomalyOptions options = {}) : options_(options) {
    DML_CHECK(options_.k >= 1, "AnomalyDetector: k must be >= 1, got ", options_.k);
  }

  // Keeps a copy of the reference rows (n x dim, row-major floats): embeddings
  // of known-class samples. Clears any threshold. Throws dml::Error when n < k,
  // dim < 1, or a row is NaN/Inf (or zero, for cosine), naming the row.
  void fit(const float* refs, std::int64_t n, std::int64_t dim) {
    DML_CHECK(dim >= 1, "AnomalyDetector::fit: embedding width must be >= 1, got ", dim);
    DML_CHECK(n >= options_.k, "AnomalyDetector::fit: ", n, " reference embedding(s) for k = ", options_.k,
              " (need at least k)");
    constexpr const char* kWho = "AnomalyDetector reference embeddings";
    detail::check_matrix(refs, n, dim, kWho);
    const std::vector<float> norms = detail::squared_norms(refs, n, dim, kWho);  // throws on NaN/Inf rows
    if (options_.metric == Metric::Cosine)
      for (std::int64_t i = 0; i < n; ++i)
        DML_CHECK(norms[static_cast<std::size_t>(i)] > 0.0f, kWho, " row ", i,
                  " is a zero vector: cosine distance is undefined");
    refs_.assign(refs, refs + n * dim);
    rows_ = n;
    dim_ = dim;
    clear_threshold();
  }
  template <class T, class D>
  void fit(const Tensor<T, D>& refs) {
    const HostMatrix m = host_matrix(refs, "AnomalyDetector::fit");
    fit(m.data(), m.rows, m.cols);
  }

  // Scores of n rows of width dim (must equal the references'). Throws before fit().
  std::vector<float> score(const float* x, std::int64_t n, std::int64_t dim) const {
    DML_CHECK(fitted(), "AnomalyDetector::score: call fit() first");
    DML_CHECK(dim == dim_, "AnomalyDetector::score: embeddings have ", dim, " columns but the references ", dim_);
    std::vector<float> out(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
    const int k = options_.k;
    detail::knn_visit(x, n, refs_.data(), rows_, dim_, k, options_.metric, false,
                      [&](std::int64_t q, const detail::Neighbor* nb, int kk) {
                        double sum = 0.0;
                        for (int j = 0; j < kk; ++j) sum += nb[j].dist;
                        out[static_cast<std::size_t>(q)] = static_cast<float>(sum / kk);
                      },
                      "embeddings to score", "AnomalyDetector reference embeddings");
    return out;
  }
  template <class T, class D>
  std::vector<float> score(const Tensor<T, D>& x) const {
    const HostMatrix m = host_matrix(x, "AnomalyDetector::score");
    return score(m.data(), m.rows, m.cols);
  }

  // Sets the threshold from scores of held-out known-class samples (not the
  // references themselves: their own distance is 0) at false-positive rate
  // fpr in [0, 1). Returns the threshold. Throws on no scores, a NaN score or
  // fpr outside [0, 1).
  float calibrate(std::span<const float> known_scores, double fpr) {
    DML_CHECK(fpr >= 0.0 && fpr < 1.0, "AnomalyDetector::calibrate: false-positive rate must be in [0, 1), got ",
              fpr);
    DML_CHECK(!known_scores.empty(), "AnomalyDetector::calibrate: no held-out scores");
    std::vector<float> s(known_scores.begin(), known_scores.end());
    for (std::size_t i = 0; i < s.size(); ++i)
      DML_CHECK(!std::isnan(s[i]), "AnomalyDetector::calibrate: held-out score ", i, " is NaN");
    std::sort(s.begin(), s.end());
    const auto n = static_cast<double>(s.size());
    // m = ceil((1 - fpr) n), at least 1; the tiny slack keeps exact products (0.95 * 20) exact.
    auto m = static_cast<std::size_t>(std::ceil((1.0 - fpr) * n - 1e-9));
    m = std::clamp<std::size_t>(m, 1, s.size());
    threshold_ = s[m - 1];
    target_fpr_ = fpr;
    std::size_t above = 0;
    for (float v : s) above += v > threshold_;
    achieved_fpr_ = static_cast<double>(above) / n;
    calibrated_ = true;
    return threshold_;
  }
  // calibrate() on the scores of held-out known-class embeddings.
  template <class T, class D>
  float calibrate(const Tensor<T, D>& known_held_out, double fpr) {
    const std::vector<float> s = score(known_held_out);
    return calibrate(s, fpr);
  }
  // Sets the threshold by hand (e.g. from a previous run): no rate is recorded.
  void set_threshold(float threshold) {
    DML_CHECK(!std::isnan(threshold), "AnomalyDetector::set_threshold: NaN");
    threshold_ = threshold;
    target_fpr_ = achieved_fpr_ = std::numeric_limits<double>::quiet_NaN();
    calibrated_ = true;
  }

  // 1 where score > threshold. Throws before calibrate() / set_threshold().
  std::vector<std::uint8_t> flag(std::span<const float> scores) const {
    DML_CHECK(calibrated_, "AnomalyDetector::flag: no threshold: call calibrate() or set_threshold() first");
    std::vector<std::uint8_t> out(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) out[i] = scores[i] > threshold_;
    return out;
  }

  bool fitted() const noexcept { return rows_ > 0; }
  bool calibrated() const noexcept { return calibrated_; }
  const AnomalyOptions& options() const noexcept { return options_; }
  std::int64_t reference_count() const noexcept { return rows_; }
  std::int64_t dim() const noexcept { return dim_; }
  float threshold() const noexcept { return threshold_; }
  double target_fpr() const noexcept { return target_fpr_; }    // NaN when set by hand or not calibrated
  double achieved_fpr() const noexcept { return achieved_fpr_; }  // on the calibration scores

  // Adds the detector to a tensor map and its metadata (e.g. a model's
  // nn::to_tensor_map, saved together with io::save_safetensors): the tensor
  // prefix + "references" and the string fields prefix + metric, k, threshold,
  // target_fpr, achieved_fpr. Throws before fit() or when a name is taken.
  void append_to(io::TensorMap& tensors, io::StringMap& metadata, const std::string& prefix = kDefaultPrefix) const {
    DML_CHECK(fitted(), "AnomalyDetector::append_to: call fit() first");
    const std::string name = prefix + kReferences;
    DML_CHECK(!tensors.contains(name), "AnomalyDetector::append_to: a tensor is already named '", name, "'");
    tensors.emplace(name, io::RawTensor::from(refs_.data(), {rows_, dim_}));
    metadata[prefix + "metric"] = metric_name(options_.metric);
    metadata[prefix + "k"] = std::to_string(options_.k);
    if (calibrated_) {
      metadata[prefix + "threshold"] = exact(threshold_);
      metadata[prefix + "target_fpr"] = exact(target_fpr_);
      metadata[prefix + "achieved_fpr"] = exact(achieved_fpr_);
    }
  }
  // The detector stored by append_to() under `prefix`. `source` names the
  // file in errors. Throws dml::Error naming the missing or bad field.
  static AnomalyDetector from(const io::TensorMap& tensors, const io::StringMap& metadata,
                              const std::string& source, const std::string& prefix = kDefaultPrefix) {
    auto field = [&](const char* key) -> const std::string& {
      auto it = metadata.find(prefix + key);
      DML_CHECK(it != metadata.end(), source, ": no metadata field '", prefix, key, "' (not an AnomalyDetector?)");
      return it->second;
    };
    AnomalyOptions opt;
    const std::string& metric = field("metric");
    DML_CHECK(metric == "cosine" || metric == "l2", source, ": metadata field '", prefix, "metric' is '", metric,
              "', expected cosine or l2");
    opt.metric = metric == "cosine" ? Metric::Cosine : Metric::L2;
    opt.k = static_cast<int>(parse_number(field("k"), source, prefix + "k"));
    DML_CHECK(opt.k >= 1 && std::to_string(opt.k) == field("k"), source, ": metadata field '", prefix, "k' is '",
              field("k"), "', expected an integer >= 1");
    const std::string name = prefix + kReferences;
    auto it = tensors.find(name);
    DML_CHECK(it != tensors.end(), source, ": no tensor '", name, "'");
    const io::RawTensor& t = it->second;
    DML_CHECK(t.dtype == io::DType::F32 && t.shape.size() == 2, source, ": tensor '", name,
              "' must be F32 [n, dim], found ", io::dtype_name(t.dtype), " ", io::shape_string(t.shape));
    const std::vector<float> refs = t.as<float>();
    AnomalyDetector det(opt);
    try {
      det.fit(refs.data(), t.shape[0], t.shape[1]);
    } catch (const Error& e) {
      throw Error(::dml::detail::concat(source, ": tensor '", name, "': ", e.message()));
    }
    if (metadata.contains(prefix + "threshold")) {
      det.threshold_ = static_cast<float>(parse_number(field("threshold"), source, prefix + "threshold"));
      det.target_fpr_ = parse_number(field("target_fpr"), source, prefix + "target_fpr");
      det.achieved_fpr_ = parse_number(field("achieved_fpr"), source, prefix + "achieved_fpr");
      det.calibrated_ = true;
    }
    return det;
  }

  // A detector alone in a safetensors file.
  void save(const std::filesystem::path& path) const {
    io::TensorMap tensors;
    io::StringMap metadata;
    append_to(tensors, metadata);
    io::save_safetensors(path, tensors, metadata);
  }
  // Reads a file written by save(), or any safetensors file holding a detector
  // under `prefix` (a model saved with append_to()).
  static AnomalyDetector load(const std::filesystem::path& path, const std::string& prefix = kDefaultPrefix) {
    io::SafetensorsFile f = io::read_safetensors(path);
    return from(f.tensors, f.metadata, path.string(), prefix);
  }

 private:
  void clear_threshold() {
    calibrated_ = false;
    threshold_ = 0.0f;
    target_fpr_ = achieved_fpr_ = std::numeric_limits<double>::quiet_NaN();
  }
  // Shortest decimal that reads back to the same double ("nan" for NaN).
  static std::string exact(double v) {
    if (std::isnan(v)) return "nan";
    char buf[40];
    for (int digits = 9; digits <= 17; ++digits) {
      std::snprintf(buf, sizeof buf, "%.*g", digits, v);
      if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
  }
  static double parse_number(const std::string& text, const std::string& source, const std::string& key) {
    if (text == "nan") return std::numeric_limits<double>::quiet_NaN();
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    DML_CHECK(!text.empty() && end == text.c_str() + text.size() && std::isfinite(v), source, ": metadata field '",
              key, "' is '", text, "', not a number");
    return v;
  }

  AnomalyOptions options_;
  std::vector<float> refs_;
  std::int64_t rows_ = 0, dim_ = 0;
  bool calibrated_ = false;
  float threshold_ = 0.0f;
  double target_fpr_ = std::numeric_limits<double>::quiet_NaN();
  double achieved_fpr_ = std::numeric_limits<double>::quiet_NaN();
};

}  // namespace dml::eval
