// dml/core/storage.hpp: owning, device-tagged buffers.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>

#include "../config.hpp"
#include "device.hpp"

namespace dml {

// Host memory: 64-byte aligned so Eigen and AVX-512 loads are aligned.
template <>
struct Memory<Cpu> {
  static constexpr std::size_t kAlignment = 64;
  // Returns uninitialised memory; throws dml::Error when the allocation fails.
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = ::operator new(bytes, std::align_val_t(kAlignment), std::nothrow);
    DML_CHECK(p != nullptr, "host allocation of ", bytes, " bytes failed");
    return p;
  }
  static void deallocate(void* p, std::size_t /*bytes*/) noexcept {
    if (p) ::operator delete(p, std::align_val_t(kAlignment));
  }
  static void zero(void* p, std::size_t bytes) noexcept {
    if (bytes) std::memset(p, 0, bytes);
  }
  static void copy(void* dst, const void* src, std::size_t bytes) noexcept {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void to_host(void* dst, const void* src, std::size_t bytes) noexcept { copy(dst, src, bytes); }
  static void from_host(void* dst, const void* src, std::size_t bytes) noexcept { copy(dst, src, bytes); }
};

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
