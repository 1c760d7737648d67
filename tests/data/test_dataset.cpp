// Tests for dml/data/dataset.hpp: normalisation, construction, filter/subset/take/split, load_idx.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dml/data/dataset.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"
#include "byte_source.hpp"

namespace fs = std::filesystem;
using dml::Shape;
using dml::data::Dataset;
using dml::data::ImageSet;
using dml::data::Normalization;

namespace {

// n images of 1 x 2 x 2 whose four pixels are all 10 * i; labels as given.
Dataset numbered(const std::vector<std::int64_t>& labels, std::int64_t num_classes = -1,
                 std::vector<std::string> names = {}) {
  std::vector<float> v;
  for (std::size_t i = 0; i < labels.size(); ++i)
    for (int j = 0; j < 4; ++j) v.push_back(10.0f * static_cast<float>(i));
  return Dataset::from_vectors(v, Shape{1, 2, 2}, labels, num_classes, std::move(names));
}

// The image number of each row of a `numbered` dataset (or a cut of one).
std::vector<std::int64_t> rows_of(const Dataset& ds) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = 0; i < ds.size(); ++i) {
    const float* p = ds.image(i);
    for (int j = 1; j < 4; ++j) REQUIRE(p[j] == p[0]);
    out.push_back(static_cast<std::int64_t>(p[0] / 10.0f));
  }
  return out;
}

using dml::testing::TempDir;

void write_set(const fs::path& dir, const std::string& prefix, const ImageSet& s) {
  dml::data::IdxArray img{{s.count, s.rows, s.cols}, s.pixels};
  dml::data::write_idx(dir / (prefix + "-images-idx3-ubyte"), img);
  dml::data::IdxArray lab{{s.count}, {}};
  for (auto l : s.labels) lab.data.push_back(static_cast<std::uint8_t>(l));
  dml::data::write_idx(dir / (prefix + "-labels-idx1-ubyte"), lab);
}

}  // namespace

TEST_CASE("pixel_stats is the exact mean and population stddev of byte / 255") {
  ImageSet s{2, 1, 2, {0, 255, 255, 0}, {0, 1}};
  auto n = dml::data::pixel_stats(s);
  CHECK(n.mean == 0.5);
  CHECK(n.stddev == 0.5);

  ImageSet t{1, 2, 2, {0, 51, 102, 255}, {0}};
  const double m = (0 + 51 + 102 + 255) / 4.0;
  const double var = (0.0 * 0 + 51.0 * 51 + 102.0 * 102 + 255.0 * 255) / 4.0 - m * m;
  auto u = dml::data::pixel_stats(t);
  CHECK(u.mean == doctest::Approx(m / 255).epsilon(1e-15));
  CHECK(u.stddev == doctest::Approx(std::sqrt(var) / 255).epsilon(1e-15));
}

TEST_CASE("Dataset::from_images normalises with its own statistics, exactly") {
  ImageSet s{2, 1, 2, {0, 255, 255, 0}, {3, 1}};
  Dataset ds = Dataset::from_images(s);
  CHECK(ds.size() == 2);
  CHECK(ds.image_shape() == Shape{1, 1, 2});
  CHECK(ds.images.shape() == Shape{2, 1, 1, 2});
  CHECK(ds.images.to_vector() == std::vector<float>{-1, 1, 1, -1});
  CHECK(ds.labels == std::vector<std::int64_t>{3, 1});
  CHECK(ds.original_labels == ds.labels);
  CHECK(ds.num_classes == 4);
  CHECK(ds.normalization().mean == 0.5);
  CHECK(ds.normalization().stddev == 0.5);
  CHECK(ds.background() == -1.0f);
  CHECK(ds.label_tensor().to_vector() == std::vector<std::int64_t>{3, 1});
}

