// tests/data/batch_record.hpp: what the loader tests compare: a batch's
// indices, labels, pixels and position, and the runs that collect them.
#pragma once

#include <cstdint>
#include <vector>

#include <dml/data/loader.hpp>

namespace dml::testing {

struct SeenBatch {
  std::vector<std::int64_t> indices, labels;
  std::vector<float> pixels;
  std::int64_t size = 0, epoch = -1, index = -1;
  friend bool operator==(const SeenBatch&, const SeenBatch&) = default;
};

inline SeenBatch record(const data::Batch& b) {
  return {b.indices, b.labels.to_vector(), b.images.to_vector(), b.size(), b.epoch, b.index};
}

// Every batch of the loader's current epoch.
inline std::vector<SeenBatch> one_epoch(data::DataLoader& loader) {
  std::vector<SeenBatch> out;
  for (data::Batch& b : loader) out.push_back(record(b));
  return out;
}

inline std::vector<std::int64_t> flat_indices(const std::vector<SeenBatch>& epoch) {
  std::vector<std::int64_t> out;
  for (const auto& s : epoch) out.insert(out.end(), s.indices.begin(), s.indices.end());
  return out;
}

// `epochs` epochs of ds under o, three times: without prefetch, with it, and
// with it on 2 threads (the runs must agree whatever the launch).
inline std::vector<std::vector<SeenBatch>> runs_by_launch(const data::Dataset& ds, const data::LoaderOptions& o,
                                                         int epochs = 3) {
  std::vector<std::vector<SeenBatch>> runs;
  for (int variant = 0; variant < 3; ++variant) {
    data::LoaderOptions v = o;
    v.prefetch = variant > 0;
    v.threads = variant == 2 ? 2 : 1;
    data::DataLoader loader(ds, v);
    std::vector<SeenBatch> all;
    for (int e = 0; e < epochs; ++e)
      for (data::Batch& b : loader) all.push_back(record(b));
    runs.push_back(all);
  }
  return runs;
}

}  // namespace dml::testing
