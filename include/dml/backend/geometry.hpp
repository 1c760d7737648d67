// dml/backend/geometry.hpp: the shapes of 2-D convolutions and poolings, as
// trivially copyable structs that both backends' kernels take by value.
#pragma once

#include <cstdint>

#include "../config.hpp"

namespace dml {

// An NCHW convolution: input [n, c, h, w], weight [o, c, kh, kw], output
// [n, o, ho, wo] with ho = (h + 2 ph - kh) / sh + 1 (likewise wo).
struct Conv2dGeom {
  std::int64_t n = 0, c = 0, h = 0, w = 0;
  std::int64_t o = 0, kh = 1, kw = 1;
  std::int64_t sh = 1, sw = 1, ph = 0, pw = 0;
  std::int64_t ho = 0, wo = 0;

  // Fills in the output size. The caller has validated the arguments.
  static Conv2dGeom make(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t o,
                         std::int64_t kh, std::int64_t kw, std::int64_t sh, std::int64_t sw, std::int64_t ph,
                         std::int64_t pw) {
    Conv2dGeom g{n, c, h, w, o, kh, kw, sh, sw, ph, pw, 0, 0};
    g.ho = (h + 2 * ph - kh) / sh + 1;
    g.wo = (w + 2 * pw - kw) / sw + 1;
    return g;
  }
};

// A 2-D pooling window over [n, c, h, w] to [n, c, ho, wo]; padding counts as
// -infinity for max pooling (PyTorch's convention, ceil_mode off).
struct Pool2dGeom {
  std::int64_t n = 0, c = 0, h = 0, w = 0;
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  std::int64_t ho = 0, wo = 0;

  static Pool2dGeom make(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t kh,
                         std::int64_t kw, std::int64_t sh, std::int64_t sw, std::int64_t ph, std::int64_t pw) {
    Pool2dGeom g{n, c, h, w, kh, kw, sh, sw, ph, pw, 0, 0};
    g.ho = (h + 2 * ph - kh) / sh + 1;
    g.wo = (w + 2 * pw - kw) / sw + 1;
    return g;
  }
};

// Adaptive pooling of [n, c, h, w] to [n, c, ho, wo]: output cell (i, j) covers
// rows [floor(i h / ho), ceil((i + 1) h / ho)) and likewise columns. The output
// (or its gradient) lives in a tensor with `y_channels` channels, starting at
// channel `y_offset`, so two poolings can write one concatenated tensor.
struct AdaptivePoolGeom {
  std::int64_t n = 0, c = 0, h = 0, w = 0, ho = 1, wo = 1;
  std::int64_t y_channels = 0, y_offset = 0;

  DML_HD std::int64_t row_begin(std::int64_t i) const { return (i * h) / ho; }
  DML_HD std::int64_t row_end(std::int64_t i) const { return ((i + 1) * h + ho - 1) / ho; }
  DML_HD std::int64_t col_begin(std::int64_t j) const { return (j * w) / wo; }
  DML_HD std::int64_t col_end(std::int64_t j) const { return ((j + 1) * w + wo - 1) / wo; }
  // Offset of output plane (batch b, channel ch) in the (possibly wider) output.
  DML_HD std::int64_t y_plane(std::int64_t b, std::int64_t ch) const {
    return ((b * y_channels) + y_offset + ch) * ho * wo;
  }
};

}  // namespace dml