TEST_CASE("Dataset::from_images with explicit normalisation, classes and names") {
  ImageSet s{1, 1, 3, {0, 128, 255}, {1}};
  dml::data::DatasetOptions opt{dml::data::kMnistNormalization, 2, {"a", "b"}};
  Dataset ds = Dataset::from_images(s, opt);
  const std::vector<float> want{static_cast<float>((0 / 255.0 - 0.1307) / 0.3081),
                                static_cast<float>((128 / 255.0 - 0.1307) / 0.3081),
                                static_cast<float>((255 / 255.0 - 0.1307) / 0.3081)};
  CHECK(ds.images.to_vector() == want);
  CHECK(ds.background() == static_cast<float>(-0.1307 / 0.3081));
  CHECK(ds.num_classes == 2);
  CHECK(ds.class_names == std::vector<std::string>{"a", "b"});

  CHECK_THROWS_AS(Dataset::from_images(s, {std::nullopt, 1, {}}), dml::Error);          // label 1 >= 1 class
  CHECK_THROWS_AS(Dataset::from_images(s, {std::nullopt, 3, {"x"}}), dml::Error);       // 1 name, 3 classes
  CHECK_THROWS_AS(Dataset::from_images(s, {Normalization{0, 0}, -1, {}}), dml::Error);  // stddev 0
  ImageSet flat{2, 1, 1, {7, 7}, {0, 0}};
  CHECK_THROWS_WITH_AS(Dataset::from_images(flat), doctest::Contains("standard deviation"), dml::Error);
  ImageSet broken{2, 1, 1, {7}, {0, 0}};
  CHECK_THROWS_AS(Dataset::from_images(broken), dml::Error);
}

TEST_CASE("RGB ImageSets: each channel normalised with its own statistics, or with the ones given") {
  // 2 images of 3 x 1 x 2, channel-planar: R = {0, 255}, G = {51, 51} then {102, 102}, B = 255.
  ImageSet s{2, 1, 2, {0, 255, 51, 51, 255, 255, 0, 255, 102, 102, 255, 255}, {0, 1}, 3};
  const std::vector<Normalization> stats = dml::data::channel_stats(s);
  REQUIRE(stats.size() == 3);
  CHECK(stats[0].mean == 0.5);
  CHECK(stats[0].stddev == 0.5);
  CHECK(stats[1].mean == doctest::Approx(76.5 / 255).epsilon(1e-15));
  CHECK(stats[1].stddev == doctest::Approx(25.5 / 255).epsilon(1e-15));
  CHECK(stats[2].stddev == 0.0);
  // Channel 2 is constant: its own statistics cannot normalise it.
  CHECK_THROWS_WITH_AS(Dataset::from_images(s), doctest::Contains("every pixel of channel 2 has the same value"),
                       dml::Error);
  dml::data::DatasetOptions opt;
  opt.channel_normalization = {{0.5, 0.5}, {0.2, 0.1}, {0.5, 0.25}};
  Dataset ds = Dataset::from_images(s, opt);
  CHECK(ds.images.shape() == Shape{2, 3, 1, 2});
  CHECK(ds.channel_norms == opt.channel_normalization);
  const float* p = ds.images.data();
  CHECK(p[0] == -1.0f);                                                 // R of image 0
  CHECK(p[2] == static_cast<float>((51 / 255.0 - 0.2) / 0.1));          // G of image 0
  CHECK(p[4] == 2.0f);                                                  // B of image 0: (1 - 0.5) / 0.25
  CHECK(p[6 + 3] == static_cast<float>((102 / 255.0 - 0.2) / 0.1));     // G of image 1
  CHECK(ds.backgrounds() == std::vector<float>{-1.0f, -2.0f, -2.0f});
  CHECK_THROWS_WITH_AS(ds.normalization(3), doctest::Contains("channel 3 is out of range for 3"), dml::Error);
  // One normalisation for all channels still works; a wrong count is an error.
  Dataset same = Dataset::from_images(s, {Normalization{0.5, 0.5}, -1, {}});
  CHECK(same.channel_norms == std::vector<Normalization>(3, Normalization{0.5, 0.5}));
  opt.channel_normalization.pop_back();
  CHECK_THROWS_WITH_AS(Dataset::from_images(s, opt), doctest::Contains("2 channel normalisation(s) for images of 3"),
                       dml::Error);
  // validate() checks the count too.
  ds.channel_norms.pop_back();
  CHECK_THROWS_WITH_AS(ds.validate(), doctest::Contains("2 normalisation(s) for 3 channel(s)"), dml::Error);
  // make_splits: one channel count for both splits.
  ImageSet grey{1, 1, 2, {0, 255}, {0}};
  CHECK_THROWS_WITH_AS(dml::data::make_splits({s, grey}, {Normalization{0.5, 0.5}, -1, {}}),
                       doctest::Contains("training images have 3 channel(s) but test images 1"), dml::Error);
  ImageSet short_set{2, 1, 2, {0, 255, 51}, {0, 1}, 3};
  CHECK_THROWS_WITH_AS(Dataset::from_images(short_set), doctest::Contains("3 pixel bytes for 2 images of 3 x 1 x 2"),
                       dml::Error);
}

