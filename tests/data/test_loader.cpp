// Tests for dml/data/loader.hpp: coverage, order, drop_last, prefetch parity, resume, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <dml/data/loader.hpp>

#include "../support/error_of.hpp"
#include "batch_record.hpp"
#include "byte_source.hpp"
#include <set>
#include <string>
#include <stdexcept>
#include <thread>
#include <vector>

using dml::Shape;
using dml::data::Batch;
using dml::data::DataLoader;
using dml::data::Dataset;
using dml::data::LoaderOptions;

namespace {

// n images of 1 x 4 x 4; image i holds i + 0.01 * pixel, label i % 3.
Dataset counting(std::int64_t n) {
  std::vector<float> v;
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < n; ++i) {
    for (int p = 0; p < 16; ++p) v.push_back(static_cast<float>(i) + 0.01f * static_cast<float>(p));
    labels.push_back(i % 3);
  }
  return Dataset::from_vectors(v, Shape{1, 4, 4}, labels);
}

using dml::testing::flat_indices;
using dml::testing::one_epoch;
using dml::testing::record;
using Seen = dml::testing::SeenBatch;

// A loader of 10 rows in batches of 3 whose batch 2 (rows 6, 7, 8) fails: next() throws E with
// `what` there, again on the next call (an error, not a hang), without moving past it; a state
// set past the batch resumes with the last batch, row 9.
template <class E>
void fails_at_batch_2_then_resumes(DataLoader& loader, const char* what) {
  CHECK(loader.next());
  CHECK(loader.next());
  CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains(what), E);
  CHECK(loader.position() == 2);
  CHECK_THROWS_AS(loader.next(), E);
  auto s = loader.state();
  s.position = 3;
  loader.set_state(s);
  auto b = loader.next();
  REQUIRE(b);
  CHECK(b->indices == std::vector<std::int64_t>{9});
}

LoaderOptions opts(std::int64_t batch, std::uint64_t seed, bool prefetch) {
  LoaderOptions o;
  o.batch_size = batch;
  o.seed = seed;
  o.prefetch = prefetch;
  return o;
}

}  // namespace

TEST_CASE("a shuffled epoch covers every index exactly once, with matching images and labels") {
  Dataset ds = counting(10);
  DataLoader loader(ds, opts(3, 1, true));
  CHECK(loader.num_batches() == 4);
  auto epoch = one_epoch(loader);
  REQUIRE(epoch.size() == 4);
  CHECK(epoch[3].indices.size() == 1);  // the short last batch stays
  auto idx = flat_indices(epoch);
  std::vector<std::int64_t> sorted = idx;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(idx != sorted);  // shuffled
  for (std::size_t k = 0; k < epoch.size(); ++k) {
    const Seen& s = epoch[k];
    CHECK(s.epoch == 0);
    CHECK(s.index == static_cast<std::int64_t>(k));
    for (std::size_t j = 0; j < s.indices.size(); ++j) {
      CHECK(s.labels[j] == s.indices[j] % 3);
      for (int p = 0; p < 16; ++p)
        CHECK(s.pixels[j * 16 + p] == static_cast<float>(s.indices[j]) + 0.01f * static_cast<float>(p));
    }
  }
  CHECK(loader.epoch() == 1);
  CHECK(loader.position() == 0);
}

TEST_CASE("batch tensors have shape [B, C, H, W] and [B]") {
  DataLoader loader(counting(5), opts(2, 0, false));
  auto b = loader.next();
  REQUIRE(b);
  CHECK(b->images.shape() == Shape{2, 1, 4, 4});
  CHECK(b->labels.shape() == Shape{2});
}

TEST_CASE("drop_last drops the short batch; too few samples is an error") {
  DataLoader loader(counting(10), [] {
    auto o = opts(3, 2, true);
    o.drop_last = true;
    return o;
  }());
  CHECK(loader.num_batches() == 3);
  auto epoch = one_epoch(loader);
  REQUIRE(epoch.size() == 3);
  auto idx = flat_indices(epoch);
  CHECK(std::set<std::int64_t>(idx.begin(), idx.end()).size() == 9);
  for (const auto& s : epoch) CHECK(s.indices.size() == 3);

  auto o = opts(20, 0, true);
  CHECK(DataLoader(counting(10), o).num_batches() == 1);
  o.drop_last = true;
  CHECK_THROWS_AS(DataLoader(counting(10), o), dml::Error);
}

