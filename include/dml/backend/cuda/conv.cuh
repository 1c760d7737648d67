// dml/backend/cuda/conv.cuh: 2-D convolution (NCHW, float and double) through
// cuDNN 9's convolution API: forward, backward data, backward filter.
//
// Per shape (geometry, element type, settings) a plan caches the tensor,
// filter and convolution descriptors and the candidate algorithms from the
// cudnnGetConvolution*Algorithm_v7 heuristics, best first. A call runs the
// first candidate whose workspace (from the caching allocator) can be had and
// that cuDNN accepts. The bias add and the bias gradient are dml kernels
// (the bias gradient is a fixed-order block sum, so it is deterministic).
//
// Settings (process-wide, read when a plan is made):
//   set_conv_deterministic(true) (or DML_CUDA_DETERMINISTIC=1) keeps only the
//     algorithms cuDNN reports as deterministic: the same input then gives
//     the same bits on every run;
//   set_conv_tf32(true) lets float convolutions use TF32 tensor cores (10-bit
//     mantissa products). Off by default: float results match the CPU at
//     float tolerance, as cuBLAS's GEMMs do.
#pragma once

#include <array>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "../../core/device.hpp"
#include "../geometry.hpp"
#include "context.cuh"
#include "launch.cuh"
#include "memory.cuh"

namespace dml::cuda {
namespace detail {

struct ConvFlags {
  std::atomic<bool> deterministic{false};
  std::atomic<bool> tf32{false};
  ConvFlags() {
    const char* env = std::getenv("DML_CUDA_DETERMINISTIC");
    deterministic = env && std::strcmp(env, "1") == 0;
  }
};

inline ConvFlags& conv_flags() {
  static ConvFlags* f = new ConvFlags;
  return *f;
}

}  // namespace detail

// Whether convolutions use only deterministic cuDNN algorithms (default: off,
// or on when DML_CUDA_DETERMINISTIC=1). Applies to shapes first seen after the call.
inline void set_conv_deterministic(bool on) { detail::conv_flags().deterministic = on; }
inline bool conv_deterministic() { return detail::conv_flags().deterministic; }
// Whether float convolutions may use TF32 tensor cores (default: off).
inline void set_conv_tf32(bool on) { detail::conv_flags().tf32 = on; }
inline bool conv_tf32() { return detail::conv_flags().tf32; }

namespace detail {

template <class T>
constexpr cudnnDataType_t cudnn_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuDNN convolutions take float or double");
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

inline int cudnn_int(std::int64_t v, const char* what) {
  DML_CHECK(v >= 0 && v <= INT_MAX, "conv2d: ", what, " = ", v, " exceeds cuDNN's 32-bit int range");
  return static_cast<int>(v);
}

// The three directions' perf structs share their fields; this is the part a plan keeps.
struct ConvAlgo {
  int algo;
  cudnnMathType_t math;
};

// Descriptors and candidate algorithms of one convolution shape.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool float_fma = false;      // float without TF32: run every algorithm with CUDNN_FMA_MATH
  bool deterministic = false;  // keep only deterministic algorithms
  std::vector<ConvAlgo> fwd, bwd_data, bwd_filter;  // filled on first use, best first

  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

using ConvKey = std::array<std::int64_t, 14>;

// Plans by shape. Never destroyed (cuDNN may be gone at exit); guarded by
// Context::cudnn_mutex.
inline std::map<ConvKey, std::unique_ptr<ConvPlan>>& conv_plans() {
  static auto* plans = new std::map<ConvKey, std::unique_ptr<ConvPlan>>;
  return *plans;
}

template <class T>
ConvPlan& conv_plan(const Conv2dGeom& g) {
  const bool det = conv_deterministic(), tf32 = conv_tf32();
  ConvKey key{g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, std::int64_t(sizeof(T)), det, tf32};
  auto& plans = conv_plans();
  if (auto it = plans.find(key); it != plans.end()) return *it->second;
  auto p = std::make_unique<ConvPlan>();
  constexpr cudnnDataType_t dt = cudnn_type<T>();
  const int n = cudnn_int(g.n, "batch"), c = cudnn_int(g.c, "channels"), o = cudnn_int(g.o, "out channels");
  DML_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  DML_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  DML_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  DML_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  DML_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dt, n, c, cudnn_int(g.h, "height"),
                                             cudnn_int(g.w, "width")));
  DML_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dt, n, o, cudnn_int(g.ho, "out height"),
                                             cudnn_int(g.wo, "out width")));
  DML_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, o, c, cudnn_int(g.kh, "kernel height"),
                                             cudnn_int(g.kw, "kernel width")));
  DML_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, cudnn_int(g.ph, "padding"), cudnn_int(g.pw, "padding"),
                                                  cudnn_int(g.sh, "stride"), cudnn_int(g.sw, "stride"), 1, 1,
                                                  CUDNN_CROSS_CORRELATION, dt));
  p->float_fma = std::is_same_v<T, float> && !tf32;
  p->deterministic = det;
  DML_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, p->float_fma ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
  int dn = 0, dc = 0, dh = 0, dw = 0;
  DML_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &dn, &dc, &dh, &dw));
  DML_CHECK(dn == g.n && dc == g.o && dh == g.ho && dw == g.wo, "conv2d: cuDNN's output shape [", dn, ", ", dc, ", ",
            dh, ", ", dw, "] differs from dml's [", g.n, ", ", g.o, ", ", g.ho, ", ", g.wo, "]");
  return *plans.emplace(key, std::move(p)).first->second;
}

