// dml/data/image.hpp: decode and encode PNG (libpng) and JPEG (libjpeg-turbo)
// images, and resize them. Part of the optional dml::image target, which links
// both libraries; dml::dml itself does not need them.
//
// Pixels are 8-bit, interleaved (H x W x C, row major), C = 1 (grey) or 3 (RGB):
//   - PNG: palette and low-bit grey are expanded; 16-bit samples are scaled to 8
//     bits (v * 255 / 65535, rounded; DecodedImage::bit_depth says it was 16);
//     an alpha channel is composited onto black.
//   - JPEG: grey stays grey, YCbCr becomes RGB; CMYK / YCCK are refused.
// The format is decided by the file's first bytes, never by its name.
#pragma once

#if !__has_include(<png.h>) || !__has_include(<jpeglib.h>)
#error "dml/data/image.hpp needs libpng and libjpeg(-turbo) headers (Debian: libpng-dev libjpeg62-turbo-dev); link dml::image"
#endif

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
// After jpeglib.h: the message codes (JWRN_JPEG_EOF).
#include <jerror.h>

#include "../config.hpp"
#include "../io/file.hpp"

namespace dml::data {

enum class ImageFormat { Unknown, Png, Jpeg };

inline const char* image_format_name(ImageFormat f) {
  return f == ImageFormat::Png ? "PNG" : f == ImageFormat::Jpeg ? "JPEG" : "unknown";
}

// The format by magic bytes: PNG's 8-byte signature, JPEG's FF D8 FF.
inline ImageFormat sniff_image_format(std::span<const std::uint8_t> head) {
  static constexpr std::uint8_t kPng[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (head.size() >= 8 && std::equal(kPng, kPng + 8, head.begin())) return ImageFormat::Png;
  if (head.size() >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return ImageFormat::Jpeg;
  return ImageFormat::Unknown;
}

// An 8-bit image, interleaved.
struct DecodedImage {
  std::int64_t width = 0, height = 0, channels = 0;  // channels 1 or 3
  std::vector<std::uint8_t> pixels;                  // height * width * channels
  int bit_depth = 8;                                 // of the file's samples (16 for a 16-bit PNG)
  bool had_alpha = false;                            // an alpha channel was composited onto black
};

namespace detail {
// Starts libpng's simplified read of `bytes` into `img` (its header read, the pixels not yet);
// throws dml::Error naming `name` and libpng's reason when the bytes are not a readable PNG.
// The caller frees `img` (png_image_free, or png_image_finish_read does).
inline void png_begin(png_image& img, std::span<const std::uint8_t> bytes, const std::string& name) {
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) {
    const std::string why = img.message;
    png_image_free(&img);
    throw Error(::dml::detail::concat(name, ": not a readable PNG (corrupt or truncated): ", why));
  }
}
}  // namespace detail

// Decodes PNG bytes. `name` is for errors. Throws dml::Error naming it and
// libpng's reason on a corrupt or truncated file.
inline DecodedImage decode_png(std::span<const std::uint8_t> bytes, const std::string& name) {
  png_image img;
  detail::png_begin(img, bytes, name);
  DecodedImage out;
  const bool color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
  out.had_alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  // 16-bit files without gAMA/sRGB chunks are taken as sRGB-encoded (as viewers do), so
  // the 16 -> 8 bit step is a plain rescaling, not a gamma change.
  img.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  {
    // The bit depth is in the IHDR chunk: bytes 24 of the file (after the signature,
    // the chunk length and type, width and height).
    if (bytes.size() > 24) out.bit_depth = bytes[24];
  }
  img.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  out.width = img.width;
  out.height = img.height;
  out.channels = color ? 3 : 1;
  DML_CHECK(out.width > 0 && out.height > 0 && out.width * out.height <= (std::int64_t{1} << 28), name,
            ": PNG of ", out.width, " x ", out.height, " pixels is empty or too large");
  out.pixels.assign(PNG_IMAGE_SIZE(img), 0);  // zeros: alpha composites onto black
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr)) {
    const std::string why = img.message;
    png_image_free(&img);
    throw Error(::dml::detail::concat(name, ": corrupt or truncated PNG: ", why));
  }
  png_image_free(&img);
  return out;
}