TEST_CASE("shuffle off visits the dataset in order every epoch") {
  auto o = opts(4, 5, true);
  o.shuffle = false;
  DataLoader loader(counting(10), o);
  std::vector<std::int64_t> want{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  CHECK(flat_indices(one_epoch(loader)) == want);
  CHECK(flat_indices(one_epoch(loader)) == want);
}

TEST_CASE("same seed gives the same order; other seeds and other epochs differ") {
  DataLoader a(counting(40), opts(8, 11, true));
  DataLoader b(counting(40), opts(8, 11, false));
  DataLoader c(counting(40), opts(8, 12, true));
  auto a0 = flat_indices(one_epoch(a)), a1 = flat_indices(one_epoch(a));
  auto b0 = flat_indices(one_epoch(b)), b1 = flat_indices(one_epoch(b));
  auto c0 = flat_indices(one_epoch(c));
  CHECK(a0 == b0);
  CHECK(a1 == b1);
  CHECK(a0 != a1);
  CHECK(a0 != c0);
  CHECK(a0 == dml::data::epoch_order(40, 11, 0, true));
}

TEST_CASE("next() returns nullopt once at the end of each epoch") {
  DataLoader loader(counting(4), opts(2, 0, true));
  CHECK(loader.next());
  CHECK(loader.next());
  CHECK(loader.position() == 2);
  CHECK(!loader.next());
  CHECK(loader.epoch() == 1);
  auto b = loader.next();
  REQUIRE(b);
  CHECK(b->epoch == 1);
  CHECK(b->index == 0);
}

TEST_CASE("prefetch on and off, and any thread count, give identical augmented batches") {
  Dataset ds = counting(23);
  auto base = opts(5, 99, false);
  base.augment = {.pad = 1, .rotate_degrees = 15, .hflip = true};
  const auto runs = dml::testing::runs_by_launch(ds, base);
  REQUIRE(runs[0].size() == 15);
  CHECK(runs[0] == runs[1]);
  CHECK(runs[0] == runs[2]);
  // Augmentation changes with the epoch: sample 0 looks different in epochs 0 and 1.
  auto image_of = [&](std::int64_t epoch, std::int64_t row) {
    for (const auto& s : runs[0])
      for (std::size_t j = 0; j < s.indices.size(); ++j)
        if (s.epoch == epoch && s.indices[j] == row)
          return std::vector<float>(s.pixels.begin() + j * 16, s.pixels.begin() + (j + 1) * 16);
    return std::vector<float>{};
  };
  int differ = 0;
  for (std::int64_t row = 0; row < 23; ++row) differ += image_of(0, row) != image_of(1, row);
  CHECK(differ > 10);
}

TEST_CASE("state() saved mid-epoch resumes identically, in a fresh loader and in the same one") {
  Dataset ds = counting(17);
  auto o = opts(4, 3, true);
  o.augment = {.pad = 2, .rotate_degrees = 10};
  DataLoader a(ds, o);
  one_epoch(a);
  a.next();
  a.next();
  const auto saved = a.state();
  CHECK(saved.epoch == 1);
  CHECK(saved.position == 2);
  std::vector<Seen> rest;
  for (int k = 0; k < 8; ++k)
    if (auto b = a.next()) rest.push_back(record(*b));

  for (bool prefetch : {true, false}) {
    auto o2 = o;
    o2.prefetch = prefetch;
    DataLoader b(ds, o2);
    b.next();  // its worker has prefetched something else: set_state must discard it
    b.set_state(saved);
    std::vector<Seen> again;
    for (int k = 0; k < 8; ++k)
      if (auto x = b.next()) again.push_back(record(*x));
    CHECK(again == rest);
  }
  a.set_state(saved);  // rewind
  std::vector<Seen> rewound;
  for (int k = 0; k < 8; ++k)
    if (auto x = a.next()) rewound.push_back(record(*x));
  CHECK(rewound == rest);

  // A state taken after the last batch, before the closing nullopt, resumes with that nullopt.
  DataLoader c(ds, o);
  for (int k = 0; k < c.num_batches(); ++k) c.next();
  auto end_state = c.state();
  CHECK(end_state.position == c.num_batches());
  DataLoader d(ds, o);
  d.set_state(end_state);
  CHECK(!d.next());
  CHECK(d.epoch() == 1);
}

TEST_CASE("set_epoch and a range-for that stops early resume at the right batch") {
  Dataset ds = counting(12);
  DataLoader a(ds, opts(3, 4, true)), b(ds, opts(3, 4, true));
  a.set_epoch(2);
  auto full = one_epoch(a);
  b.set_epoch(2);
  std::vector<Seen> split;
  for (Batch& x : b) {
    split.push_back(record(x));
    if (split.size() == 2) break;
  }
  CHECK(b.position() == 2);
  for (Batch& x : b) split.push_back(record(x));
  CHECK(split == full);
  CHECK(full[0].epoch == 2);
}

TEST_CASE("set_state rejects a state from another loader shape") {
  DataLoader loader(counting(10), opts(3, 0, true));
  auto s = loader.state();
  s.dataset_size = 11;
  CHECK_THROWS_AS(loader.set_state(s), dml::Error);
  s = loader.state();
  s.batch_size = 4;
  CHECK_THROWS_AS(loader.set_state(s), dml::Error);
  s = loader.state();
  s.position = 5;
  CHECK_THROWS_AS(loader.set_state(s), dml::Error);
  s.position = -1;
  CHECK_THROWS_AS(loader.set_state(s), dml::Error);
}

TEST_CASE("an exception while assembling a batch reaches the caller") {
  for (int variant = 0; variant < 3; ++variant) {
    auto o = opts(3, 0, variant > 0);
    o.shuffle = false;
    o.threads = variant == 2 ? 2 : 1;
    // Throws for sample 7 (its pixels start at 7.0), which is in batch 2 (rows 6, 7, 8).
    o.transform = [](std::span<float> img, const dml::data::ImageDims&, std::span<const float>, dml::Generator&) {
      if (img[0] == 7.0f) throw std::runtime_error("bad sample 7");
    };
    DataLoader loader(counting(10), o);
    fails_at_batch_2_then_resumes<std::runtime_error>(loader, "bad sample 7");
  }
}

TEST_CASE("loaders shut down cleanly and survive a move") {
  Dataset ds = counting(30);
  for (int i = 0; i < 20; ++i) {
    DataLoader loader(ds, opts(4, static_cast<std::uint64_t>(i), true));
    if (i % 2) loader.next();
  }
  DataLoader a(ds, opts(4, 1, true));
  auto first = record(*a.next());
  DataLoader b(std::move(a));
  auto second = b.next();
  REQUIRE(second);
  CHECK(second->index == 1);
  CHECK_THROWS_AS(a.next(), dml::Error);  // NOLINT(bugprone-use-after-move): moved-from is an error
  DataLoader c(ds, opts(4, 1, false));
  CHECK(record(*c.next()) == first);
}

TEST_CASE("bad loader options are errors") {
  Dataset ds = counting(5);
  auto o = opts(0, 0, true);
  CHECK_THROWS_AS(DataLoader(ds, o), dml::Error);
  o = opts(2, 0, true);
  o.threads = -1;
  CHECK_THROWS_AS(DataLoader(ds, o), dml::Error);
  o = opts(2, 0, true);
  o.augment.pad = 4;  // not smaller than the 4 x 4 image
  CHECK_THROWS_AS(DataLoader(ds, o), dml::Error);
  o.augment = {.rotate_degrees = -1};
  CHECK_THROWS_AS(DataLoader(ds, o), dml::Error);
  CHECK_THROWS_AS(DataLoader(dml::data::subset(ds, std::vector<std::int64_t>{}), opts(2, 0, true)), dml::Error);
}

TEST_CASE("a Dataset decoded on demand gives the batches of the same bytes held in memory, decoded on the prefetch thread") {
  const auto [held, lazy, source] = dml::testing::held_and_on_demand(dml::testing::varied_set(23, 3, 4));
  for (int aug = 0; aug < 3; ++aug) {
    CAPTURE(aug);
    auto o = opts(5, 7, false);
    if (aug == 1) o.augment = {.pad = 1, .rotate_degrees = 15, .hflip = true};
    if (aug == 2) {
      o.augment = {.hflip = true};
      o.balanced = dml::data::ClassBalanced{.classes_per_batch = 2, .samples_per_class = 3};
      o.batch_size = 6;
    }
    const auto want = dml::testing::runs_by_launch(held, o);
    const auto got = dml::testing::runs_by_launch(lazy, o);
    REQUIRE(!want[0].empty());
    for (int v = 0; v < 3; ++v) CHECK(got[v] == want[0]);
  }
  // With prefetch (one thread), every image is decoded on the loader's thread, none on the caller's.
  auto src = std::make_shared<dml::testing::ByteSource>(dml::testing::varied_set(10));
  const Dataset ds = Dataset::from_source(src, dml::testing::all_rows(10), dml::testing::varied_set(10).labels,
                                          {.normalization = dml::data::Normalization{0.5, 0.25}});
  DataLoader loader(ds, opts(4, 1, true));
  CHECK(one_epoch(loader).size() == 3);
  const auto readers = src->readers();
  CHECK(readers.size() == 1);
  CHECK(readers.count(std::this_thread::get_id()) == 0);
  CHECK(src->reads() >= 10);
}

TEST_CASE("an image that fails to decode reaches next()'s caller as the dml::Error naming it, without a hang") {
  const dml::data::ImageSet set = dml::testing::varied_set(10);
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    auto o = opts(3, 0, variant > 0);
    o.shuffle = false;
    o.threads = variant >= 2 ? 2 : 1;
    if (variant == 3) o.augment = {.pad = 1};
    // Image 7 is in batch 2 (rows 6, 7, 8).
    auto [held, lazy, source] = dml::testing::held_and_on_demand(set, {}, 7);
    DataLoader loader(lazy, o);
    fails_at_batch_2_then_resumes<dml::Error>(loader, "source/7.png: corrupt or truncated PNG");
  }
}

