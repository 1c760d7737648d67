// dml/eval/knn.hpp: exact k-nearest neighbours by blocked GEMM (cosine or L2).
//
// Queries are split into blocks of up to kQueryBlock rows and references into
// blocks of up to kRefBlock rows. Each (query block x reference block) tile of
// dot products is one packed GEMM (detail::gemm_nt); every query row keeps a
// buffer of at most 2k candidate (distance, index) pairs, cut back to its k
// best by nth_element whenever it fills, so memory is O(block area + block *
// k), never O(nq * nr). Query blocks run in parallel under OpenMP.
//
// Distances: Cosine = 1 - cos(q, r) (clamped at 0); L2 = Euclidean (not
// squared), computed as sqrt(max(0, |q|^2 + |r|^2 - 2 q.r)); neighbours are selected on
// the squared value and only the k winners take a (correctly rounded) sqrt.
// Rows come back sorted by ascending distance; equal distances (for L2: equal
// squared distances) are ordered by lower reference index.
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

// DML_EVAL_OMP(omp ...) emits the OpenMP pragma only when OpenMP is enabled,
// so builds without -fopenmp stay free of -Wunknown-pragmas noise.
#ifdef _OPENMP
#define DML_EVAL_OMP(directive) _Pragma(#directive)
#else
#define DML_EVAL_OMP(directive)
#endif

#include "../config.hpp"

namespace dml::eval {

enum class Metric { Cosine, L2 };

// "cosine" or "l2", for reports and file names.
inline const char* metric_name(Metric m) { return m == Metric::Cosine ? "cosine" : "l2"; }

// The k nearest references of every query, row-major num_queries x k.
struct KnnResult {
  std::int64_t num_queries = 0;
  int k = 0;
  std::vector<std::int64_t> indices;  // reference row of each neighbour
  std::vector<float> distances;       // its distance, ascending along a row

  // Neighbour indices / distances of query q (unchecked: 0 <= q < num_queries).
  std::span<const std::int64_t> row_indices(std::int64_t q) const {
    return {indices.data() + q * k, static_cast<std::size_t>(k)};
  }
  std::span<const float> row_distances(std::int64_t q) const {
    return {distances.data() + q * k, static_cast<std::size_t>(k)};
  }
};

namespace detail {

inline constexpr std::int64_t kQueryBlock = 1024;
inline constexpr std::int64_t kRefBlock = 4096;
inline constexpr std::int64_t kCandidateBudget = std::int64_t{1} << 21;  // buffered candidates per thread
inline constexpr std::int64_t kScanChunk = 128;

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMatrix>;

// One neighbour as handed to knn_visit's callback.
struct Neighbor {
  float dist;
  std::int64_t index;
};

// SplitMix64: a tiny seeded generator whose stream is fixed across platforms
// (std distributions are not), shared by the eval headers.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, bound), bound > 0, without modulo bias.
  std::uint64_t below(std::uint64_t bound) {
    std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % bound;
    std::uint64_t x;
    do x = next(); while (x >= limit);
    return x % bound;
  }

