// dml/core/storage.hpp: the device allocators' contract (Memory<D>), the host
// one (Memory<Cpu>) and owning, device-tagged buffers (Storage<T, D>).
//
// Both allocators implement the same static interface, checked by the
// DeviceMemory concept: Memory<Cpu> here, because every tensor of every device
// reaches the host through it (to_vector, from_vector, item) and it needs
// nothing but the C++ library; Memory<Cuda> in backend/cuda/memory.cuh, with
// the caching device allocator, so that core/ never sees CUDA.
#pragma once

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "../config.hpp"
#include "device.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dml {

// Memory<D> allocates, frees, zeroes and copies raw memory of device D:
// specialised for Cpu below and for Cuda in backend/cuda/memory.cuh.
template <class D>
struct Memory;

// What Storage and Tensor call on Memory<D>: allocate(bytes) (nullptr for 0,
// throws dml::Error on failure), deallocate(p, bytes) (noexcept), zero(p,
// bytes), copy(dst, src, bytes) within the device, to_host / from_host (return
// once the copy is complete), and the alignment of what allocate returns.
template <class M>
concept DeviceMemory = requires(void* p, const void* q, std::size_t n) {
  { M::allocate(n) } -> std::same_as<void*>;
  M::deallocate(p, n);
  M::zero(p, n);
  M::copy(p, q, n);
  M::to_host(p, q, n);
  M::from_host(p, q, n);
  { M::kAlignment } -> std::convertible_to<std::size_t>;
};

namespace detail {

// Keeps freed host blocks of 64 KiB and more for reuse, by size class (a
// quarter octave: at most 25 % slack), up to a byte limit. A training step
// allocates the same sizes every time, so after the first step most
// allocations are served from here instead of from fresh mmap'ed pages that
// the kernel must fault in and zero on every step (that costs ~2.5x in
// ResNet18 training with glibc's defaults). Thread-safe.
class HostCache {
 public:
  static constexpr std::size_t kMinBytes = std::size_t{64} << 10;
  static constexpr std::size_t kAlignment = 64;

  static HostCache& instance() {
    static HostCache* cache = new HostCache;  // never destroyed: tensors may outlive static destructors
    return *cache;
  }
  // The size a request of `bytes` is served with.
  static std::size_t size_class(std::size_t bytes) noexcept {
    if (bytes < kMinBytes) return bytes;
    const int k = std::bit_width(bytes) - 1;  // 2^k <= bytes < 2^(k+1)
    const std::size_t step = std::size_t{1} << (k - 2);
    return (bytes + step - 1) / step * step;
  }
  void* get(std::size_t bytes) {
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
      ++misses_;
    }
    return ::operator new(bytes, std::align_val_t(kAlignment), std::nothrow);
  }
  void put(void* p, std::size_t bytes) noexcept {
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= limit_) {
        try {
          free_[bytes].push_back(p);
          cached_ += bytes;
          return;
        } catch (...) {  // no memory for the bookkeeping: free the block instead
        }
      }
    }
    ::operator delete(p, std::align_val_t(kAlignment));
  }
  // Frees every cached block.
  void release() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [bytes, blocks] : free_)
      for (void* p : blocks) ::operator delete(p, std::align_val_t(kAlignment));
    free_.clear();
    cached_ = 0;
  }
  std::size_t cached_bytes() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }
  // Requests of kMinBytes or more that the cache could not serve (each one a
  // system allocation); constant over a steady-state training loop.
  std::size_t misses() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    return misses_;
  }
  std::size_t limit() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    return limit_;
  }
  void set_limit(std::size_t bytes) noexcept {
    {
      std::lock_guard<std::mutex> lock(mu_);
      limit_ = bytes;
    }
    if (cached_bytes() > bytes) release();
  }

 private:
  HostCache() = default;
  std::mutex mu_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_ = 0, misses_ = 0;
#if defined(__SANITIZE_ADDRESS__)
  std::size_t limit_ = 0;  // no reuse under AddressSanitizer: it must see every free
