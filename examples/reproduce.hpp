// examples/reproduce.hpp: the reference experiment, dml's main demo. The
// program lives here; reproduce.cpp (CPU) and reproduce.cu (nvcc: --device
// cpu or cuda, the target reproduce_cuda) are its two mains.
//
// For each of six methods (softmax, L2-constrained softmax, ArcFace, CosFace,
// SphereFace, Center Loss) it trains ResNet18 (fastai embedding head, 512-d)
// on MNIST from scratch (the recipe of docs/training.md: SGD + Nesterov, batch
// 64, one-cycle; a frozen first stage only with --pretrained weights), then writes
//   <out>/<method>/tsne_embeddings.svg  t-SNE of the test embeddings
//   <out>/<method>/tsne_logits.svg      t-SNE of the test logits
//   <out>/<method>/embeddings.npy       [N, 512] float32, test set order
//   <out>/<method>/labels.npy           [N] int64
//   <out>/<method>/metrics.json         accuracy, P@1, R-Precision, MAP@R, NMI, AMI, anomaly AUCs, history
// Then the anomaly protocol: for case c the unknown classes are
// rotate(0..9, c)[:n]; one model per method trains on the known classes only;
// the score of a test image is its distance to the nearest reference (a seeded
// half of the known-class training embeddings); ROC-AUC with unknown classes
// as positives. Finally
//   <out>/anomaly_auc.svg               box plot, one box per method
//   <out>/report.md                     the table and the pictures
//
// Run `reproduce --help` for the options. The default run (3 epochs per main
// model, 5 anomaly cases of 2 epochs per model: 36 models, two at a time on a
// 2-core CPU) and its time are in docs/results.md; --full runs all 10 anomaly cases. With
// --device cuda, training and embedding run on the GPU; t-SNE, kNN and the
// metrics stay on the CPU.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <atomic>
#include <exception>
#include <vector>

#include <dml/dml.hpp>
#include <dml/data/dataset.hpp>
#include <dml/eval/anomaly.hpp>
#include <dml/eval/cluster.hpp>
#include <dml/eval/embed.hpp>
#include <dml/eval/metrics.hpp>
#include <dml/eval/spread.hpp>
#include <dml/heads/margin_head.hpp>
#include <dml/heads/methods.hpp>
#include <dml/io/file.hpp>
#include <dml/io/json.hpp>
#include <dml/io/npy.hpp>
#include <dml/losses/center_loss.hpp>
#include <dml/losses/methods.hpp>
#include <dml/nn/resnet.hpp>
#include <dml/optim/adam.hpp>
#include <dml/train/learner.hpp>
#include <dml/viz/svg.hpp>
#include <dml/viz/tsne.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "recipe.hpp"

using namespace dml;
namespace fs = std::filesystem;
namespace json = dml::io::json;

namespace reproduce {

// ---- configuration ----------------------------------------------------------------------------

// Each optimiser's defaults (peak lr of the one-cycle schedule, weight decay).
using recipe::kAdamWLr, recipe::kAdamWWeightDecay, recipe::kSgdLr, recipe::kSgdWeightDecay;
// Epochs of the default run (docs/training.md has the ablation that chose them).
inline constexpr std::int64_t kEpochs = 3, kAnomalyEpochs = 2;
// The lr multiplier of a proxy loss's proxies (ProxyAnchor's paper trains them at 100x).
inline constexpr double kProxyLrScale = 10;

struct Config {
  fs::path data = "data/mnist";
  fs::path out = "results";
  fs::path pretrained;             // body weights to start from (safetensors, torchvision names)
  std::int64_t frozen_epochs = 0;    // body frozen first (parse_args: 1 with --pretrained unless given)
  std::int64_t epochs = kEpochs;     // one-cycle epochs per main model
  std::int64_t anomaly_epochs = kAnomalyEpochs;  // one-cycle epochs per anomaly model
  int cases = 5;                   // anomaly cases 0..cases-1
  int unknown = 5;                 // unknown classes per case
  eval::Metric metric = eval::Metric::Cosine;
  std::uint64_t seed = 0;
  std::vector<const heads::MethodInfo*> methods;  // empty: all six
  std::int64_t subset = 0;           // > 0: at most this many training images (test: a sixth of it)
  std::int64_t batch_size = recipe::kBatchSize;
  std::string optimizer = "sgd";    // sgd (Nesterov momentum 0.9) or adamw
  double lr = 0;                    // peak lr; 0: the optimiser's default (kSgdLr, kAdamWLr)
  double weight_decay = -1;         // -1: the optimiser's default (kSgdWeightDecay, kAdamWWeightDecay)
  bool augment = true;              // shift up to 2 px + rotate up to 10 degrees
  std::array<double, 2> dropout = recipe::kHeadDropout;  // fastai head dropouts
  double center_weight = heads::kCenterLossWeight;
  double center_warmup = recipe::kCenterWarmup;  // share of a fit over which the Center Loss weight ramps up from 0
  double center_alpha = 0.5;
  double proxy_lr_scale = kProxyLrScale;
  std::int64_t width = 64;      // ResNet base width (64 = ResNet18)
  bool max_pool = true;         // the stem's max-pool (ResNetOptions::max_pool)
  std::int64_t embedding = 512;
  int tsne_iterations = 1000;
  bool quiet = false;           // no Learner tables
  int jobs = 0;                 // models trained at once; 0: parse_args picks (see kUsage)
  std::string device = "cpu";   // where training and embedding run: cpu or cuda
  std::string device_name;      // for the report (the GPU's name); empty: `device`
  std::string command;          // as typed, for the report
};

inline constexpr const char* kUsage = R"(usage: reproduce [options]
Trains ResNet18 with six metric-learning heads on MNIST and writes pictures, metrics and a report.
The defaults are the from-scratch recipe of docs/training.md: SGD with Nesterov momentum, batch 64,
one-cycle lr peaking at 0.05, weight decay 5e-4, shift + rotation augmentation, no frozen stage.