 private:
  std::uint64_t state_;
};

// (distance, index) as one integer that sorts like the pair: the bits of a
// non-negative, non-NaN float order like the float, the low word is the index.
inline std::uint64_t pack_key(float dist, std::int64_t index) {
  return (static_cast<std::uint64_t>(std::bit_cast<std::uint32_t>(dist)) << 32) | static_cast<std::uint32_t>(index);
}
inline float key_dist(std::uint64_t key) { return std::bit_cast<float>(static_cast<std::uint32_t>(key >> 32)); }

// Dot products of rows: C (m x n, row stride ldc) = A (m x K) * B (n x K)^T,
// A and B row-major. A packed register-blocked kernel (Goto/BLIS layout) written
// with GCC vector extensions: kMr x 2 vectors of accumulators, K in slices of
// kKc, A in blocks of kMc rows. Faster than Eigen's general GEMM for this
// shape, and every C entry is one FMA chain over k in order, so equal rows give
// bit-identical dot products wherever they sit in the tile.
#if defined(__AVX512F__)
inline constexpr int kLanes = 16, kMr = 12;  // 24 of 32 zmm registers hold C
#elif defined(__AVX__)
inline constexpr int kLanes = 8, kMr = 6;    // 12 of 16 ymm registers
#else
inline constexpr int kLanes = 4, kMr = 6;    // 12 of 16 xmm registers
#endif
inline constexpr int kNr = 2 * kLanes;
inline constexpr std::int64_t kKc = 256, kMc = 120;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
typedef float VecU __attribute__((vector_size(kLanes * sizeof(float)), aligned(alignof(float))));

// Scratch for gemm_nt: packed B (n_max x kKc) and packed A (kMc x kKc).
struct GemmWorkspace {
  std::unique_ptr<Vec[]> b, a;
  explicit GemmWorkspace(std::int64_t n_max)
      : b(std::make_unique_for_overwrite<Vec[]>(static_cast<std::size_t>((n_max + kNr - 1) / kNr * kKc * 2))),
        a(std::make_unique_for_overwrite<Vec[]>(
            static_cast<std::size_t>(((kMc + kMr - 1) / kMr * kMr * kKc + kLanes - 1) / kLanes))) {}
};

// Rows [0, rows) of x, columns [p0, p0 + kc), into panels of `width` rows
// stored k-major (panel[kk * width + r]); missing rows are zero.
inline void pack_panels(const float* x, std::int64_t ld, std::int64_t rows, std::int64_t p0, std::int64_t kc,
                        int width, float* out) {
  for (std::int64_t r0 = 0; r0 < rows; r0 += width, out += kc * width) {
    const std::int64_t h = std::min<std::int64_t>(width, rows - r0);
    for (std::int64_t r = 0; r < width; ++r) {
      const float* src = x + (r0 + r) * ld + p0;
      if (r < h)
        for (std::int64_t kk = 0; kk < kc; ++kk) out[kk * width + r] = src[kk];
      else
        for (std::int64_t kk = 0; kk < kc; ++kk) out[kk * width + r] = 0.0f;
    }
  }
}

// C[h x w] (+)= Ap (kc x kMr) * Bp (kc x kNr), h <= kMr, w <= kNr.
inline void micro_kernel(const float* __restrict ap, const Vec* __restrict bp, std::int64_t kc, float* c,
                         std::int64_t ldc, std::int64_t h, std::int64_t w, bool accumulate) {
  Vec acc0[kMr], acc1[kMr];
  for (int i = 0; i < kMr; ++i) acc0[i] = Vec{}, acc1[i] = Vec{};
  for (std::int64_t kk = 0; kk < kc; ++kk) {
    const Vec b0 = bp[2 * kk], b1 = bp[2 * kk + 1];
    for (int i = 0; i < kMr; ++i) {
      const float a = ap[kk * kMr + i];
      acc0[i] += a * b0;
      acc1[i] += a * b1;
    }
  }
  if (h == kMr && w == kNr) {
    for (int i = 0; i < kMr; ++i) {
      VecU* d0 = reinterpret_cast<VecU*>(c + i * ldc);
      VecU* d1 = reinterpret_cast<VecU*>(c + i * ldc + kLanes);
      *d0 = accumulate ? *d0 + acc0[i] : acc0[i];
      *d1 = accumulate ? *d1 + acc1[i] : acc1[i];
    }
    return;
  }
  for (std::int64_t i = 0; i < h; ++i)
    for (std::int64_t j = 0; j < w; ++j) {
      const float v = j < kLanes ? acc0[i][j] : acc1[i][j - kLanes];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
    }
}

inline void gemm_nt(const float* a, std::int64_t m, const float* b, std::int64_t n, std::int64_t k, float* c,
                    std::int64_t ldc, GemmWorkspace& ws) {
  const std::int64_t panels = (n + kNr - 1) / kNr;
  float* bpack = reinterpret_cast<float*>(ws.b.get());
  float* apack = reinterpret_cast<float*>(ws.a.get());
  for (std::int64_t p0 = 0; p0 < k; p0 += kKc) {
    const std::int64_t kc = std::min(kKc, k - p0);
    pack_panels(b, k, n, p0, kc, kNr, bpack);
    for (std::int64_t i0 = 0; i0 < m; i0 += kMc) {
      const std::int64_t mc = std::min(kMc, m - i0);
      pack_panels(a + i0 * k, k, mc, p0, kc, kMr, apack);
      for (std::int64_t jp = 0; jp < panels; ++jp) {
        const Vec* bp = reinterpret_cast<const Vec*>(bpack + jp * kc * kNr);
        const std::int64_t w = std::min<std::int64_t>(kNr, n - jp * kNr);
        for (std::int64_t ip = 0; ip * kMr < mc; ++ip)
          micro_kernel(apack + ip * kc * kMr, bp, kc, c + (i0 + ip * kMr) * ldc + jp * kNr, ldc,
                       std::min<std::int64_t>(kMr, mc - ip * kMr), w, p0 > 0);
      }
    }
  }
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void check_matrix(const float* data, std::int64_t rows, std::int64_t dim, const char* what) {
  DML_CHECK(rows >= 0, what, ": row count must be >= 0, got ", rows);
  DML_CHECK(dim >= 1, what, ": dimension must be >= 1, got ", dim);
  DML_CHECK(rows == 0 || data != nullptr, what, ": null data pointer for ", rows, " rows");
}

// Per-row squared norms; throws naming the first row that holds NaN/Inf or
// is so large (squared norm > 1e36) that distances could overflow float.
inline std::vector<float> squared_norms(const float* data, std::int64_t rows, std::int64_t dim, const char* what) {
  std::vector<float> out(static_cast<std::size_t>(rows));
  if (rows == 0) return out;
  Eigen::Map<Eigen::VectorXf>(out.data(), rows) = ConstRowMap(data, rows, dim).rowwise().squaredNorm();
  for (std::int64_t i = 0; i < rows; ++i)
    DML_CHECK(out[i] <= 1e36f, what, " row ", i, " holds NaN/Inf or values too large (squared norm ", out[i], ")");
  return out;
}

// Visits the k nearest references of every query: visit(query, sorted Neighbor*, k).
// visit runs concurrently for different queries and must not throw.
template <class Visit>
void knn_visit(const float* queries, std::int64_t nq, const float* refs, std::int64_t nr, std::int64_t dim, int k,
               Metric metric, bool exclude_self, Visit&& visit, const char* qname = "queries",
               const char* rname = "references") {
  check_matrix(queries, nq, dim, qname);
  check_matrix(refs, nr, dim, rname);
  DML_CHECK(k >= 1, "knn: k must be >= 1, got ", k);
  const std::int64_t available = exclude_self ? nr - 1 : nr;
  DML_CHECK(k <= available, "knn: k = ", k, " but only ", available, " references are available",
            exclude_self ? " (exclude_self)" : "");
  DML_CHECK(nr < (std::int64_t{1} << 32), "knn: at most 2^32 - 1 references per call, got ", nr);
  if (nq == 0) return;

  std::vector<float> qn = squared_norms(queries, nq, dim, qname);
  std::vector<float> rn = squared_norms(refs, nr, dim, rname);
  if (metric == Metric::Cosine) {  // keep inverse norms instead
    for (std::int64_t i = 0; i < nq; ++i) {
      DML_CHECK(qn[i] > 0.0f, qname, " row ", i, " is a zero vector: cosine distance is undefined");
      qn[i] = 1.0f / std::sqrt(qn[i]);
    }
    for (std::int64_t j = 0; j < nr; ++j) {
      DML_CHECK(rn[j] > 0.0f, rname, " row ", j, " is a zero vector: cosine distance is undefined");
      rn[j] = 1.0f / std::sqrt(rn[j]);
    }
  }

  const std::int64_t threads = max_threads();
  const std::int64_t room = k + std::max(k, 32);  // candidate buffer per query row
  const std::int64_t cap = std::min<std::int64_t>(kQueryBlock, std::max<std::int64_t>(16, kCandidateBudget / room));
  const std::int64_t bq = std::clamp<std::int64_t>((nq + threads - 1) / threads, 1, cap);
  const std::int64_t br = std::min(kRefBlock, nr);
  const std::int64_t nblocks = (nq + bq - 1) / bq;

DML_EVAL_OMP(omp parallel)
  {
    auto tile = std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(bq * br));
    GemmWorkspace ws(br);
    std::vector<float> row(static_cast<std::size_t>(br));
    auto cand = std::make_unique_for_overwrite<std::uint64_t[]>(static_cast<std::size_t>(bq * room));  // no memset
    std::vector<Neighbor> sorted(static_cast<std::size_t>(k));
    std::vector<std::int64_t> sizes(static_cast<std::size_t>(bq));
    std::vector<float> thresholds(static_cast<std::size_t>(bq));
DML_EVAL_OMP(omp for schedule(dynamic, 1))
    for (std::int64_t b = 0; b < nblocks; ++b) {
      const std::int64_t q0 = b * bq, m = std::min(bq, nq - q0);
      std::fill(sizes.begin(), sizes.end(), 0);
      std::fill(thresholds.begin(), thresholds.end(), std::numeric_limits<float>::infinity());
      for (std::int64_t r0 = 0; r0 < nr; r0 += br) {
        const std::int64_t c = std::min(br, nr - r0);
        gemm_nt(queries + q0 * dim, m, refs + r0 * dim, c, dim, tile.get(), br, ws);
        Eigen::Map<const Eigen::ArrayXf> rseg(rn.data() + r0, c);
        for (std::int64_t i = 0; i < m; ++i) {
          Eigen::Map<const Eigen::ArrayXf> dots(tile.get() + i * br, c);
          Eigen::Map<Eigen::ArrayXf> d(row.data(), c);
          if (metric == Metric::L2)
            d = (qn[q0 + i] + rseg - 2.0f * dots).max(0.0f) + 0.0f;  // squared; sqrt after selection
          else
            d = (1.0f - dots * rseg * qn[q0 + i]).max(0.0f) + 0.0f;  // + 0 turns -0 into +0
          // Buffered selection: append every candidate below the current k-th
          // distance; when the buffer fills, keep the k best (nth_element) and
          // tighten the threshold. References arrive in ascending index order,
          // so a candidate equal to the threshold loses its tie and is dropped.
          // Candidates are packed keys (see pack_key): one integer compare orders them.
          std::uint64_t* buf = cand.get() + i * room;
          std::int64_t size = sizes[i];
          float thr = thresholds[i];
          const std::int64_t self = exclude_self ? q0 + i - r0 : -1;
          for (std::int64_t j0 = 0; j0 < c; j0 += kScanChunk) {
            const std::int64_t j1 = std::min(c, j0 + kScanChunk);
            if (d.segment(j0, j1 - j0).minCoeff() >= thr) continue;
            for (std::int64_t j = j0; j < j1; ++j) {
              buf[size] = pack_key(row[j], r0 + j);
              size += (row[j] < thr) & (j != self);
              if (size == room) {
                std::nth_element(buf, buf + (k - 1), buf + size);
                size = k;
                thr = key_dist(buf[k - 1]);
              }
            }
          }
          sizes[i] = size;
          thresholds[i] = thr;
        }
      }
      for (std::int64_t i = 0; i < m; ++i) {
        std::uint64_t* buf = cand.get() + i * room;
        assert(sizes[i] >= k);
        std::nth_element(buf, buf + (k - 1), buf + sizes[i]);
        std::sort(buf, buf + k);
        for (int j = 0; j < k; ++j) {
          const float dist = key_dist(buf[j]);
          sorted[j] = {metric == Metric::L2 ? std::sqrt(dist) : dist, static_cast<std::int64_t>(buf[j] & 0xffffffffu)};
        }
        visit(q0 + i, static_cast<const Neighbor*>(sorted.data()), k);
      }
    }
  }
}

}  // namespace detail

