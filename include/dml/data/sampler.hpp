// dml/data/sampler.hpp: class-balanced batches (P classes x K samples each, as
// pytorch-metric-learning's MPerClassSampler), the order a DataLoader with
// LoaderOptions::balanced visits.
//
// An epoch of a ClassBalanced loader is max(1, floor(N / (P * K))) batches of
// exactly P * K rows. Each batch holds P distinct classes, chosen uniformly
// among the classes that have samples, and K rows of each, class by class (K
// rows of the first class, then K of the second, ...). Each class hands out its
// rows from a stream of fresh shuffles of itself, so within an epoch a row comes
// up again only after every row of its class has; a batch never holds a row
// twice unless its class has fewer than K rows and `replacement` is set. The
// whole epoch is a pure function of (seed, epoch), like the shuffled order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../config.hpp"
#include "../core/random.hpp"
#include "dataset.hpp"
#include "transforms.hpp"

namespace dml::data {

// P classes x K samples per batch. K = 1 is allowed, but pair and triplet
// losses need K >= 2 to find a positive in the batch.
struct ClassBalanced {
  std::int64_t classes_per_batch = 0;  // P: distinct classes in every batch
  std::int64_t samples_per_class = 0;  // K: rows of each of them
  // A class with fewer than K rows fills its K slots by repeating its rows
  // (each once before any twice); false: such a class is an error.
  bool replacement = false;
  // P * K.
  std::int64_t batch_size() const noexcept { return classes_per_batch * samples_per_class; }
  friend bool operator==(const ClassBalanced&, const ClassBalanced&) = default;
};

namespace detail {

inline constexpr std::uint64_t kBalancedStream = 0x42414C414E4345ull;  // "BALANCE"

// The rows of each class of ds, in row order.
inline std::vector<std::vector<std::int64_t>> rows_by_class(const Dataset& ds) {
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(ds.num_classes));
  for (std::int64_t i = 0; i < ds.size(); ++i)
    by_class[static_cast<std::size_t>(ds.labels[static_cast<std::size_t>(i)])].push_back(i);
  return by_class;
}

inline std::string class_label(const Dataset& ds, std::size_t c) {
  if (c < ds.class_names.size()) return ::dml::detail::concat(c, " ('", ds.class_names[c], "')");
  return std::to_string(c);
}

// One class's rows as an endless stream of fresh shuffles of them.
struct ClassStream {
  const std::vector<std::int64_t>* rows = nullptr;
  std::vector<std::int64_t> cycle;
  std::size_t at = 0;
  std::int64_t next(Generator& gen) {
    if (at == cycle.size()) {
      cycle = *rows;
      shuffle(cycle, gen);
      at = 0;
    }
    return cycle[at++];
  }
};

// For each entry of `order` (rows of an n-row dataset), the key of its
// augmentation stream: row + j * n for its j-th repeat within the order, so a
// row seen twice in an epoch is augmented two ways.
inline std::vector<std::int64_t> occurrence_streams(const std::vector<std::int64_t>& order, std::int64_t n) {
  std::vector<std::int64_t> seen(static_cast<std::size_t>(n), 0), out(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) {
    const auto r = static_cast<std::size_t>(order[k]);
    out[k] = order[k] + seen[r]++ * n;
  }
  return out;
}

}  // namespace detail

// Throws dml::Error unless `cb` can draw batches from ds: P and K >= 1, P at
// most the number of classes that have rows, and (without replacement) every
// such class holding at least K rows (the message names the first that does not).
inline void validate_balanced(const ClassBalanced& cb, const Dataset& ds) {
  const std::int64_t p = cb.classes_per_batch, k = cb.samples_per_class;
  DML_CHECK(p >= 1, "ClassBalanced: classes_per_batch must be >= 1, got ", p);
  DML_CHECK(k >= 1, "ClassBalanced: samples_per_class must be >= 1, got ", k);
  const auto by_class = detail::rows_by_class(ds);
  std::int64_t classes = 0;
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    const auto n = static_cast<std::int64_t>(by_class[c].size());
    if (n == 0) continue;
    ++classes;
    DML_CHECK(cb.replacement || n >= k, "ClassBalanced: class ", detail::class_label(ds, c), " has ", n,
              " sample(s), fewer than samples_per_class ", k,
              "; set replacement = true, lower samples_per_class, or drop the class (filter_classes)");
  }
  DML_CHECK(p <= classes, "ClassBalanced: classes_per_batch ", p, " is more than the ", classes,
            " class(es) that have samples");
}

// Batches per epoch of `cb` over n rows: max(1, floor(n / (P * K))).
inline std::int64_t balanced_num_batches(const ClassBalanced& cb, std::int64_t n) {
  return std::max<std::int64_t>(1, n / cb.batch_size());
}

// The rows epoch `epoch` under `seed` visits: num_batches * P * K of them,
// batch b at [b*P*K, (b+1)*P*K), as the header describes. Driven by
// Generator(hash(seed, "balance", epoch)). Throws what validate_balanced throws,
// and for num_batches < 0.
inline std::vector<std::int64_t> balanced_order(const Dataset& ds, const ClassBalanced& cb, std::uint64_t seed,
                                                std::int64_t epoch, std::int64_t num_batches) {
  validate_balanced(cb, ds);
  DML_CHECK(num_batches >= 0, "balanced_order: num_batches must be >= 0, got ", num_batches);
  const auto by_class = detail::rows_by_class(ds);
  std::vector<detail::ClassStream> streams(by_class.size());
  std::vector<std::size_t> pool;  // the classes that have rows, in a running shuffle
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    streams[c].rows = &by_class[c];
    if (!by_class[c].empty()) pool.push_back(c);
  }
  Generator gen(detail::hash_combine(detail::hash_combine(seed, detail::kBalancedStream),
                                     static_cast<std::uint64_t>(epoch)));
  const auto p = static_cast<std::size_t>(cb.classes_per_batch), k = static_cast<std::size_t>(cb.samples_per_class);
  std::vector<std::int64_t> order;
  order.reserve(static_cast<std::size_t>(num_batches) * p * k);
  for (std::int64_t b = 0; b < num_batches; ++b) {
    for (std::size_t i = 0; i < p; ++i) {  // partial Fisher-Yates: pool[0..p) are this batch's classes
      const std::size_t j = i + static_cast<std::size_t>(gen.below(pool.size() - i));
      std::swap(pool[i], pool[j]);
    }
    for (std::size_t i = 0; i < p; ++i) {
      detail::ClassStream& s = streams[pool[i]];
      const bool repeat = s.rows->size() < k;  // only with replacement (validated)
      const std::size_t start = order.size();
      if (repeat) s.at = s.cycle.size();  // whole fresh shuffles: each row once before any twice
      while (order.size() - start < k) {
        const std::int64_t r = s.next(gen);
        // A batch straddling two shuffles of its class skips rows it already holds.
        if (repeat || std::find(order.begin() + static_cast<std::ptrdiff_t>(start), order.end(), r) == order.end())
          order.push_back(r);
      }
    }
  }
  return order;
}

}  // namespace dml::data