  --data DIR          MNIST-style IDX files (default data/mnist; fetch with scripts/get_data.sh)
  --out DIR           where results go (default results)
  --epochs N          one-cycle epochs per main model (default 3; alone it also sets --anomaly-epochs)
  --anomaly-epochs N  one-cycle epochs per anomaly model (default 2)
  --pretrained FILE   start every body from these weights (safetensors, torchvision names; fc. and
                      head. are skipped); then one frozen epoch comes first by default
  --frozen-epochs N   epochs with the body frozen first (needs --pretrained; default 1 with it, else 0)
  --cases N           anomaly cases 0..N-1 (default 5; 0 skips the anomaly protocol)
  --full              all 10 anomaly cases (for full MNIST or Fashion-MNIST runs)
  --unknown N         unknown classes per case (default 5; the reference also uses 7)
  --distance D        cosine or l2 (default cosine): retrieval and anomaly scores
  --seed S            seed of weights, shuffling and the random halves (default 0)
  --methods A,B,...   a subset of softmax,l2,arc,cos,sphere,center (or l2softmax, arcface, ...);
                      beyond the default six: the heads subcenter and adacos (sub-centre ArcFace,
                      AdaCos) and the embedding losses triplet (batch-hard), ms (multi-similarity
                      + its miner), proxyanchor, supcon, contrastive, circle, ntxent, proxynca
                      (no head: accuracy is 1-NN against the training embeddings)
  --subset N          at most N training and N/6 test images (smoke runs)
  --batch-size N      training batch size (default 64)
  --optimizer O       sgd (Nesterov, momentum 0.9; default) or adamw
  --lr X              peak learning rate (default 0.05 for sgd, 1e-3 for adamw)
  --wd X              weight decay (default 5e-4 for sgd, 1e-2 for adamw)
  --no-augment        no random shift (2 px) and rotation (10 degrees)
  --dropout P1,P2     dropouts of the fastai head (default 0,0; fastai uses 0.25,0.5)
  --center-weight X   Center Loss weight (default 0.125, the article's)
  --center-warmup F   share of each fit over which that weight ramps up from 0 (default 0.5)
  --center-alpha A    Center Loss's centre update rate (default 0.5, the paper's)
  --proxy-lr-scale X  lr multiplier of the proxies of proxyanchor and proxynca (default 10)
  --width N           ResNet base width (default 64; smaller only for smoke runs)
  --no-max-pool       skip the stem's max-pool: stage 1 at 14x14 instead of 7x7 for 28x28 digits;
                      about 4x the training time per image (docs/training.md: the ablation)
  --tsne-iterations N t-SNE steps (default 1000)
  --quiet             no per-epoch tables
  --jobs N            models trained at once, each on its share of the cores (default: up to 4,
                      one per core, on the CPU; 1 with --device cuda). Every model is the same
                      whatever N; with N > 1 the per-epoch tables are left out
  --device D          cpu or cuda (cuda: the reproduce_cuda build; default there)
)";

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The head methods (heads::with_method) and the embedding losses
// (losses::with_embedding_loss) by name; throws dml::Error listing both.
inline const heads::MethodInfo& method_of(std::string_view name) {
  if (const heads::MethodInfo* m = heads::find_method(name)) return *m;
  if (const heads::MethodInfo* m = losses::find_embedding_method(name)) return *m;
  std::string valid;
  for (const heads::MethodInfo& m : heads::kMethods) valid += (valid.empty() ? "" : ", ") + std::string(m.key);
  for (const heads::MethodInfo& m : heads::kMoreMethods) valid += ", " + std::string(m.key);
  for (const heads::MethodInfo& m : losses::kEmbeddingMethods) valid += ", " + std::string(m.key);
  throw Error("unknown method '" + std::string(name) + "' (expected one of " + valid + ")");
}
// True for an embedding loss (no head, no logits: accuracy is 1-NN on the training embeddings).
inline bool headless(const heads::MethodInfo& m) { return losses::find_embedding_method(m.key) != nullptr; }

// Parses argv; throws dml::Error naming the bad option. Returns false for --help.
inline bool parse_args(int argc, char** argv, Config& c) {
  for (int i = 0; i < argc; ++i) c.command += (i ? " " : "") + std::string(argv[i]);
  auto value = [&](int& i) -> std::string {
    DML_CHECK(i + 1 < argc, "option ", argv[i], " needs a value");
    return argv[++i];
  };
  auto integer = [&](int& i, std::int64_t lo) -> std::int64_t {
    const std::string opt = argv[i], v = value(i);
    std::size_t used = 0;
    std::int64_t x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DML_CHECK(used == v.size() && !v.empty(), "option ", opt, ": '", v, "' is not an integer");
    DML_CHECK(x >= lo, "option ", opt, " must be >= ", lo, ", got ", x);
    return x;
  };
  auto number = [&](int& i, double lo) -> double {
    const std::string opt = argv[i], v = value(i);
    double x = NAN;
    std::size_t used = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DML_CHECK(used == v.size() && std::isfinite(x) && x >= lo, "option ", opt, ": '", v, "' is not a number >= ", lo);
    return x;
  };
  bool cases_given = false, full = false, anomaly_given = false, epochs_given = false, frozen_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") return false;
    if (a == "--data") c.data = value(i);
    else if (a == "--out") c.out = value(i);
    else if (a == "--epochs") c.epochs = integer(i, 1), epochs_given = true;
    else if (a == "--pretrained") c.pretrained = value(i);
    else if (a == "--frozen-epochs") c.frozen_epochs = integer(i, 0), frozen_given = true;
    else if (a == "--anomaly-epochs") c.anomaly_epochs = integer(i, 1), anomaly_given = true;
    else if (a == "--cases") c.cases = static_cast<int>(integer(i, 0)), cases_given = true;
    else if (a == "--full") full = true;
    else if (a == "--unknown") c.unknown = static_cast<int>(integer(i, 1));
    else if (a == "--seed") c.seed = static_cast<std::uint64_t>(integer(i, 0));
    else if (a == "--subset") c.subset = integer(i, 12);
    else if (a == "--batch-size") c.batch_size = integer(i, 2);
    else if (a == "--width") c.width = integer(i, 1);
    else if (a == "--no-max-pool") c.max_pool = false;
    else if (a == "--tsne-iterations") c.tsne_iterations = static_cast<int>(integer(i, 1));
    else if (a == "--quiet") c.quiet = true;
    else if (a == "--jobs") c.jobs = static_cast<int>(integer(i, 1));
    else if (a == "--no-augment") c.augment = false;
    else if (a == "--optimizer") {
      c.optimizer = value(i);
      DML_CHECK(c.optimizer == "sgd" || c.optimizer == "adamw", "option --optimizer: expected sgd or adamw, got '",
                c.optimizer, "'");
    }
    else if (a == "--wd") c.weight_decay = number(i, 0);
    else if (a == "--center-weight") c.center_weight = number(i, 0);
    else if (a == "--center-warmup") c.center_warmup = number(i, 0);
    else if (a == "--center-alpha") c.center_alpha = number(i, 0);
    else if (a == "--proxy-lr-scale") c.proxy_lr_scale = number(i, 1e-6);
    else if (a == "--dropout") {
      const std::string v = value(i);
      const auto parts = split_list(v);
      DML_CHECK(parts.size() == 2, "option --dropout: expected two numbers P1,P2, got '", v, "'");
      for (int k = 0; k < 2; ++k) {
        std::size_t used = 0;
        double p = NAN;
        try {
          p = std::stod(parts[k], &used);
        } catch (const std::exception&) {
          used = 0;
        }
        DML_CHECK(used == parts[k].size() && p >= 0 && p < 1, "option --dropout: '", parts[k],
                  "' is not a probability in [0, 1)");
        c.dropout[k] = p;
      }
    }
    else if (a == "--device") {
      c.device = value(i);
      DML_CHECK(c.device == "cpu" || c.device == "cuda", "option --device: expected cpu or cuda, got '", c.device,
                "'");
    }
    else if (a == "--lr") {
      const std::string v = value(i);
      try {
        c.lr = std::stod(v);
      } catch (const std::exception&) {
        c.lr = -1;
      }
      DML_CHECK(c.lr > 0 && std::isfinite(c.lr), "option --lr: '", v, "' is not a positive number");
    } else if (a == "--distance") {
      const std::string v = value(i);
      DML_CHECK(v == "cosine" || v == "l2", "option --distance: expected cosine or l2, got '", v, "'");
      c.metric = v == "cosine" ? eval::Metric::Cosine : eval::Metric::L2;
    } else if (a == "--methods") {
      c.methods.clear();
      for (const std::string& m : split_list(value(i))) c.methods.push_back(&method_of(m));
    } else {
      throw Error("unknown option '" + a + "' (see --help)");
    }
  }
  if (full && !cases_given) c.cases = 10;
  // --epochs alone sets both (a longer run trains its anomaly models longer too).
  if (epochs_given && !anomaly_given) c.anomaly_epochs = c.epochs;
  if (!frozen_given) c.frozen_epochs = c.pretrained.empty() ? 0 : 1;
  DML_CHECK(c.frozen_epochs == 0 || !c.pretrained.empty(), "option --frozen-epochs ", c.frozen_epochs,
            ": a frozen stage trains the head on the body's features, and a randomly initialised body has none; "
            "pass --pretrained FILE too (or --frozen-epochs 0)");
  if (c.lr <= 0) c.lr = c.optimizer == "sgd" ? kSgdLr : kAdamWLr;
  if (c.weight_decay < 0) c.weight_decay = c.optimizer == "sgd" ? kSgdWeightDecay : kAdamWWeightDecay;
  if (c.methods.empty())
    for (const heads::MethodInfo& m : heads::kMethods) c.methods.push_back(&m);
  if (c.jobs == 0)  // one model per core on the CPU (each trains about as fast alone on one core as on two)
    c.jobs = c.device == "cpu" ? static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u)) : 1;
  DML_CHECK(c.jobs == 1 || c.device == "cpu", "option --jobs ", c.jobs,
            ": models train one at a time on a GPU; pass --jobs 1 with --device cuda");
  return true;
}

