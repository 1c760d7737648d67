// dml/data/dataset.hpp: an image dataset (normalised floats [N, C, H, W] in
// memory, or an ImageSource that decodes them when read, plus int64 labels),
// built from IDX files, an ImageSet, raw vectors or a source, and the functions
// that cut it: filter_classes, subset, take, stratified_split.
//
// Normalisation, per channel c: pixel = (byte / 255 - mean_c) / stddev_c. load_idx
// computes mean and stddev from the training split by default and applies the same
// values to the test split; both Datasets record them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../config.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "idx.hpp"
#include "image_source.hpp"
#include "normalization.hpp"

namespace dml::data {

// The customary constants for MNIST (computed over the full 60k training set).
inline constexpr Normalization kMnistNormalization{0.1307, 0.3081};

// Options for building a Dataset from bytes.
struct DatasetOptions {
  // One normalisation for every channel; nullopt: each channel's own mean and
  // stddev over the (training) images, see channel_stats.
  std::optional<Normalization> normalization = std::nullopt;
  // -1: one more than the largest label (over train and test for load_idx).
  std::int64_t num_classes = -1;
  // Empty, or one name per class.
  std::vector<std::string> class_names = {};
  // Non-empty: one normalisation per channel (e.g. ImageNet's three), which
  // takes the place of `normalization`.
  std::vector<Normalization> channel_normalization = {};
};

namespace detail {
inline std::int64_t max_label_plus_one(const std::vector<std::int64_t>& labels) {
  std::int64_t m = -1;
  for (auto l : labels) m = std::max(m, l);
  return m + 1;
}
}  // namespace detail

// An image dataset: normalised floats held in memory, or (with `source` set)
// images decoded when read. Fields are public (data.test.labels reads like the
// design card); validate() checks that they agree.
struct Dataset {
  Tensor<float, Cpu> images;                   // [N, C, H, W], normalised; undefined when source is set
  std::vector<std::int64_t> labels;            // [N], each in 0..num_classes-1
  std::vector<std::int64_t> original_labels;   // [N], labels before filter_classes remapped them
  std::int64_t num_classes = 0;
  std::vector<std::string> class_names;        // empty, or num_classes names (index = label)
  std::vector<Normalization> channel_norms = {Normalization{}};  // what the images went through, one per channel
  // Decoded on demand: image i is source->read(source_rows[i]), normalised with channel_norms.
  std::shared_ptr<const ImageSource> source = nullptr;
  std::vector<std::int64_t> source_rows;       // [N] when source is set, else empty

  std::int64_t size() const noexcept { return static_cast<std::int64_t>(labels.size()); }
  bool empty() const noexcept { return labels.empty(); }
  // Whether images are decoded when read (source set) rather than held in `images`.
  bool on_demand() const noexcept { return source != nullptr; }
  // [C, H, W].
  Shape image_shape() const {
    if (source) return source->image_shape();
    return Shape{images.dim(1), images.dim(2), images.dim(3)};
  }
  std::int64_t channels() const { return image_shape()[0]; }
  std::int64_t height() const { return image_shape()[1]; }
  std::int64_t width() const { return image_shape()[2]; }
  // C * H * W.
  std::int64_t image_numel() const { return image_shape().numel(); }
  // The first float of image i (C*H*W floats follow). Throws when i is out of
  // range, or when the images are decoded on demand (use read_image).
  const float* image(std::int64_t i) const {
    DML_CHECK(i >= 0 && i < size(), "Dataset::image: index ", i, " is out of range for ", size(), " images");
    DML_CHECK(!source, "Dataset::image: the images are decoded on demand (an image folder loaded with "
              "Decode::PerBatch) and have no address; use read_image(i, dst) or decode_all(dataset)");
    return images.data() + i * image_numel();
  }
  // Writes image i's C*H*W normalised floats to dst: a copy of `images`, or
  // source's bytes through channel_norms. Safe from several threads. Throws when
  // i is out of range, and whatever the source throws (naming the file).
  void read_image(std::int64_t i, float* dst) const;
  // The normalisation of channel c. Throws when c is out of range.
  Normalization normalization(std::int64_t c = 0) const {
    DML_CHECK(c >= 0 && c < static_cast<std::int64_t>(channel_norms.size()), "Dataset::normalization: channel ", c,
              " is out of range for ", channel_norms.size(), " channel(s)");
    return channel_norms[static_cast<std::size_t>(c)];
  }
  // The normalised value of a black (0) pixel in channel c: what padding and rotation fill with.
  float background(std::int64_t c = 0) const {
    const Normalization n = normalization(c);
    return static_cast<float>(-n.mean / n.stddev);
  }
  // background(c) of every channel.
  std::vector<float> backgrounds() const {
    std::vector<float> out;
    for (std::size_t c = 0; c < channel_norms.size(); ++c) out.push_back(background(static_cast<std::int64_t>(c)));
    return out;
  }
  // The labels as an int64 tensor [N] (a copy).
  Tensor<std::int64_t, Cpu> label_tensor() const { return Tensor<std::int64_t, Cpu>::from_vector(labels); }