// ---- data-parallel shards (issue 18) ----------------------------------------------------

namespace {

// Batches of `epochs` epochs of a loader for shard `rank` of `world`, per-rank batch b.
std::vector<Batch> shard_batches(const Dataset& ds, LoaderOptions o, std::int64_t rank, std::int64_t world,
                                 int epochs) {
  o.shard = {rank, world};
  DataLoader loader(ds, o);
  std::vector<Batch> out;
  for (int e = 0; e < epochs; ++e)
    for (Batch& b : loader) out.push_back(std::move(b));
  return out;
}

}  // namespace

TEST_CASE("sharded loaders split each global batch: disjoint, in rank order, equal to one loader of world x B") {
  Dataset ds = counting(23);
  for (const std::int64_t world : {2, 3}) {
    CAPTURE(world);
    LoaderOptions one = opts(4 * world, 5, true);
    one.augment = {.pad = 1, .rotate_degrees = 10};
    const std::vector<Batch> whole = shard_batches(ds, one, 0, 1, 2);
    LoaderOptions per = one;
    per.batch_size = 4;
    per.prefetch = false;
    std::vector<std::vector<Batch>> ranks;
    for (std::int64_t r = 0; r < world; ++r) ranks.push_back(shard_batches(ds, per, r, world, 2));
    for (const auto& rb : ranks) REQUIRE(rb.size() == whole.size());
    for (std::size_t k = 0; k < whole.size(); ++k) {
      std::vector<std::int64_t> rows;
      std::vector<float> pixels;
      for (const auto& rb : ranks) {
        CHECK(rb[k].index == whole[k].index);
        CHECK(rb[k].epoch == whole[k].epoch);
        rows.insert(rows.end(), rb[k].indices.begin(), rb[k].indices.end());
        const std::vector<float> px = rb[k].images.to_vector();
        pixels.insert(pixels.end(), px.begin(), px.end());
        CHECK(rb[k].labels.to_vector().size() == rb[k].indices.size());
      }
      CHECK(rows == whole[k].indices);  // the union in rank order, so also disjoint
      CHECK(pixels == whole[k].images.to_vector());
    }
  }
  // 23 = 2 x 8 + 7: the last global batch of 7 is split 3 + 4 (even shares, in rank order).
  LoaderOptions per = opts(4, 5, false);
  CHECK(shard_batches(ds, per, 0, 2, 1).back().size() == 3);
  CHECK(shard_batches(ds, per, 1, 2, 1).back().size() == 4);
}