// ---- progress and time left -------------------------------------------------------------------

// x with `decimals` decimals, "n/a" when not finite.
inline std::string fixed(double x, int decimals = 4) {
  if (!std::isfinite(x)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

// Seconds per image of each kind of work: a cost model of the run, measured
// on this machine by measure_rates before the run starts.
struct Rates {
  double train = 1.0 / 300;   // a training image (loader, augmentation, step)
  double frozen = 1.0 / 450;  // a training image with the body frozen
  double infer = 1.0 / 1300;  // an embedded image
  double tsne = 1.0 / 1000;   // a point of one t-SNE map plus the metrics
  double model = 1.0;         // fixed cost of a model: construction, loader, first (cold) step
};

// Estimates the time left from the cost model in "expected seconds" (of one
// model training alone), corrected by how fast the finished work actually
// went; `parallel` models train at once (--jobs). Safe to call from the jobs' threads.
class Clock {
 public:
  explicit Clock(double total, Rates rates = {}, int parallel = 1)
      : rates_(rates), total_(total), parallel_(std::max(1, parallel)), start_(std::chrono::steady_clock::now()) {}
  void add(double expected_seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    done_ += expected_seconds;
  }
  // Called after every training step: keeps its time (measure_rates reads them).
  void batch_done() {
    const double t = elapsed();
    std::lock_guard<std::mutex> lock(mu_);
    batch_times_.push_back(t);
  }
  std::vector<double> batch_times() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_times_;
  }
  const Rates& rates() const { return rates_; }
  double total() const { return total_; }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  // The progress line: what runs now, time so far and time left.
  void announce(const std::string& what) const {
    const double el = elapsed();
    std::lock_guard<std::mutex> lock(mu_);
    // actual / expected seconds; before any work is done, the jobs' parallelism
    const double speed = done_ > 0 && el > 5 ? el / done_ : 1.0 / parallel_;
    const double left = std::max(0.0, total_ - done_) * speed;
    std::cout << "\n== " << what << "  [" << train::format_time(el) << " elapsed, about "
              << train::format_time(left) << " left]" << std::endl;
  }

 private:
  Rates rates_;
  std::vector<double> batch_times_;
  double total_, done_ = 0;
  int parallel_;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
};

// Expected seconds of training one model on n_train images (validating on n_valid after each epoch).
inline double expected_training(const Config& c, const Rates& r, std::int64_t n_train, std::int64_t n_valid,
                                std::int64_t epochs) {
  const double images = static_cast<double>(n_train);
  return static_cast<double>(c.frozen_epochs) * images * r.frozen + static_cast<double>(epochs) * images * r.train +
         static_cast<double>(c.frozen_epochs + epochs) * static_cast<double>(n_valid) * r.infer;
}

// ---- models trained at once ------------------------------------------------------------------

// OpenMP threads for each of `jobs` models trained at once: the cores shared out, at least one.
inline int threads_per_job(int jobs) {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads() / std::max(1, jobs));
#else
  (void)jobs;
  return 1;
#endif
}

