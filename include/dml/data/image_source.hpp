// dml/data/image_source.hpp: ImageSource, the interface of images that are
// decoded when read (a Dataset with a source), and the exact per-channel
// statistics of bytes from 256-bin histograms that both kinds of Dataset use.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../core/shape.hpp"
#include "normalization.hpp"

namespace dml::data {

// Images that are decoded when they are read instead of held as floats (the
// image folder's Decode::PerBatch keeps the encoded files and decodes each batch
// in the DataLoader's prefetch thread). A Dataset with a source normalises the
// bytes it reads with its own channel_norms. read() is called from several
// threads at once and must allow that.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // [C, H, W] of every image.
  virtual Shape image_shape() const = 0;
  // Images 0..size()-1.
  virtual std::int64_t size() const = 0;
  // Writes image r's C*H*W bytes, planar (channel, row, column), to dst. Throws
  // dml::Error naming the file and the reason when it cannot be decoded.
  virtual void read(std::int64_t r, std::uint8_t* dst) const = 0;
};

namespace detail {

// Mean and population stddev of byte / 255 from a 256-bin histogram.
inline Normalization histogram_stats(const std::uint64_t (&hist)[256]) {
  std::uint64_t n = 0, sum = 0, sum_sq = 0;
  for (std::uint64_t b = 0; b < 256; ++b) {
    n += hist[b];
    sum += b * hist[b];
    sum_sq += b * b * hist[b];
  }
  const double mean = static_cast<double>(sum) / static_cast<double>(n);  // in bytes
  const double var = std::max(0.0, static_cast<double>(sum_sq) / static_cast<double>(n) - mean * mean);
  return {mean / 255.0, std::sqrt(var) / 255.0};
}

// Per-channel 256-bin histograms (bin c * 256 + b) of n images of `shape`
// [C, H, W] whose planar bytes read(k, dst) writes, returning "" or why it could
// not. Runs on `threads` OpenMP threads (0: OpenMP's default, 1: serial). An
// image that fails adds nothing and leaves its reason in errors[k].
template <class Read>
std::vector<std::uint64_t> channel_histograms(std::int64_t n, const Shape& shape, int threads, Read&& read,
                                              std::vector<std::string>& errors) {
  const auto channels = static_cast<std::size_t>(shape[0]);
  const auto plane = static_cast<std::size_t>(shape[1] * shape[2]);
  std::vector<std::uint64_t> total(256 * channels, 0);
  errors.assign(static_cast<std::size_t>(n), std::string());
  auto run = [&](std::int64_t begin, std::int64_t step, std::vector<std::uint64_t>& hist) {
    std::vector<std::uint8_t> bytes(channels * plane);
    for (std::int64_t k = begin; k < n; k += step) {
      std::string why = read(k, bytes.data());
      if (!why.empty()) {
        errors[static_cast<std::size_t>(k)] = std::move(why);
        continue;
      }
      for (std::size_t c = 0, i = 0; c < channels; ++c)
        for (std::size_t p = 0; p < plane; ++p, ++i) ++hist[c * 256 + bytes[i]];
    }
  };
#if defined(_OPENMP)
  const int team = threads > 0 ? threads : omp_get_max_threads();
  if (team > 1 && n > 1) {
#pragma omp parallel num_threads(team)
    {
      std::vector<std::uint64_t> hist(total.size(), 0);
      run(omp_get_thread_num(), omp_get_num_threads(), hist);
#pragma omp critical(dml_channel_histograms)
      for (std::size_t b = 0; b < total.size(); ++b) total[b] += hist[b];
    }
    return total;
  }
#else
  (void)threads;
#endif
  run(0, 1, total);
  return total;
}

// histogram_stats of each channel of channel_histograms' bins.
inline std::vector<Normalization> stats_of_histograms(const std::vector<std::uint64_t>& bins) {
  std::vector<Normalization> out;
  for (std::size_t c = 0; c < bins.size() / 256; ++c) {
    std::uint64_t h[256];
    std::copy_n(bins.begin() + static_cast<std::ptrdiff_t>(c * 256), 256, h);
    out.push_back(histogram_stats(h));
  }
  return out;
}

}  // namespace detail

}  // namespace dml::data