TEST_CASE("sharded loaders: drop_last as one loader; a last batch smaller than the world is dropped") {
  Dataset ds = counting(17);  // 17 = 2 x 8 + 1
  LoaderOptions o = opts(4, 1, false);
  o.shard = {1, 2};
  CHECK(DataLoader(ds, o).num_batches() == 2);  // 1 row cannot feed 2 ranks
  o.drop_last = true;
  CHECK(DataLoader(ds, o).num_batches() == 2);
  o.drop_last = false;
  CHECK(DataLoader(counting(18), o).num_batches() == 3);  // 2 rows: one each
  CHECK(shard_batches(counting(18), o, 1, 2, 1).back().size() == 1);
  o.drop_last = true;
  CHECK(DataLoader(counting(18), o).num_batches() == 2);
}

TEST_CASE("a sharded loader's state names its world; set_state refuses another one") {
  Dataset ds = counting(17);
  LoaderOptions o = opts(4, 1, false);
  o.shard = {0, 2};
  DataLoader two(ds, o);
  CHECK(two.state().world == 2);
  DataLoader one(ds, opts(4, 1, false));
  CHECK(dml::testing::error_of([&] { one.set_state(two.state()); }).find("2 data-parallel rank(s)") !=
        std::string::npos);
  o.shard = {2, 2};
  CHECK(dml::testing::error_of([&] { DataLoader bad(ds, o); }).find("rank 2 of world 2") != std::string::npos);
  o.shard = {0, 2};
  o.batch_size = 3;  // 3 classes x 2 samples over 2 ranks: a class would be split
  o.balanced = dml::data::ClassBalanced{.classes_per_batch = 3, .samples_per_class = 2};
  CHECK(dml::testing::error_of([&] { DataLoader bad(ds, o); }).find("classes_per_batch must divide by the rank") !=
        std::string::npos);
}

