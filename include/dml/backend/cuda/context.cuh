// dml/backend/cuda/context.cuh: the process-wide CUDA context: one device, one
// stream, one cuBLAS handle, and a cuDNN handle created on first use.
//
// Every dml kernel, copy and GEMM is issued on the context's stream, so work is
// ordered without events and the caching allocator may hand a freed block to
// the next allocation at once. The stream is a blocking stream: work that user
// code puts on the legacy default stream (stream 0) is ordered with it too.
#pragma once

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "error.cuh"

namespace dml::cuda {

struct Context {
  int device = 0;
  std::string name;                  // e.g. "NVIDIA H200"
  int sm_count = 1;                  // multiprocessors, sizes grid-stride launches
  int compute_capability = 0;        // 80, 90, ...
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  std::mutex cublas_mutex;           // a cuBLAS handle is not safe for concurrent use
  cudnnHandle_t cudnn = nullptr;     // created by cudnn_handle() (loading cuDNN takes a while)
  std::mutex cudnn_mutex;            // guards the cuDNN handle and the convolution plans
};

namespace detail {

struct ContextSlot {
  std::mutex mu;
  std::atomic<Context*> ctx{nullptr};
  int requested = -1;
};

// Never destroyed: tensors in static storage may outlive any static here.
inline ContextSlot& context_slot() {
  static ContextSlot* slot = new ContextSlot;
  return *slot;
}

inline int default_device() {
  const char* env = std::getenv("DML_CUDA_DEVICE");
  if (!env || !*env) return 0;
  char* end = nullptr;
  long v = std::strtol(env, &end, 10);
  DML_CHECK(end && *end == '\0' && v >= 0 && v < 1024, "DML_CUDA_DEVICE='", env,
            "' is not a device index (0, 1, ...)");
  return static_cast<int>(v);
}

inline Context* create_context(int device) {
  require_device();
  int count = 0;
  DML_CUDA_CHECK(cudaGetDeviceCount(&count));
  DML_CHECK(device >= 0 && device < count, "CUDA device ", device, " does not exist (", count, " device",
            count == 1 ? "" : "s", " found)");
  auto ctx = std::make_unique<Context>();
  ctx->device = device;
  DML_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp prop{};
  DML_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  ctx->name = prop.name;
  ctx->sm_count = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  ctx->compute_capability = prop.major * 10 + prop.minor;
  DML_CUDA_CHECK(cudaStreamCreate(&ctx->stream));
  cublasStatus_t st = cublasCreate(&ctx->cublas);
  if (st != CUBLAS_STATUS_SUCCESS) {
    cudaStreamDestroy(ctx->stream);
    DML_CUBLAS_CHECK(st);
  }
  st = cublasSetStream(ctx->cublas, ctx->stream);
  if (st != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(ctx->cublas);
    cudaStreamDestroy(ctx->stream);
    DML_CUBLAS_CHECK(st);
  }
  return ctx.release();
}

}  // namespace detail

// Chooses the device dml uses (default: $DML_CUDA_DEVICE, else 0). Call before
// the first CUDA tensor; throws dml::Error once another device is in use.
inline void select_device(int device) {
  auto& slot = detail::context_slot();
  std::lock_guard lock(slot.mu);
  Context* c = slot.ctx.load(std::memory_order_acquire);
  DML_CHECK(!c || c->device == device, "select_device(", device, "): dml already runs on CUDA device ", c->device,
            "; select the device before the first CUDA tensor");
  slot.requested = device;
}

// The context, created on first use (on the calling thread's first call the
// device is made current). Throws dml::Error("no CUDA device: ...") without a GPU.
inline Context& context() {
  auto& slot = detail::context_slot();
  Context* c = slot.ctx.load(std::memory_order_acquire);
  if (!c) {
    std::lock_guard lock(slot.mu);
    c = slot.ctx.load(std::memory_order_relaxed);
    if (!c) {
      c = detail::create_context(slot.requested >= 0 ? slot.requested : detail::default_device());
      slot.ctx.store(c, std::memory_order_release);
    }
  }
  thread_local int bound = -1;
  if (bound != c->device) {
    DML_CUDA_CHECK(cudaSetDevice(c->device));
    bound = c->device;
  }
  return *c;
}

// The stream all dml work runs on (for user kernels that touch tensor data).
inline cudaStream_t stream() { return context().stream; }

// The context's cuDNN handle, bound to its stream; created on the first call.
// The caller holds context().cudnn_mutex. Throws dml::Error when cuDNN fails.
inline cudnnHandle_t cudnn_handle(Context& ctx) {
  if (!ctx.cudnn) {
    cudnnHandle_t h = nullptr;
    DML_CUDNN_CHECK(cudnnCreate(&h));
    cudnnStatus_t st = cudnnSetStream(h, ctx.stream);
    if (st != CUDNN_STATUS_SUCCESS) {
      cudnnDestroy(h);
      DML_CUDNN_CHECK(st);
    }
    ctx.cudnn = h;
  }
  return ctx.cudnn;
}

// Waits for all work dml has queued; throws on an asynchronous kernel error.
inline void synchronize() { DML_CUDA_CHECK(cudaStreamSynchronize(context().stream)); }

}  // namespace dml::cuda
