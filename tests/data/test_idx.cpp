// Tests for dml/data/idx.hpp: round trips, gzip, and every malformed-file error.
#include <doctest/doctest.h>

#include <cstdint>
#include <dml/data/idx.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#if DML_IDX_HAS_ZLIB
#include <zlib.h>
#endif

#include "../support/error_of.hpp"
#include "../support/temp_dir.hpp"

namespace fs = std::filesystem;
using dml::data::IdxArray;
using dml::data::IdxType;

namespace {

// A fresh directory under the system temp dir, removed on destruction.
using dml::testing::TempDir;

using Bytes = std::vector<std::uint8_t>;

void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

Bytes read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// An IDX header for `type` and `dims`, followed by `payload` bytes.
Bytes idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes iota_bytes(std::size_t n, std::uint8_t start = 0) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(start + i);
  return b;
}

using dml::testing::contains;
using dml::testing::error_of;

// Checks a file error: it names the file, the byte offset, and says what went wrong.
void check_file_error(const std::string& msg, const fs::path& file, std::uint64_t offset,
                      const std::string& what) {
  INFO(msg);
  CHECK(contains(msg, file.string()));
  CHECK(contains(msg, "byte offset " + std::to_string(offset)));
  CHECK(contains(msg, what));
}

#if DML_IDX_HAS_ZLIB
void write_gzip(const fs::path& p, const Bytes& b) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}
#endif

}  // namespace

TEST_CASE("u8 images round-trip through write_idx and read_idx") {
  TempDir dir;
  IdxArray images{{3, 4, 5}, iota_bytes(60, 7)};
  write_idx(dir / "img", images);
  Bytes raw = read_bytes(dir / "img");
  REQUIRE(raw.size() == 16 + 60);
  CHECK(Bytes(raw.begin(), raw.begin() + 16) ==
        Bytes{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5});
  IdxArray back = dml::data::read_idx(dir / "img");
  CHECK(back.type == IdxType::kU8);
  CHECK(back.dims == images.dims);
  CHECK(back.data == images.data);
  CHECK(back.values.empty());
}

TEST_CASE("u8 labels round-trip, including a dimension above 65535") {
  TempDir dir;
  IdxArray labels{{70000}, Bytes(70000)};
  for (std::size_t i = 0; i < labels.data.size(); ++i)
    labels.data[i] = static_cast<std::uint8_t>(i % 10);
  write_idx(dir / "lab", labels);
  IdxArray back = dml::data::read_idx(dir / "lab");
  CHECK(back.dims == std::vector<std::int64_t>{70000});
  CHECK(back.data == labels.data);
}

TEST_CASE("every IDX element type round-trips through double values") {
  TempDir dir;
  struct Case {
    IdxType type;
    std::vector<double> values;
  };
  const Case cases[] = {
      {IdxType::kI8, {-128, -1, 0, 127}},
      {IdxType::kI16, {-32768, -300, 255, 32767}},
      {IdxType::kI32, {-2147483648.0, -70000, 65536, 2147483647.0}},
      {IdxType::kF32, {-1.5, 0.25, 3.0e38, 1.0e-30}},
      {IdxType::kF64, {-1.0 / 3.0, 0.1, 1.0e300, -0.0}},
  };
  for (const auto& c : cases) {
    INFO(static_cast<int>(c.type));
    IdxArray a;
    a.dims = {2, 2};
    a.type = c.type;
    a.values = c.values;
    write_idx(dir / "typed", a);
    IdxArray back = dml::data::read_idx(dir / "typed");
    CHECK(back.type == c.type);
    CHECK(back.dims == a.dims);
    CHECK(back.data.empty());
    std::vector<double> want = c.values;
    if (c.type == IdxType::kF32)
      for (auto& v : want) v = static_cast<float>(v);
    CHECK(back.values == want);
  }
}

TEST_CASE("multi-byte elements are stored big-endian") {
  TempDir dir;
  IdxArray a{{1}, {}, IdxType::kI16, {258}};
  write_idx(dir / "be", a);
  CHECK(read_bytes(dir / "be") == Bytes{0, 0, 0x0B, 1, 0, 0, 0, 1, 0x01, 0x02});
}

