// Tests for dml/data/transforms.hpp: exact warps, sampling, reproducibility, batch independence.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dml/data/loader.hpp>
#include <dml/data/transforms.hpp>
#include <set>
#include <utility>
#include <vector>

using dml::Generator;
using dml::data::Augment;
using dml::data::ImageDims;
using dml::data::Warp;

namespace {

constexpr float kFill = -0.5f;

// A C x H x W image of fill with value v at (y, x) in every channel (channel c holds v + c).
std::vector<float> dot(const ImageDims& d, std::int64_t y, std::int64_t x, float v = 1.0f) {
  std::vector<float> img(static_cast<std::size_t>(d.numel()), kFill);
  for (std::int64_t c = 0; c < d.channels; ++c)
    img[static_cast<std::size_t>(c * d.height * d.width + y * d.width + x)] = v + static_cast<float>(c);
  return img;
}

std::vector<float> ramp(const ImageDims& d) {
  std::vector<float> img(static_cast<std::size_t>(d.numel()));
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = 0.25f * static_cast<float>(i) - 3.0f;
  return img;
}

std::vector<float> warped(const std::vector<float>& src, const ImageDims& d, const Warp& w) {
  std::vector<float> out(src.size(), 123.0f);
  dml::data::warp(src.data(), out.data(), d, w, kFill);
  return out;
}

}  // namespace

TEST_CASE("the identity warp and the default Augment copy exactly") {
  ImageDims d{2, 5, 7};
  auto img = ramp(d);
  CHECK(warped(img, d, Warp{}) == img);
  Generator gen(3);
  std::vector<float> out(img.size());
  Augment{}.apply(img.data(), out.data(), d, kFill, gen);
  CHECK(out == img);
  Augment zero{.pad = 0, .rotate_degrees = 0};
  CHECK(zero.identity());
  CHECK(zero.sample(gen) == Warp{});
}

TEST_CASE("a shift moves a single bright pixel by exactly that much and fills with the background") {
  ImageDims d{1, 6, 5};
  auto img = dot(d, 1, 2);
  CHECK(warped(img, d, Warp{.shift_x = 1, .shift_y = -1}) == dot(d, 0, 3));
  CHECK(warped(img, d, Warp{.shift_x = -2, .shift_y = 3}) == dot(d, 4, 0));
  // Shifted out of the image: only background remains.
  CHECK(warped(img, d, Warp{.shift_x = 3}) == std::vector<float>(30, kFill));
  // The background comes in from the edge.
  auto r = ramp(d);
  auto s = warped(r, d, Warp{.shift_x = 1});
  for (std::int64_t y = 0; y < 6; ++y) {
    CHECK(s[y * 5] == kFill);
    for (std::int64_t x = 1; x < 5; ++x) CHECK(s[y * 5 + x] == r[y * 5 + x - 1]);
  }
}

TEST_CASE("each channel fills with its own background, in shifts and in rotations") {
  ImageDims d{3, 4, 4};
  const std::vector<float> fill = {-1.0f, -2.0f, -3.0f};
  const std::vector<float> img(static_cast<std::size_t>(d.numel()), 5.0f);
  for (double degrees : {0.0, 30.0}) {
    CAPTURE(degrees);
    std::vector<float> out(img.size());
    dml::data::warp(img.data(), out.data(), d, Warp{.degrees = degrees, .shift_x = 10}, fill);  // all outside
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t k = 0; k < 16; ++k) CHECK(out[static_cast<std::size_t>(c * 16 + k)] == fill[c]);
  }
  std::vector<float> out(img.size());
  const std::vector<float> two = {1.0f, 2.0f};
  CHECK_THROWS_WITH_AS(dml::data::warp(img.data(), out.data(), d, Warp{}, two),
                       doctest::Contains("2 fill value(s) for 3 channel(s)"), dml::Error);
  // Through the loader: an RGB dataset pads each channel with its own black.
  dml::data::Dataset ds = dml::data::Dataset::from_vectors(img, dml::Shape{3, 4, 4}, {0});
  ds.channel_norms = {{0.5, 0.5}, {0.25, 0.5}, {0.0, 0.25}};  // backgrounds -1, -0.5, 0
  const std::vector<std::int64_t> idx = {0};
  std::int64_t seen_bg = 0;
  dml::data::SampleTransform probe = [&](std::span<float>, const ImageDims&, std::span<const float> bg, Generator&) {
    REQUIRE(bg.size() == 3);
    CHECK(bg[0] == -1.0f);
    CHECK(bg[1] == -0.5f);
    CHECK(bg[2] == 0.0f);
    ++seen_bg;
  };
  dml::data::Batch b = dml::data::make_batch(ds, idx, Augment{.pad = 3}, 7, 0, probe, 1);
  CHECK(seen_bg == 1);
  // The same drawn warp with the per-channel backgrounds, by hand.
  Generator g = dml::data::sample_generator(7, 0, 0);
  const Warp w = Augment{.pad = 3}.sample(g);
  CHECK((w.shift_x != 0 || w.shift_y != 0));  // so that the background shows
  std::vector<float> want(img.size());
  dml::data::warp(img.data(), want.data(), d, w, ds.backgrounds());
  CHECK(b.images.to_vector() == want);
}