// Keeps the heuristics' usable results in order: status success, deterministic
// when asked, no tensor-op math for float without TF32. `fallback` (a
// deterministic algorithm that supports float and double) ends the list.
template <class Perf>
std::vector<ConvAlgo> usable(const Perf* perf, int count, bool det, bool float_fma, int fallback) {
  std::vector<ConvAlgo> out;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (det && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (float_fma && (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
      continue;
    bool seen = false;
    for (const ConvAlgo& a : out) seen |= a.algo == static_cast<int>(p.algo);
    if (!seen) out.push_back({static_cast<int>(p.algo), p.mathType});
  }
  bool seen = false;
  for (const ConvAlgo& a : out) seen |= a.algo == fallback;
  if (!seen) out.push_back({fallback, CUDNN_DEFAULT_MATH});
  return out;
}

enum class ConvDir { Forward, BackwardData, BackwardFilter };

inline std::vector<ConvAlgo>& candidates(cudnnHandle_t h, ConvPlan& p, ConvDir dir) {
  const bool det = p.deterministic;
  if (dir == ConvDir::Forward) {
    if (p.fwd.empty()) {
      int max = 0, got = 0;
      DML_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<std::size_t>(max > 0 ? max : 1));
      DML_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, max, &got, perf.data()));
      p.fwd = usable(perf.data(), got, det, p.float_fma, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
    }
    return p.fwd;
  }
  if (dir == ConvDir::BackwardData) {
    if (p.bwd_data.empty()) {
      int max = 0, got = 0;
      DML_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<std::size_t>(max > 0 ? max : 1));
      DML_CUDNN_CHECK(
          cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, max, &got, perf.data()));
      p.bwd_data = usable(perf.data(), got, det, p.float_fma, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
    }
    return p.bwd_data;
  }
  if (p.bwd_filter.empty()) {
    int max = 0, got = 0;
    DML_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<std::size_t>(max > 0 ? max : 1));
    DML_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, max, &got, perf.data()));
    p.bwd_filter = usable(perf.data(), got, det, p.float_fma, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
  }
  return p.bwd_filter;
}

// Runs one direction: for each candidate, best first, sets its math type,
// asks cuDNN for its workspace size, allocates it and calls
// run(algo, workspace, bytes). A candidate that cuDNN rejects (a status in
// the NOT_SUPPORTED category) is dropped from the plan; one whose workspace
// cannot be allocated is skipped this time. Throws dml::Error on any other
// cuDNN failure, or when no candidate runs (naming the last rejection, or
// the last candidate's out-of-memory error).
template <class WorkspaceSize, class Run>
void run_conv(ConvPlan& p, std::vector<ConvAlgo>& algos, const char* what, WorkspaceSize workspace_size, Run run) {
  cudnnStatus_t rejected = CUDNN_STATUS_SUCCESS;
  for (std::size_t i = 0; i < algos.size();) {
    const ConvAlgo a = algos[i];
    DML_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.float_fma ? CUDNN_FMA_MATH : a.math));
    std::size_t bytes = 0;
    cudnnStatus_t st = workspace_size(a.algo, &bytes);
    if (st == CUDNN_STATUS_SUCCESS) {
      std::unique_ptr<DeviceBuffer<std::byte>> ws;
      try {
        ws = std::make_unique<DeviceBuffer<std::byte>>(bytes);
      } catch (const Error&) {
        if (i + 1 == algos.size()) throw;
        ++i;
        continue;
      }
      st = run(a.algo, static_cast<void*>(ws->get()), bytes);
      if (st == CUDNN_STATUS_SUCCESS) return;
    }
    if (CUDNN_STATUS_CATEGORY(st) != CUDNN_STATUS_NOT_SUPPORTED)
      check_cudnn(st, what, std::source_location::current());
    rejected = st;
    algos.erase(algos.begin() + static_cast<std::ptrdiff_t>(i));
  }
  throw Error(::dml::detail::concat("conv2d: no cuDNN algorithm could run ", what, "; the last one was rejected with ",
                                    static_cast<int>(rejected), " (", cudnnGetErrorString(rejected), ")"));
}

// y[b, oc, q] += bias[oc]
template <class T>
struct AddChannelBiasOp {
  T* y;
  const T* bias;
  std::int64_t channels, plane;
  DML_HD void operator()(std::int64_t i) const { y[i] += bias[(i / plane) % channels]; }
};

