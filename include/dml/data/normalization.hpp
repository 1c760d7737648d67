// dml/data/normalization.hpp: how the bytes of one channel become floats. Its
// own header so that transforms.hpp can un-normalise without dataset.hpp.
#pragma once

namespace dml::data {

// How the bytes of one channel become floats: (byte / 255 - mean) / stddev.
struct Normalization {
  double mean = 0.0;
  double stddev = 1.0;
  friend bool operator==(const Normalization&, const Normalization&) = default;
};

}  // namespace dml::data
