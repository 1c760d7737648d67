// dml/backend/cuda/reduce.cuh: sums and maxima on the device.
//
// Deterministic: no floating-point atomics. Every reduction sums in an order
// fixed by the shapes alone (fixed grids, fixed chunks, xor-butterfly warp
// sums), so the same input gives the same bits run after run.
#pragma once

#include <cstdint>

#include "launch.cuh"
#include "memory.cuh"

namespace dml::cuda {
namespace detail {

inline constexpr int kSumItemsPerThread = 16;
inline constexpr std::int64_t kSumMaxBlocks = 1024;

// out[blockIdx.x] = sum of the elements this block visits (grid-stride).
template <class T>
__global__ void sum_partial_kernel(const T* x, std::int64_t n, T* out) {
  __shared__ T scratch[kWarp];
  T acc = T(0);
  std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc += x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

// Row sums of x viewed as [rows, len] with TPR threads per row (32 or kBlock).
template <int TPR, class T>
__global__ void sum_rows_kernel(const T* x, T* out, std::int64_t rows, std::int64_t len, T scale) {
  __shared__ T scratch[kWarp];
  constexpr int kGroups = kBlock / TPR;
  int group = threadIdx.x / TPR, lane = threadIdx.x % TPR;
  for (std::int64_t r0 = static_cast<std::int64_t>(blockIdx.x) * kGroups; r0 < rows;
       r0 += static_cast<std::int64_t>(gridDim.x) * kGroups) {
    std::int64_t r = r0 + group;
    T acc = T(0);
    if (r < rows)
      for (std::int64_t l = lane; l < len; l += TPR) acc += x[r * len + l];
    if constexpr (TPR == kWarp) acc = warp_sum(acc);
    else acc = block_sum(acc, scratch);
    if (r < rows && lane == 0) out[r] = acc * scale;
  }
}

// x as [outer, len, inner]; output (o, i) sums l in [l0, l1) in order.
template <class T>
DML_HD T sum_strided(const T* x, std::int64_t o, std::int64_t i, std::int64_t len, std::int64_t inner,
                     std::int64_t l0, std::int64_t l1) {
  const T* p = x + o * len * inner + i;
  T acc = T(0);
  for (std::int64_t l = l0; l < l1; ++l) acc += p[l * inner];
  return acc;
}

// Whether a column sum with few outputs over a long axis is split into chunks.
inline bool split_columns(std::int64_t outputs, std::int64_t len) { return outputs < 8192 && len >= 512; }

// Chunks of 128 elements, fewer (and longer) when there would be over 65536 partial sums.
struct ColumnSplit {
  std::int64_t chunk, chunks;
};
inline ColumnSplit column_split(std::int64_t outputs, std::int64_t len) {
  std::int64_t chunk = 128, chunks = (len + chunk - 1) / chunk;
  std::int64_t max_chunks = 65536 / outputs > 1 ? 65536 / outputs : 1;
  if (chunks > max_chunks) {
    chunk = (len + max_chunks - 1) / max_chunks;
    chunks = (len + chunk - 1) / chunk;
  }
  return {chunk, chunks};
}

template <class T>
struct SumColsOp {
  const T* x;
  T* out;
  std::int64_t len, inner;
  T scale;
  DML_HD void operator()(std::int64_t t) const {
    out[t] = sum_strided(x, t / inner, t % inner, len, inner, std::int64_t(0), len) * scale;
  }
};

// Pass 1 of a split column sum: partial[s, t] over chunk s of the axis.
template <class T>
struct SumColsChunkOp {
  const T* x;
  T* partial;
  std::int64_t len, inner, outputs, chunk;
  DML_HD void operator()(std::int64_t k) const {
    std::int64_t s = k / outputs, t = k % outputs;
    std::int64_t l0 = s * chunk, l1 = l0 + chunk < len ? l0 + chunk : len;
    partial[k] = sum_strided(x, t / inner, t % inner, len, inner, l0, l1);
  }
};

// Pass 2: out[t] = scale * sum_s partial[s, t], s in order.
template <class T>
struct SumChunksOp {
  const T* partial;
  T* out;
  std::int64_t outputs, chunks;
  T scale;
  DML_HD void operator()(std::int64_t t) const {
    T acc = T(0);
    for (std::int64_t s = 0; s < chunks; ++s) acc += partial[s * outputs + t];
    out[t] = acc * scale;
  }
};

// Row maxima (inner == 1): one warp per row, lanes combined in the order of
// kernels/argmax.hpp, so the answer is the host scan's.
template <class T>
__global__ void max_rows_kernel(const T* x, T* out, std::int64_t* arg, std::int64_t rows, std::int64_t len) {
  int lane = threadIdx.x % kWarp;
  std::int64_t warp = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * blockDim.x / kWarp;
  for (std::int64_t r = warp; r < rows; r += warps) {
    T v = T(0);
    std::int64_t idx = -1;
    for (std::int64_t l = lane; l < len; l += kWarp) kernels::argmax_push(v, idx, x[r * len + l], l);
    warp_argmax(v, idx);
    if (lane == 0) {
      out[r] = v;
      arg[r] = idx;
    }
  }
}

}  // namespace detail

struct Reduce {
  // out[0] = sum of x[0..n): a fixed grid of partial block sums, then one block
  // sums the partials. The grid depends on n only: deterministic.
  template <class T>
  static void sum_all(const T* x, std::int64_t n, T* out) {
    cudaStream_t s = stream();
    if (n <= 0) {
      DML_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(T), s));
      return;
    }
    std::int64_t per_block = static_cast<std::int64_t>(detail::kBlock) * detail::kSumItemsPerThread;
    std::int64_t blocks = (n + per_block - 1) / per_block;
    if (blocks > detail::kSumMaxBlocks) blocks = detail::kSumMaxBlocks;
    if (blocks == 1) {
      detail::sum_partial_kernel<<<1, detail::kBlock, 0, s>>>(x, n, out);
      DML_CUDA_CHECK_LAUNCH();
      return;
    }
    DeviceBuffer<T> partial(static_cast<std::size_t>(blocks));
    detail::sum_partial_kernel<<<static_cast<unsigned>(blocks), detail::kBlock, 0, s>>>(x, n, partial.get());
    DML_CUDA_CHECK_LAUNCH();
    detail::sum_partial_kernel<<<1, detail::kBlock, 0, s>>>(partial.get(), blocks, out);
    DML_CUDA_CHECK_LAUNCH();
  }

