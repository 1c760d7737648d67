// dml/data/idx.hpp: read and write IDX files, the format of MNIST, Fashion-MNIST,
// KMNIST and EMNIST, raw or gzip-compressed. Produces plain containers only.
//
// gzip support needs zlib: define DML_WITH_ZLIB (the same way in every
// translation unit) and link zlib (-lz, or CMake's ZLIB::ZLIB). Without it a
// gzip file is a clear dml::Error. gzip is detected by its magic bytes 1f 8b,
// never by the file name.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dml/config.hpp>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#if defined(DML_WITH_ZLIB)
#if __has_include(<zlib.h>)
#include <zlib.h>
#define DML_IDX_HAS_ZLIB 1
#else
#error \
    "DML_WITH_ZLIB is defined but <zlib.h> was not found: install zlib (e.g. zlib1g-dev) or drop DML_WITH_ZLIB"
#endif
#else
#define DML_IDX_HAS_ZLIB 0
#endif

namespace dml::data {

// Largest IDX stream accepted, header plus payload, after decompression.
inline constexpr std::uint64_t kMaxIdxBytes = std::uint64_t{4} << 30;
// Largest rank accepted (MNIST-family files have rank 1 or 3).
inline constexpr int kMaxIdxRank = 8;

// The IDX element type, stored in byte 2 of the file. Multi-byte types are big-endian.
enum class IdxType : std::uint8_t {
  kU8 = 0x08,
  kI8 = 0x09,
  kI16 = 0x0B,
  kI32 = 0x0C,
  kF32 = 0x0D,
  kF64 = 0x0E,
};

// One IDX file in memory. For kU8 the elements are in `data` (raw bytes, row
// major) and `values` is empty; for every other type they are in `values`,
// converted exactly to double, and `data` is empty.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
  IdxType type = IdxType::kU8;
  std::vector<double> values = {};
};

// A set of 8-bit images with one label each: pixels is count*channels*rows*cols
// bytes, image after image, each channel-planar (C x rows x cols, row major).
// IDX files are grey (channels 1); CIFAR files are RGB (channels 3).
struct ImageSet {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;
  std::vector<std::int64_t> labels;
  std::int64_t channels = 1;  // last, so that {count, rows, cols, pixels, labels} still means grey
};

struct IdxSplits {
  ImageSet train, test;
};

// True when this build reads gzip-compressed IDX files (DML_WITH_ZLIB and zlib found).
constexpr bool idx_gzip_supported() noexcept { return DML_IDX_HAS_ZLIB != 0; }

namespace detail {

inline std::size_t idx_type_size(std::uint8_t code) noexcept {
  switch (code) {
    case 0x08:
    case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C:
    case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
  }
}

inline const char* idx_type_name(IdxType t) noexcept {
  switch (t) {
    case IdxType::kU8: return "u8 (0x08)";
    case IdxType::kI8: return "i8 (0x09)";
    case IdxType::kI16: return "i16 (0x0B)";
    case IdxType::kI32: return "i32 (0x0C)";
    case IdxType::kF32: return "f32 (0x0D)";
    case IdxType::kF64: return "f64 (0x0E)";
  }
  return "unknown";
}

inline std::string hex_byte(unsigned v) {
  constexpr char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[(v >> 4) & 15] + kDigits[v & 15];
}

inline std::string dims_string(const std::vector<std::int64_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}

// Throws dml::Error naming the file and the byte offset (of the decompressed stream for gzip).
template <class... Parts>
[[noreturn]] void idx_fail(const std::filesystem::path& file, bool gzip, std::uint64_t offset,
                           Parts&&... parts) {
  throw Error(::dml::detail::concat("IDX file '", file.string(), "', byte offset ", offset,
                                    gzip ? " (decompressed)" : "", ": ",
                                    std::forward<Parts>(parts)...));
}

// Sequential reader over a raw or gzip file; sniffs the gzip magic on open.
class IdxSource {
 public:
  explicit IdxSource(const std::filesystem::path& path) : path_(path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail(0, "is a directory, not a file");
#if defined(_WIN32)
    file_.reset(_wfopen(path.c_str(), L"rb"));
#else
    file_.reset(std::fopen(path.c_str(), "rb"));
#endif
    if (!file_) fail(0, "cannot open: ", std::strerror(errno));
    unsigned char magic[2] = {0, 0};
    std::size_t n = std::fread(magic, 1, 2, file_.get());
    gzip_ = n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!gzip_) {
      std::rewind(file_.get());
      auto size = std::filesystem::file_size(path, ec);
      if (!ec) raw_size_ = size;
      return;
    }
#if DML_IDX_HAS_ZLIB
    file_.reset();
#if defined(_WIN32)
    gz_.reset(gzopen_w(path.c_str(), "rb"));
#else
    gz_.reset(gzopen(path.c_str(), "rb"));
#endif
    if (!gz_) fail(0, "cannot open gzip stream: ", std::strerror(errno));
    gzbuffer(gz_.get(), 1u << 17);
#else
    gzip_ = false;  // offsets below are of the compressed file
    fail(0,
         "the file is gzip-compressed (magic bytes 1f 8b) but dml was built without zlib; "
         "define DML_WITH_ZLIB and link zlib (-lz), or gunzip the file first");
#endif
  }

