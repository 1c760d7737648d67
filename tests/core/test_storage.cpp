// Tests for dml/core/storage.hpp: host memory and its block cache.
#include <doctest/doctest.h>

#include <cstdint>

#include "dml/core/storage.hpp"

using dml::Cpu;
using dml::Memory;
using dml::detail::HostCache;

TEST_CASE("host size classes: small sizes exact, large ones rounded up by at most 25 %, 64-byte multiples") {
  CHECK(HostCache::size_class(1) == 1);
  CHECK(HostCache::size_class(HostCache::kMinBytes - 1) == HostCache::kMinBytes - 1);
  for (std::size_t bytes : {std::size_t{65536}, std::size_t{65537}, std::size_t{100000}, std::size_t{1} << 20,
                            (std::size_t{1} << 20) + 1, std::size_t{123456789}}) {
    const std::size_t c = HostCache::size_class(bytes);
    CHECK(c >= bytes);
    CHECK(static_cast<double>(c) <= 1.25 * static_cast<double>(bytes));
    CHECK(c % 64 == 0);
    CHECK(HostCache::size_class(c) == c);  // a class is its own class
  }
}

TEST_CASE("freed large host blocks are reused, counted, and released on request") {
  Memory<Cpu>::empty_cache();
  CHECK(Memory<Cpu>::cached_bytes() == 0);
  void* a = Memory<Cpu>::allocate(1 << 20);
  REQUIRE(a != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(a) % Memory<Cpu>::kAlignment == 0);
  Memory<Cpu>::deallocate(a, 1 << 20);
#if !defined(__SANITIZE_ADDRESS__)  // AddressSanitizer builds cache nothing
  CHECK(Memory<Cpu>::cached_bytes() == std::size_t{1} << 20);
  const std::size_t misses = Memory<Cpu>::cache_misses();
  void* b = Memory<Cpu>::allocate((1 << 20) - 100);  // same size class
  CHECK(b == a);
  CHECK(Memory<Cpu>::cache_misses() == misses);
  CHECK(Memory<Cpu>::cached_bytes() == 0);
  Memory<Cpu>::deallocate(b, (1 << 20) - 100);
  CHECK(Memory<Cpu>::cached_bytes() == std::size_t{1} << 20);
#endif
  Memory<Cpu>::empty_cache();
  CHECK(Memory<Cpu>::cached_bytes() == 0);

  // A limit of 0 turns caching off; small blocks are never cached.
  const std::size_t limit = Memory<Cpu>::cache_limit();
  Memory<Cpu>::set_cache_limit(0);
  void* c = Memory<Cpu>::allocate(1 << 20);
  Memory<Cpu>::deallocate(c, 1 << 20);
  CHECK(Memory<Cpu>::cached_bytes() == 0);
  Memory<Cpu>::set_cache_limit(limit);
  CHECK(Memory<Cpu>::cache_limit() == limit);
  void* d = Memory<Cpu>::allocate(1000);
  Memory<Cpu>::deallocate(d, 1000);
  CHECK(Memory<Cpu>::cached_bytes() == 0);
  Memory<Cpu>::deallocate(nullptr, 0);
  CHECK(Memory<Cpu>::allocate(0) == nullptr);
}
