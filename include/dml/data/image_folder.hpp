// dml/data/image_folder.hpp: a folder of PNG / JPEG images as train and
// validation Datasets. Part of the optional dml::image target.
//
// Two layouts, told apart by the folder's contents:
//   root/train/<class>/*  and  root/valid/<class>/*  (the article's; `val` or `test`
//                                                      may stand for `valid`)
//   root/<class>/*        with a seeded stratified split (valid_fraction)
// Classes are the sub-folder names in byte order (std::string's <), label = index.
// Files are read in name order. Names starting with '.' are ignored (and counted).
//
// decode = Decode::AtLoad (the default): every file is decoded once, at load, on
// `threads` OpenMP threads, into an in-memory Dataset; the DataLoader then batches
// and augments it like IDX data. Decode::PerBatch: the load reads every file and
// checks its header (decoding the training files once, without keeping their
// pixels, when the normalisation is computed), keeps the encoded bytes, and the
// DataLoader decodes each batch on its prefetch thread (Dataset::source).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../backend/cpu/parallel.hpp"
#include "../config.hpp"
#include "../core/random.hpp"
#include "dataset.hpp"
#include "image.hpp"

namespace dml::data {

// When load_image_folder decodes the pixels (see the top of this file).
enum class Decode {
  AtLoad,    // every file, at load, into float tensors: fast epochs, 4 bytes per pixel held
  PerBatch,  // each batch as the DataLoader assembles it: the encoded files held, decoded every epoch
};

inline const char* decode_name(Decode d) { return d == Decode::AtLoad ? "at load" : "per batch"; }

struct ImageFolderOptions {
  // Resize every image to height x width (0 x 0: keep the files' size, which must then be one size).
  std::int64_t height = 0, width = 0;
  ResizeFilter filter = ResizeFilter::Area;
  // Then keep the centre crop_height x crop_width (0 x 0: no crop).
  std::int64_t crop_height = 0, crop_width = 0;
  // 0: as the files are (they must agree); 1: grey (RGB by ITU-R 601 luma); 3: RGB.
  std::int64_t channels = 0;
  // root/<class>/* layout only: the share of each class that goes to the validation split.
  double valid_fraction = 0.2;
  std::uint64_t seed = 0;  // of that split
  // Normalisation (default: each channel's statistics over the training split) and class names.
  DatasetOptions dataset = {};
  // Skip files that cannot be used (and report them in ImageFolder::skipped) instead of throwing.
  bool skip_bad = false;
  int threads = 0;  // threads that decode (or check) the files at load; 0: OpenMP's default
  Decode decode = Decode::AtLoad;
};

// Files left out under skip_bad: how many, and the first few as "path: reason".
struct SkippedFiles {
  std::int64_t count = 0;
  std::vector<std::string> first;  // at most kMaxListed
  static constexpr std::size_t kMaxListed = 10;
};

struct ImageFolder {
  Splits splits;                                   // .train and .test (the validation split)
  std::string layout;                              // "train/valid" or "class folders, seeded split"
  std::vector<std::filesystem::path> train_files;  // row i of splits.train came from train_files[i]
  std::vector<std::filesystem::path> valid_files;
  SkippedFiles skipped;
  std::int64_t hidden_ignored = 0;    // names starting with '.'
  std::int64_t converted_16bit = 0;   // 16-bit PNGs scaled to 8 bits
  std::int64_t alpha_composited = 0;  // images whose alpha channel was composited onto black
  std::int64_t encoded_bytes = 0;     // Decode::PerBatch: the files' bytes held for decoding (0 at load)
};

namespace detail {

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

// The format a file name claims: PNG for .png, JPEG for .jpg / .jpeg, else Unknown.
inline ImageFormat format_of_extension(const std::filesystem::path& p) {
  const std::string e = lower(p.extension().string());
  if (e == ".png") return ImageFormat::Png;
  if (e == ".jpg" || e == ".jpeg") return ImageFormat::Jpeg;
  return ImageFormat::Unknown;
}

inline bool hidden(const std::filesystem::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

// Sorted sub-directories of dir (hidden ones counted and left out).
inline std::vector<std::filesystem::path> sorted_subdirs(const std::filesystem::path& dir, std::int64_t& hidden_count) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (hidden(e.path())) {
      ++hidden_count;
      continue;
    }
    if (e.is_directory()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.filename().string() < b.filename().string(); });
  return out;
}

// The message of an error about `path` without its leading "path: " (the caller names the file).
inline std::string reason_of(std::string message, const std::string& path) {
  const std::string prefix = path + ": ";
  if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
  return message;
}

// Why the bytes of `path` are not an image of the format its extension names ("" when they are).
inline std::string format_problem(std::span<const std::uint8_t> bytes, const std::filesystem::path& path) {
  const ImageFormat content = sniff_image_format(bytes);
  const ImageFormat claimed = format_of_extension(path);
  if (content == ImageFormat::Unknown)
    return bytes.empty() ? "empty file" : "unsupported image format (neither PNG nor JPEG by its first bytes)";
  if (claimed != content)
    return claimed == ImageFormat::Unknown
               ? ::dml::detail::concat("its content is ", image_format_name(content), " but its extension '",
                                       path.extension().string(), "' is not .png, .jpg or .jpeg")
               : ::dml::detail::concat("its extension says ", image_format_name(claimed), " but its content is ",
                                       image_format_name(content));
  return {};
}

inline std::string crop_problem(std::int64_t height, std::int64_t width, const ImageFolderOptions& o) {
  if (o.crop_height > height || o.crop_width > width)
    return ::dml::detail::concat("centre crop ", o.crop_height, " x ", o.crop_width, " is larger than the image (",
                                 height, " x ", width, ")");
  return {};
}

// Converts, resizes and crops img as o says; "" or why it cannot.
inline std::string fit_folder_image(DecodedImage& img, const ImageFolderOptions& o) {
  if (o.channels != 0) img = convert_channels(img, o.channels);
  if (o.height > 0) img = resize_image(img, o.height, o.width, o.filter);
  if (o.crop_height > 0) {
    std::string why = crop_problem(img.height, img.width, o);
    if (!why.empty()) return why;
    img = center_crop(img, o.crop_height, o.crop_width);
  }
  return {};
}

// The [C, H, W] fit_folder_image makes of an image with header h, or why it cannot.
inline std::string fitted_shape(const ImageHeader& h, const ImageFolderOptions& o, std::array<std::int64_t, 3>& shape) {
  shape = {o.channels != 0 ? o.channels : h.channels, o.height > 0 ? o.height : h.height, o.height > 0 ? o.width : h.width};
  if (o.crop_height > 0) {
    std::string why = crop_problem(shape[1], shape[2], o);
    if (!why.empty()) return why;
    shape[1] = o.crop_height;
    shape[2] = o.crop_width;
  }
  return {};
}

// Why an image of `got` [C, H, W] does not belong with the first usable one
// (`shape`, from first_file; empty when not known), or "".
inline std::string shape_problem(const std::array<std::int64_t, 3>& got, const std::array<std::int64_t, 3>& shape,
                                 const std::filesystem::path& first_file) {
  if (got[0] != shape[0])
    return ::dml::detail::concat("has ", got[0], " channel(s) but ",
                                 first_file.empty() ? "the others have " : first_file.string() + " has ", shape[0],
                                 " (set ImageFolderOptions::channels to 1 or 3 to convert)");
  if (got[1] != shape[1] || got[2] != shape[2])
    return ::dml::detail::concat("is ", got[1], " x ", got[2], " but ",
                                 first_file.empty() ? "the others are " : first_file.string() + " is ", shape[1], " x ",
                                 shape[2], " (set ImageFolderOptions::height and width to resize)");
  return {};
}

// Interleaved H x W x C to planar C x H x W.
inline void to_planar(const DecodedImage& img, std::uint8_t* dst) {
  const std::int64_t C = img.channels, plane = img.height * img.width;
  for (std::int64_t p = 0; p < plane; ++p)
    for (std::int64_t c = 0; c < C; ++c)
      dst[c * plane + p] = img.pixels[static_cast<std::size_t>(p * C + c)];
}

// Records a file that skip_bad leaves out, or throws when skip_bad is off.
inline void skip_or_throw(const std::filesystem::path& f, const std::string& why, const ImageFolderOptions& o,
                          ImageFolder& report, const char* when = "") {
  DML_CHECK(o.skip_bad, "image folder: ", f.string(), ": ", why, when,
            " (ImageFolderOptions::skip_bad skips such files and reports them)");
  ++report.skipped.count;
  if (report.skipped.first.size() < SkippedFiles::kMaxListed) report.skipped.first.push_back(f.string() + ": " + why);
}

// One decoded, converted and resized file, or why it could not be.
struct FolderImage {
  DecodedImage image;
  std::string error;  // empty: fine
};

inline FolderImage decode_folder_file(const std::filesystem::path& path, const ImageFolderOptions& o) {
  FolderImage r;
  try {
    const std::vector<std::byte> raw = io::read_file(path);
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size());
    r.error = format_problem(bytes, path);
    if (!r.error.empty()) return r;
    DecodedImage img = decode_image(bytes, path.string());
    r.error = fit_folder_image(img, o);
    if (r.error.empty()) r.image = std::move(img);
  } catch (const Error& e) {
    r.error = reason_of(e.message(), path.string());
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

// Decodes `files` (labels alongside) into an ImageSet, in order, on o.threads
// threads. The first unusable file, in file order, throws (or is skipped and
// reported under skip_bad). `shape` carries the [C, H, W] every image must have;
// {0, 0, 0} takes it from the first usable image.
inline ImageSet decode_folder_files(std::vector<std::filesystem::path>& files, std::vector<std::int64_t>& labels,
                                    const ImageFolderOptions& o, ImageFolder& report,
                                    std::array<std::int64_t, 3>& shape, std::filesystem::path& first_file) {
  const auto n = static_cast<std::int64_t>(files.size());
  std::vector<FolderImage> decoded(files.size());
#if defined(_OPENMP)
  const int team = o.threads > 0 ? o.threads : cpu::max_threads();
#pragma omp parallel for num_threads(team) schedule(dynamic, 16)
#endif
  for (std::int64_t i = 0; i < n; ++i)
    decoded[static_cast<std::size_t>(i)] = decode_folder_file(files[static_cast<std::size_t>(i)], o);

  ImageSet set;
  std::vector<std::filesystem::path> kept_files;
  std::vector<std::int64_t> kept_labels;
  for (std::int64_t i = 0; i < n; ++i) {
    FolderImage& d = decoded[static_cast<std::size_t>(i)];
    const std::filesystem::path& f = files[static_cast<std::size_t>(i)];
    if (d.error.empty()) {
      const std::array<std::int64_t, 3> got = {d.image.channels, d.image.height, d.image.width};
      if (shape[0] == 0) {
        shape = got;
        first_file = f;
      }
      d.error = shape_problem(got, shape, first_file);
    }
    if (!d.error.empty()) {
      skip_or_throw(f, d.error, o, report);
      continue;
    }
    if (d.image.bit_depth == 16) ++report.converted_16bit;
    if (d.image.had_alpha) ++report.alpha_composited;
    const std::size_t base = set.pixels.size();
    set.pixels.resize(base + static_cast<std::size_t>(shape[0] * shape[1] * shape[2]));
    to_planar(d.image, set.pixels.data() + base);
    d.image = {};  // free as we go: peak memory is one copy of the bytes plus the floats
    kept_files.push_back(f);
    kept_labels.push_back(labels[static_cast<std::size_t>(i)]);
  }
  set.count = static_cast<std::int64_t>(kept_labels.size());
  set.channels = std::max<std::int64_t>(shape[0], 1);
  set.rows = std::max<std::int64_t>(shape[1], 1);
  set.cols = std::max<std::int64_t>(shape[2], 1);
  set.labels = kept_labels;
  files = std::move(kept_files);
  labels = std::move(kept_labels);
  return set;
}

// ---- Decode::PerBatch -------------------------------------------------------------------------

inline std::span<const std::uint8_t> as_bytes_span(const std::vector<std::byte>& v) {
  return {reinterpret_cast<const std::uint8_t*>(v.data()), v.size()};
}

// The folder's files, encoded, decoded when read (Dataset::source).
class EncodedFolder final : public ImageSource {
 public:
  EncodedFolder(const ImageFolderOptions& o, std::array<std::int64_t, 3> shape) : o_(o), shape_(shape) {}

  // Adds a file's bytes (whose header said `shape`); returns its row.
  std::int64_t add(const std::filesystem::path& file, std::vector<std::byte> bytes, bool sixteen_bit, bool alpha) {
    entries_.push_back({file.string(), std::move(bytes), sixteen_bit, alpha});
    return static_cast<std::int64_t>(entries_.size()) - 1;
  }

  Shape image_shape() const override { return Shape{shape_[0], shape_[1], shape_[2]}; }
  std::int64_t size() const override { return static_cast<std::int64_t>(entries_.size()); }
  const std::string& file(std::int64_t r) const { return entries_[static_cast<std::size_t>(r)].file; }
  bool sixteen_bit(std::int64_t r) const { return entries_[static_cast<std::size_t>(r)].sixteen_bit; }
  bool alpha(std::int64_t r) const { return entries_[static_cast<std::size_t>(r)].alpha; }
  // Encoded bytes held, over all files.
  std::size_t encoded_bytes() const {
    std::size_t n = 0;
    for (const Entry& e : entries_) n += e.bytes.size();
    return n;
  }

  // Decodes row r into dst (planar bytes); "" or why it cannot (without the file's name).
  std::string decode(std::int64_t r, std::uint8_t* dst) const {
    const Entry& e = entries_[static_cast<std::size_t>(r)];
    try {
      DecodedImage img = decode_image(as_bytes_span(e.bytes), e.file);
      std::string why = fit_folder_image(img, o_);
      if (!why.empty()) return why;
      if (img.channels != shape_[0] || img.height != shape_[1] || img.width != shape_[2])
        return ::dml::detail::concat("decodes to ", img.channels, " x ", img.height, " x ", img.width,
                                     " (channels x height x width) but its header promised ", shape_[0], " x ",
                                     shape_[1], " x ", shape_[2]);
      to_planar(img, dst);
    } catch (const Error& err) {
      return reason_of(err.message(), e.file);
    } catch (const std::exception& err) {
      return err.what();
    }
    return {};
  }

  // ImageSource: throws dml::Error naming the file.
  void read(std::int64_t r, std::uint8_t* dst) const override {
    DML_CHECK(r >= 0 && r < size(), "image folder: image ", r, " is out of range for ", size(), " files");
    const std::string why = decode(r, dst);
    DML_CHECK(why.empty(), "image folder: ", file(r), ": ", why,
              " (found while decoding a batch: Decode::PerBatch checks only each file's header at load; "
              "Decode::AtLoad decodes every file there)");
  }

 private:
  struct Entry {
    std::string file;  // a string, not a path: libstdc++'s path also keeps a list of its components
    std::vector<std::byte> bytes;  // as io::read_file gave them: no second copy per file
    bool sixteen_bit = false, alpha = false;
  };
  ImageFolderOptions o_;
  std::array<std::int64_t, 3> shape_;
  std::vector<Entry> entries_;
};

// One file read and its header checked.
struct ProbedFile {
  std::vector<std::byte> bytes;
  ImageHeader header;
  std::array<std::int64_t, 3> shape = {0, 0, 0};  // after o's conversions
  std::string error;
};

inline ProbedFile probe_folder_file(const std::filesystem::path& path, const ImageFolderOptions& o) {
  ProbedFile r;
  try {
    r.bytes = io::read_file(path);
    r.error = format_problem(as_bytes_span(r.bytes), path);
    if (r.error.empty()) {
      r.header = read_image_header(as_bytes_span(r.bytes), path.string());
      r.error = fitted_shape(r.header, o, r.shape);
    }
  } catch (const Error& e) {
    r.error = reason_of(e.message(), path.string());
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  if (!r.error.empty()) r.bytes = {};
  return r;
}

// decode_folder_files for Decode::PerBatch: reads `files` and checks their
// headers (on o.threads threads); each usable one goes into `source` (created
// when null, with the first usable file's shape). Returns the source rows of the
// kept files; files and labels keep only those.
inline std::vector<std::int64_t> probe_folder_files(std::vector<std::filesystem::path>& files,
                                                    std::vector<std::int64_t>& labels, const ImageFolderOptions& o,
                                                    ImageFolder& report, std::shared_ptr<EncodedFolder>& source,
                                                    std::array<std::int64_t, 3>& shape,
                                                    std::filesystem::path& first_file) {
  const auto n = static_cast<std::int64_t>(files.size());
  std::vector<ProbedFile> probed(files.size());
#if defined(_OPENMP)
  const int team = o.threads > 0 ? o.threads : omp_get_max_threads();
#pragma omp parallel for num_threads(team) schedule(dynamic, 16)
#endif
  for (std::int64_t i = 0; i < n; ++i)
    probed[static_cast<std::size_t>(i)] = probe_folder_file(files[static_cast<std::size_t>(i)], o);

  std::vector<std::int64_t> rows;
  std::vector<std::filesystem::path> kept_files;
  std::vector<std::int64_t> kept_labels;
  for (std::int64_t i = 0; i < n; ++i) {
    ProbedFile& p = probed[static_cast<std::size_t>(i)];
    const std::filesystem::path& f = files[static_cast<std::size_t>(i)];
    if (p.error.empty()) {
      if (shape[0] == 0) {
        shape = p.shape;
        first_file = f;
      }
      p.error = shape_problem(p.shape, shape, first_file);
    }
    if (!p.error.empty()) {
      skip_or_throw(f, p.error, o, report);
      continue;
    }
    if (!source) source = std::make_shared<EncodedFolder>(o, shape);
    rows.push_back(source->add(f, std::move(p.bytes), p.header.bit_depth == 16, p.header.had_alpha));
    kept_files.push_back(f);
    kept_labels.push_back(labels[static_cast<std::size_t>(i)]);
  }
  files = std::move(kept_files);
  labels = std::move(kept_labels);
  return rows;
}

// The non-hidden regular files of a class folder, by name; anything else is an error.
inline std::vector<std::filesystem::path> class_files(const std::filesystem::path& dir, ImageFolder& report,
                                                      const ImageFolderOptions& o) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (hidden(e.path())) {
      ++report.hidden_ignored;
      continue;
    }
    if (!e.is_regular_file()) {
      const std::string why = ::dml::detail::concat("image folder: ", e.path().string(),
                                                    " is not a regular file (class folders hold images only)");
      DML_CHECK(o.skip_bad, why);
      ++report.skipped.count;
      if (report.skipped.first.size() < SkippedFiles::kMaxListed) report.skipped.first.push_back(why.substr(14));
      continue;
    }
    out.push_back(e.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.filename().string() < b.filename().string(); });
  DML_CHECK(!out.empty(), "image folder: class folder ", dir.string(), " is empty");
  return out;
}

}  // namespace detail

