// bench/tsne.cpp: Barnes-Hut t-SNE on a seeded mixture of 10 Gaussian
// clusters in 512-d (5,000 and 10,000 points). Validates each run (finite
// output, KL falling after exaggeration), then prints `name: value unit`
// lines: wall time, the KL dml reports, the exact KL (see exact_kl) and the
// leave-one-out 5-NN label accuracy of the 2-D embedding (plus the same
// accuracy in the input space).
//
//   bench_tsne [--sizes 5000,10000] [--threads T] [--seed S] [--data-seed D] [--theta T] [--dump DIR]
//   bench_tsne [--sizes 5000,10000] --score DIR NAME
//   bench_tsne [--sizes 5000,10000] [--theta T] --bh-error DIR NAME
//
// --seed is dml's TsneOptions::seed; --data-seed changes the data set
// (default: 2024 + n).
//
// --dump DIR writes DIR/tsne_<n>.f32 (row-major float32), DIR/tsne_<n>.labels
// (int32) and the embedding DIR/tsne_<n>.dml.f32 (n x 2 float32), so that
// bench/tsne_sklearn.py runs on the same data.
//
// --score DIR NAME runs no t-SNE: it reads the data and another program's
// map DIR/tsne_<n>.NAME.f32 and prints its exact KL and kNN accuracy, the
// same measures as for dml's own map.
//
// --bh-error DIR NAME runs no t-SNE either: on the map DIR/tsne_<n>.NAME.f32 it
// compares dml's Barnes-Hut repulsive gradient -rep_i / Z (at --theta) with the
// exact O(n^2) one: relative error (norm over all points), median per-point
// relative error, Z's relative error, and the scale (the projection of the
// estimate on the exact gradient; below 1 = repulsion biased low).
// bench/tsne_bh_error.py prints the same for scikit-learn's Barnes-Hut.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dml/viz/tsne.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>
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

// KL(P || Q) of the n x 2 map y against dml's P for x (default perplexity)
// with the exact O(n^2) normaliser Z. Each program reports KL with its own
// P and its own Barnes-Hut estimate of Z, which is biased low by different
// amounts; this measure is the same for every map.
double exact_kl(const Data& d, const std::vector<float>& map) {
  namespace vd = dml::viz::detail;
  const std::int64_t n = d.n;
  const int threads = vd::tsne_threads(0);
  const double perplexity = dml::viz::TsneOptions{}.perplexity;
  const vd::KnnGraph knn = vd::exact_knn(d.x.data(), n, kDim, static_cast<int>(3 * perplexity), threads);
  std::vector<double> p_cond;
  vd::conditional_affinities(knn, perplexity, threads, p_cond);
  const vd::SparseAffinity p = vd::symmetrize(knn, p_cond);
  const std::vector<double> y(map.begin(), map.end());
  std::vector<double> rows(n);
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 64)
#endif
  for (std::int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      s += j == i ? 0.0 : 1.0 / (1.0 + dx * dx + dy * dy);
    }
    rows[i] = s;
  }
  double z = 0;
  for (double r : rows) z += r;
  return vd::kl_divergence(p, vd::negative_entropy(p), y.data(), z, threads);
}

template <class T>
void write_raw(const std::string& path, const std::vector<T>& v) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

// Reads exactly `count` values of T from path; throws when the file is
// missing or has another size.
template <class T>
std::vector<T> read_raw(const std::string& path, std::size_t count) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path);
  if (static_cast<std::size_t>(in.tellg()) != count * sizeof(T))
    throw std::runtime_error(path + " has " + std::to_string(static_cast<long long>(in.tellg())) +
                             " bytes, expected " + std::to_string(count * sizeof(T)));
  std::vector<T> v(count);
  in.seekg(0).read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(T)));
  return v;
}

// Prints the measures of a finished map, named tsne_<n>_*.
void print_quality(const Data& d, const std::vector<float>& map) {
  const std::string name = "tsne_" + std::to_string(d.n);
  std::printf("%s_exact_kl: %.4f nats\n", name.c_str(), exact_kl(d, map));
  std::printf("%s_knn_acc: %.4f fraction\n", name.c_str(), knn_accuracy(map.data(), d.n, 2, d.labels));
}

