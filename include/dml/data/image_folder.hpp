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
// Every file is decoded once, at load, on `threads` OpenMP threads, into an
// in-memory Dataset; the DataLoader then batches and augments it like IDX data.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <filesystem>
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
  int threads = 0;  // decoding threads; 0: OpenMP's default
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
    const ImageFormat content = sniff_image_format(bytes);
    const ImageFormat claimed = format_of_extension(path);
    if (content == ImageFormat::Unknown) {
      r.error = raw.empty() ? "empty file" : "unsupported image format (neither PNG nor JPEG by its first bytes)";
      return r;
    }
    if (claimed != content) {
      r.error = claimed == ImageFormat::Unknown
                    ? ::dml::detail::concat("its content is ", image_format_name(content), " but its extension '",
                                            path.extension().string(), "' is not .png, .jpg or .jpeg")
                    : ::dml::detail::concat("its extension says ", image_format_name(claimed), " but its content is ",
                                            image_format_name(content));
      return r;
    }
    DecodedImage img = decode_image(bytes, path.string());
    if (o.channels != 0) img = convert_channels(img, o.channels);
    if (o.height > 0) img = resize_image(img, o.height, o.width, o.filter);
    if (o.crop_height > 0) {
      if (o.crop_height > img.height || o.crop_width > img.width) {
        r.error = ::dml::detail::concat("centre crop ", o.crop_height, " x ", o.crop_width,
                                        " is larger than the image (", img.height, " x ", img.width, ")");
        return r;
      }
      img = center_crop(img, o.crop_height, o.crop_width);
    }
    r.image = std::move(img);
  } catch (const Error& e) {
    r.error = e.message();
    const std::string prefix = path.string() + ": ";
    if (r.error.rfind(prefix, 0) == 0) r.error.erase(0, prefix.size());  // the caller names the file
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
                                    std::array<std::int64_t, 3>& shape) {
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
  std::filesystem::path first_file;
  for (std::int64_t i = 0; i < n; ++i) {
    FolderImage& d = decoded[static_cast<std::size_t>(i)];
    const std::filesystem::path& f = files[static_cast<std::size_t>(i)];
    if (d.error.empty()) {
      const DecodedImage& img = d.image;
      if (shape[0] == 0) {
        shape = {img.channels, img.height, img.width};
        first_file = f;
      }
      if (img.channels != shape[0])
        d.error = ::dml::detail::concat("has ", img.channels, " channel(s) but ",
                                        first_file.empty() ? "the others have " : first_file.string() + " has ",
                                        shape[0], " (set ImageFolderOptions::channels to 1 or 3 to convert)");
      else if (img.height != shape[1] || img.width != shape[2])
        d.error = ::dml::detail::concat("is ", img.height, " x ", img.width, " but ",
                                        first_file.empty() ? "the others are " : first_file.string() + " is ",
                                        shape[1], " x ", shape[2],
                                        " (set ImageFolderOptions::height and width to resize)");
    }
    if (!d.error.empty()) {
      DML_CHECK(o.skip_bad, "image folder: ", f.string(), ": ", d.error,
                " (ImageFolderOptions::skip_bad skips such files and reports them)");
      ++report.skipped.count;
      if (report.skipped.first.size() < SkippedFiles::kMaxListed) report.skipped.first.push_back(f.string() + ": " + d.error);
      continue;
    }
    if (d.image.bit_depth == 16) ++report.converted_16bit;
    if (d.image.had_alpha) ++report.alpha_composited;
    // Interleaved H x W x C to planar C x H x W.
    const std::int64_t C = shape[0], plane = shape[1] * shape[2];
    const std::size_t base = set.pixels.size();
    set.pixels.resize(base + static_cast<std::size_t>(C * plane));
    for (std::int64_t p = 0; p < plane; ++p)
      for (std::int64_t c = 0; c < C; ++c)
        set.pixels[base + static_cast<std::size_t>(c * plane + p)] = d.image.pixels[static_cast<std::size_t>(p * C + c)];
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
  IdxSplits raw;
  raw.train = detail::decode_folder_files(train_files, train_labels, o, out, shape);
  raw.test = detail::decode_folder_files(valid_files, valid_labels, o, out, shape);
  DML_CHECK(raw.train.count > 0, "image folder '", root.string(), "': no usable training images",
            out.skipped.count > 0 ? ::dml::detail::concat(" (", out.skipped.count, " skipped)") : std::string());
  raw.test.channels = raw.train.channels;
  raw.test.rows = raw.train.rows;
  raw.test.cols = raw.train.cols;

  DatasetOptions dopts = o.dataset;
  if (dopts.num_classes < 0) dopts.num_classes = static_cast<std::int64_t>(classes.size());
  if (dopts.class_names.empty()) dopts.class_names = classes;
  out.splits = make_splits(raw, dopts);
  out.train_files = std::move(train_files);
  out.valid_files = std::move(valid_files);
  return out;
}

}  // namespace dml::data
