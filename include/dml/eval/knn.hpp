// dml/eval/knn.hpp: exact k-nearest neighbours by blocked GEMM (cosine or L2),
// the one distance engine of eval and viz: k-means (eval/cluster.hpp), the
// anomaly scores and t-SNE's neighbour graph run detail::knn_visit too.
//
// Queries are split into blocks of up to kQueryBlock rows and references into
// blocks of up to kRefBlock rows. Each (query block x reference block) tile of
// dot products is one call of the host backend's distance GEMM
// (cpu::dot_rows, backend/cpu/dot_rows.hpp); every query row keeps a
// buffer of at most 2k candidate (distance, index) pairs, cut back to its k
// best by nth_element whenever it fills, so memory is O(block area + block *
// k), never O(nq * nr). Query blocks run in parallel (cpu::parallel_ranges).
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
#include <utility>
#include <vector>

#include "../backend/cpu/dot_rows.hpp"
#include "../backend/cpu/parallel.hpp"
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

inline void check_matrix(const float* data, std::int64_t rows, std::int64_t dim, const char* what) {
  DML_CHECK(rows >= 0, what, ": row count must be >= 0, got ", rows);
  DML_CHECK(dim >= 1, what, ": dimension must be >= 1, got ", dim);
  DML_CHECK(rows == 0 || data != nullptr, what, ": null data pointer for ", rows, " rows");
}

// Per-row squared norms (summed in double over 8 lanes, combined in a fixed
// order); throws naming the first row that holds NaN/Inf or is so large
// (squared norm > 1e36) that distances could overflow float.
inline std::vector<float> squared_norms(const float* data, std::int64_t rows, std::int64_t dim, const char* what) {
  std::vector<float> out(static_cast<std::size_t>(rows));
  if (rows == 0) return out;
  cpu::parallel_for(
      rows,
      [&](std::int64_t i) {
        constexpr int kLanes = 8;
        const float* x = data + i * dim;
        double acc[kLanes] = {};
        std::int64_t t = 0;
        for (; t + kLanes <= dim; t += kLanes)
          for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(x[t + l]) * x[t + l];
        for (int l = 0; t < dim; ++t, ++l) acc[l] += static_cast<double>(x[t]) * x[t];
        out[i] = static_cast<float>(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
      },
      dim);
  for (std::int64_t i = 0; i < rows; ++i)
    DML_CHECK(out[i] <= 1e36f, what, " row ", i, " holds NaN/Inf or values too large (squared norm ", out[i], ")");
  return out;
}

// The smallest of d[0, n), n >= 1, over 8 independent lanes: GCC vectorises
// lanes, not a float min reduction (without -ffast-math).
inline float chunk_min(const float* d, std::int64_t n) {
  constexpr int kLanes = 8;
  float lo[kLanes];
  for (int l = 0; l < kLanes; ++l) lo[l] = std::numeric_limits<float>::infinity();
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lo[l] = d[j + l] < lo[l] ? d[j + l] : lo[l];
  for (; j < n; ++j) lo[0] = d[j] < lo[0] ? d[j] : lo[0];
  float m = lo[0];
  for (int l = 1; l < kLanes; ++l) m = lo[l] < m ? lo[l] : m;
  return m;
}

// Squared Euclidean distances of every query to every reference, nq x nr
// row-major into out (qn, rn: the rows' squared norms): the same dot products
// and formula as knn_visit's L2, for callers that need all of them (k-means++
// against a few candidates). Row chunks run in parallel.
inline void squared_l2(const float* queries, std::int64_t nq, const float* refs, std::int64_t nr, std::int64_t dim,
                       const float* qn, const float* rn, float* out) {
  if (nq == 0 || nr == 0) return;
  constexpr std::int64_t kChunk = 1024;
  cpu::parallel_ranges(
      (nq + kChunk - 1) / kChunk,
      [&](std::int64_t c_lo, std::int64_t c_hi) {
        cpu::DotRowsWorkspace ws(nr);
        for (std::int64_t c = c_lo; c < c_hi; ++c) {
          const std::int64_t q0 = c * kChunk, m = std::min(kChunk, nq - q0);
          float* tile = out + q0 * nr;
          cpu::dot_rows(queries + q0 * dim, m, refs, nr, dim, tile, nr, ws);
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < nr; ++j)
              tile[i * nr + j] = std::max((qn[q0 + i] + rn[j]) - 2.0f * tile[i * nr + j], 0.0f) + 0.0f;
        }
      },
      kChunk * nr * dim);
}

// One thread's scratch for knn_visit_normed.
struct KnnScratch {
  std::unique_ptr<float[]> tile;
  cpu::DotRowsWorkspace ws;
  std::vector<float> row;
  std::unique_ptr<std::uint64_t[]> cand;
  std::vector<Neighbor> sorted;
  std::vector<std::int64_t> sizes;
  std::vector<float> thresholds;
  KnnScratch(std::int64_t bq, std::int64_t br, std::int64_t room, int k)
      : tile(std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(bq * br))),
        ws(br),
        row(static_cast<std::size_t>(br)),
        cand(std::make_unique_for_overwrite<std::uint64_t[]>(static_cast<std::size_t>(bq * room))),  // no memset
        sorted(static_cast<std::size_t>(k)),
        sizes(static_cast<std::size_t>(bq)),
        thresholds(static_cast<std::size_t>(bq)) {}
};

