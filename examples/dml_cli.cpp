// examples/dml_cli.cpp: the `dml` command line, for people who would rather not write C++.
//
//   dml train    --data DIR --head arc --epochs N --out RUN     train ResNet18 + a head, save the model
//   dml embed    --model RUN --data DIR --out emb.npy           embeddings (+ labels.npy) of a split
//   dml evaluate --model RUN --data DIR --out REPORT_DIR        accuracy, retrieval, NMI, t-SNE, report.md
//   dml anomaly  --model RUN --reference DIR --data DIR --out scores.csv
//   dml export   --data DIR --out FOLDER                        IDX/CIFAR data as PNG class folders
//
// DIR may hold IDX files (MNIST-style), CIFAR-10/100 binaries, or an image folder
// (root/{train,valid}/<class>/* or root/<class>/*), told apart by their contents.
// `dml CMD --help` lists every option with its default. docs/your-data.md walks
// through all of them on a folder of Fashion-MNIST PNGs. Built with dml::distributed,
// `mpirun -np N dml train ...` (or srun) trains data parallel over N ranks with the same
// options: --batch-size is then the global batch, split over the ranks (docs/distributed.md).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#ifdef DML_CLI_DISTRIBUTED
#include <optional>

#include <dml/distributed/distributed.hpp>
#endif
#include <dml/data/cifar.hpp>
#include <dml/data/dataset.hpp>
#include <dml/eval/anomaly.hpp>
#include <dml/eval/anomaly_detector.hpp>
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
#include <dml/nn/resnet.hpp>
#include <dml/nn/serialize.hpp>
#include <dml/train/learner.hpp>
#include <dml/viz/svg.hpp>
#include <dml/viz/tsne.hpp>
#if defined(DML_CLI_IMAGE)
#include <dml/data/image_folder.hpp>
#endif

#include "recipe.hpp"

using namespace dml;
namespace fs = std::filesystem;
namespace json = dml::io::json;

namespace cli {

// ---- options --------------------------------------------------------------------------------

struct Option {
  std::string name;  // without the leading --
  std::string fallback;  // default; "" with flag = false means required when `required`
  std::string help;
  bool flag = false;
  bool required = false;
};

// Parsed options of one command: every value as text, checked against the spec.
class Args {
 public:
  Args(std::string command, std::vector<Option> spec, int argc, char** argv, int first)
      : command_(std::move(command)), spec_(std::move(spec)) {
    for (const Option& o : spec_)
      if (!o.flag && !o.fallback.empty()) values_[o.name] = o.fallback;
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
        return;
      }
      DML_CHECK(a.rfind("--", 0) == 0, "dml ", command_, ": unexpected argument '", a, "' (options start with --; see dml ",
                command_, " --help)");
      std::string name = a.substr(2), value;
      if (const auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      const Option* o = find(name);
      DML_CHECK(o != nullptr, "dml ", command_, ": unknown option --", name, " (see dml ", command_, " --help)");
      if (o->flag) {
        DML_CHECK(value.empty(), "dml ", command_, ": --", name, " takes no value");
        flags_.insert(name);
        continue;
      }
      if (value.empty()) {
        DML_CHECK(i + 1 < argc, "dml ", command_, ": option --", name, " needs a value");
        value = argv[++i];
      }
      values_[name] = value;
      given_.insert(name);
    }
    for (const Option& o : spec_)
      DML_CHECK(!o.required || given_.contains(o.name), "dml ", command_, ": option --", o.name, " is required (",
                o.help, ")");
  }

  bool help() const { return help_; }
  void print_help(const std::string& summary) const {
    std::cout << "usage: dml " << command_ << " [options]\n" << summary << "\n\n";
    for (const Option& o : spec_) {
      std::string left = "  --" + o.name + (o.flag ? "" : " X");
      if (left.size() < 24) left.resize(24, ' ');
      std::cout << left << " " << o.help;
      if (o.required) std::cout << " (required)";
      else if (!o.flag && !o.fallback.empty()) std::cout << " (default " << o.fallback << ")";
      std::cout << "\n";
    }
  }
  bool given(const std::string& name) const { return given_.contains(name) || flags_.contains(name); }
  bool flag(const std::string& name) const { return flags_.contains(name); }
  std::string str(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::string() : it->second;
  }
  std::int64_t integer(const std::string& name, std::int64_t lo = 0) const {
    const std::string v = str(name);
    std::size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DML_CHECK(!v.empty() && used == v.size() && x >= lo, "dml ", command_, ": --", name, " must be an integer >= ", lo,
              ", got '", v, "'");
    return x;
  }
  double number(const std::string& name, double lo, double hi) const {
    const std::string v = str(name);
    std::size_t used = 0;
    double x = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DML_CHECK(!v.empty() && used == v.size() && std::isfinite(x) && x >= lo && x <= hi, "dml ", command_, ": --", name,
              " must be a number in [", lo, ", ", hi, "], got '", v, "'");
    return x;
  }
  const std::string& command() const { return command_; }

