// Fuzzes data::load_idx_pair, raw and gzip: the input is an images file and a
// labels file, split at the offset in its first two bytes (little-endian,
// modulo the rest's length). Bad files are a dml::Error naming the file.
// The files live in a private directory under /dev/shm (or TMPDIR).
#include <dml/data/idx.hpp>

#include <unistd.h>

#include <iterator>

#include "fuzz.hpp"

namespace data = dml::data;

namespace {

std::filesystem::path& work_dir_path() {
  static std::filesystem::path dir;
  return dir;
}
// The private directory, made on first use and removed at exit.
const std::filesystem::path& work_dir() {
  std::filesystem::path& dir = work_dir_path();
  if (dir.empty()) {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm")
                                                                              : std::filesystem::temp_directory_path();
    dir = base / ("dml_fuzz_idx." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::atexit([] {
      std::error_code e;
      std::filesystem::remove_all(work_dir_path(), e);
    });
  }
  return dir;
}

void put(const std::filesystem::path& p, const void* b, std::size_t n) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f) dml_fuzz::fail("cannot write the input file");
  if (n && std::fwrite(b, 1, n, f) != n) dml_fuzz::fail("short write");
  std::fclose(f);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

#if DML_IDX_HAS_ZLIB
std::string gzip(const std::string& raw, const std::filesystem::path& tmp) {
  gzFile g = gzopen(tmp.c_str(), "wb");
  if (!g || gzwrite(g, raw.data(), static_cast<unsigned>(raw.size())) != static_cast<int>(raw.size()))
    dml_fuzz::fail("gzwrite");
  gzclose(g);
  return slurp(tmp);
}
#endif

// A seed: the split offset, then both files.
std::string pair(const std::string& images, const std::string& labels) {
  std::string s;
  s += static_cast<char>(images.size() & 0xff);
  s += static_cast<char>((images.size() >> 8) & 0xff);
  return s + images + labels;
}

void make_seeds(const std::filesystem::path& dir) {
  const auto tmp = work_dir() / "seed";
  data::IdxArray img{{3, 2, 2}, {0, 255, 7, 8, 1, 2, 3, 4, 9, 10, 11, 12}};
  data::write_idx(tmp, img);
  const std::string images = slurp(tmp);
  data::IdxArray lab_u8{{3}, {0, 1, 9}};
  data::write_idx(tmp, lab_u8);
  const std::string labels_u8 = slurp(tmp);
  data::IdxArray lab_i32{{3}, {}, data::IdxType::kI32, {2, 0, 255}};
  data::write_idx(tmp, lab_i32);
  const std::string labels_i32 = slurp(tmp);
  dml_fuzz::write_seed(dir, "u8_labels.bin", pair(images, labels_u8));
  dml_fuzz::write_seed(dir, "i32_labels.bin", pair(images, labels_i32));
  data::IdxArray f64{{2, 1, 1}, {}, data::IdxType::kF64, {0.5, -2}};
  data::write_idx(tmp, f64);
  dml_fuzz::write_seed(dir, "f64_images.bin", pair(slurp(tmp), labels_u8));
#if DML_IDX_HAS_ZLIB
  dml_fuzz::write_seed(dir, "gzip.bin", pair(gzip(images, tmp), gzip(labels_u8, tmp)));
#endif
  std::filesystem::remove(tmp);
}

}  // namespace

DML_FUZZ_SEEDS(make_seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t rest = size - 2;
  const std::size_t split = rest ? (data[0] | (std::size_t{data[1]} << 8)) % (rest + 1) : 0;
  static const auto images = work_dir() / "images-idx3-ubyte";
  static const auto labels = work_dir() / "labels-idx1-ubyte";
  put(images, data + 2, split);
  put(labels, data + 2 + split, rest - split);
  try {
    data::ImageSet s = data::load_idx_pair(images, labels);
    if (s.pixels.size() != static_cast<std::size_t>(s.count * s.rows * s.cols) ||
        s.labels.size() != static_cast<std::size_t>(s.count))
      dml_fuzz::fail("idx: sizes disagree with the counts");
    for (std::int64_t l : s.labels)
      if (l < 0 || l > 255) dml_fuzz::fail("idx: label out of 0..255");
  } catch (const dml::Error& e) {
    if (e.message().find(images.string()) == std::string::npos &&
        e.message().find(labels.string()) == std::string::npos)
      dml_fuzz::expect_names(e, "-idx");  // names neither file: abort with the message
  }
  return 0;
}
