// examples/reproduce.hpp: the reference experiment, dml's main demo. The
// program lives here; reproduce.cpp (CPU) and reproduce.cu (nvcc: --device
// cpu or cuda, the target reproduce_cuda) are its two mains.
//
// For each of six methods (softmax, L2-constrained softmax, ArcFace, CosFace,
// SphereFace, Center Loss) it trains ResNet18 (fastai embedding head, 512-d)
// on MNIST the fastai way (one epoch with the body frozen, then unfrozen with
// a one-cycle schedule), then writes
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
// Run `reproduce --help` for the options. The default run (1 frozen + 1
// unfrozen epoch per model, 2 anomaly cases: 18 models) took 10 min 33 s on
// a 2-core machine (docs/results.md); --full runs all 10 anomaly cases. With
// --device cuda, training and embedding run on the GPU; t-SNE, kNN and the
// metrics stay on the CPU.
#pragma once

#include <algorithm>
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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dml/dml.hpp>
#include <dml/data/dataset.hpp>
#include <dml/eval/anomaly.hpp>
#include <dml/eval/cluster.hpp>
#include <dml/eval/embed.hpp>
#include <dml/eval/metrics.hpp>
#include <dml/heads/margin_head.hpp>
#include <dml/heads/methods.hpp>
#include <dml/io/file.hpp>
#include <dml/io/json.hpp>
#include <dml/io/npy.hpp>
#include <dml/losses/center_loss.hpp>
#include <dml/nn/resnet.hpp>
#include <dml/optim/adam.hpp>
#include <dml/train/learner.hpp>
#include <dml/viz/svg.hpp>
#include <dml/viz/tsne.hpp>

using namespace dml;
namespace fs = std::filesystem;
namespace json = dml::io::json;

namespace reproduce {

// ---- configuration ----------------------------------------------------------------------------

struct Config {
  fs::path data = "data/mnist";
  fs::path out = "results";
  std::int64_t frozen_epochs = 1;  // body frozen, one-cycle
  std::int64_t epochs = 1;         // unfrozen, one-cycle, per model
  std::int64_t anomaly_epochs = -1;  // -1: same as epochs
  int cases = 2;                   // anomaly cases 0..cases-1
  int unknown = 5;                 // unknown classes per case
  eval::Metric metric = eval::Metric::Cosine;
  std::uint64_t seed = 0;
  std::vector<const heads::MethodInfo*> methods;  // empty: all six
  std::int64_t subset = 0;           // > 0: at most this many training images (test: a sixth of it)
  std::int64_t batch_size = 128;
  double lr = 1e-3;
  std::int64_t width = 64;      // ResNet base width (64 = ResNet18)
  std::int64_t embedding = 512;
  int tsne_iterations = 1000;
  bool quiet = false;           // no Learner tables
  std::string device = "cpu";   // where training and embedding run: cpu or cuda
  std::string device_name;      // for the report (the GPU's name); empty: `device`
  std::string command;          // as typed, for the report
};

inline constexpr const char* kUsage = R"(usage: reproduce [options]
Trains ResNet18 with six metric-learning heads on MNIST and writes pictures, metrics and a report.

  --data DIR          MNIST-style IDX files (default data/mnist; fetch with scripts/get_data.sh)
  --out DIR           where results go (default results)
  --epochs N          unfrozen one-cycle epochs per model (default 1)
  --frozen-epochs N   epochs with the body frozen first (default 1; 0 skips)
  --anomaly-epochs N  unfrozen epochs of the anomaly models (default: --epochs)
  --cases N           anomaly cases 0..N-1 (default 2; 0 skips the anomaly protocol)
  --full              all 10 anomaly cases (for full MNIST or Fashion-MNIST runs)
  --unknown N         unknown classes per case (default 5; the reference also uses 7)
  --distance D        cosine or l2 (default cosine): retrieval and anomaly scores
  --seed S            seed of weights, shuffling and the random halves (default 0)
  --methods A,B,...   a subset of softmax,l2,arc,cos,sphere,center (or l2softmax, arcface, ...)
  --subset N          at most N training and N/6 test images (smoke runs)
  --batch-size N      training batch size (default 128)
  --lr X              AdamW peak learning rate (default 1e-3)
  --width N           ResNet base width (default 64; smaller only for smoke runs)
  --tsne-iterations N t-SNE steps (default 1000)
  --quiet             no per-epoch tables
  --device D          cpu or cuda (cuda: the reproduce_cuda build; default there)
)";

inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

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
  bool cases_given = false, full = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") return false;
    if (a == "--data") c.data = value(i);
    else if (a == "--out") c.out = value(i);
    else if (a == "--epochs") c.epochs = integer(i, 1);
    else if (a == "--frozen-epochs") c.frozen_epochs = integer(i, 0);
    else if (a == "--anomaly-epochs") c.anomaly_epochs = integer(i, 1);
    else if (a == "--cases") c.cases = static_cast<int>(integer(i, 0)), cases_given = true;
    else if (a == "--full") full = true;
    else if (a == "--unknown") c.unknown = static_cast<int>(integer(i, 1));
    else if (a == "--seed") c.seed = static_cast<std::uint64_t>(integer(i, 0));
    else if (a == "--subset") c.subset = integer(i, 12);
    else if (a == "--batch-size") c.batch_size = integer(i, 2);
    else if (a == "--width") c.width = integer(i, 1);
    else if (a == "--tsne-iterations") c.tsne_iterations = static_cast<int>(integer(i, 1));
    else if (a == "--quiet") c.quiet = true;
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
      for (const std::string& m : split_list(value(i))) c.methods.push_back(&heads::method_info(m));
    } else {
      throw Error("unknown option '" + a + "' (see --help)");
    }
  }
  if (full && !cases_given) c.cases = 10;
  if (c.anomaly_epochs < 0) c.anomaly_epochs = c.epochs;
  if (c.methods.empty())
    for (const heads::MethodInfo& m : heads::kMethods) c.methods.push_back(&m);
  return true;
}

// ---- progress and time left -------------------------------------------------------------------

// Estimates the time left from a cost model in "expected seconds" (ResNet18
// throughput measured on the 2-core development machine: about 300 training
// images/s unfrozen, 450 frozen, 1300 inference), corrected by how fast the
// finished work actually went.
class Clock {
 public:
  static constexpr double kTrainImage = 1.0 / 300, kFrozenImage = 1.0 / 450, kInferImage = 1.0 / 1300;