  // Reads up to n bytes; fewer only at end of data. Throws on I/O or gzip errors.
  std::size_t read(void* dst, std::size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t done = 0;
    while (done < n) {
      std::size_t want = std::min<std::size_t>(n - done, std::size_t{1} << 30);
      std::size_t got = 0;
#if DML_IDX_HAS_ZLIB
      if (gz_) {
        int r = gzread(gz_.get(), out + done, static_cast<unsigned>(want));
        if (r < 0) {
          int code = 0;
          const char* msg = gzerror(gz_.get(), &code);
          fail(offset_ + done, "corrupt gzip stream: ", msg ? msg : "zlib error");
        }
        got = static_cast<std::size_t>(r);
        if (got == 0) {  // zlib reports a truncated stream only through gzerror
          int code = Z_OK;
          const char* msg = gzerror(gz_.get(), &code);
          if (code != Z_OK) fail(offset_ + done, "corrupt or truncated gzip stream: ", msg);
        }
      } else
#endif
      {
        got = std::fread(out + done, 1, want, file_.get());
        if (got < want && std::ferror(file_.get()))
          fail(offset_ + done + got, "read error: ", std::strerror(errno));
      }
      done += got;
      if (got < want) break;
    }
    offset_ += done;
    return done;
  }

  template <class... Parts>
  [[noreturn]] void fail(std::uint64_t offset, Parts&&... parts) const {
    idx_fail(path_, gzip_, offset, std::forward<Parts>(parts)...);
  }

  bool gzip() const noexcept { return gzip_; }
  // Size of a raw file on disk; 0 when unknown or gzip.
  std::uint64_t raw_size() const noexcept { return raw_size_; }

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::filesystem::path path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
#if DML_IDX_HAS_ZLIB
  struct GzCloser {
    void operator()(gzFile f) const noexcept { gzclose(f); }
  };
  std::unique_ptr<gzFile_s, GzCloser> gz_;
#endif
  bool gzip_ = false;
  std::uint64_t raw_size_ = 0;
  std::uint64_t offset_ = 0;
};