 private:
  const Option* find(const std::string& name) const {
    for (const Option& o : spec_)
      if (o.name == name) return &o;
    return nullptr;
  }
  std::string command_;
  std::vector<Option> spec_;
  std::map<std::string, std::string> values_;
  std::set<std::string> given_, flags_;
  bool help_ = false;
};

// ---- the model file -------------------------------------------------------------------------

// What a saved model needs to be rebuilt and fed: RUN/model.safetensors holds the body
// ("body." tensors), the head ("head.") and this, as JSON under the metadata key "dml.model".
struct ModelInfo {
  std::string method = "softmax";
  std::int64_t classes = 0, channels = 1, height = 0, width = 0;
  std::int64_t embedding = 512, resnet_width = 64;
  std::vector<std::string> class_names;
  std::vector<data::Normalization> norms;
  std::string data_kind;  // idx, cifar or image folder

  json::Value to_json() const {
    json::Object o;
    o.emplace_back("format", "dml-model-1");
    o.emplace_back("method", method);
    o.emplace_back("classes", classes);
    o.emplace_back("channels", channels);
    o.emplace_back("height", height);
    o.emplace_back("width", width);
    o.emplace_back("embedding", embedding);
    o.emplace_back("resnet_width", resnet_width);
    o.emplace_back("data_kind", data_kind);
    json::Array names, norm;
    for (const auto& n : class_names) names.push_back(json::Value(n));
    for (const auto& n : norms) norm.push_back(json::Value(json::Array{json::Value(n.mean), json::Value(n.stddev)}));
    o.emplace_back("class_names", json::Value(std::move(names)));
    o.emplace_back("normalization", json::Value(std::move(norm)));
    return json::Value(std::move(o));
  }
  static ModelInfo from_json(const json::Value& v, const std::string& file) {
    auto need = [&](const char* key) -> const json::Value& {
      const json::Value* x = v.find(key);
      DML_CHECK(x != nullptr, file, ": model metadata has no '", key, "'");
      return *x;
    };
    DML_CHECK(need("format").as_string() == "dml-model-1", file, ": model format '", need("format").as_string(),
              "', expected dml-model-1");
    ModelInfo m;
    m.method = std::string(heads::method_info(need("method").as_string()).key);
    m.classes = need("classes").as_int();
    m.channels = need("channels").as_int();
    m.height = need("height").as_int();
    m.width = need("width").as_int();
    m.embedding = need("embedding").as_int();
    m.resnet_width = need("resnet_width").as_int();
    m.data_kind = need("data_kind").as_string();
    for (const json::Value& n : need("class_names").as_array()) m.class_names.push_back(n.as_string());
    for (const json::Value& n : need("normalization").as_array())
      m.norms.push_back({n.as_array().at(0).as_double(), n.as_array().at(1).as_double()});
    DML_CHECK(m.classes >= 1 && (m.channels == 1 || m.channels == 3) && static_cast<std::int64_t>(m.norms.size()) == m.channels,
              file, ": inconsistent model metadata");
    return m;
  }
};

inline fs::path model_file(const fs::path& run) { return run / "model.safetensors"; }

// ---- data -----------------------------------------------------------------------------------

struct LoadedData {
  data::Splits splits;
  std::string kind;                                 // idx, cifar, image folder
  std::vector<fs::path> train_files, test_files;    // image folders only
};

inline bool is_idx_dir(const fs::path& dir) {
  std::error_code ec;
  for (const char* n : {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte",
                        "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"})
    if (fs::exists(dir / n, ec)) return true;
  return false;
}

// Data options shared by the commands that read a directory.
inline std::vector<Option> data_options() {
  return {{"size", "", "image folders: resize to HxW (e.g. 64x64; default: keep the files' size)"},
          {"channels", "0", "image folders: 1 grey, 3 RGB, 0 as the files are"},
          {"valid-fraction", "0.2", "image folders without train/valid: share of each class held out"},
          {"split-seed", "0", "seed of that split"},
          {"decode", "load", "image folders: load (decode every file at load, hold floats) or batch (hold the "
                             "encoded files, decode each batch in the loader's prefetch thread)"}};
}

