// tests/data/byte_source.hpp: an ImageSource over bytes in memory (what an image
// folder loaded with Decode::PerBatch is, without libpng), which can fail on one
// image and records the threads that read it.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <dml/data/dataset.hpp>

namespace dml::testing {

class ByteSource final : public data::ImageSource {
 public:
  explicit ByteSource(data::ImageSet set, std::int64_t bad = -1) : set_(std::move(set)), bad_(bad) {}

  Shape image_shape() const override { return Shape{set_.channels, set_.rows, set_.cols}; }
  std::int64_t size() const override { return set_.count; }
  void read(std::int64_t r, std::uint8_t* dst) const override {
    {
      std::lock_guard lk(mu_);
      readers_.insert(std::this_thread::get_id());
      ++reads_;
    }
    if (r == bad_) throw Error(::dml::detail::concat("source/", r, ".png: corrupt or truncated PNG: bad CRC"));
    const auto per = static_cast<std::size_t>(set_.channels * set_.rows * set_.cols);
    std::memcpy(dst, set_.pixels.data() + static_cast<std::size_t>(r) * per, per);
  }

  std::set<std::thread::id> readers() const {
    std::lock_guard lk(mu_);
    return readers_;
  }
  std::int64_t reads() const {
    std::lock_guard lk(mu_);
    return reads_;
  }

 private:
  data::ImageSet set_;
  std::int64_t bad_;
  mutable std::mutex mu_;
  mutable std::set<std::thread::id> readers_;
  mutable std::int64_t reads_ = 0;
};

// n images of c x 5 x 4 with varied bytes (image i, channel k, pixel p: (37 i + 11 k + 7 p) mod 256),
// label i % classes.
inline data::ImageSet varied_set(std::int64_t n, std::int64_t c = 1, std::int64_t classes = 3) {
  data::ImageSet s;
  s.count = n;
  s.channels = c;
  s.rows = 5;
  s.cols = 4;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = 0; k < c; ++k)
      for (std::int64_t p = 0; p < 20; ++p) s.pixels.push_back(static_cast<std::uint8_t>((37 * i + 11 * k + 7 * p) % 256));
    s.labels.push_back(i % classes);
  }
  return s;
}

// Every row 0..n-1 of a source.
inline std::vector<std::int64_t> all_rows(std::int64_t n) {
  std::vector<std::int64_t> r(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) r[static_cast<std::size_t>(i)] = i;
  return r;
}

// The same bytes held in memory (from_images) and decoded on demand (from_source).
struct HeldAndOnDemand {
  data::Dataset held, on_demand;
  std::shared_ptr<ByteSource> source;
};
inline HeldAndOnDemand held_and_on_demand(const data::ImageSet& set, const data::DatasetOptions& o = {},
                                          std::int64_t bad = -1) {
  HeldAndOnDemand out;
  out.held = data::Dataset::from_images(set, o);
  out.source = std::make_shared<ByteSource>(set, bad);
  data::DatasetOptions given = o;
  if (bad >= 0 && !o.normalization && o.channel_normalization.empty())
    given.channel_normalization = out.held.channel_norms;  // computing them would read the bad image
  out.on_demand = data::Dataset::from_source(out.source, all_rows(set.count), set.labels, given);
  return out;
}

}  // namespace dml::testing