TEST_CASE("Dataset::from_vectors keeps values as given and checks sizes") {
  Dataset ds = numbered({0, 2, 1});
  CHECK(ds.num_classes == 3);
  CHECK(ds.background() == 0.0f);
  CHECK(rows_of(ds) == std::vector<std::int64_t>{0, 1, 2});
  CHECK(ds.channels() == 1);
  CHECK(ds.image_numel() == 4);
  CHECK_THROWS_AS(ds.image(3), dml::Error);
  CHECK_THROWS_AS(Dataset::from_vectors({1, 2, 3}, Shape{1, 2, 2}, {0}), dml::Error);
  CHECK_THROWS_AS(Dataset::from_vectors({1, 2, 3, 4}, Shape{2, 2}, {0}), dml::Error);
  CHECK_THROWS_AS(Dataset::from_vectors({1, 2, 3, 4}, Shape{1, 2, 2}, {5}, 3), dml::Error);
  CHECK_THROWS_AS(Dataset::from_vectors({1, 2, 3, 4}, Shape{1, 2, 2}, {-1}), dml::Error);
}

TEST_CASE("make_splits and load_idx normalise the test split with the training statistics") {
  ImageSet train{2, 1, 2, {0, 255, 255, 0}, {0, 1}};
  ImageSet test{1, 1, 2, {255, 255}, {4}};
  TempDir dir;
  write_set(dir.path, "train", train);
  write_set(dir.path, "t10k", test);
  auto splits = dml::data::load_idx(dir.path);
  CHECK(splits.train.normalization().mean == 0.5);
  CHECK(splits.test.normalization().mean == 0.5);
  CHECK(splits.test.normalization().stddev == 0.5);
  CHECK(splits.test.images.to_vector() == std::vector<float>{1, 1});
  CHECK(splits.train.num_classes == 5);  // over both splits
  CHECK(splits.test.num_classes == 5);
  CHECK(splits.test.labels == std::vector<std::int64_t>{4});

  auto fixed = dml::data::make_splits({train, test}, {Normalization{0, 1}, 10, {}});
  CHECK(fixed.test.images.to_vector() == std::vector<float>{1, 1});
  CHECK(fixed.train.num_classes == 10);
  CHECK_THROWS_AS(dml::data::load_idx(dir.path / "absent"), dml::Error);
}

