// Tests for dml/data/sampler.hpp and the class-balanced DataLoader: P classes x K
// samples per batch, determinism, exact resume, replacement, and the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <dml/data/loader.hpp>
#include <dml/data/sampler.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../support/error_of.hpp"
#include "batch_record.hpp"

// The whole file in a namespace of its own: the unity build compiles it with test_loader.cpp.
namespace test_sampler {

using dml::Shape;
using dml::data::Batch;
using dml::data::ClassBalanced;
using dml::data::DataLoader;
using dml::data::Dataset;
using dml::data::LoaderOptions;
using dml::testing::error_of;

// Class c has sizes[c] rows; image i (1 x 4 x 4) holds i + 0.01 * pixel. Rows
// of the classes are interleaved so that no class is a contiguous block.
Dataset classes_of(const std::vector<std::int64_t>& sizes, std::vector<std::string> names = {}) {
  std::vector<std::int64_t> labels, left = sizes;
  for (bool any = true; any;) {
    any = false;
    for (std::size_t c = 0; c < left.size(); ++c)
      if (left[c] > 0) --left[c], labels.push_back(static_cast<std::int64_t>(c)), any = true;
  }
  std::vector<float> v;
  for (std::size_t i = 0; i < labels.size(); ++i)
    for (int p = 0; p < 16; ++p) v.push_back(static_cast<float>(i) + 0.01f * static_cast<float>(p));
  return Dataset::from_vectors(v, Shape{1, 4, 4}, labels, static_cast<std::int64_t>(sizes.size()), std::move(names));
}

LoaderOptions balanced(std::int64_t p, std::int64_t k, std::uint64_t seed, bool prefetch = true,
                       bool replacement = false) {
  LoaderOptions o;
  o.batch_size = p * k;
  o.balanced = ClassBalanced{.classes_per_batch = p, .samples_per_class = k, .replacement = replacement};
  o.seed = seed;
  o.prefetch = prefetch;
  return o;
}

using dml::testing::flat_indices;
using dml::testing::one_epoch;
using dml::testing::record;
using Seen = dml::testing::SeenBatch;

// Checks that b is P runs of K rows, one distinct class per run, labels (and,
// unless `augmented`, pixels) those of its rows, and (unless `repeats`) no row twice.
void check_batch(const Seen& b, const Dataset& ds, std::int64_t p, std::int64_t k, bool repeats = false,
                 bool augmented = false) {
  REQUIRE(static_cast<std::int64_t>(b.indices.size()) == p * k);
  std::set<std::int64_t> classes;
  for (std::int64_t c = 0; c < p; ++c) {
    const std::int64_t label = b.labels[static_cast<std::size_t>(c * k)];
    classes.insert(label);
    for (std::int64_t j = 0; j < k; ++j) CHECK(b.labels[static_cast<std::size_t>(c * k + j)] == label);
  }
  CHECK(static_cast<std::int64_t>(classes.size()) == p);
  for (std::size_t j = 0; j < b.indices.size(); ++j) {
    CHECK(b.labels[j] == ds.labels[static_cast<std::size_t>(b.indices[j])]);
    if (!augmented) CHECK(b.pixels[j * 16 + 3] == static_cast<float>(b.indices[j]) + 0.03f);
  }
  if (!repeats) CHECK(std::set<std::int64_t>(b.indices.begin(), b.indices.end()).size() == b.indices.size());
}

TEST_CASE("every balanced batch holds P distinct classes x K distinct samples") {
  const Dataset ds = classes_of({6, 9, 12, 15, 18});  // 60 rows
  DataLoader loader(ds, balanced(3, 4, 7));
  CHECK(loader.num_batches() == 5);  // floor(60 / 12)
  std::set<std::int64_t> classes_seen;
  for (int e = 0; e < 4; ++e) {
    auto epoch = one_epoch(loader);
    REQUIRE(epoch.size() == 5);
    for (std::size_t b = 0; b < epoch.size(); ++b) {
      CHECK(epoch[b].epoch == e);
      CHECK(epoch[b].index == static_cast<std::int64_t>(b));
      check_batch(epoch[b], ds, 3, 4);
      classes_seen.insert(epoch[b].labels.begin(), epoch[b].labels.end());
    }
  }
  CHECK(classes_seen.size() == 5);
  CHECK(loader.epoch() == 4);
}

TEST_CASE("the batches are balanced_order of (seed, epoch); a class's rows come up once before any twice") {
  const Dataset ds = classes_of({8, 8, 8, 8});  // 32 rows, 4 batches of 2 x 4
  const ClassBalanced cb{.classes_per_batch = 2, .samples_per_class = 4};
  DataLoader loader(ds, balanced(2, 4, 3));
  for (std::int64_t e = 0; e < 3; ++e) {
    const auto order = flat_indices(one_epoch(loader));
    CHECK(order == dml::data::balanced_order(ds, cb, 3, e, 4));
    // The first 8 rows of each class drawn in an epoch are a shuffle of all 8.
    std::map<std::int64_t, std::vector<std::int64_t>> per_class;
    for (auto r : order) per_class[ds.labels[static_cast<std::size_t>(r)]].push_back(r);
    for (auto& [c, rows] : per_class) {
      const std::size_t head = std::min<std::size_t>(rows.size(), 8);
      CHECK(std::set<std::int64_t>(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(head)).size() == head);
    }
  }
  CHECK(dml::data::balanced_num_batches(cb, 32) == 4);
  CHECK(dml::data::balanced_num_batches(cb, 7) == 1);
}

TEST_CASE("balanced batches follow the seed and the epoch; prefetch and threads change nothing") {
  const Dataset ds = classes_of({10, 7, 12, 9, 8, 11});
  auto o = balanced(3, 3, 21);
  o.augment = {.pad = 1, .rotate_degrees = 15, .hflip = true};
  const auto runs = dml::testing::runs_by_launch(ds, o);
  REQUIRE(runs[0].size() == 3 * 6);  // floor(57 / 9) = 6 per epoch
  CHECK(runs[0] == runs[1]);
  CHECK(runs[0] == runs[2]);

  auto o2 = o;
  o2.seed = 22;
  DataLoader other(ds, o2), same(ds, o);
  const auto first = flat_indices(one_epoch(same)), second = flat_indices(one_epoch(same));
  CHECK(first != flat_indices(one_epoch(other)));
  CHECK(first != second);
  CHECK(first == flat_indices(std::vector<Seen>(runs[0].begin(), runs[0].begin() + 6)));
}

TEST_CASE("a balanced loader's state saved mid-epoch resumes bit for bit, in a fresh loader and in the same one") {
  const Dataset ds = classes_of({9, 6, 11, 8, 7});  // 41 rows, 5 batches of 2 x 4
  auto o = balanced(2, 4, 5);
  o.augment = {.pad = 2, .rotate_degrees = 10};
  DataLoader a(ds, o);
  one_epoch(a);
  a.next();
  a.next();
  const auto saved = a.state();
  CHECK(saved.epoch == 1);
  CHECK(saved.position == 2);
  CHECK(saved.classes_per_batch == 2);
  CHECK(saved.samples_per_class == 4);
  std::vector<Seen> rest;  // the rest of epoch 1 and all of epoch 2
  for (int k = 0; k < 9; ++k)
    if (auto b = a.next()) rest.push_back(record(*b));
  REQUIRE(rest.size() == 8);

  for (int variant = 0; variant < 4; ++variant) {
    auto o2 = o;
    o2.prefetch = variant % 2 == 0;
    DataLoader b(ds, o2);
    if (variant < 2) b.next();  // it has built (and prefetched) epoch 0: set_state must discard it
    b.set_state(saved);
    std::vector<Seen> again;
    for (int k = 0; k < 9; ++k)
      if (auto x = b.next()) again.push_back(record(*x));
    CHECK(again == rest);
  }
  a.set_state(saved);  // rewind
  std::vector<Seen> rewound;
  for (int k = 0; k < 9; ++k)
    if (auto x = a.next()) rewound.push_back(record(*x));
  CHECK(rewound == rest);
}

TEST_CASE("set_state refuses a state of another sampling") {
  const Dataset ds = classes_of({6, 6, 6, 6});
  DataLoader pk(ds, balanced(2, 4, 0));
  LoaderOptions plain;
  plain.batch_size = 8;
  DataLoader shuffled(ds, plain);
  CHECK(error_of([&] { pk.set_state(shuffled.state()); }) ==
        "DataLoader::set_state: the state is for shuffled or sequential batches, this loader draws class-balanced "
        "(2 classes x 4 samples) batches");
  CHECK(error_of([&] { shuffled.set_state(pk.state()); }) ==
        "DataLoader::set_state: the state is for class-balanced (2 classes x 4 samples) batches, this loader draws "
        "shuffled or sequential batches");
  DataLoader kp(ds, balanced(4, 2, 0));
  CHECK(error_of([&] { kp.set_state(pk.state()); }).find("class-balanced (2 classes x 4 samples)") !=
        std::string::npos);
}

TEST_CASE("with replacement a class smaller than K repeats each of its rows evenly, augmented differently") {
  const Dataset ds = classes_of({3, 20, 20});  // class 0 has rows 0, 3 and 6
  auto o = balanced(3, 5, 9, true, true);      // every batch holds every class
  o.augment = {.pad = 1, .rotate_degrees = 20};
  DataLoader loader(ds, o);
  CHECK(loader.num_batches() == 2);  // floor(43 / 15)
  for (int e = 0; e < 4; ++e) {
    for (const Seen& b : one_epoch(loader)) {
      check_batch(b, ds, 3, 5, true, true);
      std::map<std::int64_t, std::vector<std::size_t>> at;  // row -> its slots
      for (std::size_t j = 0; j < b.indices.size(); ++j) at[b.indices[j]].push_back(j);
      std::vector<std::size_t> counts;
      for (const auto& [row, slots] : at) {
        if (ds.labels[static_cast<std::size_t>(row)] != 0) {
          CHECK(slots.size() == 1);  // the classes with >= K rows still have distinct samples
          continue;
        }
        counts.push_back(slots.size());
        // Each repeat has its own augmentation stream.
        auto image = [&](std::size_t j) {
          return std::vector<float>(b.pixels.begin() + static_cast<std::ptrdiff_t>(j * 16),
                                    b.pixels.begin() + static_cast<std::ptrdiff_t>((j + 1) * 16));
        };
        for (std::size_t i = 1; i < slots.size(); ++i) CHECK(image(slots[i]) != image(slots[0]));
      }
      std::sort(counts.begin(), counts.end());
      CHECK(counts == std::vector<std::size_t>{1, 2, 2});  // 5 slots over 3 rows: all once, two twice
    }
  }
}

TEST_CASE("classes without samples are never drawn and do not count towards P") {
  Dataset ds = classes_of({5, 0, 6, 0});  // classes 1 and 3 are empty
  DataLoader loader(ds, balanced(2, 3, 1));
  for (const Seen& b : one_epoch(loader)) {
    check_batch(b, ds, 2, 3);
    for (auto l : b.labels) CHECK((l == 0 || l == 2));
  }
  CHECK(error_of([&] { DataLoader(ds, balanced(3, 3, 1)); }) ==
        "ClassBalanced: classes_per_batch 3 is more than the 2 class(es) that have samples");
}

TEST_CASE("bad balanced options are errors that name the argument and its values") {
  const Dataset ds = classes_of({6, 3, 6}, {"cat", "dog", "eel"});
  CHECK(error_of([&] { DataLoader(ds, balanced(2, 4, 0)); }) ==
        "ClassBalanced: class 1 ('dog') has 3 sample(s), fewer than samples_per_class 4; set replacement = true, "
        "lower samples_per_class, or drop the class (filter_classes)");
  CHECK(error_of([&] { DataLoader(classes_of({6, 2}), balanced(2, 3, 0)); }).find("class 1 has 2 sample(s)") !=
        std::string::npos);
  CHECK(error_of([&] { DataLoader(ds, balanced(2, 4, 0, true, true)); }) == "no dml::Error");
  CHECK(error_of([&] { DataLoader(ds, balanced(4, 2, 0)); }) ==
        "ClassBalanced: classes_per_batch 4 is more than the 3 class(es) that have samples");
  auto o = balanced(2, 2, 0);
  o.balanced->classes_per_batch = 0;
  CHECK(error_of([&] { DataLoader(ds, o); }) == "ClassBalanced: classes_per_batch must be >= 1, got 0");
  o = balanced(2, 2, 0);
  o.balanced->samples_per_class = -1;
  o.batch_size = 4;
  CHECK(error_of([&] { DataLoader(ds, o); }) == "ClassBalanced: samples_per_class must be >= 1, got -1");
  o = balanced(2, 3, 0);
  o.batch_size = 128;
  CHECK(error_of([&] { DataLoader(ds, o); }) ==
        "DataLoader: batch_size 128 disagrees with balanced: classes_per_batch 2 x samples_per_class 3 = 6; set "
        "batch_size = 6");
  o = balanced(2, 3, 0);
  o.shuffle = false;
  CHECK(error_of([&] { DataLoader(ds, o); }) ==
        "DataLoader: balanced batches are always drawn at random; shuffle = false conflicts with them");
  const ClassBalanced cb{.classes_per_batch = 2, .samples_per_class = 3};
  CHECK(error_of([&] { (void)dml::data::balanced_order(ds, cb, 0, 0, -1); }) ==
        "balanced_order: num_batches must be >= 0, got -1");
}

TEST_CASE("K = 1 and drop_last: single-sample classes, and every batch is full either way") {
  const Dataset ds = classes_of({3, 3, 3, 2});  // 11 rows
  for (bool drop : {false, true}) {
    auto o = balanced(4, 1, 2);
    o.drop_last = drop;
    DataLoader loader(ds, o);
    CHECK(loader.num_batches() == 2);  // floor(11 / 4)
    for (const Seen& b : one_epoch(loader)) check_batch(b, ds, 4, 1);
  }
}

}  // namespace test_sampler
