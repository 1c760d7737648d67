// Tests for dml/data/image_folder.hpp on generated folders of PNG and JPEG files:
// both layouts, class order, the seeded split, resizing, and every refusal.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <dml/data/image_folder.hpp>
#include <dml/data/loader.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "../support/temp_dir.hpp"
#include "../support/error_of.hpp"
#include "batch_record.hpp"

namespace test_image_folder {

using dml::testing::error_of;

namespace fs = std::filesystem;
using dml::data::Decode;
using dml::data::DecodedImage;
using dml::data::ImageFolderOptions;
using dml::testing::TempDir;

// An h x w image of c channels: `value` + 10 per channel, + 4 on odd pixels (so no folder is constant).
DecodedImage flat(std::int64_t h, std::int64_t w, std::int64_t c, int value) {
  DecodedImage img;
  img.height = h;
  img.width = w;
  img.channels = c;
  for (std::int64_t i = 0; i < h * w; ++i)
    for (std::int64_t k = 0; k < c; ++k)
      img.pixels.push_back(static_cast<std::uint8_t>(value + 10 * k + 4 * (i % 2)));
  return img;
}

void write(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
void write_png(const fs::path& p, const DecodedImage& img) { write(p, dml::data::encode_png(img)); }

TEST_CASE("train/valid layout: classes in byte order, files in name order, statistics from train only") {
  TempDir dir;
  write_png(dir.path / "train" / "dog" / "b.png", flat(4, 4, 3, 100));
  write_png(dir.path / "train" / "dog" / "a.png", flat(4, 4, 3, 50));
  write_png(dir.path / "train" / "cat" / "x.png", flat(4, 4, 3, 0));
  write_png(dir.path / "train" / "Zebra" / "z.png", flat(4, 4, 3, 200));
  write_png(dir.path / "valid" / "dog" / "v.png", flat(4, 4, 3, 150));
  write(dir.path / "train" / "cat" / ".DS_Store", {1, 2, 3});

  const dml::data::ImageFolder f = dml::data::load_image_folder(dir.path);
  CHECK(f.layout == "train/valid");
  CHECK(f.splits.train.class_names == std::vector<std::string>{"Zebra", "cat", "dog"});  // 'Z' < 'c'
  CHECK(f.splits.train.labels == std::vector<std::int64_t>{0, 1, 2, 2});
  CHECK(f.train_files[2].filename() == "a.png");
  CHECK(f.splits.test.labels == std::vector<std::int64_t>{2});
  CHECK(f.splits.train.images.shape() == dml::Shape{4, 3, 4, 4});
  CHECK(f.hidden_ignored == 1);
  // Red channel over train: bytes 200, 0, 50, 100 (+ 4 on half the pixels) -> mean 89.5 / 255.
  CHECK(f.splits.train.normalization(0).mean == doctest::Approx(89.5 / 255).epsilon(1e-12));
  CHECK(f.splits.test.channel_norms == f.splits.train.channel_norms);
  // Planar layout: row 3 (dog/b.png), green channel, pixel 5 (odd): 100 + 10 + 4.
  const auto g = f.splits.train.normalization(1);
  const float want = static_cast<float>((114 / 255.0 - g.mean) / g.stddev);
  CHECK(f.splits.train.images.data()[3 * 48 + 16 + 5] == want);
}

TEST_CASE("class-folder layout: a seeded stratified split, PNG and JPEG, resized and cropped") {
  TempDir dir;
  for (int i = 0; i < 8; ++i) write_png(dir.path / "a" / ("img" + std::to_string(i) + ".png"), flat(6, 8, 1, 10 * i));
  for (int i = 0; i < 4; ++i)
    write(dir.path / "b" / ("img" + std::to_string(i) + ".jpg"), dml::data::encode_jpeg(flat(12, 12, 1, 100 + i)));
  ImageFolderOptions o;
  o.valid_fraction = 0.25;
  o.seed = 3;
  o.height = o.width = 6;
  o.crop_height = o.crop_width = 4;
  const dml::data::ImageFolder f = dml::data::load_image_folder(dir.path, o);
  CHECK(f.layout == "class folders, seeded split");
  CHECK(f.splits.train.size() == 9);  // 6 of a, 3 of b
  CHECK(f.splits.test.size() == 3);   // round(0.25 * 8) = 2, round(0.25 * 4) = 1
  CHECK(f.splits.train.images.shape() == dml::Shape{9, 1, 4, 4});
  std::set<std::string> all;
  for (const auto& p : f.train_files) all.insert(p.string());
  for (const auto& p : f.valid_files) CHECK(all.insert(p.string()).second);  // no file in both
  CHECK(all.size() == 12);
  // The same seed gives the same split; another seed another one.
  CHECK(dml::data::load_image_folder(dir.path, o).valid_files == f.valid_files);
  o.seed = 4;
  const auto other = dml::data::load_image_folder(dir.path, o).valid_files;
  CHECK(other.size() == 3);
  o.seed = 3;
  // Grey files as RGB on request.
  o.channels = 3;
  CHECK(dml::data::load_image_folder(dir.path, o).splits.train.channels() == 3);
}

TEST_CASE("image folders: each bad input is an error naming the file or folder and the reason") {
  for (const Decode mode : {Decode::AtLoad, Decode::PerBatch}) {
  CAPTURE(dml::data::decode_name(mode));
  TempDir dir;
  auto load = [&](ImageFolderOptions o = {}) {
    o.decode = mode;
    return dml::data::load_image_folder(dir.path, o);
  };
  CHECK(error_of([&] { dml::data::load_image_folder(dir.path / "absent"); }).find("does not exist") != std::string::npos);
  CHECK(error_of([&] { load(); }).find("has no class folders") != std::string::npos);

  fs::create_directories(dir.path / "empty");
  write_png(dir.path / "ok" / "1.png", flat(4, 4, 1, 9));
  CHECK(error_of([&] { load(); }).find("class folder " + (dir.path / "empty").string() + " is empty") !=
        std::string::npos);
  fs::remove(dir.path / "empty");

  const fs::path bad = dir.path / "ok" / "2.png";
  std::vector<std::uint8_t> png = dml::data::encode_png(flat(16, 16, 1, 9));
  write(bad, std::vector<std::uint8_t>(png.begin(), png.begin() + 40));
  std::string e = error_of([&] { load(); });
  CHECK(e.find(bad.string() + ": not a readable PNG (corrupt or truncated)") != std::string::npos);
  CHECK(e.find("skip_bad") != std::string::npos);

  write(bad, dml::data::encode_jpeg(flat(4, 4, 1, 9)));
  CHECK(error_of([&] { load(); }).find(bad.string() + ": its extension says PNG but its content is JPEG") !=
        std::string::npos);
  write(bad, {'h', 'e', 'l', 'l', 'o'});
  CHECK(error_of([&] { load(); }).find(bad.string() + ": unsupported image format") != std::string::npos);
  fs::remove(bad);
  write_png(dir.path / "ok" / "3.bmp", flat(4, 4, 1, 9));
  CHECK(error_of([&] { load(); }).find("its content is PNG but its extension '.bmp' is not .png, .jpg or .jpeg") !=
        std::string::npos);
  fs::remove(dir.path / "ok" / "3.bmp");

  write_png(dir.path / "ok" / "4.png", flat(4, 4, 3, 9));
  CHECK(error_of([&] { load(); }).find("4.png: has 3 channel(s) but " + (dir.path / "ok" / "1.png").string() +
                                       " has 1") != std::string::npos);
  ImageFolderOptions grey;
  grey.channels = 1;
  grey.valid_fraction = 0;
  CHECK(load(grey).splits.train.size() == 2);
  fs::remove(dir.path / "ok" / "4.png");

  write_png(dir.path / "ok" / "5.png", flat(5, 4, 1, 9));
  CHECK(error_of([&] { load(); }).find("5.png: is 5 x 4 but") != std::string::npos);
  fs::create_directories(dir.path / "ok" / "nested");
  CHECK(error_of([&] { load(); }).find("nested is not a regular file") != std::string::npos);

  // skip_bad: the same problems are skipped, counted and listed.
  ImageFolderOptions skip;
  skip.skip_bad = true;
  skip.valid_fraction = 0;
  const dml::data::ImageFolder f = load(skip);
  CHECK(f.splits.train.size() == 1);
  CHECK(f.skipped.count == 2);
  REQUIRE(f.skipped.first.size() == 2);
  CHECK(f.skipped.first[0].find("nested") != std::string::npos);
  CHECK(f.skipped.first[1].find("5.png: is 5 x 4") != std::string::npos);

  ImageFolderOptions bad_opt;
  bad_opt.channels = 2;
  CHECK(error_of([&] { load(bad_opt); }).find("channels must be 0, 1 or 3") != std::string::npos);
  bad_opt = {};
  bad_opt.height = 4;
  CHECK(error_of([&] { load(bad_opt); }).find("height and width must both be 0") != std::string::npos);
  bad_opt = {};
  bad_opt.valid_fraction = 1.0;
  CHECK(error_of([&] { load(bad_opt); }).find("valid_fraction must be in [0, 1)") != std::string::npos);
  }
}

TEST_CASE("image folders: the train/valid layout's own refusals") {
  TempDir dir;
  write_png(dir.path / "train" / "a" / "1.png", flat(4, 4, 1, 9));
  CHECK(error_of([&] { dml::data::load_image_folder(dir.path); }).find("has train/ but no valid/") != std::string::npos);
  write_png(dir.path / "val" / "b" / "1.png", flat(4, 4, 1, 9));
  CHECK(error_of([&] { dml::data::load_image_folder(dir.path); })
            .find((dir.path / "val" / "b").string() + " is a class that") != std::string::npos);
  fs::remove_all(dir.path / "val" / "b");
  write_png(dir.path / "val" / "a" / "2.png", flat(4, 4, 1, 19));
  const dml::data::ImageFolder f = dml::data::load_image_folder(dir.path);
  CHECK(f.splits.test.size() == 1);
}

// ---- Decode::PerBatch ---------------------------------------------------------------------------

// The folder both ways, with checks that the two agree in everything but where the pixels are.
void check_same_both_ways(const fs::path& root, ImageFolderOptions o) {
  o.decode = Decode::AtLoad;
  const dml::data::ImageFolder eager = dml::data::load_image_folder(root, o);
  o.decode = Decode::PerBatch;
  const dml::data::ImageFolder lazy = dml::data::load_image_folder(root, o);
  CHECK(lazy.layout == eager.layout);
  CHECK(lazy.train_files == eager.train_files);
  CHECK(lazy.valid_files == eager.valid_files);
  CHECK(lazy.converted_16bit == eager.converted_16bit);
  CHECK(lazy.alpha_composited == eager.alpha_composited);
  CHECK(lazy.skipped.count == eager.skipped.count);
  CHECK(lazy.skipped.first == eager.skipped.first);
  CHECK(eager.encoded_bytes == 0);
  CHECK(lazy.encoded_bytes > 0);
  for (auto split : {&dml::data::Splits::train, &dml::data::Splits::test}) {
    const dml::data::Dataset& e = eager.splits.*split;
    const dml::data::Dataset& l = lazy.splits.*split;
    CHECK(!e.on_demand());
    CHECK(l.on_demand());
    CHECK(l.image_shape() == e.image_shape());
    CHECK(l.labels == e.labels);
    CHECK(l.num_classes == e.num_classes);
    CHECK(l.class_names == e.class_names);
    CHECK(l.channel_norms == e.channel_norms);
    CHECK(dml::data::decode_all(l).images.to_vector() == e.images.to_vector());
  }
  // Batches, augmented, through the loader (with and without prefetch, on 1 and 2 threads).
  dml::data::LoaderOptions lo;
  lo.batch_size = 4;
  lo.seed = 5;
  lo.augment = {.pad = 1, .hflip = true};
  const auto want = dml::testing::runs_by_launch(eager.splits.train, lo, 2);
  const auto got = dml::testing::runs_by_launch(lazy.splits.train, lo, 2);
  for (int v = 0; v < 3; ++v) CHECK(got[v] == want[0]);
}

TEST_CASE("Decode::PerBatch gives the files, statistics and batches of Decode::AtLoad") {
  TempDir dir;
  for (int i = 0; i < 7; ++i) write_png(dir.path / "a" / ("g" + std::to_string(i) + ".png"), flat(6, 8, 1, 10 * i));
  for (int i = 0; i < 5; ++i) write_png(dir.path / "b" / ("c" + std::to_string(i) + ".png"), flat(9, 7, 3, 60 + 9 * i));
  for (int i = 0; i < 4; ++i)
    write(dir.path / "c" / ("j" + std::to_string(i) + ".jpg"), dml::data::encode_jpeg(flat(12, 12, 3, 100 + i)));
  ImageFolderOptions o;
  o.valid_fraction = 0.25;
  o.seed = 1;
  o.channels = 3;
  o.height = o.width = 6;
  o.crop_height = o.crop_width = 5;
  for (const auto filter : {dml::data::ResizeFilter::Area, dml::data::ResizeFilter::Bilinear}) {
    o.filter = filter;
    check_same_both_ways(dir.path, o);
  }
  o.channels = 1;
  o.dataset.normalization = dml::data::Normalization{0.5, 0.25};
  check_same_both_ways(dir.path, o);

  // The train/valid layout, grey files of one size, no resize.
  TempDir tv;
  for (int i = 0; i < 6; ++i) write_png(tv.path / "train" / (i % 2 ? "x" : "y") / (std::to_string(i) + ".png"), flat(5, 5, 1, 30 * i));
  for (int i = 0; i < 3; ++i) write_png(tv.path / "valid" / "x" / (std::to_string(i) + ".png"), flat(5, 5, 1, 7 * i));
  check_same_both_ways(tv.path, {});
}

TEST_CASE("Decode::PerBatch: a file corrupt past its header fails at load when the statistics are computed, else in the loader, named") {
  TempDir dir;
  for (int i = 0; i < 6; ++i) write_png(dir.path / "a" / (std::to_string(i) + ".png"), flat(16, 16, 1, 10 * i));
  std::vector<std::uint8_t> png = dml::data::encode_png(flat(16, 16, 1, 9));
  png.resize(png.size() - 16);  // cut in the pixel data (IEND and the end of IDAT): the header is intact
  const fs::path bad = dir.path / "a" / "3.png";
  write(bad, png);
  REQUIRE(dml::data::read_image_header(png, "x").width == 16);

  ImageFolderOptions o;
  o.decode = Decode::PerBatch;
  o.valid_fraction = 0;
  // The statistics decode every training file at load: the same error as Decode::AtLoad.
  const std::string at_load = error_of([&] { dml::data::load_image_folder(dir.path, o); });
  CHECK(at_load.find("image folder: " + bad.string() + ": corrupt or truncated PNG") != std::string::npos);
  CHECK(at_load.find("skip_bad") != std::string::npos);
  o.skip_bad = true;
  const dml::data::ImageFolder skipped = dml::data::load_image_folder(dir.path, o);
  CHECK(skipped.splits.train.size() == 5);
  CHECK(skipped.train_files.size() == 5);
  CHECK(std::find(skipped.train_files.begin(), skipped.train_files.end(), bad) == skipped.train_files.end());
  CHECK(skipped.skipped.count == 1);
  REQUIRE(skipped.skipped.first.size() == 1);
  CHECK(skipped.skipped.first[0].find(bad.string() + ": corrupt or truncated PNG") == 0);

  // With the normalisation given only headers are read: the load succeeds and the batch that holds
  // the file throws from next(), naming it; the loader stays usable.
  o.skip_bad = false;
  o.dataset.normalization = dml::data::Normalization{0.5, 0.25};
  const dml::data::ImageFolder f = dml::data::load_image_folder(dir.path, o);
  REQUIRE(f.splits.train.size() == 6);
  for (const bool prefetch : {false, true}) {
    CAPTURE(prefetch);
    dml::data::LoaderOptions lo;
    lo.batch_size = 2;
    lo.shuffle = false;
    lo.prefetch = prefetch;
    dml::data::DataLoader loader(f.splits.train, lo);
    CHECK(loader.next());  // rows 0, 1
    const std::string in_loader = error_of([&] { loader.next(); });  // rows 2, 3
    CHECK(in_loader.find("image folder: " + bad.string() + ": corrupt or truncated PNG") != std::string::npos);
    CHECK(in_loader.find("found while decoding a batch") != std::string::npos);
    CHECK(loader.position() == 1);
    CHECK_THROWS_AS(loader.next(), dml::Error);
    auto s = loader.state();
    s.position = 2;
    loader.set_state(s);
    auto b = loader.next();
    REQUIRE(b);
    CHECK(b->indices == std::vector<std::int64_t>{4, 5});
  }
  // A JPEG cut short the same way.
  fs::remove(bad);
  std::vector<std::uint8_t> jpeg = dml::data::encode_jpeg(flat(16, 16, 1, 9));
  jpeg.resize(jpeg.size() - 20);
  const fs::path bad_jpeg = dir.path / "a" / "3.jpg";
  write(bad_jpeg, jpeg);
  const dml::data::ImageFolder g = dml::data::load_image_folder(dir.path, o);
  CHECK(error_of([&] { dml::data::decode_all(g.splits.train); }).find("image folder: " + bad_jpeg.string() + ": ") !=
        std::string::npos);
}

}  // namespace test_image_folder