  // Throws dml::Error when the fields disagree: images not [N, C, H, W] with N =
  // labels.size() = original_labels.size(), a label outside 0..num_classes-1, a
  // negative original label, class_names neither empty nor num_classes long, not
  // one normalisation per channel, or a non-finite mean / non-positive stddev.
  void validate() const {
    if (source) {
      DML_CHECK(!images.defined(), "Dataset: both images ", images.shape().str(),
                " and a source are set (images are decoded on demand or held, not both)");
      DML_CHECK(source_rows.size() == labels.size(), "Dataset: ", source_rows.size(), " source rows but ", size(),
                " labels");
      const Shape s = source->image_shape();
      DML_CHECK(s.rank() == 3 && s[0] >= 1 && s[1] >= 1 && s[2] >= 1, "Dataset: the source's image shape ", s.str(),
                " is not a non-empty [C, H, W]");
      for (std::size_t i = 0; i < source_rows.size(); ++i)
        DML_CHECK(source_rows[i] >= 0 && source_rows[i] < source->size(), "Dataset: source row ", source_rows[i],
                  " of sample ", i, " is outside the source's 0..", source->size() - 1);
    } else {
      DML_CHECK(images.defined(), "Dataset: images are undefined");
      DML_CHECK(images.rank() == 4, "Dataset: images must be [N, C, H, W], got ", images.shape().str());
      DML_CHECK(images.dim(0) == size(), "Dataset: ", images.dim(0), " images but ", size(), " labels");
      DML_CHECK(images.dim(1) >= 1 && images.dim(2) >= 1 && images.dim(3) >= 1,
                "Dataset: empty image shape ", images.shape().str());
      DML_CHECK(source_rows.empty(), "Dataset: ", source_rows.size(), " source rows but no source");
    }
    DML_CHECK(original_labels.size() == labels.size(), "Dataset: ", original_labels.size(),
              " original labels but ", labels.size(), " labels");
    DML_CHECK(num_classes >= 0, "Dataset: negative num_classes ", num_classes);
    for (std::size_t i = 0; i < labels.size(); ++i) {
      DML_CHECK(labels[i] >= 0 && labels[i] < num_classes, "Dataset: label ", labels[i], " of sample ", i,
                " is outside 0..", num_classes - 1);
      DML_CHECK(original_labels[i] >= 0, "Dataset: original label ", original_labels[i], " of sample ", i,
                " is negative");
    }
    DML_CHECK(class_names.empty() || static_cast<std::int64_t>(class_names.size()) == num_classes,
              "Dataset: ", class_names.size(), " class names for ", num_classes, " classes");
    DML_CHECK(static_cast<std::int64_t>(channel_norms.size()) == channels(), "Dataset: ", channel_norms.size(),
              " normalisation(s) for ", channels(), " channel(s)");
    for (std::size_t c = 0; c < channel_norms.size(); ++c)
      DML_CHECK(std::isfinite(channel_norms[c].mean) && std::isfinite(channel_norms[c].stddev) &&
                    channel_norms[c].stddev > 0,
                "Dataset: bad normalisation of channel ", c, ": mean ", channel_norms[c].mean, ", stddev ",
                channel_norms[c].stddev);
  }