TEST_CASE("write_idx rejects what it cannot write faithfully") {
  TempDir dir;
  const auto p = dir / "w";
  auto msg = error_of([&] { write_idx(p, IdxArray{{2, 3}, Bytes(5)}); });
  CHECK(contains(msg, p.string()));
  CHECK(contains(msg, "6 elements"));
  msg = error_of([&] { write_idx(p, IdxArray{{0, 3}, {}}); });
  CHECK(contains(msg, "dimension 0 is 0"));
  msg = error_of([&] { write_idx(p, IdxArray{{}, {}}); });
  CHECK(contains(msg, "rank 0"));
  msg = error_of([&] { write_idx(p, IdxArray{{1}, {}, IdxType::kI8, {200}}); });
  CHECK(contains(msg, "not representable"));
  msg = error_of([&] { write_idx(p, IdxArray{{1}, {}, IdxType::kI32, {1.5}}); });
  CHECK(contains(msg, "not representable"));
  msg = error_of([&] { write_idx(p, IdxArray{{1 << 20, 1 << 20}, {}}); });
  CHECK(contains(msg, "exceed"));
  msg = error_of([&] { write_idx(dir / "no" / "such" / "dir", IdxArray{{1}, {1}}); });
  CHECK(contains(msg, "cannot open for writing"));
}

TEST_CASE("load_idx_pair returns images and labels with their shape") {
  TempDir dir;
  write_idx(dir / "x", IdxArray{{3, 2, 2}, iota_bytes(12)});
  write_idx(dir / "y", IdxArray{{3}, {4, 0, 9}});
  auto set = dml::data::load_idx_pair(dir / "x", dir / "y", 10);
  CHECK(set.count == 3);
  CHECK(set.rows == 2);
  CHECK(set.cols == 2);
  CHECK(set.pixels == iota_bytes(12));
  CHECK(set.labels == std::vector<std::int64_t>{4, 0, 9});
}

TEST_CASE("load_idx_pair accepts integer labels wider than a byte") {
  TempDir dir;
  write_idx(dir / "x", IdxArray{{2, 1, 1}, {1, 2}});
  write_idx(dir / "y", IdxArray{{2}, {}, IdxType::kI32, {255, 7}});
  CHECK(dml::data::load_idx_pair(dir / "x", dir / "y").labels == std::vector<std::int64_t>{255, 7});
}

TEST_CASE("load_idx_dir finds standard, dotted and gzip names") {
  TempDir dir;
  write_idx(dir / "train-images-idx3-ubyte", IdxArray{{2, 2, 2}, iota_bytes(8)});
  write_idx(dir / "train-labels.idx1-ubyte", IdxArray{{2}, {1, 0}});
  write_idx(dir / "t10k-images.idx3-ubyte", IdxArray{{1, 2, 2}, iota_bytes(4, 100)});
  write_idx(dir / "t10k-labels-idx1-ubyte", IdxArray{{1}, {3}});
  auto splits = dml::data::load_idx_dir(dir.path);
  CHECK(splits.train.count == 2);
  CHECK(splits.train.labels == std::vector<std::int64_t>{1, 0});
  CHECK(splits.test.count == 1);
  CHECK(splits.test.pixels == iota_bytes(4, 100));
}

TEST_CASE("load_idx_dir lists every name it looked for") {
  TempDir dir;
  write_idx(dir / "train-images-idx3-ubyte", IdxArray{{1, 1, 1}, {0}});
  auto msg = error_of([&] { dml::data::load_idx_dir(dir.path); });
  INFO(msg);
  CHECK(contains(msg, dir.path.string()));
  CHECK(!contains(msg, "train-images-idx3-ubyte.gz"));
  for (const char* name :
       {"train-labels-idx1-ubyte", "train-labels-idx1-ubyte.gz", "train-labels.idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte.gz", "t10k-labels-idx1-ubyte"})
    CHECK(contains(msg, name));
  msg = error_of([&] { dml::data::load_idx_dir(dir / "absent"); });
  CHECK(contains(msg, "does not exist"));
}

