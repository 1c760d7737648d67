// Tests for dml/data/transforms.hpp: exact warps, sampling, reproducibility, batch independence.
#include <doctest/doctest.h>

#include <algorithm>
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

// Random-resized crop and colour jitter (issue 16, item 3).
namespace test_transforms_jitter {

using dml::data::CropBox;
using dml::data::Jitter;
using dml::data::Normalization;

// The background of the file's warped() (ramp() and warped() come from the top of the file).
constexpr float kBg = kFill;

// An RGB image whose pixel values (in [0, 1]) vary over channels and positions.
std::vector<float> colours(const ImageDims& d) {
  std::vector<float> img(static_cast<std::size_t>(d.numel()));
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>((i * 37 + 11) % 101) / 100.0f;
  return img;
}

// Normalises pixel values with one Normalization per channel, and back.
std::vector<float> normalise(std::vector<float> img, const ImageDims& d, const std::vector<Normalization>& n) {
  const std::int64_t plane = d.height * d.width;
  for (std::int64_t c = 0; c < d.channels; ++c)
    for (std::int64_t k = 0; k < plane; ++k) {
      float& v = img[static_cast<std::size_t>(c * plane + k)];
      v = static_cast<float>((v - n[static_cast<std::size_t>(c)].mean) / n[static_cast<std::size_t>(c)].stddev);
    }
  return img;
}
std::vector<double> pixels(const std::vector<float>& img, const ImageDims& d, const std::vector<Normalization>& n) {
  const std::int64_t plane = d.height * d.width;
  std::vector<double> out(img.size());
  for (std::int64_t c = 0; c < d.channels; ++c)
    for (std::int64_t k = 0; k < plane; ++k) {
      const auto i = static_cast<std::size_t>(c * plane + k);
      out[i] = img[i] * n[static_cast<std::size_t>(c)].stddev + n[static_cast<std::size_t>(c)].mean;
    }
  return out;
}

const std::vector<Normalization> kNorms = {{0.5, 0.25}, {0.4, 0.3}, {0.3, 0.2}};

TEST_CASE("a crop of the whole image is the identity bit for bit, alone and under shift and rotation") {
  ImageDims d{3, 5, 7};
  auto r = ramp(d);
  const CropBox whole{0, 0, 7, 5};
  CHECK(warped(r, d, Warp{.crop = whole}) == r);
  CHECK(warped(r, d, Warp{.shift_x = 1, .shift_y = -2, .flip = true, .crop = whole}) ==
        warped(r, d, Warp{.shift_x = 1, .shift_y = -2, .flip = true}));
  CHECK(warped(r, d, Warp{.degrees = 30, .crop = whole}) == warped(r, d, Warp{.degrees = 30}));
  // A crop that leaves the image is an error.
  CHECK_THROWS_WITH_AS(warped(r, d, Warp{.crop = {6, 0, 2, 2}}), doctest::Contains("crop 2 x 2 at (6, 0)"),
                       dml::Error);
  CHECK_THROWS_AS(warped(r, d, Warp{.crop = {1, 1, 0, 3}}), dml::Error);
}

TEST_CASE("a known crop resizes a ramp to the exact bilinear values (half-pixel centres, clamped at the crop)") {
  ImageDims d{2, 6, 4};
  auto r = ramp(d);
  const CropBox box{.x = 1, .y = 2, .width = 2, .height = 3};  // scale 1/2 on both axes
  // Source coordinates box + (q + 0.5) / 2 - 0.5, clamped into columns 1..2 and rows 2..4.
  const double ux[4] = {1.0, 1.25, 1.75, 2.0};
  const double uy[6] = {2.0, 2.25, 2.75, 3.25, 3.75, 4.0};
  auto expect = [&](std::int64_t c, std::int64_t y, std::int64_t x) {
    return static_cast<float>(0.25 * (static_cast<double>(c * 24) + uy[y] * 4 + ux[x]) - 3.0);  // ramp is linear
  };
  auto out = warped(r, d, Warp{.crop = box});
  for (std::int64_t c = 0; c < 2; ++c)
    for (std::int64_t y = 0; y < 6; ++y)
      for (std::int64_t x = 0; x < 4; ++x) {
        CAPTURE(c);
        CAPTURE(y);
        CAPTURE(x);
        CHECK(out[static_cast<std::size_t>(c * 24 + y * 4 + x)] == expect(c, y, x));
      }
  // The crop comes first: a shift then moves the resized crop, and the background comes in.
  auto shifted = warped(r, d, Warp{.shift_x = 1, .crop = box});
  auto flipped = warped(r, d, Warp{.flip = true, .crop = box});
  for (std::int64_t c = 0; c < 2; ++c)
    for (std::int64_t y = 0; y < 6; ++y) {
      CHECK(shifted[static_cast<std::size_t>(c * 24 + y * 4)] == kBg);
      for (std::int64_t x = 1; x < 4; ++x)
        CHECK(shifted[static_cast<std::size_t>(c * 24 + y * 4 + x)] == expect(c, y, x - 1));
      for (std::int64_t x = 0; x < 4; ++x)
        CHECK(flipped[static_cast<std::size_t>(c * 24 + y * 4 + x)] == expect(c, y, 3 - x));
    }
  // A crop that only moves (same size as the image) copies.
  ImageDims e{1, 4, 4};
  auto re = ramp(e);
  auto half = warped(re, e, Warp{.crop = {1, 0, 3, 4}});
  CHECK(half[0] == re[1]);
  CHECK(half[3] == re[3]);
  // Under a rotation the crop's edge pixels blend with the background one pixel out, as without a crop.
  auto rot = warped(std::vector<float>(16, 1.0f), e, Warp{.degrees = 10, .crop = {0, 0, 2, 2}});
  CHECK(rot[5] == doctest::Approx(1.0f));
  CHECK(rot[0] < 1.0f);
  CHECK(rot[0] > kBg);
}

TEST_CASE("resized crops keep to the area and aspect ranges, and impossible ranges fall back to the centre") {
  const ImageDims d{1, 30, 40};
  const Augment aug{.resized_crop_scale = {0.08, 1.0}};
  aug.validate(d);
  double min_frac = 1, max_frac = 0, min_ratio = 10, max_ratio = 0;
  std::set<std::int64_t> lefts;
  for (std::int64_t i = 0; i < 2000; ++i) {
    Generator g = dml::data::sample_generator(3, 0, i);
    const CropBox b = aug.sample(g, d).crop;
    REQUIRE(b.width >= 1);
    REQUIRE(b.height >= 1);
    REQUIRE(b.x >= 0);
    REQUIRE(b.y >= 0);
    REQUIRE(b.x + b.width <= 40);
    REQUIRE(b.y + b.height <= 30);
    const double w = static_cast<double>(b.width), h = static_cast<double>(b.height);
    // Width and height are sqrt(A s r) and sqrt(A s / r) rounded: each within 1/2 of them.
    CHECK((w + 0.5) * (h + 0.5) >= 0.08 * 1200);
    CHECK((w - 0.5) * (h - 0.5) <= 1.0 * 1200);
    CHECK((w - 0.5) / (h + 0.5) <= 4.0 / 3.0);
    CHECK((w + 0.5) / std::max(h - 0.5, 0.5) >= 3.0 / 4.0);
    min_frac = std::min(min_frac, w * h / 1200), max_frac = std::max(max_frac, w * h / 1200);
    min_ratio = std::min(min_ratio, w / h), max_ratio = std::max(max_ratio, w / h);
    lefts.insert(b.x);
  }
  CHECK(min_frac < 0.1);
  CHECK(max_frac > 0.9);
  CHECK(min_ratio < 0.8);
  CHECK(max_ratio > 1.25);
  CHECK(lefts.size() > 20);
  // Wider than any fitting crop: ten misses (20 uniforms, 10 Philox blocks), then the centred
  // full-width crop with the ratio clamped to 3.
  const ImageDims sq{1, 32, 32};
  Generator g(1);
  CHECK(Augment{.resized_crop_scale = {0.9, 1.0}, .resized_crop_ratio = {3.0, 4.0}}.sample(g, sq).crop ==
        CropBox{0, 10, 32, 11});  // height round(32 / 3) = 11, top (32 - 11) / 2
  CHECK(g.state().counter == 10);
  CHECK(g.state().unused == 0);
  CHECK(Augment{.resized_crop_scale = {0.9, 1.0}, .resized_crop_ratio = {0.1, 0.2}}.sample(g, sq).crop ==
        CropBox{13, 0, 6, 32});  // width round(32 * 0.2) = 6
  // A range that always fits draws two uniforms and two offsets.
  Generator h(2);
  CHECK(Augment{.resized_crop_scale = {1.0, 1.0}, .resized_crop_ratio = {1.0, 1.0}}.sample(h, sq).crop ==
        CropBox{0, 0, 32, 32});
  CHECK(h.state().counter == 2);
  // sample() without the image size cannot draw a crop.
  CHECK_THROWS_WITH_AS(aug.sample(g), doctest::Contains("needs the image size"), dml::Error);
}

TEST_CASE("new options draw after the old ones, so the old draws are unchanged") {
  const ImageDims d{3, 9, 9};
  const Augment old{.pad = 2, .rotate_degrees = 10, .hflip = true};
  Augment more = old;
  more.resized_crop_scale = {0.2, 1.0};
  more.brightness = 0.3;
  more.hue = 0.1;
  for (std::int64_t i = 0; i < 20; ++i) {
    Generator a = dml::data::sample_generator(4, 1, i), b = a, c = a;
    const Warp wa = old.sample(a, d), wb = more.sample(b, d);
    CHECK(wa == old.sample(c));
    CHECK(wb.flip == wa.flip);
    CHECK(wb.shift_x == wa.shift_x);
    CHECK(wb.shift_y == wa.shift_y);
    CHECK(wb.degrees == wa.degrees);
    CHECK(wa.crop == CropBox{});
  }
  // Colour options alone leave the warp alone.
  Augment colour{.brightness = 0.5};
  Generator g(5);
  CHECK(colour.sample(g, d) == Warp{});
  CHECK(!colour.identity());
  CHECK((Augment{.resized_crop_ratio = {0.5, 2.0}}.identity()));
  CHECK(!(Augment{.resized_crop_scale = {1.0, 1.0}}.identity()));
}

TEST_CASE("a neutral jitter is the identity, and a near-neutral one undoes its normalisation") {
  const ImageDims d{3, 4, 5};
  const auto img = normalise(colours(d), d, kNorms);
  auto out = img;
  dml::data::jitter(out.data(), d, Jitter{}, kNorms);
  CHECK(out == img);
  dml::data::jitter(out.data(), d, Jitter{.brightness = 1.0, .contrast = 1.0}, kNorms);
  CHECK(out == img);
  dml::data::jitter(out.data(), d, Jitter{.brightness = 1.0 + 1e-12, .contrast = 1.0 - 1e-12}, kNorms);
  for (std::size_t i = 0; i < img.size(); ++i) CHECK(out[i] == doctest::Approx(img[i]).epsilon(1e-5));
  // The Augment: colour options off draw nothing and change nothing.
  Generator g(1);
  CHECK(Augment{}.sample_jitter(g) == Jitter{});
  CHECK(g.state().counter == 0);
}

TEST_CASE("jitter factors are drawn uniform in [max(0, 1 - v), 1 + v], hue shifts in [-hue, hue]") {
  const Augment aug{.brightness = 0.4, .contrast = 1.5, .saturation = 0.2, .hue = 0.1};
  double lo[4] = {9, 9, 9, 9}, hi[4] = {-9, -9, -9, -9};
  for (std::int64_t i = 0; i < 2000; ++i) {
    Generator g = dml::data::sample_generator(2, 0, i);
    const Jitter j = aug.sample_jitter(g);
    const double v[4] = {j.brightness, j.contrast, j.saturation, j.hue};
    for (int k = 0; k < 4; ++k) lo[k] = std::min(lo[k], v[k]), hi[k] = std::max(hi[k], v[k]);
    CHECK(g.state().counter == 2);  // four uniforms, two words each
  }
  CHECK(lo[0] >= 0.6);
  CHECK(lo[0] < 0.61);
  CHECK(hi[0] < 1.4);
  CHECK(hi[0] > 1.39);
  CHECK(lo[1] >= 0.0);  // 1 - 1.5 is cut at 0
  CHECK(lo[1] < 0.01);
  CHECK(hi[1] > 2.49);
  CHECK(lo[2] >= 0.8);
  CHECK(hi[2] < 1.2);
  CHECK(lo[3] >= -0.1);
  CHECK(lo[3] < -0.099);
  CHECK(hi[3] < 0.1);
  CHECK(hi[3] > 0.099);
}

TEST_CASE("brightness and contrast on constant images give the clamped values in normalised units") {
  const ImageDims d{1, 3, 3};
  const std::vector<Normalization> n = {{0.5, 0.25}};
  const std::vector<float> grey(9, 0.4f);  // pixel 0.6
  auto run = [&](const Jitter& j) {
    auto out = grey;
    dml::data::jitter(out.data(), d, j, n);
    for (float v : out) CHECK(v == out[0]);
    return out[0];
  };
  CHECK(run(Jitter{.brightness = 1.5}) == doctest::Approx(1.6));   // 0.9
  CHECK(run(Jitter{.brightness = 2.0}) == doctest::Approx(2.0));   // 1.2, clamped to 1
  CHECK(run(Jitter{.brightness = 0.0}) == doctest::Approx(-2.0));  // black: the background
  CHECK(run(Jitter{.contrast = 1.7}) == doctest::Approx(0.4));     // the mean of a constant image is itself
  CHECK(run(Jitter{.brightness = 0.5, .contrast = 3.0}) == doctest::Approx(-0.8));  // 0.3: contrast after brightness
  // Contrast 0 on RGB: every pixel becomes the mean grey value, in every channel.
  const ImageDims rgb{3, 4, 5};
  auto img = normalise(colours(rgb), rgb, kNorms);
  const auto before = pixels(img, rgb, kNorms);
  double mean = 0;
  for (std::int64_t k = 0; k < 20; ++k)
    mean += 0.2989 * before[static_cast<std::size_t>(k)] + 0.587 * before[static_cast<std::size_t>(20 + k)] +
            0.114 * before[static_cast<std::size_t>(40 + k)];
  mean /= 20;
  dml::data::jitter(img.data(), rgb, Jitter{.contrast = 0.0}, kNorms);
  for (double p : pixels(img, rgb, kNorms)) CHECK(p == doctest::Approx(mean).epsilon(1e-5));
}

TEST_CASE("saturation 0 turns an RGB image grey, and hue shifts follow HSV") {
  const ImageDims d{3, 4, 5};
  auto img = normalise(colours(d), d, kNorms);
  const auto before = pixels(img, d, kNorms);
  dml::data::jitter(img.data(), d, Jitter{.saturation = 0.0}, kNorms);
  const auto after = pixels(img, d, kNorms);
  for (std::size_t k = 0; k < 20; ++k) {
    const double grey = 0.2989 * before[k] + 0.587 * before[20 + k] + 0.114 * before[40 + k];
    CHECK(after[k] == doctest::Approx(grey).epsilon(1e-5));
    CHECK(after[20 + k] == doctest::Approx(grey).epsilon(1e-5));
    CHECK(after[40 + k] == doctest::Approx(grey).epsilon(1e-5));
  }
  // Hue: single pixels against Python's colorsys (rgb_to_hsv, (h + shift) mod 1, hsv_to_rgb).
  const ImageDims px{3, 1, 1};
  const std::vector<Normalization> unit = {{}};
  auto hue = [&](std::vector<float> p, double shift) {
    dml::data::jitter(p.data(), px, Jitter{.hue = shift}, unit);
    return p;
  };
  auto h1 = hue({0.2f, 0.4f, 0.8f}, 0.25);
  CHECK(h1[0] == doctest::Approx(0.8));
  CHECK(h1[1] == doctest::Approx(0.2));
  CHECK(h1[2] == doctest::Approx(0.7));
  auto h2 = hue({0.9f, 0.5f, 0.1f}, -0.4);
  CHECK(h2[0] == doctest::Approx(0.18));
  CHECK(h2[1] == doctest::Approx(0.1));
  CHECK(h2[2] == doctest::Approx(0.9));
  auto red = hue({1.0f, 0.0f, 0.0f}, 1.0 / 3.0);  // to green
  CHECK(red[0] == doctest::Approx(0.0));
  CHECK(red[1] == doctest::Approx(1.0));
  CHECK(red[2] == doctest::Approx(0.0));
  CHECK(hue({0.3f, 0.3f, 0.3f}, 0.5) == std::vector<float>{0.3f, 0.3f, 0.3f});
  // Saturation and hue need three channels.
  std::vector<float> one(9, 0.5f);
  CHECK_THROWS_WITH_AS(dml::data::jitter(one.data(), ImageDims{1, 3, 3}, Jitter{.saturation = 0.5}, unit),
                       doctest::Contains("saturation and hue need 3 channels"), dml::Error);
  CHECK_THROWS_WITH_AS(dml::data::jitter(img.data(), d, Jitter{.brightness = 2}, std::vector<Normalization>(2)),
                       doctest::Contains("2 normalisation(s) for 3 channel(s)"), dml::Error);
}

TEST_CASE("bad crop and jitter options are errors that name the field and the value") {
  auto fails = [](const Augment& a, const char* what) {
    CHECK_THROWS_WITH_AS(a.validate(), doctest::Contains(what), dml::Error);
  };
  fails(Augment{.resized_crop_scale = {0.5, 0.2}},
        "resized_crop_scale must be {lo, hi} with 0 < lo <= hi <= 1, got {0.5, 0.2}");
  fails(Augment{.resized_crop_scale = {0.0, 1.0}}, "resized_crop_scale");
  fails(Augment{.resized_crop_scale = {0.1, 1.5}}, "got {0.1, 1.5}");
  fails(Augment{.resized_crop_scale = {0.1, std::nan("")}}, "resized_crop_scale");
  fails(Augment{.resized_crop_ratio = {2.0, 1.0}}, "resized_crop_ratio must be {lo, hi} with 0 < lo <= hi, got {2, 1}");
  fails(Augment{.resized_crop_ratio = {0.0, 1.0}}, "resized_crop_ratio");
  fails(Augment{.brightness = -0.1}, "brightness must be >= 0, got -0.1");
  fails(Augment{.contrast = std::nan("")}, "contrast must be >= 0");
  fails(Augment{.saturation = -1}, "saturation must be >= 0, got -1");
  fails(Augment{.hue = 0.6}, "hue must be in [0, 0.5], got 0.6");
  fails(Augment{.hue = -0.1}, "hue must be in [0, 0.5], got -0.1");
  CHECK_NOTHROW((Augment{.resized_crop_scale = {0.08, 1.0}, .brightness = 0.4, .contrast = 0.4, .saturation = 0.4,
                         .hue = 0.5}.validate(ImageDims{3, 8, 8})));
  // Channels.
  const ImageDims grey{1, 28, 28};
  CHECK_NOTHROW((Augment{.brightness = 0.4, .contrast = 0.4}.validate(grey)));
  CHECK_THROWS_WITH_AS((Augment{.saturation = 0.4}.validate(grey)),
                       doctest::Contains("saturation 0.4 needs 3 (RGB) channels, the images have 1"), dml::Error);
  CHECK_THROWS_WITH_AS((Augment{.hue = 0.1}.validate(grey)),
                       doctest::Contains("hue 0.1 needs 3 (RGB) channels, the images have 1"), dml::Error);
  CHECK_THROWS_WITH_AS((Augment{.brightness = 0.1}.validate(ImageDims{2, 4, 4})),
                       doctest::Contains("colour jitter needs 1 or 3 channels, the images have 2"), dml::Error);
}

TEST_CASE("crop + jitter is reproducible per sample, finite, and stays within black..white") {
  const ImageDims d{3, 12, 10};
  const auto img = normalise(colours(d), d, kNorms);
  std::vector<float> fill;
  for (const auto& n : kNorms) fill.push_back(static_cast<float>(-n.mean / n.stddev));
  const Augment aug{.pad = 2, .rotate_degrees = 15, .hflip = true, .resized_crop_scale = {0.08, 1.0},
                    .brightness = 0.4, .contrast = 0.4, .saturation = 0.4, .hue = 0.1};
  aug.validate(d);
  auto run = [&](std::uint64_t seed, std::int64_t epoch, std::int64_t index) {
    Generator g = dml::data::sample_generator(seed, epoch, index);
    std::vector<float> out(img.size());
    aug.apply(img.data(), out.data(), d, fill, kNorms, g);
    return out;
  };
  CHECK(run(1, 0, 0) == run(1, 0, 0));
  CHECK(run(1, 0, 0) != run(1, 0, 1));
  CHECK(run(1, 0, 0) != run(1, 1, 0));
  CHECK(run(1, 0, 0) != run(2, 0, 0));
  for (std::int64_t i = 0; i < 50; ++i) {
    const auto out = run(7, 0, i);
    for (double p : pixels(out, d, kNorms)) {
      REQUIRE(std::isfinite(p));
      CHECK(p >= -1e-6);
      CHECK(p <= 1 + 1e-6);
    }
    // apply is warp then jitter of the drawn values.
    Generator g = dml::data::sample_generator(7, 0, i);
    const Warp w = aug.sample(g, d);
    const Jitter j = aug.sample_jitter(g);
    std::vector<float> want(img.size());
    dml::data::warp(img.data(), want.data(), d, w, fill);
    dml::data::jitter(want.data(), d, j, kNorms);
    CHECK(out == want);
  }
}

TEST_CASE("an RGB dataset runs crop + jitter through the DataLoader, deterministically, with its own normalisation") {
  const ImageDims d{3, 12, 10};
  std::vector<float> v;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 10; ++i) {
    auto img = colours(d);
    for (float& p : img) p = std::fmod(p + 0.07f * static_cast<float>(i), 1.0f);
    img = normalise(img, d, kNorms);
    v.insert(v.end(), img.begin(), img.end());
    labels.push_back(i % 3);
  }
  auto ds = dml::data::Dataset::from_vectors(v, dml::Shape{3, 12, 10}, labels);
  ds.channel_norms = kNorms;
  const Augment aug{.hflip = true, .resized_crop_scale = {0.08, 1.0}, .brightness = 0.4, .contrast = 0.4,
                    .saturation = 0.4, .hue = 0.1};
  auto epoch = [&](bool prefetch, int threads) {
    dml::data::DataLoader loader(ds, {.batch_size = 4, .seed = 3, .prefetch = prefetch, .augment = aug,
                                      .threads = threads});
    std::vector<std::vector<float>> out;
    std::vector<std::int64_t> rows;
    for (dml::data::Batch& b : loader) {
      CHECK(b.images.shape() == dml::Shape{b.size(), 3, 12, 10});
      out.push_back(b.images.to_vector());
      rows.insert(rows.end(), b.indices.begin(), b.indices.end());
    }
    return std::make_pair(out, rows);
  };
  const auto a = epoch(true, 1);
  CHECK(a.first.size() == 3);
  CHECK(epoch(true, 1) == a);
  CHECK(epoch(false, 1) == a);
  CHECK(epoch(false, 2) == a);
  // Sample by sample: what apply gives with the dataset's backgrounds and normalisations.
  const auto per = static_cast<std::size_t>(d.numel());
  const std::vector<float> all = [&] {
    std::vector<float> flat;
    for (const auto& b : a.first) flat.insert(flat.end(), b.begin(), b.end());
    return flat;
  }();
  for (std::size_t k = 0; k < a.second.size(); ++k) {
    const std::int64_t i = a.second[k];
    Generator g = dml::data::sample_generator(3, 0, i);
    std::vector<float> want(per), unit(per);
    Generator g2 = g;
    aug.apply(ds.image(i), want.data(), d, ds.backgrounds(), ds.channel_norms, g);
    CHECK(std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(k * per),
                             all.begin() + static_cast<std::ptrdiff_t>((k + 1) * per)) == want);
    aug.apply(ds.image(i), unit.data(), d, ds.backgrounds(), g2);  // without the normalisation: other values
    CHECK(unit != want);
    for (float p : want) REQUIRE(std::isfinite(p));
  }
  // A grey dataset refuses saturation, naming it.
  auto grey = dml::data::Dataset::from_vectors(std::vector<float>(2 * 16, 0.5f), dml::Shape{1, 4, 4}, {0, 1});
  CHECK_THROWS_WITH_AS(dml::data::DataLoader(grey, {.batch_size = 2, .augment = {.saturation = 0.4}}),
                       doctest::Contains("saturation 0.4 needs 3 (RGB) channels"), dml::Error);
  CHECK_NOTHROW(dml::data::DataLoader(grey, {.batch_size = 2, .augment = {.resized_crop_scale = {0.5, 1.0},
                                                                          .brightness = 0.4, .contrast = 0.4}}));
}

}  // namespace test_transforms_jitter