// knn_visit on rows whose norms the caller already has: qn and rn are the
// squared norms of the query and reference rows (squared_norms) for L2, their
// inverse norms for Cosine. k-means calls this once per Lloyd step with the
// data's norms computed once. Arguments as knn_visit, checked there.
template <class Visit>
void knn_visit_normed(const float* queries, const float* qn, std::int64_t nq, const float* refs, const float* rn,
                      std::int64_t nr, std::int64_t dim, int k, Metric metric, bool exclude_self, Visit&& visit,
                      bool squared = false) {
  if (nq == 0) return;
  const std::int64_t threads = cpu::max_threads();
  const std::int64_t room = k + std::max(k, 32);  // candidate buffer per query row
  const std::int64_t cap = std::min<std::int64_t>(kQueryBlock, std::max<std::int64_t>(16, kCandidateBudget / room));
  const std::int64_t bq = std::clamp<std::int64_t>((nq + threads - 1) / threads, 1, cap);
  const std::int64_t br = std::min(kRefBlock, nr);
  const std::int64_t nblocks = (nq + bq - 1) / bq;
  const bool take_sqrt = metric == Metric::L2 && !squared;

  // Query blocks go to threads one at a time as they come free (a busy host
  // stalls threads unevenly); each thread keeps its own scratch. Each block's
  // result depends on nothing but its rows (dot_rows rounds the same in every
  // tile), so neither the thread count nor the schedule matters.
  const int team = static_cast<int>(std::min<std::int64_t>(threads, nblocks));
  // An array, not a vector: nvcc rejects a vector of these when a .cu file includes this header.
  auto scratch = std::make_unique<std::unique_ptr<KnnScratch>[]>(static_cast<std::size_t>(team));
  cpu::parallel_dynamic(
      nblocks,
      [&](std::int64_t b, int thread) {
        std::unique_ptr<KnnScratch>& mine = scratch[static_cast<std::size_t>(thread)];
        if (!mine) mine = std::make_unique<KnnScratch>(bq, br, room, k);
        auto& tile = mine->tile;
        auto& ws = mine->ws;
        auto& row = mine->row;
        auto& cand = mine->cand;
        auto& sorted = mine->sorted;
        auto& sizes = mine->sizes;
        auto& thresholds = mine->thresholds;
        {
          const std::int64_t q0 = b * bq, m = std::min(bq, nq - q0);
          std::fill(sizes.begin(), sizes.end(), 0);
          std::fill(thresholds.begin(), thresholds.end(), std::numeric_limits<float>::infinity());
          for (std::int64_t r0 = 0; r0 < nr; r0 += br) {
            const std::int64_t c = std::min(br, nr - r0);
            cpu::dot_rows(queries + q0 * dim, m, refs + r0 * dim, c, dim, tile.get(), br, ws);
            const float* rseg = rn + r0;
            for (std::int64_t i = 0; i < m; ++i) {
              const float* dots = tile.get() + i * br;
              float* d = row.data();
              const float qi = qn[q0 + i];
              if (metric == Metric::L2)
                for (std::int64_t j = 0; j < c; ++j)  // squared; sqrt after selection
                  d[j] = std::max((qi + rseg[j]) - 2.0f * dots[j], 0.0f) + 0.0f;
              else
                for (std::int64_t j = 0; j < c; ++j)  // + 0 turns -0 into +0
                  d[j] = std::max(1.0f - (dots[j] * rseg[j]) * qi, 0.0f) + 0.0f;
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
                if (chunk_min(d + j0, j1 - j0) >= thr) continue;
                for (std::int64_t j = j0; j < j1; ++j) {
                  buf[size] = pack_key(d[j], r0 + j);
                  size += (d[j] < thr) & (j != self);
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
              sorted[j] = {take_sqrt ? std::sqrt(dist) : dist, static_cast<std::int64_t>(buf[j] & 0xffffffffu)};
            }
            visit(q0 + i, static_cast<const Neighbor*>(sorted.data()), k);
          }
        }
      },
      1, team);
}

// Visits the k nearest references of every query: visit(query, sorted Neighbor*, k).
// visit runs concurrently for different queries and must not throw. With
// `squared`, L2 neighbours carry squared distances (no sqrt), as t-SNE wants.
template <class Visit>
void knn_visit(const float* queries, std::int64_t nq, const float* refs, std::int64_t nr, std::int64_t dim, int k,
               Metric metric, bool exclude_self, Visit&& visit, const char* qname = "queries",
               const char* rname = "references", bool squared = false) {
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
  knn_visit_normed(queries, qn.data(), nq, refs, rn.data(), nr, dim, k, metric, exclude_self,
                   std::forward<Visit>(visit), squared);
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