// Loads an image folder (see the top of this file). Throws dml::Error naming
// the folder or file and the reason: a missing root, no class folders, an empty
// class folder, a validation class unknown to train/, a file that is corrupt,
// truncated, not PNG/JPEG, whose extension disagrees with its content, or whose
// channel count or size differs from the first image's (unless converted or
// resized); under skip_bad the file problems are skipped and reported instead.
// With Decode::PerBatch those checks read each file's header (the training files
// are decoded once as well when the normalisation is computed); a file that is
// corrupt past its header then throws, naming it, from the DataLoader's next().
inline ImageFolder load_image_folder(const std::filesystem::path& root, const ImageFolderOptions& o = {}) {
  namespace fs = std::filesystem;
  std::error_code ec;
  DML_CHECK(fs::is_directory(root, ec), "image folder '", root.string(), "' does not exist or is not a directory");
  DML_CHECK(o.channels == 0 || o.channels == 1 || o.channels == 3, "ImageFolderOptions::channels must be 0, 1 or 3, got ",
            o.channels);
  DML_CHECK((o.height == 0) == (o.width == 0) && o.height >= 0 && o.width >= 0,
            "ImageFolderOptions: height and width must both be 0 (keep) or both positive, got ", o.height, " x ", o.width);
  DML_CHECK((o.crop_height == 0) == (o.crop_width == 0) && o.crop_height >= 0 && o.crop_width >= 0,
            "ImageFolderOptions: crop_height and crop_width must both be 0 (no crop) or both positive, got ",
            o.crop_height, " x ", o.crop_width);
  DML_CHECK(o.valid_fraction >= 0.0 && o.valid_fraction < 1.0, "ImageFolderOptions::valid_fraction must be in [0, 1), got ",
            o.valid_fraction);

  ImageFolder out;
  std::vector<fs::path> train_files, valid_files;
  std::vector<std::int64_t> train_labels, valid_labels;
  std::vector<std::string> classes;

  fs::path valid_dir;
  for (const char* name : {"valid", "val", "test"})
    if (valid_dir.empty() && fs::is_directory(root / name, ec)) valid_dir = root / name;
  if (fs::is_directory(root / "train", ec)) {
    DML_CHECK(!valid_dir.empty(), "image folder '", root.string(),
              "' has train/ but no valid/ (or val/, test/); for one folder per class, put the class folders "
              "directly under the root");
    out.layout = "train/valid";
    for (const fs::path& d : detail::sorted_subdirs(root / "train", out.hidden_ignored)) {
      classes.push_back(d.filename().string());
      for (auto& f : detail::class_files(d, out, o)) {
        train_files.push_back(f);
        train_labels.push_back(static_cast<std::int64_t>(classes.size()) - 1);
      }
    }
    DML_CHECK(!classes.empty(), "image folder '", (root / "train").string(), "' has no class folders");
    for (const fs::path& d : detail::sorted_subdirs(valid_dir, out.hidden_ignored)) {
      const auto it = std::find(classes.begin(), classes.end(), d.filename().string());
      DML_CHECK(it != classes.end(), "image folder: ", d.string(), " is a class that ", (root / "train").string(),
                " does not have");
      for (auto& f : detail::class_files(d, out, o)) {
        valid_files.push_back(f);
        valid_labels.push_back(it - classes.begin());
      }
    }
  } else {
    out.layout = "class folders, seeded split";
    Generator gen(o.seed);
    for (const fs::path& d : detail::sorted_subdirs(root, out.hidden_ignored)) {
      classes.push_back(d.filename().string());
      const std::int64_t label = static_cast<std::int64_t>(classes.size()) - 1;
      std::vector<fs::path> files = detail::class_files(d, out, o);
      // A seeded choice of round(valid_fraction * n) files per class; both splits keep name order.
      std::vector<std::int64_t> order(files.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
      detail::shuffle(order, gen);
      const auto n_valid = static_cast<std::size_t>(std::llround(o.valid_fraction * static_cast<double>(files.size())));
      std::vector<std::uint8_t> to_valid(files.size(), 0);
      for (std::size_t k = 0; k < n_valid; ++k) to_valid[static_cast<std::size_t>(order[k])] = 1;
      for (std::size_t i = 0; i < files.size(); ++i) {
        (to_valid[i] ? valid_files : train_files).push_back(files[i]);
        (to_valid[i] ? valid_labels : train_labels).push_back(label);
      }
    }
    DML_CHECK(!classes.empty(), "image folder '", root.string(),
              "' has no class folders (expected root/<class>/*.png or root/train/<class>/* and root/valid/<class>/*)");
  }

  std::array<std::int64_t, 3> shape = {0, 0, 0};
  fs::path first_file;
  DatasetOptions dopts = o.dataset;
  if (dopts.num_classes < 0) dopts.num_classes = static_cast<std::int64_t>(classes.size());
  if (dopts.class_names.empty()) dopts.class_names = classes;
  auto no_training_images = [&] {
    return ::dml::detail::concat("image folder '", root.string(), "': no usable training images",
                                 out.skipped.count > 0 ? ::dml::detail::concat(" (", out.skipped.count, " skipped)")
                                                       : std::string());
  };

  if (o.decode == Decode::AtLoad) {
    IdxSplits raw;
    raw.train = detail::decode_folder_files(train_files, train_labels, o, out, shape, first_file);
    raw.test = detail::decode_folder_files(valid_files, valid_labels, o, out, shape, first_file);
    DML_CHECK(raw.train.count > 0, no_training_images());
    raw.test.channels = raw.train.channels;
    raw.test.rows = raw.train.rows;
    raw.test.cols = raw.train.cols;
    out.splits = make_splits(raw, dopts);
  } else {
    std::shared_ptr<detail::EncodedFolder> source;
    std::vector<std::int64_t> train_rows =
        detail::probe_folder_files(train_files, train_labels, o, out, source, shape, first_file);
    std::vector<std::int64_t> valid_rows =
        detail::probe_folder_files(valid_files, valid_labels, o, out, source, shape, first_file);
    DML_CHECK(!train_rows.empty(), no_training_images());
    if (!dopts.normalization && dopts.channel_normalization.empty()) {
      // The training split's statistics: each training file decoded once, its pixels not kept.
      std::vector<std::string> errors;
      const auto bins = detail::channel_histograms(
          static_cast<std::int64_t>(train_rows.size()), source->image_shape(), o.threads,
          [&](std::int64_t k, std::uint8_t* dst) { return source->decode(train_rows[static_cast<std::size_t>(k)], dst); },
          errors);
      std::vector<std::int64_t> rows, labels;
      std::vector<fs::path> files;
      for (std::size_t k = 0; k < train_rows.size(); ++k) {
        if (!errors[k].empty()) {
          detail::skip_or_throw(train_files[k], errors[k], o, out);
          continue;
        }
        rows.push_back(train_rows[k]);
        labels.push_back(train_labels[k]);
        files.push_back(train_files[k]);
      }
      train_rows = std::move(rows);
      train_labels = std::move(labels);
      train_files = std::move(files);
      DML_CHECK(!train_rows.empty(), no_training_images());
      dopts.channel_normalization = detail::stats_of_histograms(bins);
      for (std::size_t c = 0; c < dopts.channel_normalization.size(); ++c)
        DML_CHECK(dopts.channel_normalization[c].stddev > 0, "image folder '", root.string(),
                  "': every training pixel of channel ", c, " has the same value, so the standard deviation is 0; ",
                  "pass ImageFolderOptions::dataset.normalization");
    }
    for (const auto* rows : {&train_rows, &valid_rows})
      for (std::int64_t r : *rows) {
        if (source->sixteen_bit(r)) ++out.converted_16bit;
        if (source->alpha(r)) ++out.alpha_composited;
      }
    out.encoded_bytes = static_cast<std::int64_t>(source->encoded_bytes());
    out.splits.train = Dataset::from_source(source, std::move(train_rows), train_labels, dopts);
    out.splits.test = Dataset::from_source(source, std::move(valid_rows), valid_labels, dopts);
  }
  out.train_files = std::move(train_files);
  out.valid_files = std::move(valid_files);
  return out;
}

}  // namespace dml::data