#else
  std::size_t limit_ = std::size_t{4} << 30;
#endif
};

}  // namespace detail

namespace detail {

// Calls f(lo, hi) on byte ranges that cover [0, bytes): on all OpenMP threads
// for blocks of 1 MiB and more (a gradient or an activation: one core alone
// leaves the other idle and reaches only part of the memory bandwidth), else
// once on the calling thread. Cut at 64-byte boundaries.
template <class F>
void for_byte_ranges(std::size_t bytes, F&& f) noexcept {
  if (bytes == 0) return;  // memset/memcpy must not see the null pointer of an empty block
#ifdef _OPENMP
  if (bytes >= (std::size_t(1) << 20) && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel
    {
      const std::size_t t = std::size_t(omp_get_thread_num()), team = std::size_t(omp_get_num_threads());
      const std::size_t lines = (bytes + 63) / 64;
      const std::size_t lo = std::min(bytes, lines * t / team * 64), hi = std::min(bytes, lines * (t + 1) / team * 64);
      if (lo < hi) f(lo, hi);
    }
    return;
  }
#endif
  f(std::size_t(0), bytes);
}

}  // namespace detail

// Host memory: 64-byte aligned so Eigen and AVX-512 loads are aligned. Blocks
// of 64 KiB and more are recycled through a cache (see detail::HostCache);
// empty_cache() returns them to the system, set_cache_limit() bounds them
// (default 4 GiB; 0 turns caching off, as under AddressSanitizer).
template <>
struct Memory<Cpu> {
  static constexpr std::size_t kAlignment = detail::HostCache::kAlignment;
  // Returns uninitialised memory; throws dml::Error when the allocation fails.
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = detail::HostCache::instance().get(detail::HostCache::size_class(bytes));
    DML_CHECK(p != nullptr, "host allocation of ", bytes, " bytes failed");
    return p;
  }
  static void deallocate(void* p, std::size_t bytes) noexcept {
    if (p) detail::HostCache::instance().put(p, detail::HostCache::size_class(bytes));
  }
  static void empty_cache() noexcept { detail::HostCache::instance().release(); }
  static std::size_t cached_bytes() noexcept { return detail::HostCache::instance().cached_bytes(); }
  static void set_cache_limit(std::size_t bytes) noexcept { detail::HostCache::instance().set_limit(bytes); }
  static std::size_t cache_limit() noexcept { return detail::HostCache::instance().limit(); }
  // Large-block requests served by the system rather than the cache, so far.
  static std::size_t cache_misses() noexcept { return detail::HostCache::instance().misses(); }
  static void zero(void* p, std::size_t bytes) noexcept {
    detail::for_byte_ranges(bytes, [&](std::size_t lo, std::size_t hi) { std::memset(static_cast<char*>(p) + lo, 0, hi - lo); });
  }
  static void copy(void* dst, const void* src, std::size_t bytes) noexcept {
    detail::for_byte_ranges(bytes, [&](std::size_t lo, std::size_t hi) {
      std::memcpy(static_cast<char*>(dst) + lo, static_cast<const char*>(src) + lo, hi - lo);
    });
  }
  static void to_host(void* dst, const void* src, std::size_t bytes) noexcept { copy(dst, src, bytes); }
  static void from_host(void* dst, const void* src, std::size_t bytes) noexcept { copy(dst, src, bytes); }
};

static_assert(DeviceMemory<Memory<Cpu>>);

// Storage owns `size` elements of T on device D. Not copyable; tensors share it
// through shared_ptr, which is how views (reshape, detach) alias memory.
template <class T, class D>
class Storage {
 public:
  explicit Storage(std::size_t size)
      : data_(static_cast<T*>(Memory<D>::allocate(size * sizeof(T)))), size_(size) {}
  ~Storage() { Memory<D>::deallocate(data_, size_ * sizeof(T)); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  T* data_;
  std::size_t size_;
};

}  // namespace dml