  // Wraps images that are already normalised: `values` is N*C*H*W floats, row
  // major, image_shape is [C, H, W], num_classes -1 means max label + 1.
  // Records mean 0, stddev 1 (background 0) for every channel unless `norm` says otherwise.
  // Throws dml::Error on a size mismatch or a bad label.
  static Dataset from_vectors(const std::vector<float>& values, const Shape& image_shape,
                              std::vector<std::int64_t> labels, std::int64_t num_classes = -1,
                              std::vector<std::string> class_names = {}, Normalization norm = {}) {
    DML_CHECK(image_shape.rank() == 3, "Dataset::from_vectors: image_shape must be [C, H, W], got ",
              image_shape.str());
    const auto n = static_cast<std::int64_t>(labels.size());
    const std::int64_t per = image_shape.numel();
    DML_CHECK(per > 0, "Dataset::from_vectors: empty image shape ", image_shape.str());
    DML_CHECK(static_cast<std::int64_t>(values.size()) == n * per, "Dataset::from_vectors: ", values.size(),
              " values for ", n, " labels of images ", image_shape.str(), " (", n * per, " expected)");
    Dataset ds;
    ds.images = Tensor<float, Cpu>::from_vector(values, Shape{n, image_shape[0], image_shape[1], image_shape[2]});
    ds.num_classes = num_classes >= 0 ? num_classes : detail::max_label_plus_one(labels);
    ds.original_labels = labels;
    ds.labels = std::move(labels);
    ds.class_names = std::move(class_names);
    ds.channel_norms.assign(static_cast<std::size_t>(image_shape[0]), norm);
    ds.validate();
    return ds;
  }

  // Normalises an ImageSet with opts.channel_normalization, opts.normalization,
  // or each channel's own statistics when both are unset. Throws dml::Error on a
  // malformed set, a label outside 0..num_classes-1, a normalisation count that is
  // not the channel count, or a constant channel with no normalization given.
  static Dataset from_images(const ImageSet& set, const DatasetOptions& opts = {});

