// dml/backend/broadcast.hpp: index plans for broadcasting, shared by backends.
#pragma once

#include <cstdint>

#include "../config.hpp"
#include "../core/shape.hpp"

namespace dml::detail {

// How each element of an output of shape `dims` maps to offsets in two inputs
// whose strides are zero along broadcast dimensions. Trivially copyable, so a
// CUDA kernel can take it by value.
struct BroadcastPlan {
  int rank = 0;
  std::int64_t dims[Shape::kMaxRank] = {};
  std::int64_t sa[Shape::kMaxRank] = {};
  std::int64_t sb[Shape::kMaxRank] = {};

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= dims[d];
    return n;
  }
  // Offsets into a and b of the output element with row-major index `linear`.
  DML_HD void offsets(std::int64_t linear, std::int64_t& oa, std::int64_t& ob) const {
    oa = 0;
    ob = 0;
    for (int d = rank - 1; d >= 0; --d) {
      std::int64_t i = linear % dims[d];
      linear /= dims[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
  }
};

// Strides of `in` seen from an output of shape `out` (right-aligned, zero where broadcast).
inline void broadcast_strides(const Shape& out, const Shape& in, std::int64_t* strides) {
  auto st = contiguous_strides(in);
  int shift = out.rank() - in.rank();
  for (int d = 0; d < out.rank(); ++d) {
    int k = d - shift;
    strides[d] = (k < 0 || in[k] == 1) ? 0 : st[k];
  }
}

inline BroadcastPlan make_broadcast_plan(const Shape& out, const Shape& a, const Shape& b) {
  BroadcastPlan p;
  p.rank = out.rank();
  for (int d = 0; d < out.rank(); ++d) p.dims[d] = out[d];
  broadcast_strides(out, a, p.sa);
  broadcast_strides(out, b, p.sb);
  return p;
}

// Reducing a gradient of shape `full` to `target` (target broadcasts to full):
// each target element sums the full elements over `red_dims`.
struct ReducePlan {
  int rank = 0;                                // rank of `full`
  std::int64_t target_dims[Shape::kMaxRank] = {};   // target padded to `rank`
  std::int64_t full_strides[Shape::kMaxRank] = {};
  int red_rank = 0;
  std::int64_t red_dims[Shape::kMaxRank] = {};
  std::int64_t red_strides[Shape::kMaxRank] = {};
  std::int64_t red_count = 1;

  // Offset in `full` of the first element summed into target element `t`.
  DML_HD std::int64_t base(std::int64_t t) const {
    std::int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      std::int64_t i = t % target_dims[d];
      t /= target_dims[d];
      off += i * full_strides[d];
    }
    return off;
  }
  // Offset, relative to base, of the k-th summed element.
  DML_HD std::int64_t reduced(std::int64_t k) const {
    std::int64_t off = 0;
    for (int d = red_rank - 1; d >= 0; --d) {
      std::int64_t i = k % red_dims[d];
      k /= red_dims[d];
      off += i * red_strides[d];
    }
    return off;
  }
};

inline ReducePlan make_reduce_plan(const Shape& full, const Shape& target) {
  ReducePlan p;
  p.rank = full.rank();
  auto st = contiguous_strides(full);
  int shift = full.rank() - target.rank();
  for (int d = 0; d < full.rank(); ++d) {
    int k = d - shift;
    std::int64_t td = k < 0 ? 1 : target[k];
    p.target_dims[d] = td;
    if (td == 1 && full[d] != 1) {
      p.full_strides[d] = 0;
      p.red_dims[p.red_rank] = full[d];
      p.red_strides[p.red_rank] = st[d];
      p.red_count *= full[d];
      ++p.red_rank;
    } else {
      p.full_strides[d] = st[d];
    }
  }
  return p;
}

}  // namespace dml::detail