// Loads DIR by its contents. With a model, its normalisation, channel count and
// image size are used, and the data must match them.
inline LoadedData load_data(const fs::path& dir, const Args& a, const ModelInfo* model) {
  std::error_code ec;
  DML_CHECK(fs::is_directory(dir, ec), "dml ", a.command(), ": data directory '", dir.string(), "' does not exist");
  data::DatasetOptions dopts;
  if (model) dopts.channel_normalization = model->norms;
  LoadedData out;
  if (is_idx_dir(dir)) {
    out.kind = "idx";
    if (model) {  // the model's normalisation (its channel count is checked below)
      DML_CHECK(model->channels == 1, "dml ", a.command(), ": ", dir.string(), " holds grey IDX images but the model takes ",
                model->channels, " channels");
    }
    out.splits = data::load_idx(dir, dopts);
  } else if (data::is_cifar_dir(dir)) {
    out.kind = "cifar";
    if (model) DML_CHECK(model->channels == 3, "dml ", a.command(), ": CIFAR images are RGB but the model takes 1 channel");
    out.splits = data::load_cifar(dir, dopts);
  } else {
#if defined(DML_CLI_IMAGE)
    out.kind = "image folder";
    data::ImageFolderOptions o;
    o.dataset = dopts;
    o.channels = model ? model->channels : a.integer("channels");
    DML_CHECK(o.channels == 0 || o.channels == 1 || o.channels == 3, "dml ", a.command(), ": --channels must be 0, 1 or 3");
    if (model) {
      o.height = model->height;
      o.width = model->width;
    } else if (!a.str("size").empty()) {
      const std::string s = a.str("size");
      const auto x = s.find('x');
      DML_CHECK(x != std::string::npos, "dml ", a.command(), ": --size must be HxW (e.g. 64x64), got '", s, "'");
      try {
        o.height = std::stoll(s.substr(0, x));
        o.width = std::stoll(s.substr(x + 1));
      } catch (const std::exception&) {
        o.height = o.width = 0;
      }
      DML_CHECK(o.height >= 8 && o.width >= 8, "dml ", a.command(), ": --size must be HxW with both at least 8, got '", s, "'");
    }
    o.valid_fraction = a.number("valid-fraction", 0.0, 0.95);
    o.seed = static_cast<std::uint64_t>(a.integer("split-seed"));
    const std::string decode = a.str("decode");
    DML_CHECK(decode == "load" || decode == "batch", "dml ", a.command(), ": --decode must be load or batch, got '",
              decode, "'");
    o.decode = decode == "load" ? data::Decode::AtLoad : data::Decode::PerBatch;
    data::ImageFolder f = data::load_image_folder(dir, o);
    std::cout << "data: image folder (" << f.layout << ")";
    if (o.decode == data::Decode::PerBatch)
      std::cout << ", decoded per batch in the loader (" << f.encoded_bytes / 1024 << " KiB of encoded files held)";
    if (f.converted_16bit) std::cout << ", " << f.converted_16bit << " 16-bit PNG(s) scaled to 8 bits";
    if (f.alpha_composited) std::cout << ", " << f.alpha_composited << " image(s) with alpha composited onto black";
    if (f.hidden_ignored) std::cout << ", " << f.hidden_ignored << " hidden name(s) ignored";
    std::cout << "\n";
    out.splits = std::move(f.splits);
    out.train_files = std::move(f.train_files);
    out.test_files = std::move(f.valid_files);
#else
    throw Error(::dml::detail::concat("dml ", a.command(), ": ", dir.string(),
                                      " holds neither IDX nor CIFAR files, and this dml was built without dml::image, "
                                      "so it cannot read image folders (install libpng-dev and libjpeg62-turbo-dev and rebuild)"));
#endif
  }
  if (model) {
    DML_CHECK(out.splits.train.channels() == model->channels && out.splits.train.height() == model->height &&
                  out.splits.train.width() == model->width,
              "dml ", a.command(), ": ", dir.string(), " holds images of ", out.splits.train.image_shape().str(),
              " but the model takes [", model->channels, ", ", model->height, ", ", model->width, "]");
  }
  std::cout << "data: " << dir.string() << " (" << out.kind << "): " << out.splits.train.size() << " training and "
            << out.splits.test.size() << " held-out images of " << out.splits.train.image_shape().str() << ", "
            << out.splits.train.num_classes << " classes\n";
  return out;
}

inline std::vector<std::string> names_of(const data::Dataset& ds) {
  if (!ds.class_names.empty()) return ds.class_names;
  std::vector<std::string> out;
  for (std::int64_t c = 0; c < ds.num_classes; ++c) out.push_back(std::to_string(c));
  return out;
}

// ---- the model ------------------------------------------------------------------------------

// Calls f(body, head, center_weight) with a fresh model of `info`, weights loaded from `weights` when given.
template <class F>
void with_model(const ModelInfo& info, std::uint64_t seed, const io::TensorMap* weights, F&& f) {
  heads::with_method(info.method, [&](auto policy, double center_weight) {
    nn::ResNet18<float, Cpu> body({.in_channels = info.channels, .embedding = info.embedding,
                                   .width = info.resnet_width, .seed = seed, .head_dropout = recipe::kHeadDropout});
    heads::MarginHead<decltype(policy), float, Cpu> head(info.embedding, info.classes, policy, seed + 1);
    if (weights) {
      body.load_state_dict(nn::state_dict_from<float, Cpu>(*weights, "body."));
      head.load_state_dict(nn::state_dict_from<float, Cpu>(*weights, "head."));
    }
    f(body, head, center_weight);
  });
}

