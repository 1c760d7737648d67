// Tests for dml/data/image.hpp: PNG and JPEG decoding (grey, RGB, 16-bit, alpha),
// the refusals of corrupt and truncated files, resizing, cropping and channel conversion.
#include <doctest/doctest.h>

#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <dml/data/image.hpp>
#include <string>
#include <vector>

#include "../support/error_of.hpp"

namespace test_image {

using dml::testing::error_of;

using dml::data::DecodedImage;

// An h x w x c image whose byte at (y, x, k) is value(y, x, k).
template <class F>
DecodedImage image_of(std::int64_t h, std::int64_t w, std::int64_t c, F value) {
  DecodedImage img;
  img.height = h;
  img.width = w;
  img.channels = c;
  for (std::int64_t y = 0; y < h; ++y)
    for (std::int64_t x = 0; x < w; ++x)
      for (std::int64_t k = 0; k < c; ++k) img.pixels.push_back(static_cast<std::uint8_t>(value(y, x, k)));
  return img;
}

// Ramps that wrap around at 256 (sharp edges: exact codecs only).
DecodedImage gradient(std::int64_t h, std::int64_t w, std::int64_t c) {
  return image_of(h, w, c, [](std::int64_t y, std::int64_t x, std::int64_t k) { return (8 * y + 5 * x + 60 * k) % 256; });
}

// A smooth image (no wrap-around edges), for lossy round trips.
DecodedImage smooth(std::int64_t h, std::int64_t w, std::int64_t c) {
  return image_of(h, w, c, [](std::int64_t y, std::int64_t x, std::int64_t k) { return 20 + 4 * y + 3 * x + 30 * k; });
}

// A PNG written with libpng's full API: 16-bit grey, or 8-bit RGBA.
std::vector<std::uint8_t> raw_png(int width, int height, int color_type, int bit_depth,
                                  const std::vector<std::uint8_t>& rows_bytes) {
  std::vector<std::uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  REQUIRE(png != nullptr);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    FAIL("libpng could not write the test image");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        auto* v = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), data, data + n);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const std::size_t stride = rows_bytes.size() / static_cast<std::size_t>(height);
  for (int y = 0; y < height; ++y) png_write_row(png, rows_bytes.data() + stride * static_cast<std::size_t>(y));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}

TEST_CASE("PNG: grey and RGB decode to exactly what was encoded; the format comes from the bytes") {
  for (std::int64_t c : {1, 3}) {
    CAPTURE(c);
    const DecodedImage img = gradient(7, 9, c);
    const std::vector<std::uint8_t> png = dml::data::encode_png(img);
    CHECK(dml::data::sniff_image_format(png) == dml::data::ImageFormat::Png);
    const DecodedImage back = dml::data::decode_image(png, "x.png");
    CHECK(back.width == 9);
    CHECK(back.height == 7);
    CHECK(back.channels == c);
    CHECK(back.bit_depth == 8);
    CHECK_FALSE(back.had_alpha);
    CHECK(back.pixels == img.pixels);
  }
  const std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0, 0};
  CHECK(dml::data::sniff_image_format(gif) == dml::data::ImageFormat::Unknown);
  CHECK(error_of([&] { dml::data::decode_image(gif, "x.gif"); }).find("x.gif: unsupported image format") !=
        std::string::npos);
}

TEST_CASE("PNG: 16-bit samples are rescaled to 8 bits, alpha is composited onto black") {
  // 16-bit grey: v * 257 is exactly v in 8 bits; big-endian samples.
  std::vector<std::uint8_t> rows;
  std::vector<std::uint8_t> want;
  for (int i = 0; i < 12; ++i) {
    const int v = (i * 23) % 256, v16 = v * 257;
    rows.push_back(static_cast<std::uint8_t>(v16 >> 8));
    rows.push_back(static_cast<std::uint8_t>(v16 & 255));
    want.push_back(static_cast<std::uint8_t>(v));
  }
  const DecodedImage g16 = dml::data::decode_png(raw_png(4, 3, PNG_COLOR_TYPE_GRAY, 16, rows), "g16.png");
  CHECK(g16.bit_depth == 16);
  CHECK(g16.channels == 1);
  CHECK(g16.pixels == want);

  // RGBA: opaque pixels keep their colour, transparent ones become black.
  const std::vector<std::uint8_t> rgba = {200, 100, 50, 255, 200, 100, 50, 0};
  const DecodedImage a = dml::data::decode_png(raw_png(2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba), "a.png");
  CHECK(a.had_alpha);
  CHECK(a.channels == 3);
  CHECK(a.pixels == std::vector<std::uint8_t>{200, 100, 50, 0, 0, 0});
}

