// bench/tsne.cpp: Barnes-Hut t-SNE on a seeded mixture of 10 Gaussian
// clusters in 512-d (5,000 and 10,000 points). Validates each run (finite
// output, KL falling after exaggeration), then prints `name: value unit`
// lines: wall time, final KL and the leave-one-out 5-NN label accuracy of
// the 2-D embedding (plus the same accuracy in the input space).
//
//   bench_tsne [--sizes 5000,10000] [--threads T] [--seed S] [--data-seed D] [--dump DIR]
//
// --seed is dml's TsneOptions::seed; --data-seed changes the data set
// (default: 2024 + n).
//
// --dump DIR writes DIR/tsne_<n>.f32 (row-major float32), DIR/tsne_<n>.labels
// (int32) and the embedding DIR/tsne_<n>.dml.f32 (n x 2 float32), so that
// bench/tsne_sklearn.py runs on the same data.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dml/viz/tsne.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int kDim = 512;
constexpr int kClusters = 10;
constexpr int kVoteK = 5;

struct Data {
  std::vector<float> x;
  std::vector<int> labels;
  std::int64_t n = 0;
};

// Cluster centres ~ N(0, 0.4^2) per coordinate, points = centre + N(0, s^2)
// with a per-cluster spread s in [0.9, 1.1]: the clusters overlap a little
// in 512-d, so neither accuracy is trivially 1.
Data make_data(std::int64_t n, std::uint64_t seed) {
  dml::viz::detail::TsneRng rng(seed);
  std::vector<double> centres(kClusters * kDim), spread(kClusters);
  for (auto& c : centres) c = 0.4 * rng.normal();
  for (auto& s : spread) s = 0.9 + 0.2 * rng.uniform();
  Data d;
  d.n = n;
  d.x.resize(static_cast<std::size_t>(n) * kDim);
  d.labels.resize(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(rng.next() % kClusters);
    d.labels[i] = c;
    for (int j = 0; j < kDim; ++j)
      d.x[i * kDim + j] = static_cast<float>(centres[c * kDim + j] + spread[c] * rng.normal());
  }
  return d;
}

// Majority label of the k nearest neighbours (self excluded; ties go to the
// label met first, i.e. nearest).
int vote(const std::int32_t* neighbours, const std::vector<int>& labels) {
  int counts[kClusters] = {};
  int best = -1, best_count = 0;
  for (int m = 0; m < kVoteK; ++m) ++counts[labels[neighbours[m]]];
  for (int m = 0; m < kVoteK; ++m) {
    const int l = labels[neighbours[m]];
    if (counts[l] > best_count) best = l, best_count = counts[l];
  }
  return best;
}

// Leave-one-out k-NN accuracy; brute force in double (exact for the 2-D
// embedding; the input space goes through dml's float GEMM kNN).
double knn_accuracy(const float* x, std::int64_t n, std::int64_t dim, const std::vector<int>& labels) {
  std::vector<std::int32_t> index(n * kVoteK);
  if (dim == 2) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 64)
#endif
    for (std::int64_t i = 0; i < n; ++i) {
      std::vector<std::pair<double, std::int32_t>> d;
      d.reserve(n);
      for (std::int64_t j = 0; j < n; ++j) {
        if (j == i) continue;
        const double dx = double{x[2 * i]} - x[2 * j], dy = double{x[2 * i + 1]} - x[2 * j + 1];
        d.emplace_back(dx * dx + dy * dy, static_cast<std::int32_t>(j));
      }
      std::partial_sort(d.begin(), d.begin() + kVoteK, d.end());
      for (int m = 0; m < kVoteK; ++m) index[i * kVoteK + m] = d[m].second;
    }
  } else {
    index = dml::viz::detail::exact_knn(x, n, dim, kVoteK, dml::viz::detail::tsne_threads(0)).index;
  }
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < n; ++i) correct += vote(&index[i * kVoteK], labels) == labels[i];
  return static_cast<double>(correct) / static_cast<double>(n);
}

template <class T>
void write_raw(const std::string& path, const std::vector<T>& v) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes{5000, 10000};
  int threads = 0;
  std::uint64_t seed = 0;
  long long data_seed = -1;
  std::string dump_dir;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--sizes" && a + 1 < argc) {
      sizes.clear();
      std::stringstream ss(argv[++a]);
      for (std::string t; std::getline(ss, t, ',');) sizes.push_back(std::stoll(t));
    } else if (arg == "--threads" && a + 1 < argc) {
      threads = std::atoi(argv[++a]);
    } else if (arg == "--seed" && a + 1 < argc) {
      seed = std::stoull(argv[++a]);
    } else if (arg == "--data-seed" && a + 1 < argc) {
      data_seed = std::stoll(argv[++a]);
    } else if (arg == "--dump" && a + 1 < argc) {
      dump_dir = argv[++a];
    } else {
      std::fprintf(stderr, "usage: %s [--sizes 5000,10000] [--threads T] [--seed S] [--data-seed D] [--dump DIR]\n",
                   argv[0]);
      return 2;
    }
  }

  for (const std::int64_t n : sizes) {
    const Data d = make_data(n, static_cast<std::uint64_t>(data_seed >= 0 ? data_seed : 2024 + n));
    const std::string base = dump_dir + "/tsne_" + std::to_string(n);
    if (!dump_dir.empty()) {
      write_raw(base + ".f32", d.x);
      write_raw(base + ".labels", std::vector<std::int32_t>(d.labels.begin(), d.labels.end()));
    }

    dml::viz::TsneOptions options;
    options.threads = threads;
    options.seed = seed;
    const auto t0 = std::chrono::steady_clock::now();
    const dml::viz::TsneResult r = dml::viz::tsne(d.x, n, kDim, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const bool finite = std::all_of(r.y.begin(), r.y.end(), [](float v) { return std::isfinite(v); });
    const auto after = std::find_if(r.kl_history.begin(), r.kl_history.end(),
                                    [&](const auto& h) { return h.first > options.exaggeration_iters; });
    if (!finite || after == r.kl_history.end() || !(r.kl_divergence < after->second)) {
      std::fprintf(stderr, "tsne_%lld: validation failed (finite %d, final KL %g)\n", static_cast<long long>(n), finite,
                   r.kl_divergence);
      return 1;
    }
    if (!dump_dir.empty()) write_raw(base + ".dml.f32", r.y);
    const std::string name = "tsne_" + std::to_string(n);
    std::printf("%s_seconds: %.3f s\n", name.c_str(), seconds);
    std::printf("%s_kl: %.4f nats\n", name.c_str(), r.kl_divergence);
    std::printf("%s_knn_acc: %.4f fraction\n", name.c_str(), knn_accuracy(r.y.data(), n, 2, d.labels));
    std::printf("%s_input_knn_acc: %.4f fraction\n", name.c_str(), knn_accuracy(d.x.data(), n, kDim, d.labels));
    std::fflush(stdout);
  }
  return 0;
}