struct LoadedModel {
  ModelInfo info;
  io::TensorMap weights;
};

inline LoadedModel load_model(const fs::path& run) {
  const fs::path file = model_file(run);
  std::error_code ec;
  DML_CHECK(fs::exists(file, ec), "no model at ", file.string(), " (train one with dml train --out ", run.string(), ")");
  io::SafetensorsFile f = io::read_safetensors(file);
  auto it = f.metadata.find("dml.model");
  DML_CHECK(it != f.metadata.end(), file.string(), ": no 'dml.model' metadata: not written by dml train");
  return {ModelInfo::from_json(json::parse(it->second), file.string()), std::move(f.tensors)};
}

inline void write_text(const fs::path& path, const std::string& text) {
  io::write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

// ---- dml train ------------------------------------------------------------------------------

// Under mpirun or srun (built with dml::distributed): MPI and the communicator over every
// rank, and std::cout silenced on all ranks but 0 for the scope. Otherwise nothing.
struct Ranks {
#ifdef DML_CLI_DISTRIBUTED
  Ranks() {
    bool launched = false;
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) launched = launched || std::getenv(v);
    if (!launched) return;
    mpi.emplace();
    comm.emplace();
    if (comm->rank() != 0) saved = std::cout.rdbuf(nullptr);
  }
  ~Ranks() {
    if (saved) std::cout.rdbuf(saved);
  }
  Collective* collective() { return comm ? &*comm : nullptr; }
  std::optional<distributed::Mpi> mpi;
  std::optional<distributed::MpiCommunicator> comm;
  std::streambuf* saved = nullptr;
#else
  Ranks() {
    if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK"))
      std::cerr << "dml train: started by mpirun/srun, but this dml was built without dml::distributed (MPI): "
                   "every rank trains alone\n";
  }
  Collective* collective() { return nullptr; }
#endif
  int rank() { return collective() ? collective()->rank() : 0; }
  int size() { return collective() ? collective()->size() : 1; }
};