  // Images decoded on demand: sample i is source->read(rows[i]) with label
  // labels[i]. Normalised with opts.channel_normalization or opts.normalization,
  // or, when both are unset, each channel's statistics over the rows, computed
  // now by reading every one of them. Throws dml::Error for a null source, rows
  // and labels of different lengths, a row outside the source, a bad
  // normalisation (as from_images), and whatever reading a row throws.
  static Dataset from_source(std::shared_ptr<const ImageSource> source, std::vector<std::int64_t> rows,
                             std::vector<std::int64_t> labels, const DatasetOptions& opts = {});
};

// Train and test Datasets. load_idx normalises both with the training statistics.
struct Splits {
  Dataset train, test;
};

namespace detail {

inline void check_image_set(const ImageSet& set, const char* who) {
  DML_CHECK(set.count >= 0 && set.channels >= 1 && set.rows >= 1 && set.cols >= 1, who, ": bad ImageSet shape ",
            set.count, " x ", set.channels, " x ", set.rows, " x ", set.cols);
  DML_CHECK(static_cast<std::int64_t>(set.pixels.size()) == set.count * set.channels * set.rows * set.cols, who,
            ": ImageSet has ", set.pixels.size(), " pixel bytes for ", set.count, " images of ", set.channels, " x ",
            set.rows, " x ", set.cols);
  DML_CHECK(static_cast<std::int64_t>(set.labels.size()) == set.count, who, ": ImageSet has ", set.labels.size(),
            " labels for ", set.count, " images");
}

// Copies rows `indices` of ds (any order, repeats allowed) into a new Dataset
// with the same metadata. Throws on an out-of-range index.
inline Dataset gather(const Dataset& ds, std::span<const std::int64_t> indices, const char* who) {
  ds.validate();
  const std::int64_t n = static_cast<std::int64_t>(indices.size());
  const std::int64_t per = ds.image_numel();
  Dataset out;
  out.labels.resize(indices.size());
  out.original_labels.resize(indices.size());
  const float* src = nullptr;
  float* dst = nullptr;
  if (ds.source) {  // images decoded on demand: only the row numbers move
    out.source = ds.source;
    out.source_rows.resize(indices.size());
  } else {
    out.images = Tensor<float, Cpu>::empty(Shape{n, ds.channels(), ds.height(), ds.width()});
    src = ds.images.data();
    dst = out.images.data();
  }
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t i = indices[static_cast<std::size_t>(k)];
    DML_CHECK(i >= 0 && i < ds.size(), who, ": index ", i, " (position ", k, ") is out of range for ", ds.size(),
              " samples");
    if (ds.source) out.source_rows[static_cast<std::size_t>(k)] = ds.source_rows[static_cast<std::size_t>(i)];
    else if (per > 0) std::memcpy(dst + k * per, src + i * per, static_cast<std::size_t>(per) * sizeof(float));
    out.labels[static_cast<std::size_t>(k)] = ds.labels[static_cast<std::size_t>(i)];
    out.original_labels[static_cast<std::size_t>(k)] = ds.original_labels[static_cast<std::size_t>(i)];
  }
  out.num_classes = ds.num_classes;
  out.class_names = ds.class_names;
  out.channel_norms = ds.channel_norms;
  return out;
}

// In-place Fisher-Yates shuffle driven by gen.
inline void shuffle(std::vector<std::int64_t>& v, Generator& gen) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(gen.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

// The float of byte b in channel c is lut[c * 256 + b]: (b / 255 - mean_c) / stddev_c.
inline std::vector<float> normalisation_lut(std::span<const Normalization> norms) {
  std::vector<float> lut(256 * norms.size());
  for (std::size_t c = 0; c < norms.size(); ++c)
    for (int b = 0; b < 256; ++b)
      lut[c * 256 + static_cast<std::size_t>(b)] = static_cast<float>((b / 255.0 - norms[c].mean) / norms[c].stddev);
  return lut;
}

// Image i of a Dataset with a source, normalised through `lut` (normalisation_lut of its channel_norms).
inline void read_on_demand(const Dataset& ds, std::int64_t i, std::span<const float> lut, float* dst) {
  const Shape s = ds.image_shape();
  const auto plane = static_cast<std::size_t>(s[1] * s[2]);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(s.numel()));
  ds.source->read(ds.source_rows[static_cast<std::size_t>(i)], bytes.data());
  for (std::size_t c = 0, k = 0; c < static_cast<std::size_t>(s[0]); ++c)
    for (std::size_t p = 0; p < plane; ++p, ++k) dst[k] = lut[c * 256 + bytes[k]];
}

// Normalises bytes (count images of C x rows x cols) through one 256-entry table per channel.
inline Tensor<float, Cpu> normalise_bytes(const ImageSet& set, std::span<const Normalization> norms) {
  const auto channels = static_cast<std::size_t>(set.channels);
  const std::vector<float> lut = normalisation_lut(norms);
  auto t = Tensor<float, Cpu>::empty(Shape{set.count, set.channels, set.rows, set.cols});
  float* dst = t.data();
  const auto plane = static_cast<std::size_t>(set.rows * set.cols);
  for (std::size_t i = 0; i < set.pixels.size(); ++i) dst[i] = lut[(i / plane) % channels * 256 + set.pixels[i]];
  return t;
}

}  // namespace detail

// Mean and (population) standard deviation of byte / 255 over every pixel of
// `set`, all channels together, computed exactly from a histogram. Throws for an
// empty set.
inline Normalization pixel_stats(const ImageSet& set) {
  detail::check_image_set(set, "pixel_stats");
  DML_CHECK(!set.pixels.empty(), "pixel_stats: the ImageSet has no pixels");
  std::uint64_t hist[256] = {};
  for (std::uint8_t b : set.pixels) ++hist[b];
  return detail::histogram_stats(hist);
}

// pixel_stats of each channel alone (one entry per channel). Throws for an empty set.
inline std::vector<Normalization> channel_stats(const ImageSet& set) {
  detail::check_image_set(set, "channel_stats");
  DML_CHECK(!set.pixels.empty(), "channel_stats: the ImageSet has no pixels");
  const auto channels = static_cast<std::size_t>(set.channels);
  const auto plane = static_cast<std::size_t>(set.rows * set.cols);
  std::vector<std::uint64_t> hist(256 * channels, 0);
  for (std::size_t i = 0; i < set.pixels.size(); ++i) ++hist[(i / plane) % channels * 256 + set.pixels[i]];
  std::vector<Normalization> out;
  for (std::size_t c = 0; c < channels; ++c) {
    std::uint64_t h[256];
    std::copy_n(hist.begin() + static_cast<std::ptrdiff_t>(c * 256), 256, h);
    out.push_back(detail::histogram_stats(h));
  }
  return out;
}