inline std::uint64_t load_be(const unsigned char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

inline void store_be(std::uint64_t v, std::size_t n, unsigned char* p) noexcept {
  for (std::size_t i = n; i-- > 0; v >>= 8) p[i] = static_cast<unsigned char>(v & 0xff);
}

inline double decode_element(IdxType t, const unsigned char* p) noexcept {
  switch (t) {
    case IdxType::kU8: return p[0];
    case IdxType::kI8: return static_cast<std::int8_t>(p[0]);
    case IdxType::kI16: return static_cast<std::int16_t>(static_cast<std::uint16_t>(load_be(p, 2)));
    case IdxType::kI32: return static_cast<std::int32_t>(static_cast<std::uint32_t>(load_be(p, 4)));
    case IdxType::kF32: return std::bit_cast<float>(static_cast<std::uint32_t>(load_be(p, 4)));
    case IdxType::kF64: return std::bit_cast<double>(load_be(p, 8));
  }
  return 0;
}

// A parsed file plus what error messages about it need.
struct IdxRead {
  IdxArray array;
  bool gzip = false;
  std::uint64_t header_bytes = 0;
};

inline IdxRead read_idx_detailed(const std::filesystem::path& path) {
  IdxSource src(path);
  IdxRead out;
  out.gzip = src.gzip();
  unsigned char head[4];
  std::size_t n = src.read(head, 4);
  if (n < 4)
    src.fail(n, "file ends inside the 4-byte IDX magic number (", n, " bytes in the file)");
  if (head[0] != 0 || head[1] != 0)
    src.fail(head[0] != 0 ? 0 : 1, "bad magic: the first two bytes must be 0x00 0x00, got ",
             hex_byte(head[0]), " ", hex_byte(head[1]), " (not an IDX file)");
  const std::size_t elem = idx_type_size(head[2]);
  if (elem == 0)
    src.fail(2, "unknown type byte ", hex_byte(head[2]),
             " (expected 0x08 u8, 0x09 i8, 0x0b i16, 0x0c i32, 0x0d f32 or 0x0e f64)");
  const IdxType type = static_cast<IdxType>(head[2]);
  const std::size_t rank = head[3];
  if (rank < 1 || rank > static_cast<std::size_t>(kMaxIdxRank))
    src.fail(3, "rank ", rank, " is outside 1..", kMaxIdxRank);
  out.header_bytes = 4 + 4 * static_cast<std::uint64_t>(rank);

  std::array<unsigned char, 4 * kMaxIdxRank> raw_dims{};
  n = src.read(raw_dims.data(), 4 * rank);
  if (n < 4 * rank)
    src.fail(4 + n, "file ends inside the dimension sizes (a rank-", rank, " header is ",
             out.header_bytes, " bytes)");
  auto& dims = out.array.dims;
  for (std::size_t i = 0; i < rank; ++i) {
    auto d = static_cast<std::int64_t>(load_be(raw_dims.data() + 4 * i, 4));
    if (d == 0) src.fail(4 + 4 * i, "dimension ", i, " is zero");
    dims.push_back(d);
  }
  // Element count with overflow detection, then the size limit.
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < rank; ++i) {
    auto d = static_cast<std::uint64_t>(dims[i]);
    if (count > std::numeric_limits<std::uint64_t>::max() / d)
      src.fail(4 + 4 * i, "dimensions ", dims_string(dims), " overflow a 64-bit element count");
    count *= d;
  }
  if (count > (kMaxIdxBytes - out.header_bytes) / elem)
    src.fail(4, "dimensions ", dims_string(dims), " of ", idx_type_name(type), " need ", count,
             " elements, more than the limit of ", kMaxIdxBytes, " bytes");
  const std::uint64_t bytes = count * elem;
  const std::uint64_t end = out.header_bytes + bytes;

  if (!src.gzip() && src.raw_size() != 0) {
    if (src.raw_size() < end)
      src.fail(src.raw_size(), "payload is short: dimensions ", dims_string(dims), " of ",
               idx_type_name(type), " need ", bytes, " payload bytes (file size ", end,
               ") but the file ends after ", src.raw_size(), " bytes");
    if (src.raw_size() > end)
      src.fail(end, src.raw_size() - end, " trailing bytes after the payload (dimensions ",
               dims_string(dims), " end the file at byte ", end, ")");
  }

  std::vector<std::uint8_t> payload;
  payload.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(bytes, std::uint64_t{1} << 26)));
  constexpr std::size_t kChunk = std::size_t{1} << 24;  // grow as data arrives, never on trust
  while (payload.size() < bytes) {
    std::size_t old = payload.size();
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, bytes - old));
    payload.resize(old + want);
    std::size_t got = src.read(payload.data() + old, want);
    if (got < want)
      src.fail(out.header_bytes + old + got, "payload is short: dimensions ", dims_string(dims),
               " of ", idx_type_name(type), " need ", bytes,
               " payload bytes but the data ends after ", old + got);
  }
  unsigned char probe[4096];
  if (std::size_t extra = src.read(probe, sizeof probe); extra > 0)
    src.fail(end, extra == sizeof probe ? "at least " : "", extra,
             " trailing bytes after the payload (dimensions ", dims_string(dims),
             " end the data at byte ", end, ")");

  out.array.type = type;
  if (type == IdxType::kU8) {
    out.array.data = std::move(payload);
  } else {
    out.array.values.resize(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < out.array.values.size(); ++i)
      out.array.values[i] = decode_element(type, payload.data() + i * elem);
  }
  return out;
}

template <class... Parts>
[[noreturn]] void write_fail(const std::filesystem::path& file, Parts&&... parts) {
  throw Error(
      ::dml::detail::concat("write_idx '", file.string(), "': ", std::forward<Parts>(parts)...));
}

inline void encode_element(const std::filesystem::path& file, IdxType t, double v, std::size_t i,
                           unsigned char* p) {
  auto integral = [&](double lo, double hi, std::size_t n) {
    if (!(v >= lo && v <= hi) || v != std::trunc(v))
      write_fail(file, "value ", v, " at element ", i, " is not representable as ",
                 idx_type_name(t));
    store_be(static_cast<std::uint64_t>(static_cast<std::int64_t>(v)), n, p);
  };
  switch (t) {
    case IdxType::kU8: integral(0, 255, 1); break;
    case IdxType::kI8: integral(-128, 127, 1); break;
    case IdxType::kI16: integral(-32768, 32767, 2); break;
    case IdxType::kI32: integral(-2147483648.0, 2147483647.0, 4); break;
    case IdxType::kF32: store_be(std::bit_cast<std::uint32_t>(static_cast<float>(v)), 4, p); break;
    case IdxType::kF64: store_be(std::bit_cast<std::uint64_t>(v), 8, p); break;
  }
}