inline int train(int argc, char** argv) {
  std::vector<Option> spec = {
      {"data", "", "IDX, CIFAR or image-folder directory", false, true},
      {"out", "", "run directory: model.safetensors, checkpoint.safetensors, history.json", false, true},
      {"head", "softmax", "softmax, l2, arc, cos, sphere, center, subcenter or adacos"},
      {"epochs", "2", "one-cycle epochs"},
      {"batch-size", std::to_string(recipe::kBatchSize), "batch size"},
      {"lr", std::to_string(recipe::kSgdLr).substr(0, 4), "peak learning rate (SGD, Nesterov)"},
      {"weight-decay", "0.0005", "weight decay"},
      {"embedding", "512", "embedding width"},
      {"width", "64", "ResNet base width (64 = ResNet18)"},
      {"seed", "0", "seed of weights and shuffling"},
      {"pretrained", "", "body weights to start from (safetensors, torchvision names); early layers then train at lower rates"},
      {"frozen-epochs", "", "epochs with the body frozen first (default 1 with --pretrained, else 0)"},
      {"no-augment", "", "no random shift (2 px) and rotation (10 degrees)", true},
      {"resume", "", "continue the run in --out from its checkpoint", true},
      {"quiet", "", "no epoch table", true},
  };
  for (auto& o : data_options()) spec.push_back(o);
  Args a("train", spec, argc, argv, 2);
  if (a.help()) {
    a.print_help("Trains ResNet18 with a metric-learning head on DIR and saves the model in --out.");
    return 0;
  }
  const fs::path out = a.str("out");
  const std::string method(heads::method_info(a.str("head")).key);
  const std::int64_t epochs = a.integer("epochs", 1), batch = a.integer("batch-size", 1);
  const std::int64_t frozen = a.given("frozen-epochs") ? a.integer("frozen-epochs") : (a.str("pretrained").empty() ? 0 : 1);
  DML_CHECK(frozen == 0 || !a.str("pretrained").empty(), "dml train: --frozen-epochs ", frozen,
            " trains only the head on a random body: pass --pretrained FILE too (or --frozen-epochs 0)");
  const double lr = a.number("lr", 1e-6, 10.0), wd = a.number("weight-decay", 0.0, 1.0);
  const auto seed = static_cast<std::uint64_t>(a.integer("seed"));
  Ranks ranks;
  DML_CHECK(batch % ranks.size() == 0, "dml train: --batch-size ", batch, " must divide by the ", ranks.size(),
            " ranks (it is the global batch)");
  LoadedData d = load_data(a.str("data"), a, nullptr);
  fs::create_directories(out);

  ModelInfo info;
  info.method = method;
  info.classes = d.splits.train.num_classes;
  info.channels = d.splits.train.channels();
  info.height = d.splits.train.height();
  info.width = d.splits.train.width();
  info.embedding = a.integer("embedding", 2);
  info.resnet_width = a.integer("width", 4);
  info.class_names = names_of(d.splits.train);
  info.norms = d.splits.train.channel_norms;
  info.data_kind = d.kind;
  std::cout << "model: ResNet18 (width " << info.resnet_width << ", " << info.embedding << "-d embedding), "
            << heads::method_info(method).title << ", " << info.classes << " classes\n";

  with_model(info, seed, nullptr, [&](auto& body, auto& head, double center_weight) {
    if (!a.str("pretrained").empty()) {
      const nn::LoadResult r = nn::load_weights(body, a.str("pretrained"), {.skip_prefixes = {"fc.", "head."}});
      std::cout << "pretrained: " << a.str("pretrained") << " (" << r.missing.size() << " new tensor(s) left as initialised)\n";
    }
    losses::CenterLoss<float, Cpu> center(info.classes, info.embedding);
    train::LearnerOptions opts;
    opts.batch_size = std::min(batch, d.splits.train.size()) / ranks.size();
    opts.collective = ranks.collective();
    opts.seed = seed;
    opts.quiet = a.flag("quiet");
    opts.checkpoint = out / "checkpoint.safetensors";
    if (!a.flag("no-augment")) opts.augment = recipe::augment();
    // The transfer recipe: a pretrained body's early layers train at lower rates.
    if (!a.str("pretrained").empty()) opts.lr_scales = train::resnet_lr_scales(recipe::kPretrainedLowestLr);
    train::Learner learn(body, head, d.splits, recipe::sgd(lr, wd), opts);
    if (center_weight > 0) learn.add_loss(center, center_weight, "center", recipe::kCenterWarmup);
    if (a.flag("resume")) {
      learn.resume(out / "checkpoint.safetensors");
      if (learn.epoch() < frozen) learn.fit_one_cycle(frozen - learn.epoch(), lr);
    } else if (frozen > 0) {
      learn.freeze();
      learn.fit_one_cycle(frozen, lr);
    }
    const std::int64_t done = std::max<std::int64_t>(learn.epoch() - frozen, 0);
    learn.unfreeze();
    if (epochs > done) learn.fit_one_cycle(epochs - done, lr);

    if (ranks.rank() != 0) return;  // every rank holds the same model: rank 0 writes it
    io::TensorMap tensors;
    nn::append_tensor_map(body.state_dict(), "body.", tensors);
    nn::append_tensor_map(head.state_dict(), "head.", tensors);
    io::save_safetensors(model_file(out), tensors, {{"dml.model", json::dump(info.to_json())}});
    write_text(out / "history.json", json::dump(recipe::history_json(learn.history()), 2) + "\n");
    const double acc = learn.history().empty() ? NAN : learn.history().back().accuracy;
    std::cout << "saved " << model_file(out).string() << " (held-out accuracy " << acc << ")\n";
  });
  return 0;
}

// ---- embedding a split ----------------------------------------------------------------------

inline const data::Dataset& pick_split(const LoadedData& d, const std::string& split, const std::string& command) {
  DML_CHECK(split == "test" || split == "valid" || split == "train", "dml ", command, ": --split must be train, valid or test, got '",
            split, "'");
  const data::Dataset& ds = split == "train" ? d.splits.train : d.splits.test;
  DML_CHECK(ds.size() > 0, "dml ", command, ": the ", split, " split of the data is empty");
  return ds;
}
inline const std::vector<fs::path>& split_files(const LoadedData& d, const std::string& split) {
  return split == "train" ? d.train_files : d.test_files;
}

inline eval::Embedded<float> embed_with(const LoadedModel& m, const data::Dataset& ds) {
  eval::Embedded<float> e;
  with_model(m.info, 0, &m.weights, [&](auto& body, auto& head, double) { e = eval::embed(body, head, ds); });
  return e;
}

inline std::vector<Option> model_data_options() {
  std::vector<Option> v = {{"model", "", "run directory written by dml train", false, true},
                           {"data", "", "IDX, CIFAR or image-folder directory", false, true},
                           {"split", "test", "which split to use: test (= valid), train"}};
  for (auto& o : data_options())
    if (o.name == "valid-fraction" || o.name == "split-seed" || o.name == "decode") v.push_back(o);
  return v;
}

