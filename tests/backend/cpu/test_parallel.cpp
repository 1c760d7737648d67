// Tests for dml/backend/cpu/parallel.hpp: the host's parallel loops and thread count.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include <dml/backend/cpu/parallel.hpp>

using namespace dml::cpu;

TEST_CASE("parallel_dynamic visits every index once and names threads below the team size") {
  for (const int threads : {0, 1, 2, 3}) {
    CAPTURE(threads);
    const std::int64_t n = 1000;
    std::vector<std::atomic<int>> seen(n);
    std::atomic<int> bad_thread{0};
    const int team = threads > 0 ? threads : max_threads();
    parallel_dynamic(
        n,
        [&](std::int64_t i, int t) {
          seen[i].fetch_add(1);
          if (t < 0 || t >= team) bad_thread.fetch_add(1);
        },
        7, threads);
    for (std::int64_t i = 0; i < n; ++i) CHECK(seen[i].load() == 1);
    CHECK(bad_thread.load() == 0);
  }
  int calls = 0;
  parallel_dynamic(0, [&](std::int64_t, int) { ++calls; });
  CHECK(calls == 0);
}

TEST_CASE("parallel_ranges covers [0, n) with disjoint contiguous ranges") {
  const std::int64_t n = 100000;
  std::vector<std::atomic<int>> seen(n);
  parallel_ranges(n, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) seen[i].fetch_add(1);
  });
  for (std::int64_t i = 0; i < n; ++i) CHECK(seen[i].load() == 1);
  CHECK(max_threads() >= 1);
}