TEST_CASE("Augment's pad draws every shift in [-pad, pad] and apply moves the pixel by the drawn shift") {
  ImageDims d{1, 9, 9};
  auto img = dot(d, 4, 4);
  Augment aug{.pad = 2};
  std::set<std::int64_t> xs, ys;
  for (std::int64_t i = 0; i < 200; ++i) {
    Generator g1 = dml::data::sample_generator(5, 0, i), g2 = g1;
    Warp w = aug.sample(g1);
    CHECK(std::abs(w.shift_x) <= 2);
    CHECK(std::abs(w.shift_y) <= 2);
    xs.insert(w.shift_x);
    ys.insert(w.shift_y);
    std::vector<float> out(img.size());
    aug.apply(img.data(), out.data(), d, kFill, g2);
    CHECK(out == dot(d, 4 + w.shift_y, 4 + w.shift_x));
  }
  CHECK(xs.size() == 5);
  CHECK(ys.size() == 5);
}

TEST_CASE("rotation by 0 is the identity; by 90 and 180 degrees it maps pixels exactly") {
  ImageDims d{2, 5, 5};
  auto r = ramp(d);
  CHECK(warped(r, d, Warp{.degrees = 0.0}) == r);
  CHECK(warped(r, d, Warp{.degrees = 360.0}) == r);
  // Counter-clockwise as displayed: right of the centre goes to above it.
  CHECK(warped(dot(d, 2, 4), d, Warp{.degrees = 90.0}) == dot(d, 0, 2));
  CHECK(warped(dot(d, 0, 0), d, Warp{.degrees = 90.0}) == dot(d, 4, 0));
  CHECK(warped(dot(d, 0, 0), d, Warp{.degrees = -90.0}) == dot(d, 0, 4));
  CHECK(warped(dot(d, 1, 3), d, Warp{.degrees = 180.0}) == dot(d, 3, 1));
  // Even-sized images rotate about the point between the middle pixels.
  ImageDims e{1, 4, 4};
  CHECK(warped(dot(e, 1, 3), e, Warp{.degrees = 90.0}) == dot(e, 0, 1));
  // Translation then rotation.
  CHECK(warped(dot(d, 2, 3), d, Warp{.degrees = 90.0, .shift_x = 1}) == dot(d, 0, 2));
}

TEST_CASE("small rotations blend bilinearly and keep the centre pixel") {
  ImageDims d{1, 5, 5};
  auto img = dot(d, 2, 2, 2.0f);
  auto out = warped(img, d, Warp{.degrees = 7.0});
  CHECK(out[12] == 2.0f);  // the centre maps onto itself
  // A constant image stays constant inside, where no background is sampled.
  std::vector<float> flat(25, 0.75f);
  auto f = warped(flat, d, Warp{.degrees = 10.0});
  CHECK(f[12] == doctest::Approx(0.75f));
  CHECK(f[7] == doctest::Approx(0.75f));
  // Near the corners the background comes in.
  CHECK(f[0] < 0.75f);
}

TEST_CASE("flip mirrors left-right before the translation") {
  ImageDims d{1, 3, 4};
  CHECK(warped(dot(d, 1, 0), d, Warp{.flip = true}) == dot(d, 1, 3));
  CHECK(warped(dot(d, 1, 0), d, Warp{.shift_x = -1, .flip = true}) == dot(d, 1, 2));
  CHECK(warped(dot(d, 1, 0), d, Warp{.degrees = 180.0, .flip = true}) == dot(d, 1, 0));
  // Up to rounding, the bilinear path agrees with the integer path.
  auto r = ramp(d);
  auto a = warped(r, d, Warp{.degrees = 1e-12, .shift_x = 1, .flip = true});
  auto b = warped(r, d, Warp{.shift_x = 1, .flip = true});
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]));
}