// Runs job(0), ..., job(n - 1), `jobs` at a time: each worker thread (with
// threads_per_job(jobs) OpenMP threads) takes the next index when it is free.
// With jobs == 1 they run in this thread, in order. The first exception stops
// the taking of new jobs and is rethrown once the running ones have ended.
template <class F>
void run_jobs(std::size_t n, int jobs, F&& job) {
  if (jobs <= 1) {
    for (std::size_t j = 0; j < n; ++j) job(j);
    return;
  }
  const int threads = threads_per_job(jobs);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mu;
  std::vector<std::thread> workers;
  for (int w = 0; w < jobs && static_cast<std::size_t>(w) < n; ++w)
    workers.emplace_back([&] {
#ifdef _OPENMP
      omp_set_num_threads(threads);
#endif
      for (std::size_t j = next++; j < n && !failed; j = next++) {
        try {
          job(j);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
    });
  for (std::thread& t : workers) t.join();
  if (error) std::rethrow_exception(error);
}

// ---- one model ----------------------------------------------------------------------------------

struct Trained {
  std::vector<train::EpochStats> history;
  std::vector<eval::Embedded<float>> outputs;  // one per dataset asked for, in order, on the host
  double seconds = 0;
};

// P x K batches of `batch` rows for a pair loss over `classes` classes: the
// most classes P <= classes that divide the batch with K >= 2 rows each
// (batch 64: 8 x 8 on ten classes, 4 x 16 on five); nullopt when none does.
inline std::optional<data::ClassBalanced> balanced_batches(std::int64_t batch, std::int64_t classes) {
  for (std::int64_t p = std::min(classes, batch / 2); p >= 2; --p)
    if (batch % p == 0) return data::ClassBalanced{.classes_per_batch = p, .samples_per_class = batch / p};
  return std::nullopt;
}

// Builds the Learner of the recipe (the optimiser of cfg) with make(optimiser,
// opts), trains it for `epochs` (after cfg.frozen_epochs frozen ones) while
// counting its work on `clock`, and returns it.
template <class D, class Make>
std::unique_ptr<train::Learner<float, D>> fit_recipe(const data::Splits& splits, std::int64_t epochs,
                                                     train::LearnerOptions opts, const Config& cfg, Clock& clock,
                                                     Make&& make, const std::function<void(train::Learner<float, D>&)>& add) {
  std::unique_ptr<train::Learner<float, D>> learn =
      cfg.optimizer == "sgd" ? make(recipe::sgd(cfg.lr, cfg.weight_decay), opts)
                             : make(optim::AdamW{.lr = cfg.lr, .weight_decay = cfg.weight_decay}, opts);
  add(*learn);
  const std::int64_t batch = opts.batch_size;
  learn->add_callback({.on_batch_end = [&clock, batch](train::Learner<float, D>& l, const train::BatchInfo&) {
                         clock.add(static_cast<double>(batch) *
                                   (l.frozen() ? clock.rates().frozen : clock.rates().train));
                         clock.batch_done();
                       },
                       .on_epoch_end = [&clock, &splits](train::Learner<float, D>&, const train::EpochStats&) {
                         clock.add(static_cast<double>(splits.test.size()) * clock.rates().infer);
                       }});
  if (cfg.frozen_epochs > 0) {
    learn->freeze();
    learn->fit_one_cycle(cfg.frozen_epochs);
    learn->unfreeze();
  }
  learn->fit_one_cycle(epochs);
  return learn;
}

// Trains a fresh ResNet18 on splits.train (validating on splits.test) with
// `method`: a head + cross-entropy (and Center Loss), or an embedding loss on
// the body's embeddings (P x K batches for pair losses; proxies at 10x the
// lr). Then embeds each of `to_embed` (embeddings and, with a head, logits).
template <class D>
Trained train_model(const heads::MethodInfo& method, const data::Splits& splits, std::int64_t epochs,
                    std::uint64_t seed, const std::vector<const data::Dataset*>& to_embed, const Config& cfg,
                    Clock& clock) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t classes = splits.train.num_classes;
  nn::ResNet18<float, D> body({.in_channels = splits.train.channels(), .embedding = cfg.embedding,
                               .head = nn::Head::Fastai, .width = cfg.width, .seed = seed,
                               .head_dropout = cfg.dropout, .max_pool = cfg.max_pool});
  if (!cfg.pretrained.empty())  // the classifier (fc.) and the embedding head (head.) stay new
    nn::load_weights(body, cfg.pretrained, {.skip_prefixes = {"fc.", "head."}});
  train::LearnerOptions opts;
  // Tiny subsets (smoke runs): the known-class part of an anomaly case may hold fewer
  // images than a batch, and the loader drops incomplete batches.
  opts.batch_size = std::min(cfg.batch_size, splits.train.size());
  if (opts.batch_size < cfg.batch_size)
    std::cout << "note: " << splits.train.size() << " training images, fewer than --batch-size "
              << cfg.batch_size << ": batches of " << opts.batch_size << std::endl;
  opts.seed = seed;
  opts.quiet = cfg.quiet;
  if (cfg.augment) opts.augment = recipe::augment();
  if (!cfg.pretrained.empty()) opts.lr_scales = train::resnet_lr_scales(recipe::kPretrainedLowestLr);

  Trained t;
  auto finish = [&](train::Learner<float, D>& learn, auto&& embed_one) {
    t.history = learn.history();
    for (const data::Dataset* ds : to_embed) {
      t.outputs.push_back(embed_one(*ds));
      clock.add(static_cast<double>(ds->size()) * clock.rates().infer);
    }
  };
  if (headless(method)) {
    losses::with_embedding_loss(method.key, [&](auto m) {
      auto loss = m.template make<float, D>(classes, cfg.embedding, seed + 1);
      if constexpr (decltype(m)::kPairs) {
        opts.balanced = balanced_batches(opts.batch_size, classes);
        DML_CHECK(opts.balanced.has_value(), method.title, ": no P x K split of batch ", opts.batch_size,
                  " over ", classes, " classes");
      }
      const std::string name(method.key);
      if constexpr (decltype(m)::kProxies) opts.lr_scales.push_back({"loss." + name + ".", cfg.proxy_lr_scale});
      auto learn = fit_recipe<D>(
          splits, epochs, opts, cfg, clock,
          [&](auto optimiser, const train::LearnerOptions& o) {
            return std::make_unique<train::Learner<float, D>>(body, splits, optimiser, o);
          },
          [&](train::Learner<float, D>& l) { l.add_loss(loss, 1.0, name); });
      finish(*learn, [&](const data::Dataset& ds) {
        return eval::Embedded<float>{eval::embed(body, ds).template to<Cpu>(), {}};
      });
    });
  } else {
    heads::with_method(method.key, [&](auto policy, double center_weight) {
      heads::MarginHead<decltype(policy), float, D> head(cfg.embedding, classes, policy, seed + 1);
      losses::CenterLoss<float, D> center_loss(classes, cfg.embedding, cfg.center_alpha);
      auto learn = fit_recipe<D>(
          splits, epochs, opts, cfg, clock,
          [&](auto optimiser, const train::LearnerOptions& o) {
            return std::make_unique<train::Learner<float, D>>(body, head, splits, optimiser, o);
          },
          [&](train::Learner<float, D>& l) {
            if (center_weight > 0) l.add_loss(center_loss, cfg.center_weight, "center", cfg.center_warmup);
          });
      finish(*learn, [&](const data::Dataset& ds) {
        eval::Embedded<float, D> e = eval::embed(body, head, ds);
        return eval::Embedded<float>{e.embeddings.template to<Cpu>(), e.logits.template to<Cpu>()};
      });
    });
  }
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  clock.add(clock.rates().model);
  return t;
}

// Times a few training steps and one inference pass of the real model on this
// machine (a few seconds), so that the first time-left figure is already close:
// a fixed cost model is off by 2x between an AVX2 and an AVX-512 host.
template <class D>
Rates measure_rates(const data::Splits& data, const Config& cfg) {
  Rates r;
  const std::int64_t batch = std::min(cfg.batch_size, data.train.size());
  constexpr std::int64_t kSteps = 5;  // the first is a warm-up (first-touch allocations)
  const data::Splits probe{data::take(data.train, std::min(data.train.size(), kSteps * batch), cfg.seed + 17), {}};
  const data::Dataset infer = data::take(data.test, std::min<std::int64_t>(data.test.size(), 512), cfg.seed + 18);
  Config quiet = cfg;
  quiet.quiet = true;
  quiet.frozen_epochs = 0;
  Clock clock(0);
  train_model<D>(heads::kMethods[0], probe, 1, cfg.seed + 19, {&infer}, quiet, clock);
  const std::vector<double> t = clock.batch_times();
  if (t.size() >= 2) {
    r.train = (t.back() - t.front()) / static_cast<double>((t.size() - 1) * batch);
    r.frozen = r.train * (300.0 / 450.0);
    r.infer = std::max(1e-6, (clock.elapsed() - t.back()) / static_cast<double>(infer.size()));
    r.model = std::max(0.0, t.front() - r.train * static_cast<double>(batch));
    std::cout << "reproduce: measured " << fixed(1 / r.train, 0) << " training and " << fixed(1 / r.infer, 0)
              << " inference images/s, " << fixed(r.model, 1) << " s to set up a model" << std::endl;
  }  // else: too few images for two steps (smoke runs): the default rates stand
  return r;
}

// ---- outputs ------------------------------------------------------------------------------------

inline std::string dir_of(const heads::MethodInfo& m) { return std::string(m.alias); }
inline std::string title_of(const heads::MethodInfo& m) { return std::string(m.title); }

inline json::Value finite_or_null(double x) { return std::isfinite(x) ? json::Value(x) : json::Value(nullptr); }

inline void write_text(const fs::path& path, const std::string& text) {
  io::write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

struct MethodResult {
  const heads::MethodInfo* method = nullptr;
  json::Value metrics;         // what metrics.json holds
  double accuracy = NAN, p1 = NAN, rp = NAN, map_r = NAN, nmi = NAN;
  double spread = NAN;         // intra- / inter-class distance (eval::class_spread), smaller is tighter
  double seconds = NAN;        // training the main model
  std::vector<double> aucs;    // one per anomaly case
};

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Evaluates the main model of one method on the test set and writes its
// folder. t.outputs: the test set, then (embedding losses) the training set.
inline void write_method_outputs(MethodResult& r, const Trained& t, const data::Splits& data, const Config& cfg,
                                 Clock& clock) {
  const data::Dataset& test = data.test;
  const fs::path dir = cfg.out / dir_of(*r.method);
  fs::create_directories(dir);
  const eval::Embedded<float>& e = t.outputs.at(0);
  const std::int64_t n = e.embeddings.dim(0), dim = e.embeddings.dim(1);

  const bool has_logits = e.logits.defined();
  r.seconds = t.seconds;
  // Without a head: the class of the nearest training embedding.
  r.accuracy = has_logits ? eval::accuracy_from_logits(e.logits, test.labels)
                          : eval::retrieval(e.embeddings, test.labels, t.outputs.at(1).embeddings, data.train.labels,
                                            {.metric = cfg.metric})
                                .precision_at_1;
  const eval::RetrievalReport rep = eval::retrieval(e.embeddings, test.labels, cfg.metric);
  r.p1 = rep.precision_at_1, r.rp = rep.r_precision, r.map_r = rep.map_at_r;
  const eval::ClusterReport cq = eval::cluster_quality(
      cfg.metric == eval::Metric::Cosine ? ops::l2_normalize(e.embeddings) : e.embeddings, test.labels,
      {.seed = cfg.seed});
  r.nmi = cq.nmi;
  const eval::SpreadReport sp = eval::class_spread(e.embeddings, test.labels, cfg.metric);
  r.spread = sp.ratio;

  io::save_npy(dir / "embeddings.npy", e.embeddings.data(), {n, dim});
  io::save_npy(dir / "labels.npy", test.labels, {n});

  viz::TsneOptions topt{.iterations = cfg.tsne_iterations, .seed = cfg.seed};
  viz::ScatterOptions style;
  style.class_names = test.class_names;
  const viz::TsneResult te = viz::tsne(e.embeddings, topt);
  style.title = std::string(title_of(*r.method)) + ": t-SNE of the " + std::to_string(dim) + "-d test embeddings";
  te.save_svg((dir / "tsne_embeddings.svg").string(), test.labels, style);
  viz::TsneResult tl;
  if (has_logits) {
    tl = viz::tsne(e.logits, topt);
    style.title = std::string(title_of(*r.method)) + ": t-SNE of the test logits";
    tl.save_svg((dir / "tsne_logits.svg").string(), test.labels, style);
  }
  clock.add(static_cast<double>(n) * clock.rates().tsne);

  json::Object m;
  m.emplace_back("method", dir_of(*r.method));
  m.emplace_back("title", title_of(*r.method));
  json::Object ts;
  ts.emplace_back("size", n);
  ts.emplace_back("distance", eval::metric_name(cfg.metric));
  ts.emplace_back("accuracy", finite_or_null(r.accuracy));
  ts.emplace_back("accuracy_from", has_logits ? "argmax of the logits" : "1-NN against the training embeddings");
  ts.emplace_back("precision_at_1", finite_or_null(rep.precision_at_1));
  ts.emplace_back("r_precision", finite_or_null(rep.r_precision));
  ts.emplace_back("map_at_r", finite_or_null(rep.map_at_r));
  ts.emplace_back("nmi", finite_or_null(cq.nmi));
  ts.emplace_back("ami", finite_or_null(cq.ami));
  ts.emplace_back("spread_intra", finite_or_null(sp.intra));
  ts.emplace_back("spread_inter", finite_or_null(sp.inter));
  ts.emplace_back("spread_ratio", finite_or_null(sp.ratio));
  m.emplace_back("test", json::Value(std::move(ts)));
  json::Object tsne;
  tsne.emplace_back("embeddings_kl", finite_or_null(te.kl_divergence));
  tsne.emplace_back("logits_kl", has_logits ? finite_or_null(tl.kl_divergence) : json::Value(nullptr));
  tsne.emplace_back("iterations", cfg.tsne_iterations);
  m.emplace_back("tsne", json::Value(std::move(tsne)));
  json::Object training;
  training.emplace_back("frozen_epochs", cfg.frozen_epochs);
  training.emplace_back("epochs", cfg.epochs);
  training.emplace_back("seconds", t.seconds);
  training.emplace_back("history", recipe::history_json(t.history));
  m.emplace_back("training", json::Value(std::move(training)));
  r.metrics = json::Value(std::move(m));
  write_text(dir / "metrics.json", json::dump(r.metrics, 2) + "\n");
}

// Adds the anomaly results to metrics.json (rewritten after every case).
inline void write_anomaly_metrics(MethodResult& r, const std::vector<json::Value>& cases, const Config& cfg) {
  json::Object a;
  a.emplace_back("unknown", cfg.unknown);
  a.emplace_back("distance", eval::metric_name(cfg.metric));
  a.emplace_back("epochs", cfg.anomaly_epochs);
  a.emplace_back("cases", json::Value(json::Array(cases)));
  a.emplace_back("auc_median", finite_or_null(median(r.aucs)));
  a.emplace_back("auc_min", finite_or_null(r.aucs.empty() ? NAN : *std::min_element(r.aucs.begin(), r.aucs.end())));
  r.metrics.set("anomaly", json::Value(std::move(a)));
  write_text(cfg.out / dir_of(*r.method) / "metrics.json", json::dump(r.metrics, 2) + "\n");
}

inline std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// The vector ISA of this host and of this build: figures differ between them
// (an AVX2 and an AVX-512 build round differently, and run at different speeds).
inline std::string host_isa() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f")) return "AVX-512";
  if (__builtin_cpu_supports("avx2")) return "AVX2";
  return "SSE";
#else
  return "non-x86";
#endif
}
inline std::string build_isa() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__x86_64__)
  return "SSE2";