  explicit Clock(double total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  void add(double expected_seconds) { done_ += expected_seconds; }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  // The progress line: what runs now, time so far and time left.
  void announce(const std::string& what) const {
    const double el = elapsed();
    const double speed = done_ > 0 && el > 5 ? el / done_ : 1.0;  // actual / expected
    const double left = std::max(0.0, total_ - done_) * speed;
    std::cout << "\n== " << what << "  [" << train::format_time(el) << " elapsed, about "
              << train::format_time(left) << " left]" << std::endl;
  }

 private:
  double total_, done_ = 0;
  std::chrono::steady_clock::time_point start_;
};

// Expected seconds of training one model (cost model of Clock) on n images.
inline double expected_training(const Config& c, std::int64_t n_train, std::int64_t n_valid, std::int64_t epochs) {
  const double images = static_cast<double>(n_train);
  return static_cast<double>(c.frozen_epochs) * images * Clock::kFrozenImage +
         static_cast<double>(epochs) * images * Clock::kTrainImage +
         static_cast<double>(c.frozen_epochs + epochs) * static_cast<double>(n_valid) * Clock::kInferImage;
}

// ---- one model ----------------------------------------------------------------------------------

struct Trained {
  std::vector<train::EpochStats> history;
  std::vector<eval::Embedded<float>> outputs;  // one per dataset asked for, in order, on the host
  double seconds = 0;
};

// Trains a fresh ResNet18 + head of `method` on splits.train (validating on
// splits.test), then embeds each of `to_embed` (embeddings and logits).
template <class D>
Trained train_model(const heads::MethodInfo& method, const data::Splits& splits, std::int64_t epochs,
                    std::uint64_t seed, const std::vector<const data::Dataset*>& to_embed, const Config& cfg,
                    Clock& clock) {
  return heads::with_method(method.key, [&](auto policy, double center_weight) -> Trained {
    using Policy = decltype(policy);
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t classes = splits.train.num_classes;
    nn::ResNet18<float, D> body({.in_channels = splits.train.channels(), .embedding = cfg.embedding,
                              .head = nn::Head::Fastai, .width = cfg.width, .seed = seed});
    heads::MarginHead<Policy, float, D> head(cfg.embedding, classes, policy, seed + 1);
    losses::CenterLoss<float, D> center_loss(classes, cfg.embedding);
    train::LearnerOptions opts;
    // Tiny subsets (smoke runs): the known-class part of an anomaly case may hold fewer
    // images than a batch, and the loader drops incomplete batches.
    opts.batch_size = std::min(cfg.batch_size, splits.train.size());
    if (opts.batch_size < cfg.batch_size)
      std::cout << "note: " << splits.train.size() << " training images, fewer than --batch-size "
                << cfg.batch_size << ": batches of " << opts.batch_size << std::endl;
    opts.seed = seed;
    opts.quiet = cfg.quiet;
    opts.augment = {.pad = 2, .rotate_degrees = 10};  // as examples/train_mnist
    train::Learner learn(body, head, splits, optim::AdamW{.lr = cfg.lr}, opts);
    if (center_weight > 0) learn.add_loss(center_loss, center_weight, "center");
    learn.add_callback({.on_batch_end = [&](train::Learner<float, D>& l, const train::BatchInfo&) {
                          clock.add(static_cast<double>(opts.batch_size) *
                                    (l.frozen() ? Clock::kFrozenImage : Clock::kTrainImage));
                        },
                        .on_epoch_end = [&](train::Learner<float, D>&, const train::EpochStats&) {
                          clock.add(static_cast<double>(splits.test.size()) * Clock::kInferImage);
                        }});
    if (cfg.frozen_epochs > 0) {
      learn.freeze();
      learn.fit_one_cycle(cfg.frozen_epochs);
      learn.unfreeze();
    }
    learn.fit_one_cycle(epochs);
    Trained t;
    t.history = learn.history();
    for (const data::Dataset* ds : to_embed) {
      eval::Embedded<float, D> e = eval::embed(body, head, *ds);
      t.outputs.push_back({e.embeddings.template to<Cpu>(), e.logits.template to<Cpu>()});
      clock.add(static_cast<double>(ds->size()) * Clock::kInferImage);
    }
    t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return t;
  });
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
  std::vector<double> aucs;    // one per anomaly case
};

inline std::string fixed(double x, int decimals = 4) {
  if (!std::isfinite(x)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Evaluates the main model of one method on the test set and writes its folder.
inline void write_method_outputs(MethodResult& r, const Trained& t, const data::Dataset& test, const Config& cfg,
                          Clock& clock) {
  const fs::path dir = cfg.out / dir_of(*r.method);
  fs::create_directories(dir);
  const eval::Embedded<float>& e = t.outputs.at(0);
  const std::int64_t n = e.embeddings.dim(0), dim = e.embeddings.dim(1);

  r.accuracy = eval::accuracy_from_logits(e.logits, test.labels);
  const eval::RetrievalReport rep = eval::retrieval(e.embeddings, test.labels, cfg.metric);
  r.p1 = rep.precision_at_1, r.rp = rep.r_precision, r.map_r = rep.map_at_r;
  const eval::ClusterReport cq = eval::cluster_quality(
      cfg.metric == eval::Metric::Cosine ? ops::l2_normalize(e.embeddings) : e.embeddings, test.labels,
      {.seed = cfg.seed});
  r.nmi = cq.nmi;

  io::save_npy(dir / "embeddings.npy", e.embeddings.data(), {n, dim});
  io::save_npy(dir / "labels.npy", test.labels, {n});

  viz::TsneOptions topt{.iterations = cfg.tsne_iterations, .seed = cfg.seed};
  viz::ScatterOptions style;
  style.class_names = test.class_names;
  const viz::TsneResult te = viz::tsne(e.embeddings, topt);
  style.title = std::string(title_of(*r.method)) + ": t-SNE of the " + std::to_string(dim) + "-d test embeddings";
  te.save_svg((dir / "tsne_embeddings.svg").string(), test.labels, style);
  const viz::TsneResult tl = viz::tsne(e.logits, topt);
  style.title = std::string(title_of(*r.method)) + ": t-SNE of the test logits";
  tl.save_svg((dir / "tsne_logits.svg").string(), test.labels, style);
  clock.add(2.0 * static_cast<double>(n) / 1000.0);

  json::Object m;
  m.emplace_back("method", dir_of(*r.method));
  m.emplace_back("title", title_of(*r.method));
  json::Object ts;
  ts.emplace_back("size", n);
  ts.emplace_back("distance", eval::metric_name(cfg.metric));
  ts.emplace_back("accuracy", finite_or_null(r.accuracy));
  ts.emplace_back("precision_at_1", finite_or_null(rep.precision_at_1));
  ts.emplace_back("r_precision", finite_or_null(rep.r_precision));
  ts.emplace_back("map_at_r", finite_or_null(rep.map_at_r));
  ts.emplace_back("nmi", finite_or_null(cq.nmi));
  ts.emplace_back("ami", finite_or_null(cq.ami));
  m.emplace_back("test", json::Value(std::move(ts)));
  json::Object tsne;
  tsne.emplace_back("embeddings_kl", finite_or_null(te.kl_divergence));
  tsne.emplace_back("logits_kl", finite_or_null(tl.kl_divergence));
  tsne.emplace_back("iterations", cfg.tsne_iterations);
  m.emplace_back("tsne", json::Value(std::move(tsne)));
  json::Array hist;
  for (const train::EpochStats& s : t.history) {
    json::Object row;
    row.emplace_back("epoch", s.epoch);
    row.emplace_back("train_loss", finite_or_null(s.train_loss));
    row.emplace_back("valid_loss", finite_or_null(s.valid_loss));
    row.emplace_back("accuracy", finite_or_null(s.accuracy));
    row.emplace_back("seconds", finite_or_null(s.seconds));
    hist.push_back(json::Value(std::move(row)));
  }
  json::Object training;
  training.emplace_back("frozen_epochs", cfg.frozen_epochs);
  training.emplace_back("epochs", cfg.epochs);
  training.emplace_back("seconds", t.seconds);
  training.emplace_back("history", json::Value(std::move(hist)));
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

inline void write_report(const std::vector<MethodResult>& results, const data::Splits& data, const Config& cfg,
                  double seconds, bool have_anomaly) {
  std::ostringstream o;
  o << "# Metric learning on " << cfg.data.filename().string() << ": dml reproduction\n\n";
  o << "- Command: `" << cfg.command << "`\n";
  o << "- Date: " << now_utc() << "; wall time " << train::format_time(seconds) << " on "
    << std::thread::hardware_concurrency() << " hardware threads; training and embedding on "
    << (cfg.device_name.empty() ? cfg.device : cfg.device_name) << "\n";
  o << "- Data: `" << cfg.data.string() << "`, " << data.train.size() << " training and " << data.test.size()
    << " test images, " << data.train.num_classes << " classes\n";
  o << "- Model: ResNet18 (width " << cfg.width << ", fastai head, " << cfg.embedding
    << "-d embedding); AdamW lr " << cfg.lr << ", batch " << cfg.batch_size << "; " << cfg.frozen_epochs
    << " frozen + " << cfg.epochs << " unfrozen one-cycle epoch(s)\n";
  o << "- Retrieval and anomaly distance: " << eval::metric_name(cfg.metric) << "; NMI from seeded k-means++"
    << (cfg.metric == eval::Metric::Cosine ? " on L2-normalised embeddings" : "") << "\n";
  o << "- Anomaly protocol: " << cfg.cases << " case(s), " << cfg.unknown << " unknown classes each, "
    << cfg.anomaly_epochs << " unfrozen epoch(s) per model; reference = a seeded half of the known-class "
    << "training embeddings, test = a seeded half of the test set\n\n";
  o << "| method | accuracy | P@1 | R-Precision | MAP@R | NMI | AUC median | AUC min |\n";
  o << "|---|---|---|---|---|---|---|---|\n";
  for (const MethodResult& r : results) {
    const double mn = r.aucs.empty() ? NAN : *std::min_element(r.aucs.begin(), r.aucs.end());
    o << "| " << title_of(*r.method) << " | " << fixed(r.accuracy) << " | " << fixed(r.p1) << " | " << fixed(r.rp)
      << " | " << fixed(r.map_r) << " | " << fixed(r.nmi) << " | " << fixed(median(r.aucs)) << " | " << fixed(mn)
      << " |\n";
  }
  if (have_anomaly) o << "\n## Anomaly detection\n\n![ROC-AUC per method](anomaly_auc.svg)\n";
  o << "\n## t-SNE maps of the test set\n\n| method | embeddings | logits |\n|---|---|---|\n";
  for (const MethodResult& r : results)
    o << "| " << title_of(*r.method) << " | ![](" << dir_of(*r.method) << "/tsne_embeddings.svg) | ![](" << dir_of(*r.method)
      << "/tsne_logits.svg) |\n";
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
  const double per_main = expected_training(cfg, data.train.size(), data.test.size(), cfg.epochs) +
                          static_cast<double>(data.test.size()) * (Clock::kInferImage + 2.0 / 1000.0);
  const double per_case = expected_training(cfg, n_known, n_known_test, cfg.anomaly_epochs) +
                          static_cast<double>(n_known / 2 + data.test.size() / 2) * Clock::kInferImage;
  Clock clock(n_methods * (per_main + cfg.cases * per_case));

  std::cout << "reproduce: " << data.train.size() << " training / " << data.test.size() << " test images, "
            << classes << " classes; methods:";
  for (const heads::MethodInfo* m : cfg.methods) std::cout << " " << m->alias;
  std::cout << "; " << cfg.cases << " anomaly case(s)" << std::endl;

  std::vector<MethodResult> results;
  for (std::size_t k = 0; k < cfg.methods.size(); ++k) {
    MethodResult r;
    r.method = cfg.methods[k];
    clock.announce(std::string(title_of(*r.method)) + " (" + std::to_string(k + 1) + "/" +
                   std::to_string(cfg.methods.size()) + "): training on all " + std::to_string(classes) +
                   " classes");
    const Trained t = train_model<D>(*r.method, data, cfg.epochs, cfg.seed, {&data.test}, cfg, clock);
    write_method_outputs(r, t, data.test, cfg, clock);
    std::cout << title_of(*r.method) << ": accuracy " << fixed(r.accuracy) << ", P@1 " << fixed(r.p1) << ", MAP@R "
              << fixed(r.map_r) << ", NMI " << fixed(r.nmi) << "  -> " << (cfg.out / dir_of(*r.method)).string()
              << std::endl;
    results.push_back(std::move(r));
  }

  // Anomaly protocol. The halves are the same for every method of a case.
  std::vector<std::vector<json::Value>> case_rows(results.size());
  const std::vector<std::int64_t> test_half = eval::seeded_half(data.test.size(), cfg.seed ^ 0x7E57);
  const data::Dataset test_part = data::subset(data.test, test_half);
  for (int c = 0; c < cfg.cases; ++c) {
    const std::vector<std::int64_t> unknown = eval::unknown_classes(c, cfg.unknown, classes);
    const std::vector<std::int64_t> known = eval::known_classes(c, cfg.unknown, classes);
    data::Splits part{data::filter_classes(data.train, known), data::filter_classes(data.test, known)};
    const std::vector<std::int64_t> ref_half =
        eval::seeded_half(part.train.size(), cfg.seed ^ (0x5EF0 + static_cast<std::uint64_t>(c)));
    const data::Dataset refs = data::subset(part.train, ref_half);
    std::string unknown_str;
    for (auto u : unknown) unknown_str += (unknown_str.empty() ? "" : ",") + std::to_string(u);
    for (std::size_t k = 0; k < results.size(); ++k) {
      MethodResult& r = results[k];
      clock.announce("anomaly case " + std::to_string(c + 1) + "/" + std::to_string(cfg.cases) + " (unknown {" +
                     unknown_str + "}), " + title_of(*r.method) + " (" + std::to_string(k + 1) + "/" +
                     std::to_string(results.size()) + ")");
      const Trained t = train_model<D>(*r.method, part, cfg.anomaly_epochs, cfg.seed + 1000 * (c + 1),
                                    {&refs, &test_part}, cfg, clock);
      const std::vector<float> scores =
          eval::anomaly_scores(t.outputs[1].embeddings, t.outputs[0].embeddings, cfg.metric);
      const std::vector<std::uint8_t> positive = eval::label_mask(test_part.labels, unknown);
      const auto n_pos = std::count(positive.begin(), positive.end(), std::uint8_t{1});
      double auc = NAN;  // undefined when the test half holds only known or only unknown images (tiny subsets)
      if (n_pos > 0 && n_pos < static_cast<std::ptrdiff_t>(positive.size())) {
        auc = eval::roc_auc(scores, positive);
        r.aucs.push_back(auc);
      } else {
        std::cout << "warning: the test half has no " << (n_pos ? "known" : "unknown")
                  << "-class images; no ROC-AUC for this case" << std::endl;
      }
      std::cout << title_of(*r.method) << ", case " << c << ": ROC-AUC " << fixed(auc) << std::endl;
      json::Object row;
      row.emplace_back("case", c);
      json::Array u;
      for (auto x : unknown) u.push_back(json::Value(x));
      row.emplace_back("unknown_classes", json::Value(std::move(u)));
      row.emplace_back("auc", finite_or_null(auc));
      row.emplace_back("seconds", t.seconds);
      case_rows[k].push_back(json::Value(std::move(row)));
      write_anomaly_metrics(r, case_rows[k], cfg);
    }
  }
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

}  // namespace reproduce