namespace detail {

struct JpegErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int premature_end;  // libjpeg warned that the data ended early (and padded the image)
};

inline void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (e.g. extraneous bytes) are not errors, except the end of data before the image ends.
inline void jpeg_quiet(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) reinterpret_cast<JpegErrorManager*>(cinfo->err)->premature_end = 1;
}

// Zeroes `cinfo` and routes libjpeg's errors and warnings to `err` (jpeg_error_exit,
// jpeg_quiet). The caller's setjmp(err.jump) must follow in the caller itself.
inline void jpeg_prepare(jpeg_decompress_struct& cinfo, JpegErrorManager& err) {
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = jpeg_error_exit;
  err.base.emit_message = jpeg_quiet;
  err.message[0] = '\0';
  err.premature_end = 0;
}

// The C part of JPEG decoding: no C++ object lives across setjmp. Returns 0 on
// success, else fills `message`. On success *pixels is malloc'ed (caller frees).
inline int jpeg_decode_c(const std::uint8_t* data, std::size_t size, int* width, int* height, int* channels,
                         int* color_space, std::uint8_t** pixels, char* message) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  jpeg_prepare(cinfo, err);
  *pixels = nullptr;
  if (setjmp(err.jump)) {
    std::strncpy(message, err.message, JMSG_LENGTH_MAX);
    jpeg_destroy_decompress(&cinfo);
    std::free(*pixels);
    *pixels = nullptr;
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  *color_space = cinfo.jpeg_color_space;
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    std::snprintf(message, JMSG_LENGTH_MAX, "CMYK/YCCK JPEG images are not supported (convert to RGB)");
    jpeg_destroy_decompress(&cinfo);
    return 2;
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *width = static_cast<int>(cinfo.output_width);
  *height = static_cast<int>(cinfo.output_height);
  *channels = cinfo.output_components;
  const std::size_t stride = static_cast<std::size_t>(*width) * static_cast<std::size_t>(*channels);
  if (*width <= 0 || *height <= 0 || static_cast<double>(*width) * *height > double(1 << 28)) {
    std::snprintf(message, JMSG_LENGTH_MAX, "JPEG of %d x %d pixels is empty or too large", *width, *height);
    jpeg_destroy_decompress(&cinfo);
    return 3;
  }
  *pixels = static_cast<std::uint8_t*>(std::malloc(stride * static_cast<std::size_t>(*height)));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = *pixels + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  // A truncated file: libjpeg pads the missing rows with grey and warns. Refuse it instead.
  const bool truncated = err.premature_end != 0;
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (truncated) {
    std::snprintf(message, JMSG_LENGTH_MAX, "premature end of data (the file is truncated)");
    std::free(*pixels);
    *pixels = nullptr;
    return 4;
  }
  return 0;
}

}  // namespace detail

// Decodes JPEG bytes (baseline or progressive, grey or YCbCr). Throws dml::Error
// naming `name` and libjpeg's reason on a corrupt or truncated file.
inline DecodedImage decode_jpeg(std::span<const std::uint8_t> bytes, const std::string& name) {
  int w = 0, h = 0, c = 0, cs = 0;
  std::uint8_t* px = nullptr;
  char message[JMSG_LENGTH_MAX] = {};
  const int rc = detail::jpeg_decode_c(bytes.data(), bytes.size(), &w, &h, &c, &cs, &px, message);
  DML_CHECK(rc == 0, name, ": ", rc == 1 ? "corrupt or truncated JPEG: " : "", message);
  DecodedImage out;
  out.width = w;
  out.height = h;
  out.channels = c;
  out.pixels.assign(px, px + static_cast<std::size_t>(w) * h * c);
  std::free(px);
  return out;
}