namespace detail {

// The normalisation `opts` asks for on images of `channels` channels: its
// channel_normalization, its normalization, or computed() (each channel's
// statistics) when it sets neither. `empty` says there is nothing to compute
// them from. Throws naming `who` for a wrong count, a constant channel or a
// non-finite / non-positive value.
template <class Computed>
std::vector<Normalization> chosen_norms(const DatasetOptions& opts, std::size_t channels, bool empty,
                                        Computed&& computed, const char* who, const char* what) {
  std::vector<Normalization> norms;
  if (!opts.channel_normalization.empty()) {
    DML_CHECK(opts.channel_normalization.size() == channels, who, ": ", opts.channel_normalization.size(),
              " channel normalisation(s) for images of ", channels, " channel(s)");
    norms = opts.channel_normalization;
  } else if (opts.normalization) {
    norms.assign(channels, *opts.normalization);
  } else {
    DML_CHECK(!empty, who, ": cannot compute the normalisation of an empty ", what,
              "; pass DatasetOptions::normalization");
    norms = computed();
    for (std::size_t c = 0; c < channels; ++c)
      DML_CHECK(norms[c].stddev > 0, who, ": every pixel of channel ", c,
                " has the same value, so the standard deviation is 0; pass DatasetOptions::normalization");
  }
  for (std::size_t c = 0; c < channels; ++c)
    DML_CHECK(std::isfinite(norms[c].mean) && std::isfinite(norms[c].stddev) && norms[c].stddev > 0, who,
              ": bad normalization of channel ", c, ": mean ", norms[c].mean, ", stddev ", norms[c].stddev);
  return norms;
}

}  // namespace detail

inline Dataset Dataset::from_images(const ImageSet& set, const DatasetOptions& opts) {
  detail::check_image_set(set, "Dataset::from_images");
  const auto channels = static_cast<std::size_t>(set.channels);
  std::vector<Normalization> norms = detail::chosen_norms(
      opts, channels, set.count == 0, [&] { return channel_stats(set); }, "Dataset::from_images", "ImageSet");
  Dataset ds;
  ds.images = detail::normalise_bytes(set, norms);
  ds.labels = set.labels;
  ds.original_labels = set.labels;
  ds.num_classes = opts.num_classes >= 0 ? opts.num_classes : detail::max_label_plus_one(set.labels);
  ds.class_names = opts.class_names;
  ds.channel_norms = std::move(norms);
  ds.validate();
  return ds;
}

inline Dataset Dataset::from_source(std::shared_ptr<const ImageSource> source, std::vector<std::int64_t> rows,
                                    std::vector<std::int64_t> labels, const DatasetOptions& opts) {
  DML_CHECK(source != nullptr, "Dataset::from_source: the source is null");
  DML_CHECK(rows.size() == labels.size(), "Dataset::from_source: ", rows.size(), " rows but ", labels.size(),
            " labels");
  const Shape shape = source->image_shape();
  DML_CHECK(shape.rank() == 3 && shape[0] >= 1 && shape[1] >= 1 && shape[2] >= 1,
            "Dataset::from_source: the source's image shape ", shape.str(), " is not a non-empty [C, H, W]");
  for (std::size_t k = 0; k < rows.size(); ++k)
    DML_CHECK(rows[k] >= 0 && rows[k] < source->size(), "Dataset::from_source: row ", rows[k], " (position ", k,
              ") is outside the source's 0..", source->size() - 1);
  auto computed = [&] {
    std::vector<std::string> errors;
    std::vector<std::exception_ptr> thrown(rows.size());
    const auto bins = detail::channel_histograms(
        static_cast<std::int64_t>(rows.size()), shape, 0,
        [&](std::int64_t k, std::uint8_t* dst) -> std::string {
          try {
            source->read(rows[static_cast<std::size_t>(k)], dst);
          } catch (...) {
            thrown[static_cast<std::size_t>(k)] = std::current_exception();
            return "failed";
          }
          return {};
        },
        errors);
    for (const std::exception_ptr& e : thrown)
      if (e) std::rethrow_exception(e);  // the first failing row's own error
    return detail::stats_of_histograms(bins);
  };
  Dataset ds;
  ds.channel_norms = detail::chosen_norms(opts, static_cast<std::size_t>(shape[0]), rows.empty(), computed,
                                          "Dataset::from_source", "set of rows");
  ds.num_classes = opts.num_classes >= 0 ? opts.num_classes : detail::max_label_plus_one(labels);
  ds.class_names = opts.class_names;
  ds.original_labels = labels;
  ds.labels = std::move(labels);
  ds.source = std::move(source);
  ds.source_rows = std::move(rows);
  ds.validate();
  return ds;
}