// out[ch] = sum over b, q of x[(b * channels + ch) * plane + q]; one block per
// channel, a fixed order (grid-stride partials, then block_sum): deterministic.
template <class T>
__global__ void channel_sum_kernel(const T* x, T* out, std::int64_t n, std::int64_t channels, std::int64_t plane) {
  __shared__ T scratch[kWarp];
  for (std::int64_t ch = blockIdx.x; ch < channels; ch += gridDim.x) {
    T acc = T(0);
    const std::int64_t m = n * plane;
    for (std::int64_t k = threadIdx.x; k < m; k += blockDim.x)
      acc += x[((k / plane) * channels + ch) * plane + k % plane];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) out[ch] = acc;
  }
}

inline unsigned channel_grid(std::int64_t channels) {
  return static_cast<unsigned>(channels < 65535 ? channels : 65535);
}

}  // namespace detail

struct Conv {
  // y = conv(x, w) + bias for the geometry g (NCHW, weight [o, c, kh, kw]);
  // bias may be null. y is fully overwritten. Throws dml::Error when cuDNN
  // fails or a size exceeds its int range.
  template <class T>
  static void conv2d_forward(const Conv2dGeom& g, const T* x, const T* w, const T* bias, T* y) {
    if (g.n == 0 || g.o == 0 || g.ho <= 0 || g.wo <= 0) return;
    const std::int64_t plane = g.ho * g.wo, total = g.n * g.o * plane;
    if (g.c == 0) {  // no input channels: the output is the bias alone
      Memory<Cuda>::zero(y, static_cast<std::size_t>(total) * sizeof(T));
    } else {
      Context& ctx = context();
      std::lock_guard lock(ctx.cudnn_mutex);
      cudnnHandle_t h = cudnn_handle(ctx);
      detail::ConvPlan& p = detail::conv_plan<T>(g);
      const T one = T(1), zero = T(0);
      detail::run_conv(
          p, detail::candidates(h, p, detail::ConvDir::Forward), "cudnnConvolutionForward",
          [&](int algo, std::size_t* bytes) {
            return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y,
                                                           static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
          },
          [&](int algo, void* ws, std::size_t bytes) {
            return cudnnConvolutionForward(h, &one, p.x, x, p.w, w, p.conv,
                                           static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws, bytes, &zero, p.y, y);
          });
    }
    if (bias) detail::for_each(total, detail::AddChannelBiasOp<T>{y, bias, g.o, plane});
  }

  // Gradients of conv2d_forward given gy = dL/dy. Each of gx ([n, c, h, w]),
  // gw ([o, c, kh, kw]) and gbias ([o]) may be null; the others are
  // overwritten. Throws as conv2d_forward.
  template <class T>
  static void conv2d_backward(const Conv2dGeom& g, const T* gy, const T* x, const T* w, T* gx, T* gw, T* gbias) {
    const std::int64_t plane = g.ho * g.wo;
    const bool empty = g.n == 0 || g.o == 0 || plane <= 0 || g.c == 0;
    if (gbias && g.o > 0) {
      if (g.n == 0 || plane <= 0) {
        Memory<Cuda>::zero(gbias, static_cast<std::size_t>(g.o) * sizeof(T));
      } else {
        detail::channel_sum_kernel<<<detail::channel_grid(g.o), detail::kBlock, 0, stream()>>>(gy, gbias, g.n, g.o,
                                                                                             plane);
        DML_CUDA_CHECK_LAUNCH();
      }
    }
    if (empty) {
      if (gw) Memory<Cuda>::zero(gw, static_cast<std::size_t>(g.o * g.c * g.kh * g.kw) * sizeof(T));
      if (gx) Memory<Cuda>::zero(gx, static_cast<std::size_t>(g.n * g.c * g.h * g.w) * sizeof(T));
      return;
    }
    if (!gx && !gw) return;
    Context& ctx = context();
    std::lock_guard lock(ctx.cudnn_mutex);
    cudnnHandle_t h = cudnn_handle(ctx);
    detail::ConvPlan& p = detail::conv_plan<T>(g);
    const T one = T(1), zero = T(0);
    if (gx)
      detail::run_conv(
          p, detail::candidates(h, p, detail::ConvDir::BackwardData), "cudnnConvolutionBackwardData",
          [&](int algo, std::size_t* bytes) {
            return cudnnGetConvolutionBackwardDataWorkspaceSize(
                h, p.w, p.y, p.conv, p.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
          },
          [&](int algo, void* ws, std::size_t bytes) {
            return cudnnConvolutionBackwardData(h, &one, p.w, w, p.y, gy, p.conv,
                                                static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), ws, bytes, &zero,
                                                p.x, gx);
          });
    if (gw)
      detail::run_conv(
          p, detail::candidates(h, p, detail::ConvDir::BackwardFilter), "cudnnConvolutionBackwardFilter",
          [&](int algo, std::size_t* bytes) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                h, p.x, p.y, p.conv, p.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
          },
          [&](int algo, void* ws, std::size_t bytes) {
            return cudnnConvolutionBackwardFilter(h, &one, p.x, x, p.y, gy, p.conv,
                                                  static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), ws, bytes,
                                                  &zero, p.w, gw);
          });
  }
};

}  // namespace dml::cuda
