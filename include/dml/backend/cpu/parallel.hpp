// dml/backend/cpu/parallel.hpp: OpenMP loops that fall back to serial code.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dml::cpu {

// Loops shorter than this run on one thread: the fork costs more than the work.
inline constexpr std::int64_t kParallelGrain = 1 << 15;

// Calls body(i) for i in [0, n), in parallel when the total work (n * cost)
// exceeds kParallelGrain. Iterations must be independent.
template <class F>
void parallel_for(std::int64_t n, F&& body, [[maybe_unused]] std::int64_t cost = 1) {
#ifdef _OPENMP
  if (n > 1 && n * cost > kParallelGrain && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#endif
  for (std::int64_t i = 0; i < n; ++i) body(i);
}

// Calls body(lo, hi) once per thread on contiguous ranges that cover [0, n)
// (OpenMP's static schedule), or body(0, n) on the calling thread when the
// work (n * cost) is below kParallelGrain. Ranges must be independent.
template <class F>
void parallel_ranges(std::int64_t n, F&& body, [[maybe_unused]] std::int64_t cost = 1) {
  if (n <= 0) return;
#ifdef _OPENMP
  if (n > 1 && n * cost > kParallelGrain && !omp_in_parallel()) {
#pragma omp parallel
    {
      const std::int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
      const std::int64_t lo = n / threads * t + (t < n % threads ? t : n % threads);
      const std::int64_t hi = lo + n / threads + (t < n % threads ? 1 : 0);
      if (lo < hi) body(lo, hi);
    }
    return;
  }
#endif
  body(std::int64_t(0), n);
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace dml::cpu