TEST_CASE("PNG: a corrupt or truncated file is an error naming it") {
  std::vector<std::uint8_t> png = dml::data::encode_png(gradient(16, 16, 3));
  std::vector<std::uint8_t> cut(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2));
  CHECK(error_of([&] { dml::data::decode_png(cut, "cut.png"); }).find("cut.png: corrupt or truncated PNG") !=
        std::string::npos);
  std::vector<std::uint8_t> flipped = png;
  flipped[png.size() / 2] ^= 0xFF;  // inside the compressed data: a CRC error
  CHECK(error_of([&] { dml::data::decode_png(flipped, "bad.png"); }).find("bad.png: ") != std::string::npos);
  std::vector<std::uint8_t> header_only(png.begin(), png.begin() + 10);
  CHECK(error_of([&] { dml::data::decode_png(header_only, "h.png"); }).find("h.png: not a readable PNG") !=
        std::string::npos);
}

TEST_CASE("read_image_header gives decode_image's size, channels, bit depth and alpha without decoding") {
  using dml::data::ImageFormat;
  auto same = [](const std::vector<std::uint8_t>& bytes) {
    const dml::data::ImageHeader h = dml::data::read_image_header(bytes, "x");
    const DecodedImage d = dml::data::decode_image(bytes, "x");
    CHECK(h.width == d.width);
    CHECK(h.height == d.height);
    CHECK(h.channels == d.channels);
    CHECK(h.bit_depth == d.bit_depth);
    CHECK(h.had_alpha == d.had_alpha);
    return h;
  };
  CHECK(same(dml::data::encode_png(gradient(7, 9, 1))).format == ImageFormat::Png);
  CHECK(same(dml::data::encode_png(gradient(7, 9, 3))).channels == 3);
  CHECK(same(dml::data::encode_jpeg(gradient(16, 24, 1))).format == ImageFormat::Jpeg);
  CHECK(same(dml::data::encode_jpeg(gradient(16, 24, 3))).channels == 3);
  std::vector<std::uint8_t> rows(24, 7);
  CHECK(same(raw_png(4, 3, PNG_COLOR_TYPE_GRAY, 16, rows)).bit_depth == 16);
  CHECK(same(raw_png(2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, std::vector<std::uint8_t>(8, 9))).had_alpha);

  // A file cut in its pixel data has a good header: only decoding finds the fault.
  const std::vector<std::uint8_t> png = dml::data::encode_png(gradient(16, 16, 3));
  const std::vector<std::uint8_t> cut(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2));
  CHECK(dml::data::read_image_header(cut, "cut.png").width == 16);
  CHECK_THROWS_AS(dml::data::decode_image(cut, "cut.png"), dml::Error);
  const std::vector<std::uint8_t> jpeg = dml::data::encode_jpeg(gradient(16, 16, 3));
  const std::vector<std::uint8_t> jcut(jpeg.begin(), jpeg.end() - 20);
  CHECK(dml::data::read_image_header(jcut, "cut.jpg").height == 16);
  CHECK_THROWS_AS(dml::data::decode_image(jcut, "cut.jpg"), dml::Error);
  // Headers that cannot be read, and other formats, are errors naming the file.
  CHECK(error_of([&] { dml::data::read_image_header({png.begin(), png.begin() + 10}, "h.png"); })
            .find("h.png: not a readable PNG") != std::string::npos);
  CHECK(error_of([&] { dml::data::read_image_header({jpeg.begin(), jpeg.begin() + 12}, "h.jpg"); })
            .find("h.jpg: corrupt or truncated JPEG") != std::string::npos);
  const std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0, 0};
  CHECK(error_of([&] { dml::data::read_image_header(gif, "x.gif"); }).find("x.gif: unsupported image format") !=
        std::string::npos);
}

