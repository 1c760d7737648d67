// dml/backend/cuda/memory.cuh: the caching device allocator and Memory<Cuda>,
// the device side of the allocator contract in core/storage.hpp (DeviceMemory),
// whose host side, Memory<Cpu>, is there.
//
// cudaMalloc and cudaFree are slow and cudaFree synchronises the device, so
// freed blocks go to size-bucketed free lists and the next request of the same
// rounded size reuses one. A training step that allocates the same shapes each
// iteration therefore calls cudaMalloc only in its first iteration. Reuse is
// safe without events because all dml work runs on the context's one stream.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "../../core/storage.hpp"
#include "context.cuh"

namespace dml::cuda {

struct AllocatorStats {
  std::size_t bytes_in_use = 0;       // rounded sizes of live blocks
  std::size_t bytes_cached = 0;       // rounded sizes of free blocks kept for reuse
  std::size_t peak_bytes_in_use = 0;
  std::size_t blocks_in_use = 0;
  std::size_t blocks_cached = 0;
  std::uint64_t cuda_malloc_count = 0;  // cudaMalloc calls so far
  std::uint64_t cuda_free_count = 0;    // cudaFree calls so far
  std::uint64_t cache_hits = 0;         // requests served from a free list
};

class CachingAllocator {
 public:
  static constexpr std::size_t kSmallRound = 512;
  static constexpr std::size_t kLargeThreshold = std::size_t(1) << 20;

  // The bucket of a request: a multiple of 512 B up to 1 MiB; above, a
  // multiple of a quarter of the largest power of two <= bytes (so at most 25 %
  // is wasted and there are four buckets per octave).
  static constexpr std::size_t round_size(std::size_t bytes) noexcept {
    if (bytes <= kLargeThreshold) return bytes == 0 ? kSmallRound : (bytes + kSmallRound - 1) / kSmallRound * kSmallRound;
    std::size_t top = kLargeThreshold;
    while (top <= bytes / 2) top *= 2;
    std::size_t step = top / 4;
    return (bytes + step - 1) / step * step;
  }

  CachingAllocator() {
    const char* env = std::getenv("DML_CUDA_NO_CACHE");
    caching_ = !(env && std::strcmp(env, "1") == 0);
  }

  // Device memory of at least `bytes` (256-byte aligned). On a cudaMalloc
  // failure the cache is emptied and the call retried once; then throws
  // dml::Error naming the request and the allocator's state.
  void* allocate(std::size_t bytes) {
    context();  // the device exists and is current on this thread
    std::size_t size = round_size(bytes);
    std::lock_guard lock(mu_);
    if (auto it = free_.find(size); it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= size;
      --stats_.blocks_cached;
      ++stats_.cache_hits;
      track_live(p, size);
      return p;
    }
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked();
      status = cudaMalloc(&p, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error(::dml::detail::concat("CUDA out of memory: cudaMalloc of ", size, " bytes (request ", bytes,
                                        ") failed with ", cudaGetErrorName(status), " (", cudaGetErrorString(status),
                                        "); dml holds ", stats_.bytes_in_use, " bytes in use and ",
                                        stats_.bytes_cached, " cached"));
    }
    ++stats_.cuda_malloc_count;
    track_live(p, size);
    return p;
  }

  // Returns a block from allocate() to its free list (or frees it when caching
  // is off: DML_CUDA_NO_CACHE=1, for compute-sanitizer runs). Never throws.
  void release(void* p) noexcept {
    if (!p) return;
    std::lock_guard lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours (or freed twice): leave it alone
    std::size_t size = it->second;
    live_.erase(it);
    stats_.bytes_in_use -= size;
    --stats_.blocks_in_use;
    if (!caching_) {
      cudaFree(p);
      ++stats_.cuda_free_count;
      return;
    }
    try {
      free_[size].push_back(p);
    } catch (...) {  // bookkeeping failed: give the block back to the driver
      cudaFree(p);
      ++stats_.cuda_free_count;
      return;
    }
    stats_.bytes_cached += size;
    ++stats_.blocks_cached;
  }

  // cudaFree for every cached block (this synchronises the device).
  void empty_cache() {
    std::lock_guard lock(mu_);
    if (stats_.blocks_cached) context();
    release_cached_locked();
  }

  AllocatorStats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  bool caching() const noexcept { return caching_; }

 private:
  void track_live(void* p, std::size_t size) {
    live_.emplace(p, size);
    stats_.bytes_in_use += size;
    ++stats_.blocks_in_use;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  void release_cached_locked() {
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        cudaFree(p);
        ++stats_.cuda_free_count;
      }
      stats_.bytes_cached -= size * blocks.size();
      stats_.blocks_cached -= blocks.size();
      blocks.clear();
    }
    free_.clear();
  }

  mutable std::mutex mu_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::unordered_map<void*, std::size_t> live_;
  AllocatorStats stats_;
  bool caching_ = true;
};

// The process-wide allocator. Never destroyed, so tensors in static storage
// can still release their blocks at exit.
inline CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator;
  return *a;
}

// Convenience wrappers over allocator().
inline AllocatorStats memory_stats() { return allocator().stats(); }

namespace detail {
inline std::atomic<std::uint64_t>& host_copy_counter() {
  static std::atomic<std::uint64_t> n{0};
  return n;
}
}  // namespace detail
// Device-to-host copies so far in this process (Memory<Cuda>::to_host: item(), to_vector(),
// to<Cpu>()). Each waits for the stream, so the count is how often the host waited for the GPU;
// tests check that a training step makes exactly one (its loss).
inline std::uint64_t device_to_host_copies() { return detail::host_copy_counter().load(); }
inline void empty_cache() { allocator().empty_cache(); }

// An owning device buffer of n elements for kernel temporaries.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : p_(static_cast<T*>(n ? allocator().allocate(n * sizeof(T)) : nullptr)) {}
  ~DeviceBuffer() { allocator().release(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const noexcept { return p_; }

 private:
  T* p_;
};

}  // namespace dml::cuda

namespace dml {

// Device memory through the caching allocator. Copies run on the context's
// stream; to_host and from_host return once the copy is complete.
template <>
struct Memory<Cuda> {
  static constexpr std::size_t kAlignment = 256;
  // Returns uninitialised device memory; throws dml::Error without a device or
  // when the device is out of memory.
  static void* allocate(std::size_t bytes) { return bytes == 0 ? nullptr : cuda::allocator().allocate(bytes); }
  static void deallocate(void* p, std::size_t /*bytes*/) noexcept { cuda::allocator().release(p); }
  static void zero(void* p, std::size_t bytes) {
    if (bytes) DML_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda::stream()));
  }
  // Device to device, ordered on the stream (no host wait).
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes && dst != src)
      DML_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda::stream()));
  }
  // Device to host; waits for the stream, so it also reports earlier kernel errors.
  static void to_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    cuda::detail::host_copy_counter().fetch_add(1, std::memory_order_relaxed);
    cudaStream_t s = cuda::stream();
    DML_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
    DML_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  // Host to device; the host buffer may be reused as soon as this returns.
  static void from_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    cudaStream_t s = cuda::stream();
    DML_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
    DML_CUDA_CHECK(cudaStreamSynchronize(s));
  }
};
static_assert(DeviceMemory<Memory<Cuda>>);

}  // namespace dml
