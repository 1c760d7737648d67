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

// Calls body(i, thread) for i in [0, n) on a team of `threads` threads (0: all
// of max_threads()), handing out `chunk` iterations at a time as threads come
// free (OpenMP's dynamic schedule): for iterations of uneven cost. `thread`
// in [0, team) names the caller, for per-thread scratch; the team never
// exceeds `threads` when that is given. Runs on the calling thread (thread 0)
// when the team is one thread or the caller is already in a parallel region.
// Iterations must be independent.
template <class F>
void parallel_dynamic(std::int64_t n, F&& body, std::int64_t chunk = 1, [[maybe_unused]] int threads = 0) {
  if (n <= 0) return;
#ifdef _OPENMP
  const int team = threads > 0 ? threads : omp_get_max_threads();
  if (team > 1 && n > 1 && !omp_in_parallel()) {
    // Read only in the pragma: nvcc's front end does not see that use (warning #177).
    [[maybe_unused]] const std::int64_t step = chunk > 0 ? chunk : 1;
#pragma omp parallel num_threads(team)
    {
      const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic, step)
      for (std::int64_t i = 0; i < n; ++i) body(i, t);
    }
    return;
  }
#endif
  for (std::int64_t i = 0; i < n; ++i) body(i, 0);
}

// The threads an OpenMP parallel region gets by default (1 without OpenMP):
// the one thread-count helper of dml.
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace dml::cpu
