// dml/backend/cuda/elementwise.cuh: fills, maps, broadcasts, the broadcast
// gradient reduction and the 2-D transpose on the device.
//
// Every elementwise kernel is detail::for_each (one grid-stride kernel
// template) running a small op struct that calls a dml::fn functor: the same
// lines the CPU backend runs.
#pragma once

#include <cstdint>

#include "../broadcast.hpp"
#include "launch.cuh"

namespace dml::cuda {
namespace detail {

template <class T>
struct FillOp {
  T* out;
  T value;
  DML_HD void operator()(std::int64_t i) const { out[i] = value; }
};
template <class F, class T>
struct MapOp {
  F f;
  const T* a;
  T* out;
  DML_HD void operator()(std::int64_t i) const { out[i] = f(a[i]); }
};
template <class F, class T>
struct MapBackwardOp {
  F f;
  const T* x;
  const T* y;
  const T* g;
  T* dx;
  DML_HD void operator()(std::int64_t i) const { dx[i] = f.grad(x[i], y[i], g[i]); }
};
template <class F, class T>
struct ZipOp {
  F f;
  const T* a;
  const T* b;
  T* out;
  DML_HD void operator()(std::int64_t i) const { out[i] = f(a[i], b[i]); }
};
template <class F, class T>
struct Zip3Op {
  F f;
  const T* a;
  const T* b;
  const T* c;
  T* out;
  DML_HD void operator()(std::int64_t i) const { out[i] = f(a[i], b[i], c[i]); }
};
template <class F, class T>
struct BroadcastZipOp {
  F f;
  ::dml::detail::BroadcastPlan p;  // by value: it travels in the kernel's parameters
  const T* a;
  const T* b;
  T* out;
  DML_HD void operator()(std::int64_t i) const {
    std::int64_t oa, ob;
    p.offsets(i, oa, ob);
    out[i] = f(a[oa], b[ob]);
  }
};
// One thread per target element, summing its reduced elements in index order.
template <class T>
struct ReduceToOp {
  ::dml::detail::ReducePlan p;
  const T* full;
  T* out;
  DML_HD void operator()(std::int64_t t) const {
    std::int64_t base = p.base(t);
    T acc = T(0);
    for (std::int64_t k = 0; k < p.red_count; ++k) acc += full[base + p.reduced(k)];
    out[t] = acc;
  }
};

// One block per target element for long reductions into few targets.
template <class T>
__global__ void reduce_to_block_kernel(::dml::detail::ReducePlan p, const T* full, T* out, std::int64_t targets) {
  __shared__ T scratch[kWarp];
  for (std::int64_t t = blockIdx.x; t < targets; t += gridDim.x) {
    std::int64_t base = p.base(t);
    T acc = T(0);
    for (std::int64_t k = threadIdx.x; k < p.red_count; k += blockDim.x) acc += full[base + p.reduced(k)];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) out[t] = acc;
  }
}

inline constexpr int kTile = 32;
inline constexpr int kTileRows = 8;

// y (cols x rows) = x^T through a padded shared-memory tile; blocks stride over tiles.
template <class T>
__global__ void transpose_kernel(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
  __shared__ T tile[kTile][kTile + 1];
  std::int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  for (std::int64_t t = blockIdx.x; t < tiles_r * tiles_c; t += gridDim.x) {
    std::int64_t r0 = (t / tiles_c) * kTile, c0 = (t % tiles_c) * kTile;
    for (int dr = threadIdx.y; dr < kTile; dr += kTileRows) {
      std::int64_t r = r0 + dr, c = c0 + threadIdx.x;
      if (r < rows && c < cols) tile[dr][threadIdx.x] = x[r * cols + c];
    }
    __syncthreads();
    for (int dc = threadIdx.y; dc < kTile; dc += kTileRows) {
      std::int64_t c = c0 + dc, r = r0 + threadIdx.x;
      if (c < cols && r < rows) y[c * rows + r] = tile[threadIdx.x][dc];
    }
    __syncthreads();
  }
}

}  // namespace detail

struct Elementwise {
  template <class T>
  static void fill(T* out, std::int64_t n, T value) {
    detail::for_each(n, detail::FillOp<T>{out, value});
  }
  // out[i] = f(a[i]); out may alias a.
  template <class F, class T>
  static void map(F f, const T* a, T* out, std::int64_t n) {
    detail::for_each(n, detail::MapOp<F, T>{f, a, out});
  }
  // dx[i] = f.grad(x[i], y[i], g[i])
  template <class F, class T>
  static void map_backward(F f, const T* x, const T* y, const T* g, T* dx, std::int64_t n) {
    detail::for_each(n, detail::MapBackwardOp<F, T>{f, x, y, g, dx});
  }
  // out[i] = f(a[i], b[i]); out may alias a or b.
  template <class F, class T>
  static void zip(F f, const T* a, const T* b, T* out, std::int64_t n) {
    detail::for_each(n, detail::ZipOp<F, T>{f, a, b, out});
  }
  // out[i] = f(a[i], b[i], c[i])
  template <class F, class T>
  static void zip3(F f, const T* a, const T* b, const T* c, T* out, std::int64_t n) {
    detail::for_each(n, detail::Zip3Op<F, T>{f, a, b, c, out});
  }
  // out = f(a, b) under a broadcast plan.
  template <class F, class T>
  static void broadcast_zip(F f, const ::dml::detail::BroadcastPlan& p, const T* a, const T* b, T* out) {
    detail::for_each(p.numel(), detail::BroadcastZipOp<F, T>{f, p, a, b, out});
  }
  // out[t] = sum of `full` over the plan's reduced dimensions. The kernel is
  // chosen from the shapes alone, so results are the same run after run.
  template <class T>
  static void reduce_to(const ::dml::detail::ReducePlan& p, const T* full, T* out, std::int64_t target_numel) {
    if (target_numel <= 0) return;
    if (p.red_count >= 256 && target_numel < 4096) {
      detail::reduce_to_block_kernel<<<static_cast<unsigned>(target_numel), detail::kBlock, 0, stream()>>>(
          p, full, out, target_numel);
      DML_CUDA_CHECK_LAUNCH();
    } else {
      detail::for_each(target_numel, detail::ReduceToOp<T>{p, full, out});
    }
  }
  // y (C x R) = transpose of x (R x C).
  template <class T>
  static void transpose2d(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    std::int64_t tiles = ((rows + detail::kTile - 1) / detail::kTile) * ((cols + detail::kTile - 1) / detail::kTile);
    std::int64_t cap = static_cast<std::int64_t>(context().sm_count) * 16;
    unsigned grid = static_cast<unsigned>(tiles < cap ? tiles : cap);
    detail::transpose_kernel<<<grid, dim3(detail::kTile, detail::kTileRows), 0, stream()>>>(x, y, rows, cols);
    DML_CUDA_CHECK_LAUNCH();
  }
};

}  // namespace dml::cuda