TEST_CASE("JPEG: grey and RGB decode close to what was encoded; truncation and corruption are errors") {
  for (std::int64_t c : {1, 3}) {
    CAPTURE(c);
    const DecodedImage img = smooth(16, 24, c);
    const std::vector<std::uint8_t> jpg = dml::data::encode_jpeg(img, 95);
    CHECK(dml::data::sniff_image_format(jpg) == dml::data::ImageFormat::Jpeg);
    const DecodedImage back = dml::data::decode_image(jpg, "x.jpg");
    CHECK(back.width == 24);
    CHECK(back.height == 16);
    CHECK(back.channels == c);
    double err = 0;
    for (std::size_t i = 0; i < img.pixels.size(); ++i) err += std::abs(int{img.pixels[i]} - int{back.pixels[i]});
    CHECK(err / static_cast<double>(img.pixels.size()) < 4.0);  // lossy, but close on a smooth image
  }
  const std::vector<std::uint8_t> jpg = dml::data::encode_jpeg(gradient(64, 64, 3), 90);
  std::vector<std::uint8_t> cut(jpg.begin(), jpg.begin() + static_cast<std::ptrdiff_t>(jpg.size() * 2 / 3));
  CHECK(error_of([&] { dml::data::decode_jpeg(cut, "cut.jpg"); }).find("cut.jpg: ") != std::string::npos);
  CHECK(error_of([&] { dml::data::decode_jpeg(cut, "cut.jpg"); }).find("truncated") != std::string::npos);
  std::vector<std::uint8_t> garbage = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 0x13, 0x37, 0x00, 0x00};
  CHECK(error_of([&] { dml::data::decode_jpeg(garbage, "g.jpg"); }).find("g.jpg: corrupt or truncated JPEG") !=
        std::string::npos);
}

TEST_CASE("resize_image: area averages exactly when shrinking by an integer; bilinear uses half-pixel centres") {
  DecodedImage img;
  img.width = img.height = 4;
  img.channels = 1;
  img.pixels = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
  const DecodedImage area = dml::data::resize_image(img, 2, 2, dml::data::ResizeFilter::Area);
  CHECK(area.pixels == std::vector<std::uint8_t>{5, 9, 21, 25});  // means of the 2 x 2 blocks
  const DecodedImage bil = dml::data::resize_image(img, 2, 2, dml::data::ResizeFilter::Bilinear);
  CHECK(bil.pixels == std::vector<std::uint8_t>{5, 9, 21, 25});   // centres at 0.5, 2.5: also the block means
  DecodedImage two;
  two.width = two.height = 2;
  two.channels = 1;
  two.pixels = {0, 100, 100, 200};
  const DecodedImage up = dml::data::resize_image(two, 4, 4, dml::data::ResizeFilter::Bilinear);
  // Output x = 1 samples input x = 0.25: 0.75 * 0 + 0.25 * 100 = 25 on the top row.
  CHECK(up.pixels[0] == 0);
  CHECK(up.pixels[1] == 25);
  CHECK(up.pixels[2] == 75);
  CHECK(up.pixels[3] == 100);
  CHECK(up.pixels[15] == 200);
  // Area on a non-integer ratio keeps the mean of a constant image and of the whole image.
  const DecodedImage g = gradient(9, 9, 3);
  const DecodedImage a7 = dml::data::resize_image(g, 7, 5);
  CHECK(a7.height == 7);
  CHECK(a7.width == 5);
  CHECK(a7.channels == 3);
  CHECK(dml::data::resize_image(g, 9, 9).pixels == g.pixels);
  CHECK_THROWS_AS(dml::data::resize_image(g, 0, 3), dml::Error);
}

TEST_CASE("center_crop and convert_channels") {
  const DecodedImage g = gradient(5, 6, 3);
  const DecodedImage c = dml::data::center_crop(g, 3, 2);
  CHECK(c.height == 3);
  CHECK(c.width == 2);
  // Top-left of the crop is (1, 2) of the source.
  CHECK(c.pixels[0] == g.pixels[(1 * 6 + 2) * 3]);
  CHECK(c.pixels[c.pixels.size() - 1] == g.pixels[(3 * 6 + 3) * 3 + 2]);
  CHECK_THROWS_WITH_AS(dml::data::center_crop(g, 6, 2), doctest::Contains("does not fit in an image of 5 x 6"),
                       dml::Error);
  DecodedImage rgb;
  rgb.width = 2;
  rgb.height = 1;
  rgb.channels = 3;
  rgb.pixels = {255, 0, 0, 10, 20, 30};
  const DecodedImage grey = dml::data::convert_channels(rgb, 1);
  CHECK(grey.pixels == std::vector<std::uint8_t>{76, 18});  // 0.299 * 255 = 76.2; 2.99 + 11.74 + 3.42 = 18.15
  CHECK(dml::data::convert_channels(grey, 3).pixels == std::vector<std::uint8_t>{76, 76, 76, 18, 18, 18});
  CHECK_THROWS_AS(dml::data::convert_channels(rgb, 2), dml::Error);
}

}  // namespace test_image