// Decodes PNG or JPEG bytes by their magic; anything else is a dml::Error.
inline DecodedImage decode_image(std::span<const std::uint8_t> bytes, const std::string& name) {
  switch (sniff_image_format(bytes)) {
    case ImageFormat::Png: return decode_png(bytes, name);
    case ImageFormat::Jpeg: return decode_jpeg(bytes, name);
    case ImageFormat::Unknown: break;
  }
  throw Error(::dml::detail::concat(name, ": unsupported image format (neither PNG nor JPEG by its first bytes)"));
}

// What a file's header says, without decoding its pixels.
struct ImageHeader {
  ImageFormat format = ImageFormat::Unknown;
  std::int64_t width = 0, height = 0, channels = 0;  // channels as decode_image gives them: 1 or 3
  int bit_depth = 8;                                 // of the file's samples (16 for a 16-bit PNG)
  bool had_alpha = false;                            // decode_image composites it onto black
};

namespace detail {

// jpeg_decode_c's header part: 0 and the fields, or non-zero and `message`.
inline int jpeg_header_c(const std::uint8_t* data, std::size_t size, int* width, int* height, int* components,
                         int* color_space, char* message) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  jpeg_prepare(cinfo, err);
  if (setjmp(err.jump)) {
    std::strncpy(message, err.message, JMSG_LENGTH_MAX);
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  *width = static_cast<int>(cinfo.image_width);
  *height = static_cast<int>(cinfo.image_height);
  *components = cinfo.num_components;
  *color_space = cinfo.jpeg_color_space;
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

}  // namespace detail

// Reads the header of PNG or JPEG bytes: the size and channels decode_image
// would give, without decoding the pixels. Throws dml::Error naming `name` when
// the bytes are neither format, the header is unreadable, the JPEG is CMYK /
// YCCK, or the image is empty or too large (as decode_image does); a file whose
// header is fine may still fail to decode.
inline ImageHeader read_image_header(std::span<const std::uint8_t> bytes, const std::string& name) {
  ImageHeader h;
  h.format = sniff_image_format(bytes);
  if (h.format == ImageFormat::Png) {
    png_image img;
    detail::png_begin(img, bytes, name);
    h.channels = (img.format & PNG_FORMAT_FLAG_COLOR) != 0 ? 3 : 1;
    h.had_alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    h.width = img.width;
    h.height = img.height;
    png_image_free(&img);
    if (bytes.size() > 24) h.bit_depth = bytes[24];  // as decode_png reads it
    DML_CHECK(h.width > 0 && h.height > 0 && h.width * h.height <= (std::int64_t{1} << 28), name, ": PNG of ",
              h.width, " x ", h.height, " pixels is empty or too large");
    return h;
  }
  if (h.format == ImageFormat::Jpeg) {
    int w = 0, ht = 0, comp = 0, cs = 0;
    char message[JMSG_LENGTH_MAX] = {};
    const int rc = detail::jpeg_header_c(bytes.data(), bytes.size(), &w, &ht, &comp, &cs, message);
    DML_CHECK(rc == 0, name, ": corrupt or truncated JPEG: ", message);
    DML_CHECK(cs != JCS_CMYK && cs != JCS_YCCK, name, ": CMYK/YCCK JPEG images are not supported (convert to RGB)");
    DML_CHECK(w > 0 && ht > 0 && static_cast<double>(w) * ht <= double(1 << 28), name, ": JPEG of ", w, " x ", ht,
              " pixels is empty or too large");
    h.width = w;
    h.height = ht;
    h.channels = comp == 1 ? 1 : 3;
    return h;
  }
  throw Error(::dml::detail::concat(name, ": unsupported image format (neither PNG nor JPEG by its first bytes)"));
}

// Reads and decodes a file. Throws naming the path.
inline DecodedImage read_image(const std::filesystem::path& path) {
  const std::vector<std::byte> raw = io::read_file(path);
  return decode_image(std::span(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size()), path.string());
}

// ---- encoding (for tests, examples and exporting data sets) ---------------------------------

// PNG bytes of an 8-bit interleaved grey (1) or RGB (3) image.
inline std::vector<std::uint8_t> encode_png(const DecodedImage& image) {
  DML_CHECK(image.channels == 1 || image.channels == 3, "encode_png: channels must be 1 or 3, got ", image.channels);
  DML_CHECK(static_cast<std::int64_t>(image.pixels.size()) == image.width * image.height * image.channels,
            "encode_png: ", image.pixels.size(), " bytes for ", image.height, " x ", image.width, " x ",
            image.channels);
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(image.width);
  img.height = static_cast<png_uint_32>(image.height);
  img.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  DML_CHECK(png_image_write_to_memory(&img, nullptr, &size, 0, image.pixels.data(), 0, nullptr),
            "encode_png: ", img.message);
  std::vector<std::uint8_t> out(size);
  DML_CHECK(png_image_write_to_memory(&img, out.data(), &size, 0, image.pixels.data(), 0, nullptr), "encode_png: ",
            img.message);
  out.resize(size);
  return out;
}

// JPEG bytes (baseline, 4:2:0 for RGB) of an 8-bit interleaved grey or RGB image.
inline std::vector<std::uint8_t> encode_jpeg(const DecodedImage& image, int quality = 90) {
  DML_CHECK(image.channels == 1 || image.channels == 3, "encode_jpeg: channels must be 1 or 3, got ", image.channels);
  DML_CHECK(static_cast<std::int64_t>(image.pixels.size()) == image.width * image.height * image.channels,
            "encode_jpeg: ", image.pixels.size(), " bytes for ", image.height, " x ", image.width, " x ",
            image.channels);
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);  // encoding our own well-formed buffer: libjpeg's exit() path is unreachable
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = static_cast<int>(image.channels);
  cinfo.in_color_space = image.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const std::size_t stride = static_cast<std::size_t>(image.width * image.channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<std::uint8_t*>(image.pixels.data()) + stride * cinfo.next_scanline;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<std::uint8_t> out(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

// ---- resizing -------------------------------------------------------------------------------

enum class ResizeFilter {
  Bilinear,  // half-pixel centres, no antialiasing (torch's bilinear, align_corners = False)
  Area,      // each output pixel is the mean of the input area it covers (for shrinking)
};

// Resizes an interleaved 8-bit image to height x width (rounded to nearest byte).
inline DecodedImage resize_image(const DecodedImage& in, std::int64_t height, std::int64_t width,
                                 ResizeFilter filter = ResizeFilter::Area) {
  DML_CHECK(height >= 1 && width >= 1, "resize_image: target size ", height, " x ", width, " is empty");
  if (in.height == height && in.width == width) return in;
  DecodedImage out;
  out.width = width;
  out.height = height;
  out.channels = in.channels;
  out.bit_depth = in.bit_depth;
  out.had_alpha = in.had_alpha;
  out.pixels.resize(static_cast<std::size_t>(width * height * in.channels));
  const std::int64_t C = in.channels, W = in.width, H = in.height;
  const double sy = static_cast<double>(H) / static_cast<double>(height);
  const double sx = static_cast<double>(W) / static_cast<double>(width);
  auto at = [&](std::int64_t y, std::int64_t x, std::int64_t c) {
    return static_cast<double>(in.pixels[static_cast<std::size_t>((y * W + x) * C + c)]);
  };
  auto store = [&](std::int64_t y, std::int64_t x, std::int64_t c, double v) {
    out.pixels[static_cast<std::size_t>((y * width + x) * C + c)] =
        static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
  };
  if (filter == ResizeFilter::Bilinear) {
    for (std::int64_t y = 0; y < height; ++y) {
      const double fy = std::clamp((static_cast<double>(y) + 0.5) * sy - 0.5, 0.0, static_cast<double>(H - 1));
      const auto y0 = static_cast<std::int64_t>(fy);
      const std::int64_t y1 = std::min(y0 + 1, H - 1);
      const double ay = fy - static_cast<double>(y0);
      for (std::int64_t x = 0; x < width; ++x) {
        const double fx = std::clamp((static_cast<double>(x) + 0.5) * sx - 0.5, 0.0, static_cast<double>(W - 1));
        const auto x0 = static_cast<std::int64_t>(fx);
        const std::int64_t x1 = std::min(x0 + 1, W - 1);
        const double ax = fx - static_cast<double>(x0);
        for (std::int64_t c = 0; c < C; ++c)
          store(y, x, c,
                (1 - ay) * ((1 - ax) * at(y0, x0, c) + ax * at(y0, x1, c)) +
                    ay * ((1 - ax) * at(y1, x0, c) + ax * at(y1, x1, c)));
      }
    }
    return out;
  }
  // Area: the exact overlap of each output cell [y*sy, (y+1)*sy) x [x*sx, (x+1)*sx) with input pixels.
  for (std::int64_t y = 0; y < height; ++y) {
    const double ya = static_cast<double>(y) * sy, yb = ya + sy;
    for (std::int64_t x = 0; x < width; ++x) {
      const double xa = static_cast<double>(x) * sx, xb = xa + sx;
      for (std::int64_t c = 0; c < C; ++c) {
        double sum = 0, area = 0;
        for (auto iy = static_cast<std::int64_t>(ya); iy < H && static_cast<double>(iy) < yb; ++iy) {
          const double wy = std::min(yb, static_cast<double>(iy + 1)) - std::max(ya, static_cast<double>(iy));
          for (auto ix = static_cast<std::int64_t>(xa); ix < W && static_cast<double>(ix) < xb; ++ix) {
            const double wx = std::min(xb, static_cast<double>(ix + 1)) - std::max(xa, static_cast<double>(ix));
            sum += wy * wx * at(iy, ix, c);
            area += wy * wx;
          }
        }
        store(y, x, c, sum / area);
      }
    }
  }
  return out;
}

// The centre height x width of an image (offsets rounded down). Throws when larger than it.
inline DecodedImage center_crop(const DecodedImage& in, std::int64_t height, std::int64_t width) {
  DML_CHECK(height >= 1 && width >= 1 && height <= in.height && width <= in.width, "center_crop: ", height, " x ",
            width, " does not fit in an image of ", in.height, " x ", in.width);
  DecodedImage out = in;
  out.height = height;
  out.width = width;
  out.pixels.resize(static_cast<std::size_t>(height * width * in.channels));
  const std::int64_t top = (in.height - height) / 2, left = (in.width - width) / 2, C = in.channels;
  for (std::int64_t y = 0; y < height; ++y)
    std::memcpy(out.pixels.data() + y * width * C, in.pixels.data() + ((top + y) * in.width + left) * C,
                static_cast<std::size_t>(width * C));
  return out;
}

// Grey <-> RGB: RGB to grey by ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, as PIL's
// "L"), grey to RGB by copying. Throws for other channel counts.
inline DecodedImage convert_channels(const DecodedImage& in, std::int64_t channels) {
  DML_CHECK(channels == 1 || channels == 3, "convert_channels: channels must be 1 or 3, got ", channels);
  DML_CHECK(in.channels == 1 || in.channels == 3, "convert_channels: the image has ", in.channels, " channels");
  if (in.channels == channels) return in;
  DecodedImage out = in;
  out.channels = channels;
  const std::int64_t n = in.width * in.height;
  out.pixels.resize(static_cast<std::size_t>(n * channels));
  for (std::int64_t i = 0; i < n; ++i) {
    if (channels == 1) {
      const double r = in.pixels[static_cast<std::size_t>(3 * i)], g = in.pixels[static_cast<std::size_t>(3 * i + 1)],
                   b = in.pixels[static_cast<std::size_t>(3 * i + 2)];
      out.pixels[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(std::lround(0.299 * r + 0.587 * g + 0.114 * b));
    } else {
      const std::uint8_t v = in.pixels[static_cast<std::size_t>(i)];
      for (int c = 0; c < 3; ++c) out.pixels[static_cast<std::size_t>(3 * i + c)] = v;
    }
  }
  return out;
}

}  // namespace dml::data