TEST_CASE("sharded class-balanced batches: each rank gets whole classes; together one loader's P x K batch") {
  // 6 classes of 5 rows; global batches of 4 classes x 3 samples, on 2 ranks (2 classes each).
  std::vector<float> px;
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < 30; ++i) {
    for (int p = 0; p < 16; ++p) px.push_back(static_cast<float>(i));
    labels.push_back(i % 6);
  }
  const Dataset ds = Dataset::from_vectors(px, Shape{1, 4, 4}, labels);
  LoaderOptions one = opts(12, 9, false);
  one.balanced = dml::data::ClassBalanced{.classes_per_batch = 4, .samples_per_class = 3};
  one.augment = {.hflip = true};
  const std::vector<Batch> whole = shard_batches(ds, one, 0, 1, 2);
  LoaderOptions per = one;
  per.batch_size = 6;
  std::vector<std::vector<Batch>> ranks;
  for (std::int64_t r = 0; r < 2; ++r) ranks.push_back(shard_batches(ds, per, r, 2, 2));
  REQUIRE(!whole.empty());
  for (const auto& rb : ranks) REQUIRE(rb.size() == whole.size());
  for (std::size_t k = 0; k < whole.size(); ++k) {
    std::vector<std::int64_t> rows;
    std::vector<float> pixels;
    for (const auto& rb : ranks) {
      REQUIRE(rb[k].size() == 6);
      const std::vector<std::int64_t> y = rb[k].labels.to_vector();
      for (std::size_t j = 0; j < y.size(); ++j) CHECK(y[j] == y[j - j % 3]);  // 2 classes x 3 samples
      CHECK(y[0] != y[3]);
      rows.insert(rows.end(), rb[k].indices.begin(), rb[k].indices.end());
      const std::vector<float> im = rb[k].images.to_vector();
      pixels.insert(pixels.end(), im.begin(), im.end());
    }
    CHECK(rows == whole[k].indices);
    CHECK(pixels == whole[k].images.to_vector());  // each sample keeps its augmentation
  }
}