inline int embed(int argc, char** argv) {
  std::vector<Option> spec = model_data_options();
  spec.push_back({"out", "", "embeddings .npy ([N, dim] float32); labels.npy (and files.txt) beside it", false, true});
  Args a("embed", spec, argc, argv, 2);
  if (a.help()) {
    a.print_help("Writes the embeddings of one split of DIR under a trained model.");
    return 0;
  }
  const LoadedModel m = load_model(a.str("model"));
  const LoadedData d = load_data(a.str("data"), a, &m.info);
  const data::Dataset& ds = pick_split(d, a.str("split"), "embed");
  const eval::Embedded<float> e = embed_with(m, ds);
  const fs::path out = a.str("out");
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  io::save_npy(out, e.embeddings.data(), {e.embeddings.dim(0), e.embeddings.dim(1)});
  io::save_npy(out.parent_path() / "labels.npy", ds.labels, {ds.size()});
  const auto& files = split_files(d, a.str("split"));
  if (!files.empty()) {
    std::string text;
    for (const auto& f : files) text += f.string() + "\n";
    write_text(out.parent_path() / "files.txt", text);
  }
  std::cout << "wrote " << out.string() << " [" << e.embeddings.dim(0) << ", " << e.embeddings.dim(1) << "] and labels.npy\n";
  return 0;
}

// ---- dml evaluate ---------------------------------------------------------------------------

inline int evaluate(int argc, char** argv) {
  std::vector<Option> spec = model_data_options();
  spec.push_back({"out", "", "report directory: metrics.json, tsne_embeddings.svg, report.md", false, true});
  spec.push_back({"distance", "cosine", "cosine or l2"});
  spec.push_back({"tsne-iterations", "1000", "t-SNE iterations (0: no map)"});
  Args a("evaluate", spec, argc, argv, 2);
  if (a.help()) {
    a.print_help("Measures a trained model on one split of DIR: accuracy, retrieval, clustering, t-SNE.");
    return 0;
  }
  DML_CHECK(a.str("distance") == "cosine" || a.str("distance") == "l2", "dml evaluate: --distance must be cosine or l2");
  const eval::Metric metric = a.str("distance") == "cosine" ? eval::Metric::Cosine : eval::Metric::L2;
  const LoadedModel m = load_model(a.str("model"));
  const LoadedData d = load_data(a.str("data"), a, &m.info);
  const data::Dataset& ds = pick_split(d, a.str("split"), "evaluate");
  const eval::Embedded<float> e = embed_with(m, ds);
  const fs::path out = a.str("out");
  fs::create_directories(out);

  // Accuracy only when the data's classes are the model's, in the same order.
  const bool same_classes = names_of(ds) == m.info.class_names;
  const double acc = same_classes ? eval::accuracy_from_logits(e.logits, ds.labels) : NAN;
  const eval::RetrievalReport r = eval::retrieval(e.embeddings, ds.labels, metric);
  const eval::ClusterReport c = eval::cluster_quality(
      metric == eval::Metric::Cosine ? ops::l2_normalize(e.embeddings) : e.embeddings, ds.labels, {.seed = 0});
  const eval::SpreadReport sp = eval::class_spread(e.embeddings, ds.labels, metric);
  auto num = [](double x) { return std::isfinite(x) ? json::Value(x) : json::Value(nullptr); };
  json::Object j;
  j.emplace_back("model", a.str("model"));
  j.emplace_back("data", a.str("data"));
  j.emplace_back("split", a.str("split"));
  j.emplace_back("size", ds.size());
  j.emplace_back("distance", eval::metric_name(metric));
  j.emplace_back("accuracy", num(acc));
  j.emplace_back("precision_at_1", num(r.precision_at_1));
  j.emplace_back("r_precision", num(r.r_precision));
  j.emplace_back("map_at_r", num(r.map_at_r));
  j.emplace_back("nmi", num(c.nmi));
  j.emplace_back("ami", num(c.ami));
  j.emplace_back("spread_ratio", num(sp.ratio));
  write_text(out / "metrics.json", json::dump(json::Value(std::move(j)), 2) + "\n");

  const std::int64_t iters = a.integer("tsne-iterations");
  std::ostringstream md;
  md << "# dml evaluate\n\n- Model: `" << a.str("model") << "` (" << heads::method_info(m.info.method).title << ", "
     << m.info.classes << " classes)\n- Data: `" << a.str("data") << "` (" << d.kind << "), " << a.str("split") << " split, "
     << ds.size() << " images\n- Distance: " << eval::metric_name(metric) << "\n\n"
     << "| accuracy | P@1 | R-Precision | MAP@R | NMI | spread |\n|---|---|---|---|---|---|\n| "
     << (same_classes ? std::to_string(acc).substr(0, 6) : std::string("n/a (other classes)")) << " | " << r.precision_at_1
     << " | " << r.r_precision << " | " << r.map_at_r << " | " << c.nmi << " | " << sp.ratio << " |\n";
  if (iters > 0) {
    viz::TsneOptions topt{.iterations = static_cast<int>(iters), .seed = 0};
    viz::ScatterOptions style;
    style.class_names = names_of(ds);
    style.title = "t-SNE of the " + std::to_string(e.embeddings.dim(1)) + "-d embeddings";
    viz::tsne(e.embeddings, topt).save_svg((out / "tsne_embeddings.svg").string(), ds.labels, style);
    md << "\n![t-SNE of the embeddings](tsne_embeddings.svg)\n";
  }
  write_text(out / "report.md", md.str());
  std::cout << "accuracy " << (same_classes ? std::to_string(acc) : std::string("n/a")) << ", P@1 " << r.precision_at_1
            << ", MAP@R " << r.map_at_r << ", NMI " << c.nmi << " -> " << (out / "report.md").string() << "\n";
  return 0;
}

