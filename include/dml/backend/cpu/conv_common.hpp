// dml/backend/cpu/conv_common.hpp: what both host convolution lowerings share:
// scratch buffers, the padding-aware split of the output into blocks, and the
// batch chunking.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "../../core/storage.hpp"
#include "../geometry.hpp"

namespace dml::cpu::conv_detail {

// Grow-only per-thread scratch buffers, reused across calls so the im2col
// matrices are not page-faulted in on every call. Kept until the thread ends.
template <class T>
T* scratch(int slot, std::int64_t count) {
  struct Buffer {
    T* data = nullptr;
    std::size_t size = 0;
    ~Buffer() { Memory<Cpu>::deallocate(data, size * sizeof(T)); }
  };
  thread_local std::array<Buffer, 10> buffers;
  Buffer& b = buffers[static_cast<std::size_t>(slot)];
  std::size_t want = static_cast<std::size_t>(count > 0 ? count : 1);
  if (b.size < want) {
    Memory<Cpu>::deallocate(b.data, b.size * sizeof(T));
    b.data = nullptr;
    b.size = 0;
    b.data = static_cast<T*>(Memory<Cpu>::allocate(want * sizeof(T)));
    b.size = want;
  }
  return b.data;
}

// Consecutive output positions [lo, hi) along one axis whose windows all read
// exactly the taps [t0, t1) inside the input; the other taps fall in padding.
struct TapRun {
  std::int64_t lo, hi, t0, t1;
  std::int64_t size() const { return hi - lo; }
  std::int64_t taps() const { return t1 - t0; }
};

inline std::vector<TapRun> tap_runs(std::int64_t out, std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p) {
  std::vector<TapRun> runs;
  for (std::int64_t q = 0; q < out; ++q) {
    std::int64_t start = q * s - p;
    std::int64_t t0 = std::max<std::int64_t>(0, -start), t1 = std::min<std::int64_t>(k, in - start);
    if (t1 <= t0) t0 = t1 = 0;  // the window lies entirely in the padding
    if (!runs.empty() && runs.back().hi == q && runs.back().t0 == t0 && runs.back().t1 == t1)
      runs.back().hi = q + 1;
    else
      runs.push_back({q, q + 1, t0, t1});
  }
  return runs;
}

// One rectangle of the output and the taps its windows read.
struct ConvBlock {
  TapRun r, c;
  std::int64_t taps() const { return r.taps() * c.taps(); }
  std::int64_t positions() const { return r.size() * c.size(); }
};

// Elements of im2col scratch per GEMM (16 MB of float). Tests lower it to
// exercise the batch chunking.
inline std::int64_t col_budget = std::int64_t(1) << 22;

// Images per GEMM: as many as fit the im2col budget, at least one.
inline std::int64_t conv_chunk(const Conv2dGeom& g, bool pointwise) {
  const std::int64_t kBudget = col_budget;
  std::int64_t howo = g.ho * g.wo;
  if (pointwise && howo >= 256) return 1;  // the input is read in place
  std::int64_t per_image = std::max<std::int64_t>(1, g.c * g.kh * g.kw * howo);
  return std::clamp<std::int64_t>(kBudget / per_image, 1, std::max<std::int64_t>(g.n, 1));
}

inline std::vector<ConvBlock> conv_blocks(const Conv2dGeom& g) {
  std::vector<ConvBlock> blocks;
  for (const TapRun& r : tap_runs(g.ho, g.h, g.kh, g.sh, g.ph))
    for (const TapRun& c : tap_runs(g.wo, g.w, g.kw, g.sw, g.pw)) blocks.push_back({r, c});
  return blocks;
}

inline bool is_pointwise(const Conv2dGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

}  // namespace dml::cpu::conv_detail
