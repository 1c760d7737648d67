// dml/backend/cuda/launch.cuh: the generic grid-stride kernel and the warp and
// block reductions the other kernels share.
//
// for_each(n, op) runs op(i) for every i in [0, n) with one grid-stride kernel
// template. The op is a small named struct (pointers + a dml::fn functor) with
// a DML_HD call operator, so elementwise kernels need no device lambdas and
// run the very functors the CPU backend runs.
#pragma once

#include <cstdint>

#include "../../config.hpp"
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

// Whether the candidate (cv, ci) beats (v, i) in an argmax that matches the
// CPU scan: best = x[0]; take x[l] when x[l] > best. So a NaN can only win at
// index 0 (and then it wins), other NaNs never win, and ties go to the
// smaller index. An index of -1 marks an empty pair.
template <class T>
DML_HD bool argmax_better(T v, std::int64_t i, T cv, std::int64_t ci) {
  if (ci < 0) return false;
  if (cv != cv) return ci == 0;  // a NaN wins only at index 0
  if (i < 0) return true;
  if (v != v) return false;  // a NaN held here sits at index 0
  return cv > v || (cv == v && ci < i);
}

// Lane-local step of that scan: element x at index l.
template <class T>
DML_HD void argmax_push(T& v, std::int64_t& i, T x, std::int64_t l) {
  if (argmax_better(v, i, x, l)) {
    v = x;
    i = l;
  }
}

// Combines every lane's pair; the winner ends up in every lane (it is the
// maximum of a total order, so each lane of a butterfly pair picks the same).
template <class T>
__device__ __forceinline__ void warp_argmax(T& v, std::int64_t& idx) {
  for (int m = kWarp / 2; m > 0; m >>= 1) {
    T ov = __shfl_xor_sync(0xffffffffu, v, m);
    long long oi = __shfl_xor_sync(0xffffffffu, static_cast<long long>(idx), m);
    argmax_push(v, idx, ov, static_cast<std::int64_t>(oi));
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
