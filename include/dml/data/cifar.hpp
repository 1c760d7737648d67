// dml/data/cifar.hpp: read the binary versions of CIFAR-10 and CIFAR-100.
//
// CIFAR-10 (cifar-10-batches-bin/): data_batch_1.bin ... data_batch_5.bin and
// test_batch.bin, records of 1 label byte (0..9) + 3072 pixel bytes; class names
// in batches.meta.txt, one per line.
// CIFAR-100 (cifar-100-binary/): train.bin and test.bin, records of a coarse label
// byte (0..19), a fine label byte (0..99) and 3072 pixel bytes; names in
// fine_label_names.txt and coarse_label_names.txt.
// The 3072 pixel bytes of a record are the 32 x 32 red plane, then green, then
// blue, each row major: the ImageSet layout (channels 3).
//
// Validation is as strict as the IDX reader's: a file whose size is not a whole
// number of records, an empty file, a label out of range, a gap in the batch
// numbers, a directory holding both layouts or neither, or a names file with the
// wrong number of names is a dml::Error naming the file (and the record and byte
// offset where one applies).
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "../config.hpp"
#include "dataset.hpp"
#include "idx.hpp"

namespace dml::data {

enum class CifarKind { Cifar10, Cifar100 };
// Which of CIFAR-100's two labels becomes Dataset::labels.
enum class CifarLabel { Fine, Coarse };

inline constexpr std::int64_t kCifarSide = 32, kCifarChannels = 3;
inline constexpr std::int64_t kCifarPixels = kCifarChannels * kCifarSide * kCifarSide;  // 3072

// Bytes per record: label byte(s) + 3072 pixels.
constexpr std::int64_t cifar_record_bytes(CifarKind kind) noexcept {
  return (kind == CifarKind::Cifar10 ? 1 : 2) + kCifarPixels;
}
// Number of classes of the chosen label.
constexpr std::int64_t cifar_classes(CifarKind kind, CifarLabel label = CifarLabel::Fine) noexcept {
  return kind == CifarKind::Cifar10 ? 10 : (label == CifarLabel::Fine ? 100 : 20);
}

namespace detail {

inline std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path, const char* what) {
  std::error_code ec;
  DML_CHECK(!std::filesystem::is_directory(path, ec), what, " '", path.string(), "' is a directory, not a file");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  DML_CHECK(f != nullptr, what, " '", path.string(), "': cannot open: ", std::strerror(errno));
  const auto size = std::filesystem::file_size(path, ec);
  DML_CHECK(!ec, what, " '", path.string(), "': cannot read its size: ", ec.message());
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  const std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f.get());
  DML_CHECK(got == bytes.size(), what, " '", path.string(), "': read ", got, " of ", bytes.size(), " bytes",
            std::ferror(f.get()) ? std::string(": ") + std::strerror(errno) : std::string());
  return bytes;
}

inline const char* cifar_name(CifarKind kind) { return kind == CifarKind::Cifar10 ? "CIFAR-10" : "CIFAR-100"; }

}  // namespace detail

