// Tests for dml/core/storage.hpp: host memory and its block cache.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

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

TEST_CASE("host zero and copy cover every byte of blocks large enough to run on all threads") {
  // From 1 MiB the work is split over the OpenMP threads at 64-byte boundaries;
  // odd sizes and offsets check the first and last pieces.
  for (std::size_t bytes : {std::size_t(100), (std::size_t(1) << 20) + 13, (std::size_t(3) << 20) + 1}) {
    CAPTURE(bytes);
    std::vector<unsigned char> src(bytes + 1), dst(bytes + 2, 0xAB);
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned char>(i * 7 + 1);
    Memory<Cpu>::copy(dst.data() + 1, src.data() + 1, bytes);
    CHECK(dst[0] == 0xAB);
    CHECK(dst[bytes + 1] == 0xAB);
    bool same = true;
    for (std::size_t i = 1; i <= bytes; ++i) same = same && dst[i] == src[i];
    CHECK(same);
    Memory<Cpu>::zero(dst.data() + 1, bytes);
    bool zero = true;
    for (std::size_t i = 1; i <= bytes; ++i) zero = zero && dst[i] == 0;
    CHECK(zero);
    CHECK(dst[0] == 0xAB);
    CHECK(dst[bytes + 1] == 0xAB);
  }
}