#else
  return "generic";
#endif
}

// The reference article's figures for MNIST: 0.997 validation accuracy for
// every method, and the anomaly ROC-AUC medians read off its box plots (5
// unknown classes, cosine distance).
struct ArticleFigures {
  std::string_view key;
  double accuracy, auc_median;
};
inline constexpr std::array<ArticleFigures, 6> kArticle{{{"softmax", 0.997, 0.985},
                                                         {"l2", 0.997, 0.983},
                                                         {"arc", 0.997, 0.975},
                                                         {"cos", 0.997, 0.977},
                                                         {"sphere", 0.997, 0.983},
                                                         {"center", 0.997, 0.980}}};
// The article's figures for method m; null for the heads it did not train (subcenter, adacos).
inline const ArticleFigures* article_of(const heads::MethodInfo& m) {
  for (const ArticleFigures& a : kArticle)
    if (a.key == m.key) return &a;
  return nullptr;
}

// "+0.0012 (above)" style comparison of ours against the article's.
inline std::string versus(double ours, double theirs) {
  if (!std::isfinite(ours)) return "n/a";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%+.4f", ours - theirs);
  return std::string(buf) + (ours >= theirs ? " (above)" : " (below)");
}

// "SGD (Nesterov, momentum 0.9) lr 0.1, weight decay 0.0005" as the report states it.
inline std::string optimizer_summary(const Config& c) {
  std::ostringstream o;
  o << (c.optimizer == "sgd" ? "SGD (Nesterov, momentum 0.9)" : "AdamW") << " lr " << c.lr << ", weight decay "
    << c.weight_decay;
  return o.str();
}