// Exact k nearest references of each query. queries: nq x dim, refs: nr x dim,
// row-major float. exclude_self: query i never returns reference i (use when
// the two sets are the same rows). Returns nq x k indices and distances sorted
// ascending, ties by lower index. Throws dml::Error on bad sizes, k > available
// references, NaN/Inf rows, or (cosine) a zero row, naming the row.
inline KnnResult knn(const float* queries, std::int64_t nq, const float* refs, std::int64_t nr, std::int64_t dim,
                     int k, Metric metric = Metric::Cosine, bool exclude_self = false) {
  KnnResult out;
  detail::check_matrix(queries, nq, dim, "queries");
  out.num_queries = nq;
  out.k = k;
  if (k >= 1 && nq > 0) {
    out.indices.resize(static_cast<std::size_t>(nq * k));
    out.distances.resize(static_cast<std::size_t>(nq * k));
  }
  detail::knn_visit(queries, nq, refs, nr, dim, k, metric, exclude_self,
                    [&](std::int64_t q, const detail::Neighbor* nb, int kk) {
                      for (int j = 0; j < kk; ++j) {
                        out.indices[q * kk + j] = nb[j].index;
                        out.distances[q * kk + j] = nb[j].dist;
                      }
                    });
  return out;
}

// Same-set convenience: k nearest other rows of each row of x (n x dim).
inline KnnResult knn_self(const float* x, std::int64_t n, std::int64_t dim, int k, Metric metric = Metric::Cosine) {
  return knn(x, n, x, n, dim, k, metric, true);
}

}  // namespace dml::eval
