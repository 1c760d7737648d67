// bench_image_folder: how fast dml::image decodes PNGs and loads a folder of them.
//
//   bench_image_folder [--data DIR] [--root DIR] [--count N] [--threads T]
//
// 1. Writes the first N training images of the IDX data in DIR (default
//    data/fashion-mnist, N = 60000) as root/<class>/<index>.png, unless root
//    already holds them (root/.complete records N).
// 2. Decodes 5,000 of those PNGs from memory, one thread: libpng's simplified
//    API (what dml uses) and, when the bench was built with libspng, libspng.
// 3. Times data::load_image_folder(root) (decoding on T threads, default all)
//    and prints images/s and the process's peak resident set size.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <dml/data/dataset.hpp>
#include <dml/data/image_folder.hpp>

#if defined(DML_BENCH_SPNG)
#include <spng.h>
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

static long peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

int main(int argc, char** argv) {
  fs::path data = "data/fashion-mnist", root = fs::temp_directory_path() / "dml_bench_png_folder";
  std::int64_t count = 60000;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "bench_image_folder: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data") data = value();
    else if (a == "--root") root = value();
    else if (a == "--count") count = std::stoll(value());
    else if (a == "--threads") threads = std::stoi(value());
    else {
      std::cerr << "usage: bench_image_folder [--data DIR] [--root DIR] [--count N] [--threads T]\n";
      return 2;
    }
  }
  try {
    const dml::data::IdxSplits idx = dml::data::load_idx_dir(data);
    count = std::min(count, idx.train.count);
    const std::int64_t px = idx.train.rows * idx.train.cols;
    auto image_of = [&](std::int64_t i) {
      dml::data::DecodedImage img;
      img.height = idx.train.rows;
      img.width = idx.train.cols;
      img.channels = 1;
      img.pixels.assign(idx.train.pixels.begin() + i * px, idx.train.pixels.begin() + (i + 1) * px);
      return img;
    };

    // 1. The folder.
    const fs::path marker = root / ".complete";
    std::int64_t have = 0;
    if (std::ifstream m(marker); m) m >> have;
    if (have != count) {
      fs::remove_all(root);
      const auto t = Clock::now();
      for (std::int64_t i = 0; i < count; ++i) {
        const fs::path p = root / std::to_string(idx.train.labels[static_cast<std::size_t>(i)]) / (std::to_string(i) + ".png");
        fs::create_directories(p.parent_path());
        const std::vector<std::uint8_t> png = dml::data::encode_png(image_of(i));
        std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
      }
      std::ofstream(marker) << count;
      std::printf("wrote %lld PNGs of %lld x %lld to %s in %.1f s\n", static_cast<long long>(count),
                  static_cast<long long>(idx.train.rows), static_cast<long long>(idx.train.cols), root.c_str(),
                  seconds_since(t));
    }

    // 2. Decoding alone, from memory, one thread.
    const std::int64_t n_dec = std::min<std::int64_t>(5000, count);
    std::vector<std::vector<std::uint8_t>> pngs;
    std::size_t bytes = 0;
    for (std::int64_t i = 0; i < n_dec; ++i) {
      pngs.push_back(dml::data::encode_png(image_of(i)));
      bytes += pngs.back().size();
    }
    std::printf("decode: %lld PNGs, %.0f bytes each on average\n", static_cast<long long>(n_dec),
                static_cast<double>(bytes) / static_cast<double>(n_dec));
    for (int round = 0; round < 3; ++round) {
      auto t = Clock::now();
      std::uint64_t sum = 0;
      for (const auto& p : pngs) sum += dml::data::decode_png(p, "bench").pixels[px / 2];
      const double lib = seconds_since(t);
      std::printf("decode_png_libpng_images_per_s: %.0f (round %d, checksum %llu)\n", static_cast<double>(n_dec) / lib,
                  round, static_cast<unsigned long long>(sum));
#if defined(DML_BENCH_SPNG)
      t = Clock::now();
      sum = 0;
      std::vector<std::uint8_t> out(static_cast<std::size_t>(px));
      for (const auto& p : pngs) {
        spng_ctx* ctx = spng_ctx_new(0);
        spng_set_png_buffer(ctx, p.data(), p.size());
        std::size_t size = 0;
        spng_decoded_image_size(ctx, SPNG_FMT_G8, &size);
        out.resize(size);
        if (spng_decode_image(ctx, out.data(), size, SPNG_FMT_G8, 0) != 0) {
          std::fprintf(stderr, "libspng failed\n");
          return 1;
        }
        spng_ctx_free(ctx);
        sum += out[static_cast<std::size_t>(px / 2)];
      }
      const double sp = seconds_since(t);
      std::printf("decode_png_libspng_images_per_s: %.0f (round %d, checksum %llu)\n", static_cast<double>(n_dec) / sp,
                  round, static_cast<unsigned long long>(sum));
#endif
    }

    // 3. The whole folder.
    dml::data::ImageFolderOptions o;
    o.threads = threads;
    o.valid_fraction = 1.0 / 6;
    const auto t = Clock::now();
    const dml::data::ImageFolder f = dml::data::load_image_folder(root, o);
    const double s = seconds_since(t);
    const std::int64_t loaded = f.splits.train.size() + f.splits.test.size();
    std::printf("load_image_folder: %lld images (%lld train, %lld valid, %zu classes) in %.2f s\n",
                static_cast<long long>(loaded), static_cast<long long>(f.splits.train.size()),
                static_cast<long long>(f.splits.test.size()), f.splits.train.class_names.size(), s);
    std::printf("load_image_folder_images_per_s: %.0f (threads %d)\n", static_cast<double>(loaded) / s,
                threads > 0 ? threads : omp_get_max_threads());
    std::printf("peak_rss_mib: %ld\n", peak_rss_mib());
  } catch (const dml::Error& e) {
    std::cerr << "bench_image_folder: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