// The section that sets the methods of the article beside its figures; none
// when no method of the run is in the article.
inline void write_article_comparison(std::ostream& o, const std::vector<MethodResult>& results) {
  if (std::none_of(results.begin(), results.end(), [](const MethodResult& r) { return article_of(*r.method); }))
    return;
  o << "\n## Against the reference article\n\n"
       "The article (ResNet18 on MNIST, ImageNet-pretrained, 60,000 training images) reports 0.997\n"
       "validation accuracy for every method; its anomaly AUC medians are read off its box plots\n"
       "(5 unknown classes, cosine distance).\n\n"
       "| method | accuracy | article | AUC median | article | accuracy vs article | AUC median vs article |\n"
       "|---|---|---|---|---|---|---|\n";
  for (const MethodResult& r : results) {
    if (!article_of(*r.method)) continue;
    const ArticleFigures& a = *article_of(*r.method);
    const double med = median(r.aucs);
    o << "| " << title_of(*r.method) << " | " << fixed(r.accuracy) << " | " << fixed(a.accuracy, 3) << " | "
      << fixed(med) << " | " << fixed(a.auc_median, 3) << " | " << versus(r.accuracy, a.accuracy) << " | "
      << versus(med, a.auc_median) << " |\n";
  }
  o << "\n";
  for (const MethodResult& r : results) {
    if (!article_of(*r.method)) {
      o << "- " << title_of(*r.method) << ": not in the article.\n";
      continue;
    }
    const ArticleFigures& a = *article_of(*r.method);
    const double med = median(r.aucs);
    o << "- " << title_of(*r.method) << ": accuracy " << (r.accuracy >= a.accuracy ? "above" : "below")
      << " the article's";
    if (std::isfinite(med)) o << ", AUC median " << (med >= a.auc_median ? "above" : "below") << " the article's";
    o << ".\n";
  }
}

