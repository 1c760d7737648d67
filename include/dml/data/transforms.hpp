// dml/data/transforms.hpp: seeded augmentation of single images (float, [C, H, W],
// row major): random-resized crop, flip, translation by padding + random crop and
// small rotations, done in one bilinear pass; then colour jitter in pixel space.
//
// Randomness comes from a per-sample stream, sample_generator(seed, epoch, index),
// so an augmented image depends only on (seed, epoch, dataset index): never on the
// batch it lands in, thread timing or prefetch.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numbers>
#include <span>

#include "../config.hpp"
#include "../core/random.hpp"
#include "normalization.hpp"

namespace dml::data {

// The extent of one image.
struct ImageDims {
  std::int64_t channels = 1, height = 0, width = 0;
  std::int64_t numel() const noexcept { return channels * height * width; }
};

// A rectangle of source pixels: columns x..x+width-1, rows y..y+height-1.
// width = height = 0 (the default) means the whole image.
struct CropBox {
  std::int64_t x = 0, y = 0, width = 0, height = 0;
  friend bool operator==(const CropBox&, const CropBox&) = default;
};

// One deterministic warp: out = rotate(translate(flip(resize(crop(src))))), where
// resize scales the crop back to H x W.
struct Warp {
  double degrees = 0.0;                   // counter-clockwise as displayed (y down), about ((W-1)/2, (H-1)/2)
  std::int64_t shift_x = 0, shift_y = 0;  // content moves right / down by this many pixels
  bool flip = false;                      // mirror left-right (x -> W-1-x)
  CropBox crop = {};                      // resized to H x W bilinearly (half-pixel centres) before the rest
  friend bool operator==(const Warp&, const Warp&) = default;
};

// One deterministic colour jitter, in pixel space [0, 1], in this order:
// brightness, contrast, saturation, hue (torchvision's adjust_* functions).
// Factors of 1 and a hue shift of 0 leave their step out.
struct Jitter {
  double brightness = 1.0;  // pixel * f
  double contrast = 1.0;    // blend with the mean of the grey image
  double saturation = 1.0;  // blend with the grey image (3 channels)
  double hue = 0.0;         // hue + shift, in turns, in [-0.5, 0.5] (3 channels)
  bool neutral() const noexcept { return brightness == 1.0 && contrast == 1.0 && saturation == 1.0 && hue == 0.0; }
  friend bool operator==(const Jitter&, const Jitter&) = default;
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

// How much of a bilinear footprint at q falls on pixels 0..n-1: 1 inside, down
// to 0 one pixel out.
inline double coverage(double q, std::int64_t n) noexcept {
  const double last = static_cast<double>(n - 1);
  if (q >= 0 && q <= last) return 1.0;
  if (q > -1 && q < 0) return q + 1;
  if (q > last && q < last + 1) return last + 1 - q;
  return 0.0;
}

// v clamped to [0, 1]; NaN goes to 0.
inline double clamp01(double v) noexcept { return v > 0 ? (v < 1 ? v : 1.0) : 0.0; }

// torchvision's rgb_to_grayscale weights.
inline double grey(const double* p) noexcept { return 0.2989 * p[0] + 0.587 * p[1] + 0.114 * p[2]; }

// Rotates the hue of one RGB pixel in [0, 1] by `shift` turns, through HSV as
// torchvision's _rgb2hsv / _hsv2rgb do.
inline void shift_hue(double* p, double shift) noexcept {
  const double r = p[0], g = p[1], b = p[2];
  const double maxc = std::max({r, g, b}), minc = std::min({r, g, b});
  const bool flat = maxc == minc;
  const double range = maxc - minc;
  const double s = range / (flat ? 1.0 : maxc), d = flat ? 1.0 : range;
  const double rc = (maxc - r) / d, gc = (maxc - g) / d, bc = (maxc - b) / d;
  double h = maxc == r ? bc - gc : maxc == g ? 2.0 + rc - bc : 4.0 + gc - rc;
  h = std::fmod(h / 6.0 + 1.0, 1.0) + shift;
  h -= std::floor(h);
  const double v = maxc, i = std::floor(h * 6.0), f = h * 6.0 - i;
  const double lo = clamp01(v * (1 - s)), fall = clamp01(v * (1 - s * f)), rise = clamp01(v * (1 - s * (1 - f)));
  const double rgb[6][3] = {{v, rise, lo}, {fall, v, lo}, {lo, v, rise}, {lo, fall, v}, {rise, lo, v}, {v, lo, fall}};
  const auto* out = rgb[static_cast<int>(i) % 6];
  p[0] = out[0];
  p[1] = out[1];
  p[2] = out[2];
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
// channel, or one for all. Integer-only warps (degrees == 0, whole-image crop)
// copy exactly; others sample bilinearly, once. A crop is resized as torchvision
// does (align_corners = false, clamped at the crop's edges); where rotation or
// shift reach outside the frame the background blends in as without a crop.
// Throws dml::Error when fill has neither 1 nor C values or the crop leaves the image.
inline void warp(const float* src, float* dst, const ImageDims& dims, const Warp& w, std::span<const float> fill) {
  const std::int64_t C = dims.channels, H = dims.height, W = dims.width, plane = H * W;
  DML_CHECK(fill.size() == 1 || static_cast<std::int64_t>(fill.size()) == C, "warp: ", fill.size(),
            " fill value(s) for ", C, " channel(s)");
  auto fill_of = [&](std::int64_t c) { return fill[fill.size() == 1 ? 0 : static_cast<std::size_t>(c)]; };
  const CropBox& box = w.crop;
  const bool cropped = box != CropBox{} && box != CropBox{0, 0, W, H};
  DML_CHECK(!cropped || (box.x >= 0 && box.y >= 0 && box.width >= 1 && box.height >= 1 && box.x + box.width <= W &&
                         box.y + box.height <= H),
            "warp: crop ", box.width, " x ", box.height, " at (", box.x, ", ", box.y, ") is not inside the ", W,
            " x ", H, " image");
  if (w.degrees == 0.0 && !cropped) {
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
  // The crop's resize: frame coordinate q reads box.x + (q + 0.5) * box.width / W - 0.5.
  const double bx = static_cast<double>(box.x), by = static_cast<double>(box.y);
  const double kx = static_cast<double>(box.width) / static_cast<double>(W);
  const double ky = static_cast<double>(box.height) / static_cast<double>(H);
  for (std::int64_t y = 0; y < H; ++y) {
    for (std::int64_t x = 0; x < W; ++x) {
      // Inverse rotation of the output offset, then undo the translation and the flip.
      const double ox = static_cast<double>(x) - cx, oy = static_cast<double>(y) - cy;
      double qx = detail::snap(cx + ox * cs - oy * sn - static_cast<double>(w.shift_x));
      const double qy = detail::snap(cy + ox * sn + oy * cs - static_cast<double>(w.shift_y));
      if (w.flip) qx = static_cast<double>(W) - 1 - qx;
      if (cropped) {
        // value = coverage * crop(q clamped into the frame) + (1 - coverage) * fill, which is
        // what the uncropped branch below computes when the crop is the whole image.
        const double cover = detail::coverage(qx, W) * detail::coverage(qy, H);
        if (cover == 0) {
          for (std::int64_t c = 0; c < C; ++c) dst[c * plane + y * W + x] = fill_of(c);
          continue;
        }
        const double right = bx + static_cast<double>(box.width - 1);
        const double bottom = by + static_cast<double>(box.height - 1);
        const double fx = std::clamp(qx, 0.0, static_cast<double>(W - 1));
        const double fy = std::clamp(qy, 0.0, static_cast<double>(H - 1));
        const double ux = std::clamp(bx + (fx + 0.5) * kx - 0.5, bx, right);
        const double uy = std::clamp(by + (fy + 0.5) * ky - 0.5, by, bottom);
        const double fx0 = std::floor(ux), fy0 = std::floor(uy);
        const double ax = ux - fx0, ay = uy - fy0;
        const auto x0 = static_cast<std::int64_t>(fx0), y0 = static_cast<std::int64_t>(fy0);
        const std::int64_t x1 = std::min(x0 + 1, box.x + box.width - 1), y1 = std::min(y0 + 1, box.y + box.height - 1);
        const double w00 = (1 - ax) * (1 - ay), w01 = ax * (1 - ay), w10 = (1 - ax) * ay, w11 = ax * ay;
        for (std::int64_t c = 0; c < C; ++c) {
          const float* s = src + c * plane;
          double v = 0;
          if (w00 != 0) v += w00 * s[y0 * W + x0];
          if (w01 != 0) v += w01 * s[y0 * W + x1];
          if (w10 != 0) v += w10 * s[y1 * W + x0];
          if (w11 != 0) v += w11 * s[y1 * W + x1];
          if (cover != 1) v = cover * v + (1 - cover) * fill_of(c);
          dst[c * plane + y * W + x] = static_cast<float>(v);
        }
        continue;
      }
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

// Applies `j` in place to one normalised image: each channel is un-normalised
// with its Normalization (one per channel, or one for all), jittered in [0, 1]
// with a clamp to [0, 1] after each step, and normalised again. Contrast uses
// the mean of the grey image after brightness (of the one channel when C = 1).
// A neutral Jitter leaves the image untouched. Throws dml::Error for C other
// than 1 or 3, saturation or hue on other than 3 channels, or norms of the wrong size.
inline void jitter(float* img, const ImageDims& dims, const Jitter& j, std::span<const Normalization> norms) {
  if (j.neutral()) return;
  const std::int64_t C = dims.channels, plane = dims.height * dims.width;
  DML_CHECK(C == 1 || C == 3, "jitter: colour jitter needs 1 or 3 channels, got ", C);
  DML_CHECK(C == 3 || (j.saturation == 1.0 && j.hue == 0.0), "jitter: saturation and hue need 3 channels, got ", C);
  DML_CHECK(norms.size() == 1 || static_cast<std::int64_t>(norms.size()) == C, "jitter: ", norms.size(),
            " normalisation(s) for ", C, " channel(s)");
  double mean[3], sd[3];
  for (std::int64_t c = 0; c < C; ++c) {
    const Normalization& n = norms[norms.size() == 1 ? 0 : static_cast<std::size_t>(c)];
    mean[c] = n.mean;
    sd[c] = n.stddev;
  }
  // Pixel k in [0, 1] after brightness.
  auto load = [&](std::int64_t k, double* p) {
    for (std::int64_t c = 0; c < C; ++c) {
      p[c] = static_cast<double>(img[c * plane + k]) * sd[c] + mean[c];
      if (j.brightness != 1.0) p[c] = detail::clamp01(j.brightness * p[c]);
    }
  };
  double p[3];
  double grey_mean = 0;
  if (j.contrast != 1.0) {
    for (std::int64_t k = 0; k < plane; ++k) {
      load(k, p);
      grey_mean += C == 3 ? detail::grey(p) : p[0];
    }
    grey_mean /= static_cast<double>(plane);
  }
  for (std::int64_t k = 0; k < plane; ++k) {
    load(k, p);
    if (j.contrast != 1.0)
      for (std::int64_t c = 0; c < C; ++c) p[c] = detail::clamp01(j.contrast * p[c] + (1 - j.contrast) * grey_mean);
    if (j.saturation != 1.0) {
      const double g = detail::grey(p);
      for (std::int64_t c = 0; c < 3; ++c) p[c] = detail::clamp01(j.saturation * p[c] + (1 - j.saturation) * g);
    }
    if (j.hue != 0.0) detail::shift_hue(p, j.hue);
    for (std::int64_t c = 0; c < C; ++c) img[c * plane + k] = static_cast<float>((p[c] - mean[c]) / sd[c]);
  }
}

// Random augmentation, as a value: Augment{.pad = 2, .rotate_degrees = 10}, or
// Augment{.hflip = true, .resized_crop_scale = {0.08, 1.0}, .brightness = 0.4}.
// The default is the identity.
struct Augment {
  // Translation by an integer in [-pad, pad] on each axis, uniform and independent:
  // pad by `pad` pixels of background, then crop H x W at a random offset.
  std::int64_t pad = 0;
  // Rotation by an angle uniform in [-rotate_degrees, rotate_degrees].
  double rotate_degrees = 0.0;
  // Left-right mirror with probability 1/2. Off by default: digits are not symmetric.
  bool hflip = false;
  // Other than {0, 0}: torchvision's RandomResizedCrop, applied first. A crop of
  // area fraction uniform in {lo, hi} and aspect ratio (width / height)
  // log-uniform in resized_crop_ratio, resized back to H x W.
  std::array<double, 2> resized_crop_scale = {0.0, 0.0};
  std::array<double, 2> resized_crop_ratio = {3.0 / 4.0, 4.0 / 3.0};
  // torchvision's ColorJitter, after the warp: brightness, contrast and
  // saturation factors uniform in [max(0, 1 - v), 1 + v], a hue shift uniform in
  // [-hue, hue] turns. 0 turns a step off.
  double brightness = 0.0, contrast = 0.0, saturation = 0.0, hue = 0.0;

  bool resized_crop() const noexcept { return resized_crop_scale[0] != 0.0 || resized_crop_scale[1] != 0.0; }
  bool geometric() const noexcept { return pad != 0 || rotate_degrees != 0.0 || hflip || resized_crop(); }
  bool colour() const noexcept { return brightness != 0.0 || contrast != 0.0 || saturation != 0.0 || hue != 0.0; }
  bool identity() const noexcept { return !geometric() && !colour(); }

  // Throws dml::Error unless pad >= 0, 0 <= rotate_degrees <= 180, resized_crop_scale
  // is {0, 0} or has 0 < lo <= hi <= 1, resized_crop_ratio has 0 < lo <= hi,
  // brightness, contrast and saturation are >= 0, and 0 <= hue <= 0.5 (all finite).
  void validate() const {
    DML_CHECK(pad >= 0, "Augment: pad must be >= 0, got ", pad);
    DML_CHECK(std::isfinite(rotate_degrees) && rotate_degrees >= 0.0 && rotate_degrees <= 180.0,
              "Augment: rotate_degrees must be in [0, 180], got ", rotate_degrees);
    if (resized_crop()) {
      const auto [lo, hi] = resized_crop_scale;
      DML_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0.0 && lo <= hi && hi <= 1.0,
                "Augment: resized_crop_scale must be {lo, hi} with 0 < lo <= hi <= 1, got {", lo, ", ", hi, "}");
    }
    const auto [rlo, rhi] = resized_crop_ratio;
    DML_CHECK(std::isfinite(rlo) && std::isfinite(rhi) && rlo > 0.0 && rlo <= rhi,
              "Augment: resized_crop_ratio must be {lo, hi} with 0 < lo <= hi, got {", rlo, ", ", rhi, "}");
    auto factor = [](const char* name, double v) {
      DML_CHECK(std::isfinite(v) && v >= 0.0, "Augment: ", name, " must be >= 0, got ", v);
    };
    factor("brightness", brightness);
    factor("contrast", contrast);
    factor("saturation", saturation);
    DML_CHECK(std::isfinite(hue) && hue >= 0.0 && hue <= 0.5, "Augment: hue must be in [0, 0.5], got ", hue);
  }
  // validate(); pad must leave some of an image of `dims` visible (pad < H and
  // pad < W); colour jitter needs 1 or 3 channels, saturation and hue 3.
  void validate(const ImageDims& dims) const {
    validate();
    DML_CHECK(dims.channels >= 1 && dims.height >= 1 && dims.width >= 1, "Augment: bad image size ", dims.channels,
              " x ", dims.height, " x ", dims.width);
    DML_CHECK(pad < dims.height && pad < dims.width, "Augment: pad ", pad, " is not smaller than the image (",
              dims.height, " x ", dims.width, ")");
    DML_CHECK(!colour() || dims.channels == 1 || dims.channels == 3, "Augment: colour jitter needs 1 or 3 ",
              "channels, the images have ", dims.channels);
    DML_CHECK(saturation == 0.0 || dims.channels == 3, "Augment: saturation ", saturation,
              " needs 3 (RGB) channels, the images have ", dims.channels);
    DML_CHECK(hue == 0.0 || dims.channels == 3, "Augment: hue ", hue, " needs 3 (RGB) channels, the images have ",
              dims.channels);
  }

  // Draws one Warp from gen, in a fixed order: flip (when hflip), crop x then
  // crop y (when pad > 0), angle (when rotate_degrees > 0), then the resized
  // crop (when set; see sample_crop).
  Warp sample(Generator& gen, const ImageDims& dims) const {
    Warp w;
    if (hflip) w.flip = gen.uniform() < 0.5;
    if (pad > 0) {
      const auto span = static_cast<std::uint64_t>(2 * pad + 1);
      w.shift_x = pad - static_cast<std::int64_t>(gen.below(span));
      w.shift_y = pad - static_cast<std::int64_t>(gen.below(span));
    }
    if (rotate_degrees > 0.0) w.degrees = (2.0 * gen.uniform() - 1.0) * rotate_degrees;
    if (resized_crop()) w.crop = sample_crop(gen, dims.height, dims.width);
    return w;
  }
  // sample(gen, dims) without a resized crop, which needs the image size.
  Warp sample(Generator& gen) const {
    DML_CHECK(!resized_crop(), "Augment::sample: resized_crop_scale needs the image size: call sample(gen, dims)");
    return sample(gen, ImageDims{});
  }

  // torchvision's RandomResizedCrop.get_params on an H x W image: up to 10 tries of
  // (area fraction uniform in resized_crop_scale, then log aspect ratio uniform in
  // log resized_crop_ratio; width round(sqrt(A s r)), height round(sqrt(A s / r)),
  // rounding half to even), the first that fits taking a top offset, then a left
  // offset, uniform. After 10 misses: the centred crop of the whole width or
  // height with the ratio clamped into range (at least 1 pixel each way).
  CropBox sample_crop(Generator& gen, std::int64_t H, std::int64_t W) const {
    DML_CHECK(resized_crop() && H >= 1 && W >= 1, "Augment::sample_crop: needs resized_crop_scale and an ",
              "image, got ", H, " x ", W);
    const auto [lo, hi] = resized_crop_scale;
    const double area = static_cast<double>(H) * static_cast<double>(W);
    const double log_lo = std::log(resized_crop_ratio[0]), log_hi = std::log(resized_crop_ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = area * (lo + (hi - lo) * gen.uniform());
      const double ratio = std::exp(log_lo + (log_hi - log_lo) * gen.uniform());
      const auto cw = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target * ratio)));
      const auto ch = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target / ratio)));
      if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
        const auto top = static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(H - ch + 1)));
        const auto left = static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(W - cw + 1)));
        return CropBox{left, top, cw, ch};
      }
    }
    const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
    std::int64_t cw = W, ch = H;
    if (in_ratio < resized_crop_ratio[0])
      ch = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(W) / resized_crop_ratio[0]));
    else if (in_ratio > resized_crop_ratio[1])
      cw = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(H) * resized_crop_ratio[1]));
    cw = std::clamp<std::int64_t>(cw, 1, W);
    ch = std::clamp<std::int64_t>(ch, 1, H);
    return CropBox{(W - cw) / 2, (H - ch) / 2, cw, ch};
  }

  // Draws one Jitter from gen, after sample(): brightness, contrast, saturation,
  // hue, each only when its option is > 0. Applied in that fixed order (torchvision
  // shuffles the order per image).
  Jitter sample_jitter(Generator& gen) const {
    Jitter j;
    auto factor = [&](double v) {
      const double lo = std::max(0.0, 1.0 - v);
      return lo + (1.0 + v - lo) * gen.uniform();
    };
    if (brightness > 0.0) j.brightness = factor(brightness);
    if (contrast > 0.0) j.contrast = factor(contrast);
    if (saturation > 0.0) j.saturation = factor(saturation);
    if (hue > 0.0) j.hue = (2.0 * gen.uniform() - 1.0) * hue;
    return j;
  }

  // dst = jitter(warp(src, sample(gen, dims)), sample_jitter(gen)) with background
  // `fill` (per channel, or one for all) and the images' normalisation `norms`
  // (per channel, or one for all), which the jitter undoes and redoes.
  void apply(const float* src, float* dst, const ImageDims& dims, std::span<const float> fill,
             std::span<const Normalization> norms, Generator& gen) const {
    const Warp w = sample(gen, dims);
    const Jitter j = colour() ? sample_jitter(gen) : Jitter{};
    warp(src, dst, dims, w, fill);
    jitter(dst, dims, j, norms);
  }
  // apply with images in pixel units (mean 0, stddev 1 in every channel).
  void apply(const float* src, float* dst, const ImageDims& dims, std::span<const float> fill, Generator& gen) const {
    const Normalization unit{};
    apply(src, dst, dims, fill, std::span<const Normalization>(&unit, 1), gen);
  }
  void apply(const float* src, float* dst, const ImageDims& dims, float fill, Generator& gen) const {
    apply(src, dst, dims, std::span<const float>(&fill, 1), gen);
  }
};

// An extra per-sample step, run in place after Augment with the same stream:
// (image, its dims, the background value of each channel, the sample's
// generator). May be called from several threads at once (different images).
using SampleTransform = std::function<void(std::span<float> image, const ImageDims& dims,
                                           std::span<const float> background, Generator& gen)>;

}  // namespace dml::data
