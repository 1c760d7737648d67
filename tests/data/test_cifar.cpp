// Tests for dml/data/cifar.hpp on generated CIFAR-10 and CIFAR-100 binaries:
// layout, labels, names, per-channel normalisation, and every refusal.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dml/data/cifar.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"
#include "../support/error_of.hpp"

namespace test_cifar {

using dml::testing::error_of;

namespace fs = std::filesystem;
using dml::data::CifarKind;
using dml::data::CifarLabel;
using dml::testing::TempDir;

// The pixel byte of record `i` (a global image number), channel c, at (y, x).
std::uint8_t pixel(std::int64_t i, std::int64_t c, std::int64_t y, std::int64_t x) {
  return static_cast<std::uint8_t>((i * 7 + c * 50 + y * 3 + x) % 256);
}

// One record: label byte(s) then the three planes.
void put_record(std::vector<std::uint8_t>& out, std::int64_t i, std::vector<std::uint8_t> labels) {
  out.insert(out.end(), labels.begin(), labels.end());
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t y = 0; y < 32; ++y)
      for (std::int64_t x = 0; x < 32; ++x) out.push_back(pixel(i, c, y, x));
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// CIFAR-10 records first..first+n-1 with label (i % 10).
std::vector<std::uint8_t> cifar10_records(std::int64_t first, std::int64_t n) {
  std::vector<std::uint8_t> b;
  for (std::int64_t i = first; i < first + n; ++i) put_record(b, i, {static_cast<std::uint8_t>(i % 10)});
  return b;
}

// CIFAR-100 records with coarse label i % 20 and fine label (3 i) % 100.
std::vector<std::uint8_t> cifar100_records(std::int64_t first, std::int64_t n) {
  std::vector<std::uint8_t> b;
  for (std::int64_t i = first; i < first + n; ++i)
    put_record(b, i, {static_cast<std::uint8_t>(i % 20), static_cast<std::uint8_t>((3 * i) % 100)});
  return b;
}

void write_names(const fs::path& p, int n, const char* stem) {
  std::ofstream f(p);
  for (int i = 0; i < n; ++i) f << stem << i << "\n";
  f << "\n";  // a trailing blank line, as the real batches.meta.txt has
}

TEST_CASE("CIFAR-10: batches in order, the planar RGB layout, labels, names, per-channel statistics") {
  TempDir dir;
  write_bytes(dir.path / "data_batch_1.bin", cifar10_records(0, 3));
  write_bytes(dir.path / "data_batch_2.bin", cifar10_records(3, 2));
  write_bytes(dir.path / "test_batch.bin", cifar10_records(100, 2));
  write_names(dir.path / "batches.meta.txt", 10, "class");
  CHECK(dml::data::is_cifar_dir(dir.path));

  const dml::data::IdxSplits raw = dml::data::load_cifar_dir(dir.path);
  CHECK(raw.train.count == 5);
  CHECK(raw.train.channels == 3);
  CHECK(raw.train.rows == 32);
  CHECK(raw.train.cols == 32);
  CHECK(raw.train.labels == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(raw.test.labels == std::vector<std::int64_t>{0, 1});
  // Image 4 (the second record of batch 2), green channel, (5, 6).
  CHECK(raw.train.pixels[static_cast<std::size_t>(4 * 3072 + 1 * 1024 + 5 * 32 + 6)] == pixel(4, 1, 5, 6));

  const dml::data::Splits s = dml::data::load_cifar(dir.path);
  CHECK(s.train.images.shape() == dml::Shape{5, 3, 32, 32});
  CHECK(s.train.num_classes == 10);
  REQUIRE(s.train.class_names.size() == 10);
  CHECK(s.train.class_names[9] == "class9");
  // Each channel is normalised with its own training mean and stddev, the test split with the same.
  const std::vector<dml::data::Normalization> stats = dml::data::channel_stats(raw.train);
  REQUIRE(stats.size() == 3);
  CHECK(s.train.channel_norms == stats);
  CHECK(s.test.channel_norms == stats);
  CHECK(stats[0].mean != stats[2].mean);
  for (std::int64_t c = 0; c < 3; ++c) {
    double sum = 0, sq = 0;
    const float* img = s.train.images.data();
    for (std::int64_t i = 0; i < 5; ++i)
      for (std::int64_t k = 0; k < 1024; ++k) {
        const double v = img[i * 3072 + c * 1024 + k];
        sum += v;
        sq += v * v;
      }
    CHECK(sum / 5120 == doctest::Approx(0.0).epsilon(1e-4).scale(1));
    CHECK(std::sqrt(sq / 5120) == doctest::Approx(1.0).epsilon(1e-4));
  }
  const float want = static_cast<float>((pixel(101, 2, 0, 0) / 255.0 - stats[2].mean) / stats[2].stddev);
  CHECK(s.test.images.data()[1 * 3072 + 2 * 1024] == want);
  CHECK(s.test.backgrounds().size() == 3);
  CHECK(s.test.background(2) == static_cast<float>(-stats[2].mean / stats[2].stddev));

  // Names given by the caller win; without a names file there are none.
  dml::data::DatasetOptions opt;
  opt.class_names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  CHECK(dml::data::load_cifar(dir.path, opt).train.class_names[0] == "a");
  fs::remove(dir.path / "batches.meta.txt");
  CHECK(dml::data::load_cifar(dir.path).train.class_names.empty());
}

TEST_CASE("CIFAR-100: fine or coarse labels") {
  TempDir dir;
  write_bytes(dir.path / "train.bin", cifar100_records(0, 4));
  write_bytes(dir.path / "test.bin", cifar100_records(40, 2));
  write_names(dir.path / "fine_label_names.txt", 100, "fine");
  write_names(dir.path / "coarse_label_names.txt", 20, "coarse");
  const dml::data::Splits fine = dml::data::load_cifar(dir.path);
  CHECK(fine.train.num_classes == 100);
  CHECK(fine.train.labels == std::vector<std::int64_t>{0, 3, 6, 9});
  CHECK(fine.test.labels == std::vector<std::int64_t>{20, 23});
  CHECK(fine.train.class_names[3] == "fine3");
  const dml::data::Splits coarse = dml::data::load_cifar(dir.path, {}, CifarLabel::Coarse);
  CHECK(coarse.train.num_classes == 20);
  CHECK(coarse.train.labels == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK(coarse.train.class_names[19] == "coarse19");
  const dml::data::ImageSet one = dml::data::read_cifar_file(dir.path / "test.bin", CifarKind::Cifar100);
  CHECK(one.pixels[3072 + 2 * 1024 + 31] == pixel(41, 2, 0, 31));
  dml::data::DatasetOptions wrong;
  wrong.num_classes = 10;
  CHECK_THROWS_WITH_AS(dml::data::load_cifar(dir.path, wrong), doctest::Contains("CIFAR-100 has 100 classes"),
                       dml::Error);
}

TEST_CASE("CIFAR files: bad sizes and labels are errors naming the file, record and offset") {
  TempDir dir;
  const fs::path f = dir.path / "x.bin";
  auto read10 = [&] { return dml::data::read_cifar_file(f, CifarKind::Cifar10); };
  auto read100 = [&] { return dml::data::read_cifar_file(f, CifarKind::Cifar100); };

  std::vector<std::uint8_t> truncated = cifar10_records(0, 2);
  truncated.resize(truncated.size() - 100);
  write_bytes(f, truncated);
  std::string e = error_of(read10);
  CHECK(e.find("x.bin") != std::string::npos);
  CHECK(e.find("6046 bytes, not a whole number of 3073-byte records (1 records and 2973 bytes left over)") !=
        std::string::npos);

  write_bytes(f, cifar100_records(0, 3));  // 3 x 3074 = 9222 bytes: 3073 does not divide it
  CHECK(error_of(read10).find("fits CIFAR-100's 3074-byte records") != std::string::npos);
  write_bytes(f, cifar10_records(0, 2));  // 2 x 3073 = 6146: 3074 does not divide it
  CHECK(error_of(read100).find("fits CIFAR-10's 3073-byte records") != std::string::npos);

  write_bytes(f, {});
  CHECK(error_of(read10).find("is empty") != std::string::npos);

  std::vector<std::uint8_t> bad = cifar10_records(0, 3);
  bad[2 * 3073] = 10;
  write_bytes(f, bad);
  CHECK(error_of(read10).find("record 2 (byte offset 6146): label 10 is outside 0..9") != std::string::npos);

  bad = cifar100_records(0, 2);
  bad[3074 + 1] = 100;
  write_bytes(f, bad);
  CHECK(error_of(read100).find("record 1 (byte offset 3075): fine label 100 is outside 0..99") != std::string::npos);
  bad = cifar100_records(0, 2);
  bad[0] = 20;
  write_bytes(f, bad);
  // The coarse label is checked even when the fine one is used.
  CHECK(error_of(read100).find("record 0 (byte offset 0): coarse label 20 is outside 0..19") != std::string::npos);

  CHECK(error_of([&] { return dml::data::read_cifar_file(dir.path / "absent.bin", CifarKind::Cifar10); })
            .find("cannot open") != std::string::npos);
  CHECK(error_of([&] { return dml::data::read_cifar_file(dir.path, CifarKind::Cifar10); }).find("is a directory") !=
        std::string::npos);
}

TEST_CASE("CIFAR directories: gaps, mixed and missing layouts, wrong names files") {
  TempDir dir;
  auto load = [&] { return dml::data::load_cifar(dir.path); };
  CHECK(error_of(load).find("holds neither CIFAR-10") != std::string::npos);
  CHECK_FALSE(dml::data::is_cifar_dir(dir.path));
  CHECK(error_of([&] { return dml::data::load_cifar(dir.path / "absent"); }).find("does not exist") !=
        std::string::npos);

  write_bytes(dir.path / "test_batch.bin", cifar10_records(0, 1));
  CHECK(error_of(load).find("has test_batch.bin but no data_batch_1.bin") != std::string::npos);
  write_bytes(dir.path / "data_batch_1.bin", cifar10_records(0, 1));
  write_bytes(dir.path / "data_batch_3.bin", cifar10_records(0, 1));
  CHECK(error_of(load).find("has data_batch_3.bin but no data_batch_2.bin") != std::string::npos);
  fs::remove(dir.path / "data_batch_3.bin");
  write_bytes(dir.path / "data_batch_01.bin", cifar10_records(0, 1));
  CHECK(error_of(load).find("'data_batch_01.bin' is not data_batch_<N>.bin") != std::string::npos);
  fs::remove(dir.path / "data_batch_01.bin");
  CHECK(load().train.size() == 1);

  write_names(dir.path / "batches.meta.txt", 9, "c");
  CHECK(error_of(load).find("has 9 names for 10 classes") != std::string::npos);
  {
    std::ofstream names(dir.path / "batches.meta.txt");
    for (int i = 0; i < 10; ++i) names << (i == 4 ? "" : "c") << "\n";
  }
  CHECK(error_of(load).find("name 4 (line 5) is empty") != std::string::npos);
  fs::remove(dir.path / "batches.meta.txt");

  write_bytes(dir.path / "train.bin", cifar100_records(0, 1));
  CHECK(error_of(load).find("holds both CIFAR-10") != std::string::npos);

  TempDir hundred;
  write_bytes(hundred.path / "test.bin", cifar100_records(0, 1));
  CHECK(error_of([&] { return dml::data::load_cifar(hundred.path); }).find("has test.bin but no train.bin") !=
        std::string::npos);
}

}  // namespace test_cifar