TEST_CASE("filter_classes remaps to 0..k-1 in the order given and keeps original labels") {
  Dataset ds = numbered({0, 1, 2, 3, 1, 3, 0}, 4, {"zero", "one", "two", "three"});
  Dataset f = dml::data::filter_classes(ds, {3, 1});
  CHECK(rows_of(f) == std::vector<std::int64_t>{1, 3, 4, 5});
  CHECK(f.labels == std::vector<std::int64_t>{1, 0, 1, 0});
  CHECK(f.original_labels == std::vector<std::int64_t>{1, 3, 1, 3});
  CHECK(f.num_classes == 2);
  CHECK(f.class_names == std::vector<std::string>{"three", "one"});
  CHECK(f.channel_norms == ds.channel_norms);

  // A second filter works on the current labels; original_labels still names the first classes.
  Dataset g = dml::data::filter_classes(f, {1});
  CHECK(rows_of(g) == std::vector<std::int64_t>{1, 4});
  CHECK(g.labels == std::vector<std::int64_t>{0, 0});
  CHECK(g.original_labels == std::vector<std::int64_t>{1, 1});

  Dataset k = dml::data::filter_classes(ds, {0, 2}, dml::data::Relabel::kKeep);
  CHECK(rows_of(k) == std::vector<std::int64_t>{0, 2, 6});
  CHECK(k.labels == std::vector<std::int64_t>{0, 2, 0});
  CHECK(k.num_classes == 4);
  CHECK(k.class_names.size() == 4);

  CHECK_THROWS_AS(dml::data::filter_classes(ds, {}), dml::Error);
  CHECK_THROWS_AS(dml::data::filter_classes(ds, {4}), dml::Error);
  CHECK_THROWS_WITH_AS(dml::data::filter_classes(ds, {1, 1}), doctest::Contains("twice"), dml::Error);
}

TEST_CASE("subset copies rows in the order given, repeats allowed") {
  Dataset ds = numbered({0, 1, 2, 0, 1});
  Dataset s = dml::data::subset(ds, {4, 0, 4});
  CHECK(rows_of(s) == std::vector<std::int64_t>{4, 0, 4});
  CHECK(s.labels == std::vector<std::int64_t>{1, 0, 1});
  CHECK(s.num_classes == 3);
  CHECK(!s.images.shares_storage(ds.images));
  CHECK(dml::data::subset(ds, std::vector<std::int64_t>{}).size() == 0);
  CHECK_THROWS_AS(dml::data::subset(ds, {5}), dml::Error);
  CHECK_THROWS_AS(dml::data::subset(ds, {-1}), dml::Error);
}

TEST_CASE("take draws n distinct rows by seed, in original order") {
  std::vector<std::int64_t> labels(50);
  for (int i = 0; i < 50; ++i) labels[i] = i % 5;
  Dataset ds = numbered(labels);
  Dataset a = dml::data::take(ds, 20, 7);
  auto ra = rows_of(a);
  CHECK(ra.size() == 20);
  CHECK(std::set<std::int64_t>(ra.begin(), ra.end()).size() == 20);
  CHECK(std::is_sorted(ra.begin(), ra.end()));
  for (std::size_t i = 0; i < ra.size(); ++i) CHECK(a.labels[i] == ra[i] % 5);
  CHECK(rows_of(dml::data::take(ds, 20, 7)) == ra);
  CHECK(rows_of(dml::data::take(ds, 20, 8)) != ra);
  CHECK(rows_of(dml::data::take(ds, 50, 1)).size() == 50);
  CHECK(dml::data::take(ds, 0, 1).size() == 0);
  CHECK_THROWS_AS(dml::data::take(ds, 51, 1), dml::Error);
  CHECK_THROWS_AS(dml::data::take(ds, -1, 1), dml::Error);
}

