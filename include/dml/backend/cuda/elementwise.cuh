// dml/backend/cuda/elementwise.cuh: the broadcast gradient reduction (a block
// per target for long reductions, else kernels::ReduceTo) and the tiled 2-D
// transpose on the device (fills, maps and broadcasts are in
// kernels/portable.hpp).
#pragma once

#include <cstdint>

#include "../broadcast.hpp"
#include "../kernels/broadcast.hpp"
#include "launch.cuh"

namespace dml::cuda {
namespace detail {

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
      detail::for_each(target_numel, kernels::ReduceTo<T>{p, full, out});
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