// Finds the first existing file among the standard names of one MNIST-family file.
inline std::filesystem::path find_idx_member(const std::filesystem::path& dir,
                                             const std::string& dashed, const std::string& dotted,
                                             std::string& missing) {
  const std::string names[] = {dashed, dashed + ".gz", dotted, dotted + ".gz"};
  for (const auto& name : names) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  }
  missing += ::dml::detail::concat(missing.empty() ? "" : "; ", names[0], " (or ", names[1], ", ",
                                   names[2], ", ", names[3], ")");
  return {};
}

}  // namespace detail

// Reads one IDX file, raw or gzip (detected by content). Returns its dims and
// elements (see IdxArray). Throws dml::Error naming the file and the byte
// offset for a missing file, bad magic, unknown type byte, rank outside
// 1..kMaxIdxRank, a zero dimension, dimensions over kMaxIdxBytes, a short or
// long payload, a corrupt gzip stream, or gzip without zlib support.
inline IdxArray read_idx(const std::filesystem::path& path) {
  return detail::read_idx_detailed(path).array;
}

// Writes `array` as a raw (uncompressed) IDX file of type array.type,
// replacing `path`. Elements come from array.data for kU8 and array.values
// otherwise; integer types need integral values in range, kF32 rounds. Throws
// dml::Error for a rank outside 1..kMaxIdxRank, a dimension outside
// 1..2^32-1, an element count that does not match dims, or an I/O failure.
inline void write_idx(const std::filesystem::path& path, const IdxArray& array) {
  const auto code = static_cast<std::uint8_t>(array.type);
  const std::size_t elem = detail::idx_type_size(code);
  if (elem == 0) detail::write_fail(path, "unknown IdxType ", detail::hex_byte(code));
  const auto& dims = array.dims;
  if (dims.empty() || dims.size() > static_cast<std::size_t>(kMaxIdxRank))
    detail::write_fail(path, "rank ", dims.size(), " is outside 1..", kMaxIdxRank);
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 1 || dims[i] > 0xFFFFFFFFLL)
      detail::write_fail(path, "dimension ", i, " is ", dims[i], ", outside 1..4294967295");
    count *= static_cast<std::uint64_t>(dims[i]);  // < 2^64: checked against the limit next
    if (count > kMaxIdxBytes)
      detail::write_fail(path, "dimensions ", detail::dims_string(dims), " exceed ", kMaxIdxBytes,
                         " bytes");
  }
  const std::size_t have = array.type == IdxType::kU8 ? array.data.size() : array.values.size();
  const char* field = array.type == IdxType::kU8 ? "data" : "values";
  if (have != count)
    detail::write_fail(path, "dimensions ", detail::dims_string(dims), " hold ", count,
                       " elements but ", field, " has ", have);
  const std::uint64_t header = 4 + 4 * dims.size();
  if (header + count * elem > kMaxIdxBytes)
    detail::write_fail(path, "the file would exceed ", kMaxIdxBytes, " bytes");

  std::vector<unsigned char> bytes(static_cast<std::size_t>(header));
  bytes[2] = code;
  bytes[3] = static_cast<unsigned char>(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i)
    detail::store_be(static_cast<std::uint64_t>(dims[i]), 4, bytes.data() + 4 + 4 * i);
  const unsigned char* payload = array.data.data();
  std::vector<unsigned char> encoded;
  if (array.type != IdxType::kU8) {
    encoded.resize(static_cast<std::size_t>(count * elem));
    for (std::size_t i = 0; i < count; ++i)
      detail::encode_element(path, array.type, array.values[i], i, encoded.data() + i * elem);
    payload = encoded.data();
  }

#if defined(_WIN32)
  std::FILE* f = _wfopen(path.c_str(), L"wb");
#else
  std::FILE* f = std::fopen(path.c_str(), "wb");
#endif
  if (!f) detail::write_fail(path, "cannot open for writing: ", std::strerror(errno));
  const std::size_t payload_bytes = static_cast<std::size_t>(count * elem);
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() &&
            (payload_bytes == 0 || std::fwrite(payload, 1, payload_bytes, f) == payload_bytes);
  int saved = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) detail::write_fail(path, "write failed: ", std::strerror(saved ? saved : errno));
}