inline void write_report(const std::vector<MethodResult>& results, const data::Splits& data, const Config& cfg,
                  double seconds, bool have_anomaly) {
  std::ostringstream o;
  o << "# Metric learning on " << cfg.data.filename().string() << ": dml reproduction\n\n";
  o << "- Command: `" << cfg.command << "`\n";
  o << "- Date: " << now_utc() << "; wall time " << train::format_time(seconds) << " on "
    << std::thread::hardware_concurrency() << " hardware threads; host ISA " << host_isa() << ", build "
    << build_isa() << "; training and embedding on " << (cfg.device_name.empty() ? cfg.device : cfg.device_name)
    << (cfg.jobs > 1 ? "; " + std::to_string(cfg.jobs) + " models at once, " +
                           std::to_string(threads_per_job(cfg.jobs)) + " thread(s) each"
                     : std::string())
    << "\n";
  o << "- Data: `" << cfg.data.string() << "`, " << data.train.size() << " training and " << data.test.size()
    << " test images, " << data.train.num_classes << " classes\n";
  o << "- Model: ResNet18 (width " << cfg.width << (cfg.max_pool ? "" : ", no stem max-pool") << ", fastai head, " << cfg.embedding << "-d embedding); "
    << optimizer_summary(cfg) << ", batch " << cfg.batch_size << "; " << cfg.frozen_epochs << " frozen + "
    << cfg.epochs << " one-cycle epoch(s)" << (cfg.augment ? "; augmentation: shift 2 px, rotate 10 degrees" : "")
    << "\n";
  o << "- Spread: mean distance of a test embedding to its class centroid over the mean distance between "
       "centroids (smaller is tighter)"
    << (cfg.metric == eval::Metric::Cosine ? ", on L2-normalised embeddings" : "") << "\n";
  o << "- Retrieval and anomaly distance: " << eval::metric_name(cfg.metric) << "; NMI from seeded k-means++"
    << (cfg.metric == eval::Metric::Cosine ? " on L2-normalised embeddings" : "") << "\n";
  o << "- Anomaly protocol: " << cfg.cases << " case(s), " << cfg.unknown << " unknown classes each, "
    << cfg.anomaly_epochs << " unfrozen epoch(s) per model; reference = a seeded half of the known-class "
    << "training embeddings, test = a seeded half of the test set\n\n";
  o << "| method | accuracy | P@1 | R-Precision | MAP@R | NMI | spread | AUC median | AUC min | training |\n";
  o << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const MethodResult& r : results) {
    const double mn = r.aucs.empty() ? NAN : *std::min_element(r.aucs.begin(), r.aucs.end());
    o << "| " << title_of(*r.method) << " | " << fixed(r.accuracy) << " | " << fixed(r.p1) << " | " << fixed(r.rp)
      << " | " << fixed(r.map_r) << " | " << fixed(r.nmi) << " | " << fixed(r.spread, 3) << " | "
      << fixed(median(r.aucs)) << " | " << fixed(mn) << " | " << train::format_time(r.seconds) << " |\n";
  }
  std::string no_head;  // the embedding losses among the results
  for (const MethodResult& r : results)
    if (headless(*r.method)) no_head += (no_head.empty() ? "" : ", ") + title_of(*r.method);
  if (!no_head.empty())
    o << "\nWithout a head (" << no_head << "): no logits, so accuracy is the class of the nearest "
      << "training embedding (1-NN, " << eval::metric_name(cfg.metric) << "); the pair losses among them train on "
      << "batches of P classes x K samples.\n";
  write_article_comparison(o, results);
  if (have_anomaly) o << "\n## Anomaly detection\n\n![ROC-AUC per method](anomaly_auc.svg)\n";
  o << "\n## t-SNE maps of the test set\n\n| method | embeddings | logits |\n|---|---|---|\n";
  for (const MethodResult& r : results)
    o << "| " << title_of(*r.method) << " | ![](" << dir_of(*r.method) << "/tsne_embeddings.svg) | "
      << (headless(*r.method) ? std::string("no head, no logits") : "![](" + dir_of(*r.method) + "/tsne_logits.svg)")
      << " |\n";
  o << "\nPer-method numbers, the training history and each anomaly case are in `<method>/metrics.json`;\n"
       "embeddings and labels in `<method>/embeddings.npy` and `labels.npy` (`numpy.load`).\n";
  write_text(cfg.out / "report.md", o.str());
}

// ---- the experiment ---------------------------------------------------------------------------