  // x viewed as [outer, len, inner]; out[o, i] = scale * sum_l x[o, l, i].
  template <class T>
  static void sum_axis(const T* x, T* out, std::int64_t outer, std::int64_t len, std::int64_t inner, T scale) {
    std::int64_t outputs = outer * inner;
    if (outputs <= 0) return;
    if (inner == 1) {
      if (len >= 2048) {
        std::int64_t grid = outer < 65535 ? outer : 65535;
        detail::sum_rows_kernel<detail::kBlock><<<static_cast<unsigned>(grid), detail::kBlock, 0, stream()>>>(
            x, out, outer, len, scale);
      } else {
        constexpr int kRowsPerBlock = detail::kBlock / detail::kWarp;
        std::int64_t grid = (outer + kRowsPerBlock - 1) / kRowsPerBlock;
        if (grid > 65535) grid = 65535;
        detail::sum_rows_kernel<detail::kWarp><<<static_cast<unsigned>(grid), detail::kBlock, 0, stream()>>>(
            x, out, outer, len, scale);
      }
      DML_CUDA_CHECK_LAUNCH();
      return;
    }
    // Few outputs over a long axis: split the axis into fixed chunks, then add the chunks.
    if (detail::split_columns(outputs, len)) {
      auto [chunk, chunks] = detail::column_split(outputs, len);
      DeviceBuffer<T> partial(static_cast<std::size_t>(chunks * outputs));
      detail::for_each(chunks * outputs, detail::SumColsChunkOp<T>{x, partial.get(), len, inner, outputs, chunk});
      detail::for_each(outputs, detail::SumChunksOp<T>{partial.get(), out, outputs, chunks, scale});
      return;
    }
    detail::for_each(outputs, detail::SumColsOp<T>{x, out, len, inner, scale});
  }

  // out[o, i] = max_l x[o, l, i] and arg[o, i] its first index l (len > 0).
  template <class T>
  static void max_axis(const T* x, T* out, std::int64_t* arg, std::int64_t outer, std::int64_t len,
                       std::int64_t inner) {
    if (outer * inner <= 0 || len <= 0) return;
    if (inner == 1 && len > 32) {
      detail::max_rows_kernel<<<detail::grid_for(outer * detail::kWarp), detail::kBlock, 0, stream()>>>(
          x, out, arg, outer, len);
      DML_CUDA_CHECK_LAUNCH();
      return;
    }
    detail::for_each(outer * inner, kernels::ArgmaxScan<T>{x, out, arg, len, inner});
  }
};

}  // namespace dml::cuda