// Reads an images file (u8, rank 3: count x rows x cols) and a labels file
// (rank 1, any integer type, values 0..255) of equal count. num_classes_hint
// is -1 (no check) or 1..256 (every label must be below it). Throws
// dml::Error naming the file and byte offset for anything read_idx rejects,
// a wrong type or rank, a label out of range, or unequal counts.
inline ImageSet load_idx_pair(const std::filesystem::path& images,
                              const std::filesystem::path& labels, int num_classes_hint = -1) {
  DML_CHECK(num_classes_hint == -1 || (num_classes_hint >= 1 && num_classes_hint <= 256),
            "load_idx_pair: num_classes_hint must be -1 or 1..256, got ", num_classes_hint);
  auto img = detail::read_idx_detailed(images);
  if (img.array.type != IdxType::kU8)
    detail::idx_fail(images, img.gzip, 2, "images must have type u8 (0x08), got ",
                     detail::idx_type_name(img.array.type));
  if (img.array.dims.size() != 3)
    detail::idx_fail(images, img.gzip, 3, "images need rank 3 (count x rows x cols), got rank ",
                     img.array.dims.size());
  auto lab = detail::read_idx_detailed(labels);
  const IdxType lt = lab.array.type;
  if (lt == IdxType::kF32 || lt == IdxType::kF64)
    detail::idx_fail(labels, lab.gzip, 2, "labels need an integer type, got ",
                     detail::idx_type_name(lt));
  if (lab.array.dims.size() != 1)
    detail::idx_fail(labels, lab.gzip, 3, "labels need rank 1 (count), got rank ",
                     lab.array.dims.size());
  if (img.array.dims[0] != lab.array.dims[0])
    throw Error(
        ::dml::detail::concat("IDX image count ", img.array.dims[0], " in '", images.string(),
                              "' (byte offset 4) does not match label count ", lab.array.dims[0],
                              " in '", labels.string(), "' (byte offset 4)"));

  ImageSet set;
  set.count = img.array.dims[0];
  set.rows = img.array.dims[1];
  set.cols = img.array.dims[2];
  set.pixels = std::move(img.array.data);
  set.labels.resize(static_cast<std::size_t>(set.count));
  const std::size_t elem = detail::idx_type_size(static_cast<std::uint8_t>(lt));
  for (std::size_t i = 0; i < set.labels.size(); ++i) {
    const double v = lt == IdxType::kU8 ? lab.array.data[i] : lab.array.values[i];
    const std::uint64_t at = lab.header_bytes + i * elem;
    if (v < 0 || v > 255)
      detail::idx_fail(labels, lab.gzip, at, "label ", v, " of item ", i, " is outside 0..255");
    if (num_classes_hint > 0 && v >= num_classes_hint)
      detail::idx_fail(labels, lab.gzip, at, "label ", v, " of item ", i,
                       " is not below num_classes_hint ", num_classes_hint);
    set.labels[i] = static_cast<std::int64_t>(v);
  }
  return set;
}

// Loads the MNIST-style train and test pairs from `dir`, trying for each file
// the names train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each also with ".gz" and in
// the dotted form (train-images.idx3-ubyte). Throws dml::Error listing the
// names it looked for when any is missing, and whatever load_idx_pair throws.
inline IdxSplits load_idx_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  DML_CHECK(std::filesystem::is_directory(dir, ec), "IDX directory '", dir.string(),
            "' does not exist or is not a directory");
  std::string missing;
  auto train_x =
      detail::find_idx_member(dir, "train-images-idx3-ubyte", "train-images.idx3-ubyte", missing);
  auto train_y =
      detail::find_idx_member(dir, "train-labels-idx1-ubyte", "train-labels.idx1-ubyte", missing);
  auto test_x =
      detail::find_idx_member(dir, "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte", missing);
  auto test_y =
      detail::find_idx_member(dir, "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte", missing);
  DML_CHECK(missing.empty(), "IDX directory '", dir.string(), "' lacks ", missing,
            " (scripts/get_data.sh fetches MNIST and Fashion-MNIST)");
  IdxSplits out;
  out.train = load_idx_pair(train_x, train_y);
  out.test = load_idx_pair(test_x, test_y);
  DML_CHECK(out.train.rows == out.test.rows && out.train.cols == out.test.cols, "IDX directory '",
            dir.string(), "': train images are ", out.train.rows, " x ", out.train.cols,
            " but test images are ", out.test.rows, " x ", out.test.cols);
  return out;
}

}  // namespace dml::data