// The whole experiment, training and embedding on device D.
template <class D>
int run(const Config& cfg) {
  DML_CHECK(fs::is_directory(cfg.data), "no dataset at '", cfg.data.string(),
            "': run scripts/get_data.sh (or pass --data DIR with MNIST-style IDX files)");
  data::Splits data = data::load_idx(cfg.data);
  if (cfg.subset > 0) {
    data.train = data::take(data.train, std::min(cfg.subset, data.train.size()), cfg.seed);
    data.test = data::take(data.test, std::min(std::max<std::int64_t>(cfg.subset / 6, 12), data.test.size()),
                           cfg.seed + 1);
  }
  const int classes = static_cast<int>(data.train.num_classes);
  DML_CHECK(cfg.unknown < classes - 1, "--unknown ", cfg.unknown, ": at least 2 of the ", classes,
            " classes must stay known");
  DML_CHECK(cfg.cases <= classes, "--cases ", cfg.cases, ": there are only ", classes, " cases");
  fs::create_directories(cfg.out);

  // Work plan for the time estimate.
  const double n_methods = static_cast<double>(cfg.methods.size());
  const double known_fraction = static_cast<double>(classes - cfg.unknown) / classes;
  const auto n_known = static_cast<std::int64_t>(static_cast<double>(data.train.size()) * known_fraction);
  const auto n_known_test = static_cast<std::int64_t>(static_cast<double>(data.test.size()) * known_fraction);
  Rates rates;  // measured as one of the jobs trains: on its share of the cores
  run_jobs(1, cfg.jobs, [&](std::size_t) { rates = measure_rates<D>(data, cfg); });
  const double per_main = expected_training(cfg, rates, data.train.size(), data.test.size(), cfg.epochs) +
                          static_cast<double>(data.test.size()) * (rates.infer + rates.tsne);
  const double per_case = expected_training(cfg, rates, n_known, n_known_test, cfg.anomaly_epochs) +
                          static_cast<double>(n_known / 2 + data.test.size() / 2) * rates.infer;
  // An embedding loss also embeds the training set (its 1-NN accuracy).
  const double n_headless = static_cast<double>(
      std::count_if(cfg.methods.begin(), cfg.methods.end(), [](const heads::MethodInfo* m) { return headless(*m); }));
  Clock clock(n_methods * (per_main + cfg.cases * per_case + (1.0 + cfg.cases) * rates.model) +
                  n_headless * static_cast<double>(data.train.size()) * rates.infer,
              rates, cfg.jobs);

  std::cout << "reproduce: " << data.train.size() << " training / " << data.test.size() << " test images, "
            << classes << " classes; methods:";
  for (const heads::MethodInfo* m : cfg.methods) std::cout << " " << m->alias;
  std::cout << "; " << cfg.cases << " anomaly case(s)";
  if (cfg.jobs > 1) std::cout << "; " << cfg.jobs << " models at once, " << threads_per_job(cfg.jobs) << " thread(s) each";
  std::cout << std::endl;

  // The models to train: every method's main model, then each anomaly case's
  // models (one per method), in that order; --jobs of them at once.
  const std::size_t n_main = cfg.methods.size();
  const std::size_t n_jobs_total = n_main * (1 + static_cast<std::size_t>(cfg.cases));
  std::vector<MethodResult> results(n_main);
  for (std::size_t k = 0; k < n_main; ++k) results[k].method = cfg.methods[k];
  std::vector<bool> main_done(n_main, false);
  // Per method and case: the metrics.json row and the AUC (NaN: none), once that model is done.
  std::vector<std::vector<std::optional<json::Value>>> case_rows(
      n_main, std::vector<std::optional<json::Value>>(static_cast<std::size_t>(cfg.cases)));
  std::vector<std::vector<double>> case_aucs(n_main, std::vector<double>(static_cast<std::size_t>(cfg.cases), NAN));
  std::mutex mu;  // guards the above and std::cout

  // Rewrites method k's anomaly results (the cases done so far, in case order); under mu.
  auto flush_anomaly = [&](std::size_t k) {
    if (!main_done[k] || cfg.cases == 0) return;
    MethodResult& r = results[k];
    std::vector<json::Value> rows;
    r.aucs.clear();
    for (int c = 0; c < cfg.cases; ++c) {
      if (!case_rows[k][c]) continue;
      rows.push_back(*case_rows[k][c]);
      if (std::isfinite(case_aucs[k][c])) r.aucs.push_back(case_aucs[k][c]);
    }
    if (!rows.empty()) write_anomaly_metrics(r, rows, cfg);
  };

  // Anomaly protocol. The halves are the same for every method of a case.
  const std::vector<std::int64_t> test_half = eval::seeded_half(data.test.size(), cfg.seed ^ 0x7E57);
  const data::Dataset test_part = data::subset(data.test, test_half);
  Config job_cfg = cfg;
  if (cfg.jobs > 1) job_cfg.quiet = true;  // the tables of models trained at once would interleave

  auto run_job = [&](std::size_t j) {
    if (j < n_main) {  // a main model
      const std::size_t k = j;
      MethodResult r = results[k];
      {
        std::lock_guard<std::mutex> lock(mu);
        clock.announce(std::string(title_of(*r.method)) + " (" + std::to_string(k + 1) + "/" +
                       std::to_string(n_main) + "): training on all " + std::to_string(classes) + " classes");
      }
      std::vector<const data::Dataset*> to_embed{&data.test};
      if (headless(*r.method)) to_embed.push_back(&data.train);  // for the 1-NN accuracy
      const Trained t = train_model<D>(*r.method, data, cfg.epochs, cfg.seed, to_embed, job_cfg, clock);
      write_method_outputs(r, t, data, cfg, clock);
      std::lock_guard<std::mutex> lock(mu);
      std::cout << title_of(*r.method) << ": accuracy " << fixed(r.accuracy) << ", P@1 " << fixed(r.p1)
                << ", MAP@R " << fixed(r.map_r) << ", NMI " << fixed(r.nmi) << "  -> "
                << (cfg.out / dir_of(*r.method)).string() << std::endl;
      results[k] = std::move(r);
      main_done[k] = true;
      flush_anomaly(k);
      return;
    }
    const int c = static_cast<int>((j - n_main) / n_main);
    const std::size_t k = (j - n_main) % n_main;
    const heads::MethodInfo& method = *cfg.methods[k];
    const std::vector<std::int64_t> unknown = eval::unknown_classes(c, cfg.unknown, classes);
    const std::vector<std::int64_t> known = eval::known_classes(c, cfg.unknown, classes);
    const data::Splits part{data::filter_classes(data.train, known), data::filter_classes(data.test, known)};
    const std::vector<std::int64_t> ref_half =
        eval::seeded_half(part.train.size(), cfg.seed ^ (0x5EF0 + static_cast<std::uint64_t>(c)));
    const data::Dataset refs = data::subset(part.train, ref_half);
    std::string unknown_str;
    for (auto u : unknown) unknown_str += (unknown_str.empty() ? "" : ",") + std::to_string(u);
    {
      std::lock_guard<std::mutex> lock(mu);
      clock.announce("anomaly case " + std::to_string(c + 1) + "/" + std::to_string(cfg.cases) + " (unknown {" +
                     unknown_str + "}), " + title_of(method) + " (" + std::to_string(k + 1) + "/" +
                     std::to_string(n_main) + ")");
    }
    const Trained t = train_model<D>(method, part, cfg.anomaly_epochs, cfg.seed + 1000 * (c + 1),
                                     {&refs, &test_part}, job_cfg, clock);
    const std::vector<float> scores =
        eval::anomaly_scores(t.outputs[1].embeddings, t.outputs[0].embeddings, cfg.metric);
    const std::vector<std::uint8_t> positive = eval::label_mask(test_part.labels, unknown);
    const auto n_pos = std::count(positive.begin(), positive.end(), std::uint8_t{1});
    double auc = NAN;  // undefined when the test half holds only known or only unknown images (tiny subsets)
    if (n_pos > 0 && n_pos < static_cast<std::ptrdiff_t>(positive.size())) auc = eval::roc_auc(scores, positive);
    json::Object row;
    row.emplace_back("case", c);
    json::Array u;
    for (auto x : unknown) u.push_back(json::Value(x));
    row.emplace_back("unknown_classes", json::Value(std::move(u)));
    row.emplace_back("auc", finite_or_null(auc));
    row.emplace_back("seconds", t.seconds);
    std::lock_guard<std::mutex> lock(mu);
    if (!std::isfinite(auc))
      std::cout << "warning: the test half has no " << (n_pos ? "known" : "unknown")
                << "-class images; no ROC-AUC for this case" << std::endl;
    std::cout << title_of(method) << ", case " << c << ": ROC-AUC " << fixed(auc) << std::endl;
    case_rows[k][c] = json::Value(std::move(row));
    case_aucs[k][c] = auc;
    flush_anomaly(k);
  };
  run_jobs(n_jobs_total, cfg.jobs, run_job);

  if (cfg.cases > 0) {
    std::vector<std::pair<std::string, std::vector<double>>> groups;
    for (const MethodResult& r : results)
      if (!r.aucs.empty()) groups.emplace_back(title_of(*r.method), r.aucs);
    viz::BoxOptions box;
    box.title = "Anomaly ROC-AUC: " + std::to_string(cfg.cases) + " case(s), " + std::to_string(cfg.unknown) +
                " unknown classes, " + eval::metric_name(cfg.metric) + " distance";
    box.y_label = "ROC-AUC";
    box.width = std::max(640, 110 * static_cast<int>(groups.size()) + 100);
    if (!groups.empty()) viz::save_box_svg((cfg.out / "anomaly_auc.svg").string(), groups, box);
  }
  write_report(results, data, cfg, clock.elapsed(), cfg.cases > 0);
  std::cout << "\nreproduce: done in " << train::format_time(clock.elapsed()) << "; report at "
            << (cfg.out / "report.md").string() << std::endl;
  return 0;
}

// The common main: parses the options (cfg.device starts as default_device),
// prints --help, and calls run_on(cfg); dml::Error and other exceptions become
// a message on stderr and exit status 1.
template <class RunOn>
int main_with(int argc, char** argv, const char* default_device, RunOn&& run_on) {
  try {
    Config cfg;
    cfg.device = default_device;
    if (!parse_args(argc, argv, cfg)) {
      std::cout << kUsage;
      return 0;
    }
    return run_on(cfg);
  } catch (const Error& e) {
    std::cerr << "reproduce: " << e.message() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "reproduce: " << e.what() << std::endl;
    return 1;
  }
}

#if defined(DML_REPRODUCE_RUN_CPU_EXTERN)
// Compiled once in reproduce_run_cpu.cpp (examples/CMakeLists.txt links it into reproduce and
// reproduce_cuda); a copy of reproduce.cpp or reproduce.cu built alone instantiates it here.
extern template int run<dml::Cpu>(const Config&);
#endif

}  // namespace reproduce
