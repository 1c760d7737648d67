// dml/data/transforms.hpp: seeded geometric augmentation of single images
// (float, [C, H, W], row major): flip, translation by padding + random crop, and
// small rotations, done in one bilinear pass.
//
// Randomness comes from a per-sample stream, sample_generator(seed, epoch, index),
// so an augmented image depends only on (seed, epoch, dataset index): never on the
// batch it lands in, thread timing or prefetch.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numbers>
#include <span>

#include "../config.hpp"
#include "../core/random.hpp"

namespace dml::data {

// The extent of one image.
struct ImageDims {
  std::int64_t channels = 1, height = 0, width = 0;
  std::int64_t numel() const noexcept { return channels * height * width; }
};

// One deterministic warp: out = rotate(translate(flip(src))).
struct Warp {
  double degrees = 0.0;                   // counter-clockwise as displayed (y down), about ((W-1)/2, (H-1)/2)
  std::int64_t shift_x = 0, shift_y = 0;  // content moves right / down by this many pixels
  bool flip = false;                      // mirror left-right (x -> W-1-x)
  friend bool operator==(const Warp&, const Warp&) = default;
};

namespace detail {

// splitmix64 finaliser: a bijective 64-bit mix.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
constexpr std::uint64_t hash_combine(std::uint64_t a, std::uint64_t b) noexcept { return mix64(mix64(a) ^ b); }

// Domain tags that keep the shuffle and augmentation streams apart.
inline constexpr std::uint64_t kShuffleStream = 0x53485546464C45ull;  // "SHUFFLE"
inline constexpr std::uint64_t kAugmentStream = 0x4155474D454E54ull;  // "AUGMENT"

// Snaps a coordinate within 1e-9 of an integer onto it, so that exact rotations
// (90 degrees and multiples) copy pixels instead of blending neighbours.
inline double snap(double v) noexcept {
  const double r = std::nearbyint(v);
  return std::abs(v - r) < 1e-9 ? r : v;
}

}  // namespace detail

// The random stream for sample `index` of epoch `epoch` under `seed`: Philox key
// hash(seed, epoch, index), counter 0. A pure function of its arguments.
inline Generator sample_generator(std::uint64_t seed, std::int64_t epoch, std::int64_t index) {
  const std::uint64_t key = detail::hash_combine(
      detail::hash_combine(detail::hash_combine(seed, detail::kAugmentStream), static_cast<std::uint64_t>(epoch)),
      static_cast<std::uint64_t>(index));
  return Generator(key);
}

// Applies `w` to one image: src and dst are dims.numel() floats each and must not
// overlap. Pixels that come from outside the image read `fill`: one value per
// channel, or one for all. Integer-only warps (degrees == 0) copy exactly; others
// sample bilinearly. Throws dml::Error when fill has neither 1 nor C values.
inline void warp(const float* src, float* dst, const ImageDims& dims, const Warp& w, std::span<const float> fill) {
  const std::int64_t C = dims.channels, H = dims.height, W = dims.width, plane = H * W;
  DML_CHECK(fill.size() == 1 || static_cast<std::int64_t>(fill.size()) == C, "warp: ", fill.size(),
            " fill value(s) for ", C, " channel(s)");
  auto fill_of = [&](std::int64_t c) { return fill[fill.size() == 1 ? 0 : static_cast<std::size_t>(c)]; };
  if (w.degrees == 0.0) {
    for (std::int64_t y = 0; y < H; ++y) {
      const std::int64_t sy = y - w.shift_y;
      for (std::int64_t x = 0; x < W; ++x) {
        std::int64_t sx = x - w.shift_x;
        if (w.flip) sx = W - 1 - sx;
        const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
        for (std::int64_t c = 0; c < C; ++c)
          dst[c * plane + y * W + x] = inside ? src[c * plane + sy * W + sx] : fill_of(c);
      }
    }
    return;
  }
  const double rad = w.degrees * std::numbers::pi / 180.0;
  const double cs = std::cos(rad), sn = std::sin(rad);
  const double cx = (static_cast<double>(W) - 1) / 2, cy = (static_cast<double>(H) - 1) / 2;
  for (std::int64_t y = 0; y < H; ++y) {
    for (std::int64_t x = 0; x < W; ++x) {
      // Inverse rotation of the output offset, then undo the translation and the flip.
      const double ox = static_cast<double>(x) - cx, oy = static_cast<double>(y) - cy;
      double qx = detail::snap(cx + ox * cs - oy * sn - static_cast<double>(w.shift_x));
      const double qy = detail::snap(cy + ox * sn + oy * cs - static_cast<double>(w.shift_y));
      if (w.flip) qx = static_cast<double>(W) - 1 - qx;
      const double fx0 = std::floor(qx), fy0 = std::floor(qy);
      const double ax = qx - fx0, ay = qy - fy0;
      const auto x0 = static_cast<std::int64_t>(fx0), y0 = static_cast<std::int64_t>(fy0);
      const bool in_x0 = x0 >= 0 && x0 < W, in_x1 = x0 + 1 >= 0 && x0 + 1 < W;
      const bool in_y0 = y0 >= 0 && y0 < H, in_y1 = y0 + 1 >= 0 && y0 + 1 < H;
      const double w00 = (1 - ax) * (1 - ay), w01 = ax * (1 - ay), w10 = (1 - ax) * ay, w11 = ax * ay;
      for (std::int64_t c = 0; c < C; ++c) {
        const float* s = src + c * plane;
        const float fill = fill_of(c);
        const double v00 = in_y0 && in_x0 ? s[y0 * W + x0] : fill;
        const double v01 = in_y0 && in_x1 ? s[y0 * W + x0 + 1] : fill;
        const double v10 = in_y1 && in_x0 ? s[(y0 + 1) * W + x0] : fill;
        const double v11 = in_y1 && in_x1 ? s[(y0 + 1) * W + x0 + 1] : fill;
        // Zero weights skip their neighbour, so exact integer coordinates copy bit for bit.
        double v = 0;
        if (w00 != 0) v += w00 * v00;
        if (w01 != 0) v += w01 * v01;
        if (w10 != 0) v += w10 * v10;
        if (w11 != 0) v += w11 * v11;
        dst[c * plane + y * W + x] = static_cast<float>(v);
      }
    }
  }
}
// warp with one fill value for every channel.
inline void warp(const float* src, float* dst, const ImageDims& dims, const Warp& w, float fill) {
  warp(src, dst, dims, w, std::span<const float>(&fill, 1));
}

// Random augmentation, as a value: Augment{.pad = 2, .rotate_degrees = 10}.
// The default is the identity.
struct Augment {
  // Translation by an integer in [-pad, pad] on each axis, uniform and independent:
  // pad by `pad` pixels of background, then crop H x W at a random offset.
  std::int64_t pad = 0;
  // Rotation by an angle uniform in [-rotate_degrees, rotate_degrees].
  double rotate_degrees = 0.0;
  // Left-right mirror with probability 1/2. Off by default: digits are not symmetric.
  bool hflip = false;