// --score: the measures of DIR/tsne_<n>.NAME.f32 on the data dumped there.
int score(const std::vector<std::int64_t>& sizes, const std::string& dir, const std::string& map_name) {
  try {
    for (const std::int64_t n : sizes) {
      const std::string base = dir + "/tsne_" + std::to_string(n);
      Data d;
      d.n = n;
      d.x = read_raw<float>(base + ".f32", static_cast<std::size_t>(n) * kDim);
      const auto labels = read_raw<std::int32_t>(base + ".labels", static_cast<std::size_t>(n));
      d.labels.assign(labels.begin(), labels.end());
      for (const int l : d.labels)
        if (l < 0 || l >= kClusters) throw std::runtime_error(base + ".labels: label " + std::to_string(l));
      const auto map = read_raw<float>(base + "." + map_name + ".f32", static_cast<std::size_t>(2 * n));
      print_quality(d, map);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tsne --score: %s\n", e.what());
    return 1;
  }
  return 0;
}

// --bh-error: dml's Barnes-Hut repulsion against the exact one on a given map.
int bh_error(const std::vector<std::int64_t>& sizes, const std::string& dir, const std::string& map_name,
             double theta) {
  try {
    for (const std::int64_t n : sizes) {
      const std::string file = dir + "/tsne_" + std::to_string(n) + "." + map_name + ".f32";
      const auto map = read_raw<float>(file, static_cast<std::size_t>(2 * n));
      const std::vector<double> y(map.begin(), map.end());
      std::vector<double> exact(2 * n);
      double z = 0;
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : z)
      for (std::int64_t i = 0; i < n; ++i) {
        double fx = 0, fy = 0;
        for (std::int64_t j = 0; j < n; ++j) {
          if (j == i) continue;
          const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
          const double w = 1.0 / (1.0 + dx * dx + dy * dy);
          z += w;
          fx += w * w * dx;
          fy += w * w * dy;
        }
        exact[2 * i] = fx;
        exact[2 * i + 1] = fy;
      }
      dml::viz::detail::QuadTree tree;
      tree.build(y.data(), n);
      std::vector<double> rep(2 * n), sumw(n);
      tree.repulsion(theta, dml::viz::detail::tsne_threads(0), rep.data(), sumw.data());
      double z_bh = 0;
      for (const double w : sumw) z_bh += w;
      double err2 = 0, norm2 = 0, dot = 0;
      std::vector<double> per_point(n);
      for (std::int64_t i = 0; i < n; ++i) {
        double e2 = 0, g2 = 0;
        for (int c = 0; c < 2; ++c) {
          const double g = -exact[2 * i + c] / z, b = -rep[2 * i + c] / z_bh;
          e2 += (b - g) * (b - g);
          g2 += g * g;
          dot += b * g;
        }
        err2 += e2;
        norm2 += g2;
        per_point[i] = std::sqrt(e2 / g2);
      }
      std::nth_element(per_point.begin(), per_point.begin() + n / 2, per_point.end());
      const std::string name = "tsne_" + std::to_string(n) + "_bh";
      std::printf("%s_theta: %.2f\n", name.c_str(), theta);
      std::printf("%s_rel_error: %.5f fraction\n", name.c_str(), std::sqrt(err2 / norm2));
      std::printf("%s_median_point_error: %.5f fraction\n", name.c_str(), per_point[n / 2]);
      std::printf("%s_z_error: %+.5f fraction\n", name.c_str(), z_bh / z - 1);
      std::printf("%s_scale: %.5f fraction\n", name.c_str(), dot / norm2);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tsne --bh-error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes{5000, 10000};
  int threads = 0;
  std::uint64_t seed = 0;
  long long data_seed = -1;
  double theta = dml::viz::TsneOptions{}.theta;
  std::string dump_dir, score_dir, score_name, bh_dir, bh_name;
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
    } else if (arg == "--theta" && a + 1 < argc) {
      theta = std::stod(argv[++a]);
    } else if (arg == "--dump" && a + 1 < argc) {
      dump_dir = argv[++a];
    } else if (arg == "--score" && a + 2 < argc) {
      score_dir = argv[++a];
      score_name = argv[++a];
    } else if (arg == "--bh-error" && a + 2 < argc) {
      bh_dir = argv[++a];
      bh_name = argv[++a];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--sizes 5000,10000] [--threads T] [--seed S] [--data-seed D] [--theta T] [--dump DIR]\n"
                   "       %s [--sizes 5000,10000] --score DIR NAME\n"
                   "       %s [--sizes 5000,10000] [--theta T] --bh-error DIR NAME\n",
                   argv[0], argv[0], argv[0]);
      return 2;
    }
  }
  if (!score_dir.empty()) return score(sizes, score_dir, score_name);
  if (!bh_dir.empty()) return bh_error(sizes, bh_dir, bh_name, theta);

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
    options.theta = theta;
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
    std::printf("%s_reported_kl: %.4f nats\n", name.c_str(), r.kl_divergence);
    print_quality(d, r.y);
    std::printf("%s_input_knn_acc: %.4f fraction\n", name.c_str(), knn_accuracy(d.x.data(), n, kDim, d.labels));
    std::fflush(stdout);
  }
  return 0;
}