// ---- dml anomaly ----------------------------------------------------------------------------

inline int anomaly(int argc, char** argv) {
  std::vector<Option> spec = model_data_options();
  spec.insert(spec.begin() + 1, {"reference", "", "known data: its train split is the reference, its held-out split sets the threshold", false, true});
  spec.push_back({"out", "", "scores.csv: index, file, class, score, anomalous", false, true});
  spec.push_back({"fpr", "0.05", "false-positive rate on the held-out known data that sets the threshold"});
  spec.push_back({"k", "1", "score = mean distance to the k nearest references"});
  spec.push_back({"distance", "cosine", "cosine or l2"});
  Args a("anomaly", spec, argc, argv, 2);
  if (a.help()) {
    a.print_help("Scores the images of DIR for anomalies against the known data of --reference.");
    return 0;
  }
  DML_CHECK(a.str("distance") == "cosine" || a.str("distance") == "l2", "dml anomaly: --distance must be cosine or l2");
  const LoadedModel m = load_model(a.str("model"));
  const LoadedData ref = load_data(a.str("reference"), a, &m.info);
  const LoadedData d = load_data(a.str("data"), a, &m.info);
  const data::Dataset& ds = pick_split(d, a.str("split"), "anomaly");
  DML_CHECK(ref.splits.test.size() > 0, "dml anomaly: the held-out split of ", a.str("reference"),
            " is empty, so no threshold can be set");

  eval::AnomalyDetector det({.metric = a.str("distance") == "cosine" ? eval::Metric::Cosine : eval::Metric::L2,
                             .k = static_cast<int>(a.integer("k", 1))});
  det.fit(embed_with(m, ref.splits.train).embeddings);
  det.calibrate(embed_with(m, ref.splits.test).embeddings, a.number("fpr", 0.0, 0.99));
  const std::vector<float> scores = det.score(embed_with(m, ds).embeddings);
  const std::vector<std::uint8_t> flags = det.flag(scores);

  // Ground truth where it is known: a class of DIR that the reference lacks (by name) is unknown.
  const std::vector<std::string> known = names_of(ref.splits.train), names = names_of(ds);
  std::vector<std::uint8_t> positive(scores.size());
  for (std::size_t i = 0; i < scores.size(); ++i)
    positive[i] = std::find(known.begin(), known.end(), names[static_cast<std::size_t>(ds.labels[i])]) == known.end();
  const auto& files = split_files(d, a.str("split"));
  auto field = [](const std::string& v) {  // RFC 4180: quote fields holding a comma, a quote or a newline
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  std::ostringstream csv;
  csv << "index,file,class,score,anomalous\n";
  std::int64_t flagged = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    flagged += flags[i];
    csv << i << "," << field(files.empty() ? std::string() : files[i].string()) << ","
        << field(names[static_cast<std::size_t>(ds.labels[i])]) << "," << scores[i] << "," << int{flags[i]} << "\n";
  }
  const fs::path out = a.str("out");
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  write_text(out, csv.str());
  std::cout << "threshold " << det.threshold() << " (false-positive rate " << det.achieved_fpr() << " on "
            << ref.splits.test.size() << " held-out known images); " << flagged << " of " << scores.size()
            << " flagged -> " << out.string() << "\n";
  std::int64_t pos = 0;
  for (auto p : positive) pos += p;
  if (pos > 0 && pos < static_cast<std::int64_t>(positive.size()))
    std::cout << "ROC-AUC " << eval::roc_auc(std::span<const float>(scores), positive) << " (" << pos
              << " images of classes the reference lacks)\n";
  return 0;
}

// ---- dml export -----------------------------------------------------------------------------