  bool identity() const noexcept { return pad == 0 && rotate_degrees == 0.0 && !hflip; }

  // Throws dml::Error unless pad >= 0 and 0 <= rotate_degrees <= 180 (finite).
  void validate() const {
    DML_CHECK(pad >= 0, "Augment: pad must be >= 0, got ", pad);
    DML_CHECK(std::isfinite(rotate_degrees) && rotate_degrees >= 0.0 && rotate_degrees <= 180.0,
              "Augment: rotate_degrees must be in [0, 180], got ", rotate_degrees);
  }
  // validate(), and pad must leave some of an image of `dims` visible (pad < H and pad < W).
  void validate(const ImageDims& dims) const {
    validate();
    DML_CHECK(dims.channels >= 1 && dims.height >= 1 && dims.width >= 1, "Augment: bad image size ", dims.channels,
              " x ", dims.height, " x ", dims.width);
    DML_CHECK(pad < dims.height && pad < dims.width, "Augment: pad ", pad, " is not smaller than the image (",
              dims.height, " x ", dims.width, ")");
  }

  // Draws one Warp from gen, in a fixed order: flip (when hflip), crop x then
  // crop y (when pad > 0), angle (when rotate_degrees > 0).
  Warp sample(Generator& gen) const {
    Warp w;
    if (hflip) w.flip = gen.uniform() < 0.5;
    if (pad > 0) {
      const auto span = static_cast<std::uint64_t>(2 * pad + 1);
      w.shift_x = pad - static_cast<std::int64_t>(gen.below(span));
      w.shift_y = pad - static_cast<std::int64_t>(gen.below(span));
    }
    if (rotate_degrees > 0.0) w.degrees = (2.0 * gen.uniform() - 1.0) * rotate_degrees;
    return w;
  }

  // dst = warp(src, sample(gen)) with background `fill` (per channel, or one for all).
  void apply(const float* src, float* dst, const ImageDims& dims, std::span<const float> fill, Generator& gen) const {
    warp(src, dst, dims, sample(gen), fill);
  }
  void apply(const float* src, float* dst, const ImageDims& dims, float fill, Generator& gen) const {
    warp(src, dst, dims, sample(gen), fill);
  }
};

// An extra per-sample step, run in place after Augment with the same stream:
// (image, its dims, the background value of each channel, the sample's
// generator). May be called from several threads at once (different images).
using SampleTransform = std::function<void(std::span<float> image, const ImageDims& dims,
                                           std::span<const float> background, Generator& gen)>;

}  // namespace dml::data