// Appends the records of one CIFAR binary file to `out` (channels 3, 32 x 32),
// with the chosen label (CIFAR-10 has only one). Throws dml::Error naming the
// file on a size that is not a positive whole number of records, or a label
// byte out of range (naming the record and its byte offset).
inline void append_cifar_file(const std::filesystem::path& path, CifarKind kind, CifarLabel label, ImageSet& out) {
  const std::string name = path.string();
  const std::vector<std::uint8_t> bytes = detail::read_whole_file(path, "CIFAR file");
  const std::int64_t record = cifar_record_bytes(kind);
  const auto size = static_cast<std::int64_t>(bytes.size());
  DML_CHECK(size > 0, detail::cifar_name(kind), " file '", name, "' is empty");
  DML_CHECK(size % record == 0, detail::cifar_name(kind), " file '", name, "' has ", size,
            " bytes, not a whole number of ", record, "-byte records (", size / record, " records and ",
            size % record, " bytes left over): truncated, or not a ", detail::cifar_name(kind), " file",
            kind == CifarKind::Cifar10 && size % cifar_record_bytes(CifarKind::Cifar100) == 0
                ? " (its size fits CIFAR-100's 3074-byte records)"
            : kind == CifarKind::Cifar100 && size % cifar_record_bytes(CifarKind::Cifar10) == 0
                ? " (its size fits CIFAR-10's 3073-byte records)"
                : "");
  if (out.count == 0) {
    out.channels = kCifarChannels;
    out.rows = out.cols = kCifarSide;
  }
  DML_CHECK(out.channels == kCifarChannels && out.rows == kCifarSide && out.cols == kCifarSide,
            "append_cifar_file: the ImageSet holds images of ", out.channels, " x ", out.rows, " x ", out.cols,
            ", not CIFAR's 3 x 32 x 32");
  const std::int64_t n = size / record;
  // CIFAR-100's coarse label comes first, then the fine one.
  const std::int64_t label_byte = kind == CifarKind::Cifar100 && label == CifarLabel::Fine ? 1 : 0;
  out.pixels.reserve(out.pixels.size() + static_cast<std::size_t>(n * kCifarPixels));
  out.labels.reserve(out.labels.size() + static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint8_t* r = bytes.data() + i * record;
    if (kind == CifarKind::Cifar100) {  // both labels are checked, whichever is used
      DML_CHECK(r[0] < 20, "CIFAR-100 file '", name, "', record ", i, " (byte offset ", i * record,
                "): coarse label ", int{r[0]}, " is outside 0..19");
      DML_CHECK(r[1] < 100, "CIFAR-100 file '", name, "', record ", i, " (byte offset ", i * record + 1,
                "): fine label ", int{r[1]}, " is outside 0..99");
    } else {
      DML_CHECK(r[0] < 10, "CIFAR-10 file '", name, "', record ", i, " (byte offset ", i * record, "): label ",
                int{r[0]}, " is outside 0..9");
    }
    const std::int64_t l = r[label_byte];
    out.labels.push_back(l);
    const std::uint8_t* px = r + (kind == CifarKind::Cifar10 ? 1 : 2);
    out.pixels.insert(out.pixels.end(), px, px + kCifarPixels);
  }
  out.count += n;
}

// One CIFAR binary file as an ImageSet.
inline ImageSet read_cifar_file(const std::filesystem::path& path, CifarKind kind,
                                CifarLabel label = CifarLabel::Fine) {
  ImageSet set;
  append_cifar_file(path, kind, label, set);
  return set;
}

// The CIFAR files found in a directory.
struct CifarLayout {
  CifarKind kind = CifarKind::Cifar10;
  std::vector<std::filesystem::path> train;  // CIFAR-10: data_batch_1.bin ... in order
  std::filesystem::path test;
  std::filesystem::path names;  // batches.meta.txt or fine/coarse_label_names.txt; empty when absent
};

// True when `dir` holds CIFAR-10 (test_batch.bin) or CIFAR-100 (train.bin + test.bin) binaries.
inline bool is_cifar_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(dir / "test_batch.bin", ec) ||
         (std::filesystem::is_regular_file(dir / "train.bin", ec) && std::filesystem::is_regular_file(dir / "test.bin", ec));
}