inline int export_png(int argc, char** argv) {
#if defined(DML_CLI_IMAGE)
  Args a("export",
         {{"data", "", "IDX or CIFAR directory", false, true},
          {"out", "", "image folder to write: OUT/{train,valid}/<class>/<n>.png", false, true},
          {"classes", "", "comma-separated labels to keep (default: all)"},
          {"limit", "0", "at most this many images per split (0: all)"}},
         argc, argv, 2);
  if (a.help()) {
    a.print_help("Writes IDX or CIFAR data as a folder of PNGs, e.g. to try the image-folder path.");
    return 0;
  }
  const fs::path dir = a.str("data");
  data::IdxSplits raw;
  std::vector<std::string> names;
  if (is_idx_dir(dir)) {
    raw = data::load_idx_dir(dir);
    if (fs::path(dir).filename().string().find("fashion") != std::string::npos) names = data::fashion_mnist_class_names();
  } else {
    DML_CHECK(data::is_cifar_dir(dir), "dml export: ", dir.string(), " holds neither IDX nor CIFAR files");
    raw = data::load_cifar_dir(dir);
  }
  std::set<std::int64_t> keep;
  if (!a.str("classes").empty()) {
    std::stringstream ss(a.str("classes"));
    for (std::string t; std::getline(ss, t, ',');) {
      std::size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(t, &used);
      } catch (const std::exception&) {
      }
      DML_CHECK(used == t.size() && v >= 0, "dml export: --classes must be labels like 0,1,2, got '", t, "'");
      keep.insert(v);
    }
  }
  const std::int64_t limit = a.integer("limit");
  std::int64_t written = 0;
  for (const auto& [split, set] : {std::pair<const char*, const data::ImageSet*>{"train", &raw.train}, {"valid", &raw.test}}) {
    const std::int64_t per = set->channels * set->rows * set->cols, plane = set->rows * set->cols;
    std::int64_t n = 0;
    for (std::int64_t i = 0; i < set->count && (limit == 0 || n < limit); ++i) {
      const std::int64_t label = set->labels[static_cast<std::size_t>(i)];
      if (!keep.empty() && !keep.contains(label)) continue;
      std::string cls = label < static_cast<std::int64_t>(names.size()) ? names[static_cast<std::size_t>(label)] : std::to_string(label);
      std::replace(cls.begin(), cls.end(), '/', '-');
      data::DecodedImage img;
      img.height = set->rows;
      img.width = set->cols;
      img.channels = set->channels;
      img.pixels.resize(static_cast<std::size_t>(per));
      for (std::int64_t p = 0; p < plane; ++p)  // planar to interleaved
        for (std::int64_t c = 0; c < set->channels; ++c)
          img.pixels[static_cast<std::size_t>(p * set->channels + c)] = set->pixels[static_cast<std::size_t>(i * per + c * plane + p)];
      const fs::path file = fs::path(a.str("out")) / split / cls / (std::to_string(i) + ".png");
      fs::create_directories(file.parent_path());
      const std::vector<std::uint8_t> png = data::encode_png(img);
      // A plain write: tens of thousands of small files, so no fsync per file (write_file_atomic).
      std::ofstream f(file, std::ios::binary);
      f.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
      DML_CHECK(f.good(), "dml export: cannot write ", file.string());
      ++n;
    }
    written += n;
  }
  std::cout << "wrote " << written << " PNGs under " << a.str("out") << "\n";
  return 0;
#else
  (void)argc;
  (void)argv;
  throw Error("dml export: this dml was built without dml::image (install libpng-dev and libjpeg62-turbo-dev and rebuild)");
#endif
}

inline constexpr const char* kUsage = R"(usage: dml COMMAND [options]   (dml COMMAND --help for its options)

  train      train ResNet18 with a metric-learning head on a directory of images
  embed      write the embeddings of a split under a trained model (.npy)
  evaluate   accuracy, retrieval metrics, clustering and a t-SNE map of a split
  anomaly    score images against known data; threshold at a false-positive rate
  export     write IDX or CIFAR data as a folder of PNGs

Directories may hold IDX files (MNIST-style), CIFAR-10/100 binaries or an image folder
(root/{train,valid}/<class>/* or root/<class>/*). See docs/your-data.md.
)";

}  // namespace cli

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "train") return cli::train(argc, argv);
    if (cmd == "embed") return cli::embed(argc, argv);
    if (cmd == "evaluate") return cli::evaluate(argc, argv);
    if (cmd == "anomaly") return cli::anomaly(argc, argv);
    if (cmd == "export") return cli::export_png(argc, argv);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << cli::kUsage;
      return 0;
    }
    if (cmd == "--version") {
      std::cout << "dml " << DML_VERSION_STRING << "\n";
      return 0;
    }
    std::cerr << (cmd.empty() ? std::string("dml: no command") : "dml: unknown command '" + cmd + "'") << "\n\n"
              << cli::kUsage;
    return 2;
  } catch (const dml::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