TEST_CASE("a file that begins with 1f 8b is treated as gzip whatever its name") {
  TempDir dir;
  const auto p = dir / "plain-name";
  write_bytes(p, {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3});
  if (!dml::data::idx_gzip_supported()) {
    auto msg = error_of([&] { dml::data::read_idx(p); });
    check_file_error(msg, p, 0, "without zlib");
    CHECK(contains(msg, "DML_WITH_ZLIB"));
    return;
  }
#if DML_IDX_HAS_ZLIB
  Bytes content = idx_bytes(8, {2, 3}, iota_bytes(6));
  write_gzip(p, content);
  IdxArray a = dml::data::read_idx(p);
  CHECK(a.dims == std::vector<std::int64_t>{2, 3});
  CHECK(a.data == iota_bytes(6));
  // And a raw file named .gz is read as raw.
  write_bytes(dir / "raw.gz", content);
  CHECK(dml::data::read_idx(dir / "raw.gz").data == iota_bytes(6));
#endif
}

#if DML_IDX_HAS_ZLIB
TEST_CASE("gzip images and labels round-trip through load_idx_dir") {
  TempDir dir;
  Bytes pixels = iota_bytes(3 * 28 * 28, 5);
  write_gzip(dir / "train-images-idx3-ubyte.gz", idx_bytes(8, {3, 28, 28}, pixels));
  write_gzip(dir / "train-labels-idx1-ubyte.gz", idx_bytes(8, {3}, {2, 1, 0}));
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_bytes(8, {1, 28, 28}, iota_bytes(784)));
  write_gzip(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes(8, {1}, {9}));
  auto splits = dml::data::load_idx_dir(dir.path);
  CHECK(splits.train.pixels == pixels);
  CHECK(splits.train.labels == std::vector<std::int64_t>{2, 1, 0});
  CHECK(splits.test.labels == std::vector<std::int64_t>{9});
}

TEST_CASE("gzip errors name the file and a decompressed offset") {
  TempDir dir;
  const auto p = dir / "g.gz";
  write_gzip(p, idx_bytes(8, {10}, iota_bytes(7)));
  auto msg = error_of([&] { dml::data::read_idx(p); });
  check_file_error(msg, p, 15, "payload is short");
  CHECK(contains(msg, "decompressed"));

  write_gzip(p, idx_bytes(8, {4}, iota_bytes(6)));
  check_file_error(error_of([&] { dml::data::read_idx(p); }), p, 12, "2 trailing bytes");

  // A gzip stream cut in the middle.
  write_gzip(p, idx_bytes(8, {100, 100}, Bytes(10000, 0)));
  Bytes gz = read_bytes(p);
  gz.resize(gz.size() / 2);
  write_bytes(p, gz);
  msg = error_of([&] { dml::data::read_idx(p); });
  INFO(msg);
  CHECK(contains(msg, p.string()));
  CHECK(contains(msg, "byte offset"));
  CHECK(contains(msg, "gzip"));
}
#endif

TEST_CASE("malformed headers are errors naming the file and the byte offset") {
  TempDir dir;
  const auto p = dir / "bad-idx";
  auto read = [&](const Bytes& b) {
    write_bytes(p, b);
    return error_of([&] { dml::data::read_idx(p); });
  };
  check_file_error(read({}), p, 0, "magic");
  check_file_error(read({0, 0, 8}), p, 3, "magic");
  check_file_error(read({0, 1, 8, 1, 0, 0, 0, 1, 0}), p, 1, "bad magic");
  check_file_error(read({'P', 'K', 3, 4, 0, 0, 0, 1, 0}), p, 0, "bad magic");
  check_file_error(read(idx_bytes(0x0A, {1}, {0})), p, 2, "unknown type byte 0x0a");
  check_file_error(read(idx_bytes(0x07, {1}, {0})), p, 2, "unknown type byte");
  check_file_error(read({0, 0, 8, 0}), p, 3, "rank 0");
  check_file_error(read(idx_bytes(8, std::vector<std::uint32_t>(9, 1), {0})), p, 3, "rank 9");
  check_file_error(read({0, 0, 8, 3, 0, 0, 0, 1, 0, 0}), p, 10, "dimension sizes");
  check_file_error(read(idx_bytes(8, {5, 0, 2}, {})), p, 8, "dimension 1 is zero");
  check_file_error(read(idx_bytes(8, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {})), p, 12, "overflow");
  check_file_error(read(idx_bytes(8, {65536, 65536, 2}, {})), p, 4, "limit");
  check_file_error(read(idx_bytes(0x0E, {1u << 29}, {})), p, 4, "limit");  // 4 GiB of f64 + header
}

