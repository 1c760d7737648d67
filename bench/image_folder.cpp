// bench_image_folder: how fast dml::image decodes PNGs and loads a folder of them.
//
//   bench_image_folder [--data DIR] [--root DIR] [--count N] [--threads T]
//                      [--decode load|batch] [--given-norm] [--loader-threads L] [--no-png-bench]
//
// 1. Writes the first N training images of the IDX data in DIR (default
//    data/fashion-mnist, N = 60000) as root/<class>/<index>.png, unless root
//    already holds them (root/.complete records N; the IDX files are then not read).
// 2. Decodes 5,000 of those PNGs from memory, one thread: libpng's simplified
//    API (what dml uses) and, when the bench was built with libspng, libspng
//    (left out by --no-png-bench, which keeps their memory out of the peak).
// 3. Times data::load_image_folder(root) with --decode load (Decode::AtLoad,
//    the default: every file decoded on T threads, default all) or batch
//    (Decode::PerBatch: the files read and their headers checked, the training
//    files decoded once for the statistics; --given-norm gives the normalisation,
//    mean 0.5 and stddev 0.25, so that only headers are read), then one epoch of a DataLoader
//    (batch 128, prefetch, L threads, default 1, no augmentation) over the
//    training split, which with batch decodes every image on the prefetch
//    thread. Prints images/s for both, the resident set size before and after the
//    load (with the heap in use, glibc's mallinfo2) and the process's peak (VmHWM).
//
// Run it once per --decode value: the peak is the process's.
#include <malloc.h>
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
#include <dml/data/loader.hpp>

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

// Bytes the program holds on the heap now (glibc's mallinfo2: small blocks in use plus
// mmap'ed ones): the live data, without what the allocator keeps for reuse.
static long heap_in_use_mib() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<long>((m.uordblks + m.hblkhd) / (1024 * 1024));
}

// The resident set size now, from /proc/self/status (-1 where there is none).
static long rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string key;
  while (f >> key) {
    if (key == "VmRSS:") {
      long kib = -1;
      f >> kib;
      return kib / 1024;
    }
    std::getline(f, key);
  }
  return -1;
}

int main(int argc, char** argv) {
  fs::path data = "data/fashion-mnist", root = fs::temp_directory_path() / "dml_bench_png_folder";
  std::int64_t count = 60000;
  int threads = 0, loader_threads = 1;
  bool png_bench = true, given_norm = false;
  std::string decode = "load";
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
    else if (a == "--loader-threads") loader_threads = std::stoi(value());
    else if (a == "--decode") decode = value();
    else if (a == "--no-png-bench") png_bench = false;
    else if (a == "--given-norm") given_norm = true;
    else {
      std::cerr << "usage: bench_image_folder [--data DIR] [--root DIR] [--count N] [--threads T] "
                   "[--decode load|batch] [--given-norm] [--loader-threads L] [--no-png-bench]\n";
      return 2;
    }
  }
  if (decode != "load" && decode != "batch") {
    std::cerr << "bench_image_folder: --decode must be load or batch, got '" << decode << "'\n";
    return 2;
  }
  try {
    // 1. The folder.
    const fs::path marker = root / ".complete";
    std::int64_t have = 0;
    if (std::ifstream m(marker); m) m >> have;
    const bool need_idx = have != count || png_bench;
    dml::data::IdxSplits idx;
    if (need_idx) {
      idx = dml::data::load_idx_dir(data);
      count = std::min(count, idx.train.count);
    }
    const std::int64_t px = idx.train.rows * idx.train.cols;
    auto image_of = [&](std::int64_t i) {
      dml::data::DecodedImage img;
      img.height = idx.train.rows;
      img.width = idx.train.cols;
      img.channels = 1;
      img.pixels.assign(idx.train.pixels.begin() + i * px, idx.train.pixels.begin() + (i + 1) * px);
      return img;
    };

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
    if (png_bench) {
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
    }
    idx = {};  // the folder is what is measured from here on

    // 3. The whole folder, then an epoch of the loader.
    dml::data::ImageFolderOptions o;
    o.threads = threads;
    o.valid_fraction = 1.0 / 6;
    o.decode = decode == "load" ? dml::data::Decode::AtLoad : dml::data::Decode::PerBatch;
    if (given_norm) o.dataset.normalization = dml::data::Normalization{0.5, 0.25};
    const int team = threads > 0 ? threads : omp_get_max_threads();
    std::printf("decode: %s%s; rss_before_load_mib: %ld\n", decode.c_str(),
                given_norm ? " (normalisation given)" : "", rss_mib());
    auto t = Clock::now();
    const dml::data::ImageFolder f = dml::data::load_image_folder(root, o);
    const double s = seconds_since(t);
    const std::int64_t loaded = f.splits.train.size() + f.splits.test.size();
    std::printf("load_image_folder: %lld images (%lld train, %lld valid, %zu classes) in %.2f s, decode %s, "
                "%.1f MiB of encoded files held\n",
                static_cast<long long>(loaded), static_cast<long long>(f.splits.train.size()),
                static_cast<long long>(f.splits.test.size()), f.splits.train.class_names.size(), s, decode.c_str(),
                static_cast<double>(f.encoded_bytes) / (1024.0 * 1024.0));
    std::printf("load_image_folder_%s_images_per_s: %.0f (threads %d)\n", decode.c_str(),
                static_cast<double>(loaded) / s, team);
    std::printf("rss_after_load_mib: %ld (heap in use %ld)\n", rss_mib(), heap_in_use_mib());

    dml::data::LoaderOptions lo;
    lo.batch_size = 128;
    lo.seed = 1;
    lo.threads = loader_threads;
    dml::data::DataLoader loader(f.splits.train, lo);
    t = Clock::now();
    double checksum = 0;
    std::int64_t seen = 0;
    for (dml::data::Batch& b : loader) {
      checksum += b.images.data()[0];
      seen += b.size();
    }
    const double e = seconds_since(t);
    std::printf("loader_epoch_%s_images_per_s: %.0f (%lld images in %.2f s, loader threads %d, checksum %.3f)\n",
                decode.c_str(), static_cast<double>(seen) / e, static_cast<long long>(seen), e, loader_threads,
                checksum);
    std::printf("peak_rss_mib: %ld\n", peak_rss_mib());
  } catch (const dml::Error& e) {
    std::cerr << "bench_image_folder: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