inline void Dataset::read_image(std::int64_t i, float* dst) const {
  DML_CHECK(i >= 0 && i < size(), "Dataset::read_image: index ", i, " is out of range for ", size(), " images");
  if (!source) {
    const std::int64_t per = image_numel();
    std::memcpy(dst, images.data() + i * per, static_cast<std::size_t>(per) * sizeof(float));
    return;
  }
  detail::read_on_demand(*this, i, detail::normalisation_lut(channel_norms), dst);
}

// A Dataset that holds its images: one decoded on demand is read in full (on
// `threads` OpenMP threads, 0: OpenMP's default) into `images`; any other is
// returned as it is (sharing its tensor). Throws whatever reading an image
// throws (the lowest failing row's error).
inline Dataset decode_all(const Dataset& ds, int threads = 0) {
  ds.validate();
  if (!ds.source) return ds;
  Dataset out = ds;
  out.source = nullptr;
  out.source_rows.clear();
  const std::int64_t n = ds.size(), per = ds.image_numel();
  out.images = Tensor<float, Cpu>::empty(Shape{n, ds.channels(), ds.height(), ds.width()});
  const std::vector<float> lut = detail::normalisation_lut(ds.channel_norms);
  std::vector<std::exception_ptr> thrown(static_cast<std::size_t>(n));
  float* dst = out.images.data();
  auto one = [&](std::int64_t i) {
    try {
      detail::read_on_demand(ds, i, lut, dst + i * per);
    } catch (...) {
      thrown[static_cast<std::size_t>(i)] = std::current_exception();
    }
  };
#if defined(_OPENMP)
  const int team = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for num_threads(team) schedule(dynamic, 64)
  for (std::int64_t i = 0; i < n; ++i) one(i);
#else
  (void)threads;
  for (std::int64_t i = 0; i < n; ++i) one(i);
#endif
  for (const std::exception_ptr& e : thrown)
    if (e) std::rethrow_exception(e);
  out.validate();
  return out;
}

// Normalises both splits with the training statistics (or opts.normalization);
// num_classes -1 becomes one more than the largest label of either split.
inline Splits make_splits(const IdxSplits& raw, DatasetOptions opts = {}) {
  detail::check_image_set(raw.train, "make_splits (train)");
  detail::check_image_set(raw.test, "make_splits (test)");
  DML_CHECK(raw.train.channels == raw.test.channels, "make_splits: training images have ", raw.train.channels,
            " channel(s) but test images ", raw.test.channels);
  if (!opts.normalization && opts.channel_normalization.empty()) {
    DML_CHECK(raw.train.count > 0, "make_splits: the training split is empty, so its statistics cannot normalise "
              "the data; pass DatasetOptions::normalization");
    opts.channel_normalization = channel_stats(raw.train);
    for (std::size_t c = 0; c < opts.channel_normalization.size(); ++c)
      DML_CHECK(opts.channel_normalization[c].stddev > 0, "make_splits: every training pixel of channel ", c,
                " has the same value, so the standard deviation is 0; pass DatasetOptions::normalization");
  }
  if (opts.num_classes < 0) {
    std::int64_t m = -1;
    for (auto l : raw.train.labels) m = std::max(m, l);
    for (auto l : raw.test.labels) m = std::max(m, l);
    opts.num_classes = m + 1;
  }
  return {Dataset::from_images(raw.train, opts), Dataset::from_images(raw.test, opts)};
}

// Reads the MNIST-style IDX files in `dir` (see load_idx_dir) into normalised
// Datasets; the test split uses the training mean and stddev. Throws whatever
// load_idx_dir and make_splits throw.
inline Splits load_idx(const std::filesystem::path& dir, const DatasetOptions& opts = {}) {
  return make_splits(load_idx_dir(dir), opts);
}

// Fashion-MNIST's class names, in label order (pass as DatasetOptions::class_names).
inline std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

// What filter_classes does with the labels of the rows it keeps.
enum class Relabel {
  kRemap,  // keep[k] becomes label k; num_classes = keep.size(); class_names follow
  kKeep,   // labels, num_classes and class_names stay as they are
};