TEST_CASE("stratified_split takes round(fraction * n_c) of each class") {
  // Class c has 4 + 2c rows: 4, 6, 8.
  std::vector<std::int64_t> labels;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 4 + 2 * c; ++i) labels.push_back(c);
  Dataset ds = dml::data::subset(numbered(labels), {17, 0, 3, 16, 5, 8, 1, 12, 2, 9, 4, 6, 14, 7, 10, 11, 13, 15});
  auto [first, second] = dml::data::stratified_split(ds, 0.25, 3);
  auto count = [](const Dataset& d, std::int64_t c) { return std::count(d.labels.begin(), d.labels.end(), c); };
  CHECK(count(first, 0) == 1);   // round(1.0)
  CHECK(count(first, 1) == 2);   // round(1.5) away from zero
  CHECK(count(first, 2) == 2);
  CHECK(first.size() + second.size() == ds.size());
  auto a = rows_of(first), b = rows_of(second);
  std::set<std::int64_t> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  CHECK(all.size() == 18);
  // Rows keep the order they had in ds.
  auto position = [&](std::int64_t row) {
    auto r = rows_of(ds);
    return std::find(r.begin(), r.end(), row) - r.begin();
  };
  for (std::size_t i = 1; i < a.size(); ++i) CHECK(position(a[i - 1]) < position(a[i]));
  CHECK(rows_of(dml::data::stratified_split(ds, 0.25, 3).train) == a);
  CHECK(dml::data::stratified_split(ds, 0.0, 3).train.size() == 0);
  CHECK(dml::data::stratified_split(ds, 1.0, 3).test.size() == 0);
  CHECK_THROWS_AS(dml::data::stratified_split(ds, 1.5, 3), dml::Error);
}

TEST_CASE("validate reports inconsistent fields") {
  Dataset ds = numbered({0, 1});
  ds.labels.push_back(0);
  CHECK_THROWS_AS(ds.validate(), dml::Error);
  Dataset e;
  CHECK_THROWS_WITH_AS(e.validate(), doctest::Contains("undefined"), dml::Error);
}

// ---- images decoded on demand (Dataset::source) ---------------------------------------------

namespace {

// Every image of ds as floats, through read_image.
std::vector<float> read_all(const Dataset& ds) {
  std::vector<float> out(static_cast<std::size_t>(ds.size() * ds.image_numel()));
  for (std::int64_t i = 0; i < ds.size(); ++i) ds.read_image(i, out.data() + i * ds.image_numel());
  return out;
}

}  // namespace

TEST_CASE("a Dataset decoded on demand reads the floats of the same bytes held in memory") {
  for (std::int64_t c : {1, 3}) {
    CAPTURE(c);
    const ImageSet set = dml::testing::varied_set(11, c);
    auto [held, lazy, source] = dml::testing::held_and_on_demand(set);
    CHECK(lazy.on_demand());
    CHECK(!held.on_demand());
    CHECK(!lazy.images.defined());
    CHECK(lazy.image_shape() == held.image_shape());
    CHECK(lazy.channel_norms == held.channel_norms);  // computed from the same histogram
    CHECK(lazy.labels == held.labels);
    CHECK(lazy.num_classes == held.num_classes);
    CHECK(source->reads() == 11);  // the statistics read every image once
    CHECK(read_all(lazy) == held.images.to_vector());
    CHECK(read_all(held) == held.images.to_vector());
    const Dataset full = dml::data::decode_all(lazy, 2);
    CHECK(!full.on_demand());
    CHECK(full.images.to_vector() == held.images.to_vector());
    CHECK(full.channel_norms == held.channel_norms);
    full.validate();
    CHECK_THROWS_WITH_AS(lazy.image(0), doctest::Contains("read_image"), dml::Error);
    CHECK_THROWS_WITH_AS(lazy.read_image(11, nullptr), doctest::Contains("out of range"), dml::Error);
  }
}