// Finds the files of either layout in dir. Throws dml::Error when the directory
// is missing, holds both layouts or neither, or CIFAR-10's batches are not
// data_batch_1.bin ... data_batch_N.bin without a gap.
inline CifarLayout find_cifar_files(const std::filesystem::path& dir, CifarLabel label = CifarLabel::Fine) {
  namespace fs = std::filesystem;
  std::error_code ec;
  DML_CHECK(fs::is_directory(dir, ec), "CIFAR directory '", dir.string(), "' does not exist or is not a directory");
  const bool ten = fs::exists(dir / "test_batch.bin", ec);
  const bool hundred = fs::exists(dir / "train.bin", ec) || fs::exists(dir / "test.bin", ec);
  DML_CHECK(!(ten && hundred), "CIFAR directory '", dir.string(),
            "' holds both CIFAR-10 (test_batch.bin) and CIFAR-100 (train.bin / test.bin) files; keep one");
  DML_CHECK(ten || hundred, "CIFAR directory '", dir.string(),
            "' holds neither CIFAR-10 (data_batch_1.bin ... and test_batch.bin) nor CIFAR-100 (train.bin and "
            "test.bin) binary files");
  CifarLayout layout;
  if (ten) {
    layout.kind = CifarKind::Cifar10;
    layout.test = dir / "test_batch.bin";
    int highest = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string f = entry.path().filename().string();
      if (f.rfind("data_batch_", 0) != 0 || f.size() < 16 || f.substr(f.size() - 4) != ".bin") continue;
      const std::string digits = f.substr(11, f.size() - 15);
      const bool numeric = !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
      DML_CHECK(numeric && digits[0] != '0' && digits.size() < 6, "CIFAR directory '", dir.string(), "': '", f,
                "' is not data_batch_<N>.bin with N = 1, 2, ...");
      highest = std::max(highest, std::stoi(digits));
    }
    DML_CHECK(highest > 0, "CIFAR-10 directory '", dir.string(), "' has test_batch.bin but no data_batch_1.bin");
    for (int b = 1; b <= highest; ++b) {
      const fs::path p = dir / ("data_batch_" + std::to_string(b) + ".bin");
      DML_CHECK(fs::exists(p, ec), "CIFAR-10 directory '", dir.string(), "' has data_batch_", highest,
                ".bin but no ", p.filename().string());
      layout.train.push_back(p);
    }
    if (fs::exists(dir / "batches.meta.txt", ec)) layout.names = dir / "batches.meta.txt";
  } else {
    layout.kind = CifarKind::Cifar100;
    DML_CHECK(fs::exists(dir / "train.bin", ec), "CIFAR-100 directory '", dir.string(), "' has test.bin but no train.bin");
    DML_CHECK(fs::exists(dir / "test.bin", ec), "CIFAR-100 directory '", dir.string(), "' has train.bin but no test.bin");
    layout.train.push_back(dir / "train.bin");
    layout.test = dir / "test.bin";
    const fs::path names = dir / (label == CifarLabel::Fine ? "fine_label_names.txt" : "coarse_label_names.txt");
    if (fs::exists(names, ec)) layout.names = names;
  }
  return layout;
}

// The class names of a names file: one per line, trailing blank lines and
// carriage returns dropped. Throws unless there are exactly `classes` names,
// none of them empty.
inline std::vector<std::string> read_cifar_names(const std::filesystem::path& path, std::int64_t classes) {
  std::ifstream in(path);
  DML_CHECK(in, "CIFAR names file '", path.string(), "': cannot open");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  DML_CHECK(static_cast<std::int64_t>(names.size()) == classes, "CIFAR names file '", path.string(), "' has ",
            names.size(), " names for ", classes, " classes");
  for (std::size_t i = 0; i < names.size(); ++i)
    DML_CHECK(!names[i].empty(), "CIFAR names file '", path.string(), "': name ", i, " (line ", i + 1, ") is empty");
  return names;
}

// Both splits of the files of `layout` as bytes.
inline IdxSplits read_cifar_files(const CifarLayout& layout, CifarLabel label = CifarLabel::Fine) {
  IdxSplits out;
  for (const auto& f : layout.train) append_cifar_file(f, layout.kind, label, out.train);
  append_cifar_file(layout.test, layout.kind, label, out.test);
  return out;
}

// Both splits of a CIFAR directory as bytes (see find_cifar_files).
inline IdxSplits load_cifar_dir(const std::filesystem::path& dir, CifarLabel label = CifarLabel::Fine) {
  return read_cifar_files(find_cifar_files(dir, label), label);
}

// A CIFAR directory as normalised Datasets: each channel normalised with the
// training split's mean and stddev unless opts says otherwise; num_classes 10,
// 100 or 20; class names from the names file when it is there and opts gives
// none. Throws whatever find_cifar_files, append_cifar_file, read_cifar_names
// and make_splits throw.
inline Splits load_cifar(const std::filesystem::path& dir, DatasetOptions opts = {},
                         CifarLabel label = CifarLabel::Fine) {
  const CifarLayout layout = find_cifar_files(dir, label);
  const std::int64_t classes = cifar_classes(layout.kind, label);
  if (opts.num_classes < 0) opts.num_classes = classes;
  DML_CHECK(opts.num_classes == classes, "load_cifar: DatasetOptions::num_classes is ", opts.num_classes, " but ",
            detail::cifar_name(layout.kind), " has ", classes, " classes here");
  if (opts.class_names.empty() && !layout.names.empty()) opts.class_names = read_cifar_names(layout.names, classes);
  return make_splits(read_cifar_files(layout, label), opts);
}

}  // namespace dml::data