TEST_CASE("Augment with rotate_degrees = 90 draws angles in range and applies the drawn warp") {
  ImageDims d{1, 7, 7};
  auto r = ramp(d);
  Augment aug{.pad = 1, .rotate_degrees = 90, .hflip = true};
  aug.validate(d);
  int flips = 0;
  for (std::int64_t i = 0; i < 50; ++i) {
    Generator g1 = dml::data::sample_generator(1, 2, i), g2 = g1;
    Warp w = aug.sample(g1);
    CHECK(std::abs(w.degrees) <= 90.0);
    flips += w.flip;
    std::vector<float> out(r.size());
    aug.apply(r.data(), out.data(), d, kFill, g2);
    CHECK(out == warped(r, d, w));
  }
  CHECK(flips > 10);
  CHECK(flips < 40);
}

TEST_CASE("augmentation is reproducible from (seed, epoch, index) and changes with each") {
  ImageDims d{1, 8, 8};
  auto r = ramp(d);
  Augment aug{.pad = 2, .rotate_degrees = 10};
  auto run = [&](std::uint64_t seed, std::int64_t epoch, std::int64_t index) {
    Generator g = dml::data::sample_generator(seed, epoch, index);
    std::vector<float> out(r.size());
    aug.apply(r.data(), out.data(), d, kFill, g);
    return out;
  };
  CHECK(run(1, 0, 0) == run(1, 0, 0));
  CHECK(run(1, 0, 0) != run(2, 0, 0));
  CHECK(run(1, 0, 0) != run(1, 1, 0));
  CHECK(run(1, 0, 0) != run(1, 0, 1));
  Generator a = dml::data::sample_generator(9, 3, 4), b = dml::data::sample_generator(9, 3, 4);
  CHECK(a.state() == b.state());
}

TEST_CASE("a sample's augmentation does not depend on the batch it is in") {
  std::vector<float> v;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 8; ++i) {
    for (int p = 0; p < 36; ++p) v.push_back(static_cast<float>(i * 36 + p));
    labels.push_back(i % 2);
  }
  auto ds = dml::data::Dataset::from_vectors(v, dml::Shape{1, 6, 6}, labels);
  Augment aug{.pad = 2, .rotate_degrees = 20, .hflip = true};
  std::vector<std::int64_t> x{3, 5, 7}, y{7, 1, 0, 3, 6};
  auto bx = dml::data::make_batch(ds, x, aug, 42, 1);
  auto by = dml::data::make_batch(ds, y, aug, 42, 1, {}, 2);
  auto px = bx.images.to_vector(), py = by.images.to_vector();
  auto image = [](const std::vector<float>& all, int k) {
    return std::vector<float>(all.begin() + k * 36, all.begin() + (k + 1) * 36);
  };
  CHECK(image(px, 0) == image(py, 3));  // sample 3
  CHECK(image(px, 2) == image(py, 0));  // sample 7
  CHECK(bx.labels.to_vector() == std::vector<std::int64_t>{1, 1, 1});
  CHECK(image(px, 0) != std::vector<float>(v.begin() + 3 * 36, v.begin() + 4 * 36));  // it was augmented
  CHECK_THROWS_AS(dml::data::make_batch(ds, std::vector<std::int64_t>{8}, aug, 42, 1), dml::Error);
}

TEST_CASE("bad Augment options are errors") {
  CHECK_THROWS_AS((Augment{.pad = -1}.validate()), dml::Error);
  CHECK_THROWS_AS((Augment{.rotate_degrees = -5}.validate()), dml::Error);
  CHECK_THROWS_AS((Augment{.rotate_degrees = 181}.validate()), dml::Error);
  CHECK_THROWS_AS((Augment{.rotate_degrees = std::nan("")}.validate()), dml::Error);
  CHECK_THROWS_AS((Augment{.pad = 5}.validate(ImageDims{1, 5, 9})), dml::Error);
  CHECK_NOTHROW((Augment{.pad = 4}.validate(ImageDims{1, 5, 9})));
  CHECK_THROWS_AS((Augment{}.validate(ImageDims{0, 5, 5})), dml::Error);
}