TEST_CASE("payloads of the wrong length are errors naming the file and the byte offset") {
  TempDir dir;
  const auto p = dir / "payload";
  write_bytes(p, idx_bytes(8, {2, 28, 28}, Bytes(2 * 784 - 1)));
  auto msg = error_of([&] { dml::data::read_idx(p); });
  check_file_error(msg, p, 16 + 2 * 784 - 1, "payload is short");
  CHECK(contains(msg, "1568 payload bytes"));

  write_bytes(p, idx_bytes(0x0C, {3}, Bytes(11)));  // i32 needs 12
  check_file_error(error_of([&] { dml::data::read_idx(p); }), p, 19, "payload is short");

  write_bytes(p, idx_bytes(8, {4}, Bytes(7)));
  check_file_error(error_of([&] { dml::data::read_idx(p); }), p, 12, "3 trailing bytes");
}

TEST_CASE("missing files and directories are errors naming the path") {
  TempDir dir;
  check_file_error(error_of([&] { dml::data::read_idx(dir / "nope"); }), dir / "nope", 0,
                   "cannot open");
  check_file_error(error_of([&] { dml::data::read_idx(dir.path); }), dir.path, 0, "directory");
  write_idx(dir / "y", IdxArray{{1}, {0}});
  check_file_error(error_of([&] { dml::data::load_idx_pair(dir / "nope", dir / "y"); }),
                   dir / "nope", 0, "cannot open");
}

TEST_CASE("load_idx_pair rejects wrong ranks and types") {
  TempDir dir;
  const auto x = dir / "x", y = dir / "y";
  write_idx(y, IdxArray{{2}, {0, 1}});
  write_idx(x, IdxArray{{2, 4}, Bytes(8)});
  check_file_error(error_of([&] { dml::data::load_idx_pair(x, y); }), x, 3, "rank 3");
  write_idx(x, IdxArray{{2, 1, 1}, {}, IdxType::kF32, {0, 1}});
  check_file_error(error_of([&] { dml::data::load_idx_pair(x, y); }), x, 2, "u8");
  write_idx(x, IdxArray{{2, 1, 1}, {0, 1}});
  write_idx(y, IdxArray{{2, 1}, {0, 1}});
  check_file_error(error_of([&] { dml::data::load_idx_pair(x, y); }), y, 3, "rank 1");
  write_idx(y, IdxArray{{2}, {}, IdxType::kF64, {0, 1}});
  check_file_error(error_of([&] { dml::data::load_idx_pair(x, y); }), y, 2, "integer type");
}

TEST_CASE("labels out of range are errors at the label's byte offset") {
  TempDir dir;
  const auto x = dir / "x", y = dir / "y";
  write_idx(x, IdxArray{{4, 1, 1}, Bytes(4)});
  write_idx(y, IdxArray{{4}, {0, 9, 10, 3}});
  CHECK(dml::data::load_idx_pair(x, y, 11).labels[2] == 10);
  check_file_error(error_of([&] { dml::data::load_idx_pair(x, y, 10); }), y, 10,
                   "not below num_classes_hint 10");
  write_idx(y, IdxArray{{4}, {}, IdxType::kI16, {0, 1, 300, 2}});
  check_file_error(error_of([&] { dml::data::load_idx_pair(x, y); }), y, 12, "outside 0..255");
  write_idx(y, IdxArray{{4}, {}, IdxType::kI8, {0, -1, 2, 2}});
  check_file_error(error_of([&] { dml::data::load_idx_pair(x, y); }), y, 9, "outside 0..255");
  auto msg = error_of([&] { dml::data::load_idx_pair(x, y, 0); });
  CHECK(contains(msg, "num_classes_hint"));
}

TEST_CASE("image and label counts must agree") {
  TempDir dir;
  const auto x = dir / "x", y = dir / "y";
  write_idx(x, IdxArray{{3, 2, 2}, Bytes(12)});
  write_idx(y, IdxArray{{2}, {0, 1}});
  auto msg = error_of([&] { dml::data::load_idx_pair(x, y); });
  INFO(msg);
  CHECK(contains(msg, x.string()));
  CHECK(contains(msg, y.string()));
  CHECK(contains(msg, "byte offset 4"));
  CHECK(contains(msg, "image count 3"));
  CHECK(contains(msg, "label count 2"));
}