// The rows whose label is in `keep` (labels as the dataset has them now), in
// their original order. original_labels always carries the labels the rows had
// when the dataset was first built, so a remapped dataset can still be scored
// against the original classes. Throws for an empty keep, a repeated class or
// one outside 0..num_classes-1.
inline Dataset filter_classes(const Dataset& ds, const std::vector<std::int64_t>& keep,
                              Relabel relabel = Relabel::kRemap) {
  ds.validate();
  DML_CHECK(!keep.empty(), "filter_classes: no classes to keep");
  std::vector<std::int64_t> new_label(static_cast<std::size_t>(ds.num_classes), -1);
  for (std::size_t k = 0; k < keep.size(); ++k) {
    const std::int64_t c = keep[k];
    DML_CHECK(c >= 0 && c < ds.num_classes, "filter_classes: class ", c, " is outside 0..", ds.num_classes - 1);
    DML_CHECK(new_label[static_cast<std::size_t>(c)] < 0, "filter_classes: class ", c, " is listed twice");
    new_label[static_cast<std::size_t>(c)] = static_cast<std::int64_t>(k);
  }
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < ds.size(); ++i)
    if (new_label[static_cast<std::size_t>(ds.labels[static_cast<std::size_t>(i)])] >= 0) rows.push_back(i);
  Dataset out = detail::gather(ds, rows, "filter_classes");
  if (relabel == Relabel::kRemap) {
    for (auto& l : out.labels) l = new_label[static_cast<std::size_t>(l)];
    out.num_classes = static_cast<std::int64_t>(keep.size());
    if (!ds.class_names.empty()) {
      out.class_names.clear();
      for (auto c : keep) out.class_names.push_back(ds.class_names[static_cast<std::size_t>(c)]);
    }
  }
  return out;
}

// The rows `indices`, in that order (repeats allowed), as a new Dataset.
// Throws for an index outside 0..size()-1.
inline Dataset subset(const Dataset& ds, std::span<const std::int64_t> indices) {
  return detail::gather(ds, indices, "subset");
}
inline Dataset subset(const Dataset& ds, const std::vector<std::int64_t>& indices) {
  return subset(ds, std::span<const std::int64_t>(indices));
}

// n distinct rows chosen uniformly at random with Generator(seed), kept in
// their original order. Throws unless 0 <= n <= size().
inline Dataset take(const Dataset& ds, std::int64_t n, std::uint64_t seed) {
  DML_CHECK(n >= 0 && n <= ds.size(), "take: cannot take ", n, " of ", ds.size(), " samples");
  std::vector<std::int64_t> idx(static_cast<std::size_t>(ds.size()));
  std::iota(idx.begin(), idx.end(), std::int64_t{0});
  Generator gen(seed);
  for (std::int64_t i = 0; i < n; ++i) {  // partial Fisher-Yates: idx[0..n) is the sample
    const auto j = i + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(ds.size() - i)));
    std::swap(idx[static_cast<std::size_t>(i)], idx[static_cast<std::size_t>(j)]);
  }
  idx.resize(static_cast<std::size_t>(n));
  std::sort(idx.begin(), idx.end());
  return subset(ds, idx);
}

// Splits ds per class: of the n_c rows of class c, round(fraction * n_c) chosen
// at random (Generator(seed), classes in ascending order) go to .train and the
// rest to .test; both keep the original row order. Throws unless 0 <= fraction <= 1.
inline Splits stratified_split(const Dataset& ds, double fraction, std::uint64_t seed) {
  ds.validate();
  DML_CHECK(fraction >= 0.0 && fraction <= 1.0, "stratified_split: fraction ", fraction, " is outside [0, 1]");
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(ds.num_classes));
  for (std::int64_t i = 0; i < ds.size(); ++i)
    by_class[static_cast<std::size_t>(ds.labels[static_cast<std::size_t>(i)])].push_back(i);
  Generator gen(seed);
  std::vector<std::int64_t> first, second;
  for (auto& rows : by_class) {
    detail::shuffle(rows, gen);
    const auto k = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(rows.size())));
    first.insert(first.end(), rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(k));
    second.insert(second.end(), rows.begin() + static_cast<std::ptrdiff_t>(k), rows.end());
  }
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  return {subset(ds, first), subset(ds, second)};
}

}  // namespace dml::data