TEST_CASE("cutting a Dataset decoded on demand moves row numbers, not pixels, and reads the same images") {
  const ImageSet set = dml::testing::varied_set(18, 1, 3);
  auto [held, lazy, source] = dml::testing::held_and_on_demand(set);
  const std::int64_t before = source->reads();
  auto same = [](const Dataset& a, const Dataset& b) {
    CHECK(a.on_demand());
    CHECK(a.labels == b.labels);
    CHECK(a.original_labels == b.original_labels);
    CHECK(a.num_classes == b.num_classes);
    CHECK(read_all(a) == b.images.to_vector());
  };
  same(dml::data::subset(lazy, {4, 0, 4, 17}), dml::data::subset(held, {4, 0, 4, 17}));
  same(dml::data::filter_classes(lazy, {2, 0}), dml::data::filter_classes(held, {2, 0}));
  same(dml::data::take(lazy, 7, 5), dml::data::take(held, 7, 5));
  auto [a, b] = dml::data::stratified_split(lazy, 0.5, 2);
  auto [ha, hb] = dml::data::stratified_split(held, 0.5, 2);
  same(a, ha);
  same(b, hb);
  CHECK(dml::data::subset(lazy, {4}).source_rows == std::vector<std::int64_t>{4});
  // Only the read_all calls above decoded: 4 + 12 + 7 + 18 images.
  CHECK(source->reads() - before == 4 + 12 + 7 + 18);
}

TEST_CASE("Dataset::from_source and validate refuse what does not fit, naming it") {
  const ImageSet set = dml::testing::varied_set(4);
  auto source = std::make_shared<dml::testing::ByteSource>(set);
  const std::vector<std::int64_t> labels = set.labels;
  CHECK_THROWS_WITH_AS(Dataset::from_source(nullptr, {0}, {0}), doctest::Contains("null"), dml::Error);
  CHECK_THROWS_WITH_AS(Dataset::from_source(source, {0, 1}, {0}), doctest::Contains("2 rows but 1 labels"),
                       dml::Error);
  CHECK_THROWS_WITH_AS(Dataset::from_source(source, {0, 4}, {0, 1}),
                       doctest::Contains("row 4 (position 1) is outside the source's 0..3"), dml::Error);
  CHECK_THROWS_WITH_AS(Dataset::from_source(source, {}, {}), doctest::Contains("empty"), dml::Error);
  CHECK(Dataset::from_source(source, {}, {}, {.normalization = Normalization{0.5, 0.25}}).size() == 0);
  CHECK_THROWS_WITH_AS(Dataset::from_source(source, {0}, {0}, {.channel_normalization = {{0, 1}, {0, 1}}}),
                       doctest::Contains("2 channel normalisation(s) for images of 1 channel(s)"), dml::Error);
  // Computing the statistics reads every row: a row that fails is the error, with its own message.
  auto bad = std::make_shared<dml::testing::ByteSource>(set, 2);
  CHECK_THROWS_WITH_AS(Dataset::from_source(bad, {0, 1, 2, 3}, labels),
                       doctest::Contains("source/2.png: corrupt or truncated PNG"), dml::Error);
  Dataset given = Dataset::from_source(bad, {0, 1, 2, 3}, labels, {.normalization = Normalization{0.5, 0.25}});
  std::vector<float> px(20);
  CHECK_THROWS_WITH_AS(given.read_image(2, px.data()), doctest::Contains("source/2.png"), dml::Error);
  CHECK_THROWS_WITH_AS(dml::data::decode_all(given), doctest::Contains("source/2.png"), dml::Error);

  Dataset ds = Dataset::from_source(source, {0, 1, 2, 3}, labels);
  ds.source_rows.pop_back();
  CHECK_THROWS_WITH_AS(ds.validate(), doctest::Contains("3 source rows but 4 labels"), dml::Error);
  ds.source_rows.push_back(9);
  CHECK_THROWS_WITH_AS(ds.validate(), doctest::Contains("source row 9 of sample 3"), dml::Error);
  ds.source_rows.back() = 3;
  ds.validate();
  ds.images = dml::Tensor<float, dml::Cpu>::zeros(Shape{4, 1, 5, 4});
  CHECK_THROWS_WITH_AS(ds.validate(), doctest::Contains("both images"), dml::Error);
}
