// dml/backend/cuda/launch.cuh: the generic grid-stride kernel and the warp and
// block reductions the other kernels share.
//
// for_each(n, op) runs op(i) for every i in [0, n) with one grid-stride kernel
// template. The ops are the index functors of backend/kernels/ (small named
// structs with a DML_HD call operator), so kernels need no device lambdas and
// run the very lines the CPU backend runs.
#pragma once

#include <cstdint>

#include "../../config.hpp"
#include "../kernels/argmax.hpp"
#include "../kernels/index.hpp"
#include "context.cuh"

namespace dml::cuda::detail {

inline constexpr int kBlock = 256;
inline constexpr int kWarp = 32;

// Blocks for n threads of work: enough to fill the device, capped so that the
// grid-stride loop does several elements per thread on big inputs.
inline unsigned grid_for(std::int64_t n, int block = kBlock) {
  std::int64_t blocks = (n + block - 1) / block;
  std::int64_t cap = static_cast<std::int64_t>(context().sm_count) * (2048 / block) * 4;
  if (blocks > cap) blocks = cap;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

template <class Op>
__global__ void for_each_kernel(Op op, std::int64_t n) {
  std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) op(i);
}

// Calls op(i) for i in [0, n) on the context's stream.
template <class Op>
void for_each(std::int64_t n, const Op& op) {
  if (n <= 0) return;
  for_each_kernel<<<grid_for(n), kBlock, 0, stream()>>>(op, n);
  DML_CUDA_CHECK_LAUNCH();
}

// A 2-D op (kernels/index.hpp) as a 1-D one: thread k runs (k / cols, k % cols).
template <class Op>
struct Flat2d {
  Op op;
  std::int64_t cols;
  DML_HD void operator()(std::int64_t k) const {
    const std::int64_t c = k % cols;
    kernels::run_cols(op, k / cols, c, c + 1);
  }
};

// Sum over the 32 lanes, returned in every lane. The xor butterfly adds the
// same two operands in every lane of a pair, so all lanes hold identical bits
// and the order is fixed: deterministic.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int m = kWarp / 2; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}

template <class T>
__device__ __forceinline__ T warp_max(T v) {
  for (int m = kWarp / 2; m > 0; m >>= 1) {
    T o = __shfl_xor_sync(0xffffffffu, v, m);
    v = o > v ? o : v;
  }
  return v;
}

// Combines every lane's pair; the winner ends up in every lane (it is the
// maximum of a total order, so each lane of a butterfly pair picks the same).
template <class T>
__device__ __forceinline__ void warp_argmax(T& v, std::int64_t& idx) {
  for (int m = kWarp / 2; m > 0; m >>= 1) {
    T ov = __shfl_xor_sync(0xffffffffu, v, m);
    long long oi = __shfl_xor_sync(0xffffffffu, static_cast<long long>(idx), m);
    kernels::argmax_push(v, idx, ov, static_cast<std::int64_t>(oi));
  }
}

// Block-wide sum for a block of blockDim.x threads (a multiple of 32, at most
// 1024); the result is valid in every thread. `scratch` holds 32 values.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = warp_sum(v);
  if (warps == 1) return v;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : T(0);
  return warp_sum(v);
}

}  // namespace dml::cuda::detail

namespace dml::cuda {

// How the device runs the index functors of backend/kernels/: one
// grid-stride kernel template, queued on the context's stream. `cost` is the
// host's threading hint and is ignored here.
struct Launch {
  template <class Op>
  static void for_each(std::int64_t n, const Op& op, std::int64_t /*cost*/ = 1) {
    detail::for_each(n, op);
  }
  template <class Op>
  static void for_each_2d(std::int64_t rows, std::int64_t cols, const Op& op, std::int64_t /*cost*/ = 1) {
    if (rows <= 0 || cols <= 0) return;
    detail::for_each(rows * cols, detail::Flat2d<Op>{op, cols});
  }
};

}  // namespace dml::cuda
