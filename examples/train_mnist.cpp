// examples/train_mnist.cpp: ResNet18 on MNIST-format data with the head a flag
// picks, trained the fastai way (one epoch with the body frozen, then
// unfrozen with a one-cycle schedule); prints the epoch table and saves a
// checkpoint after every epoch.
//
//   bash scripts/get_data.sh                      # data/mnist, data/fashion-mnist
//   ./train_mnist --head arc --epochs 3           # softmax|l2|arc|cos|sphere|center|subcenter|adacos
//   ./train_mnist --head arc --epochs 3 --resume train_mnist.ckpt
//
// Run with --help for every option.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include <dml/dml.hpp>
#include <dml/heads/methods.hpp>

#include "recipe.hpp"

using namespace dml;

namespace {

struct Config {
  std::string head = "softmax";
  std::filesystem::path data = "data/mnist";
  std::int64_t epochs = 3;         // after the frozen ones
  std::int64_t frozen_epochs = 0;  // > 0: a frozen phase first (meant for pretrained bodies)
  std::int64_t batch_size = recipe::kBatchSize;
  double lr = recipe::kSgdLr;      // SGD (Nesterov) peak lr of the one-cycle
  std::uint64_t seed = 0;
  std::int64_t subset = 0;         // >0: train on that many images (and test on a quarter of that)
  std::filesystem::path checkpoint = "train_mnist.ckpt";
  std::filesystem::path resume;
  bool quiet = false;
  train::Progress progress = train::Progress::Auto;
};

const char* kUsage = R"(usage: train_mnist [options]
  --head NAME        softmax | l2 | arc | cos | sphere | center | subcenter | adacos   (default softmax)
  --data DIR         MNIST-format IDX files (default data/mnist; scripts/get_data.sh makes it)
  --epochs N         unfrozen one-cycle epochs (default 3)
  --frozen-epochs N  epochs with the body frozen first (default 0; meant for pretrained bodies)
  --batch N          batch size (default 64)
  --lr X             SGD (Nesterov, momentum 0.9, weight decay 5e-4) peak lr (default 0.05)
  --seed N           initialisation, shuffling and augmentation (default 0)
  --subset N         train on N random images, test on N/4 (default: all)
  --checkpoint FILE  written after every epoch (default train_mnist.ckpt; "" for none)
  --resume FILE      continue the run saved in FILE (same other options)
  --progress MODE    auto | bar | lines (default auto: a bar on a terminal, lines otherwise)
  --quiet            print nothing but errors
)";

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string opt = argv[i];
    if (opt == "--help" || opt == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (opt == "--quiet") {
      c.quiet = true;
      continue;
    }
    DML_CHECK(i + 1 < argc, "option ", opt, " needs a value (see --help)");
    const std::string v = argv[++i];
    auto integer = [&] {
      std::size_t used = 0;
      long long x = -1;
      try {
        x = std::stoll(v, &used);
      } catch (const std::exception&) {
      }
      DML_CHECK(used == v.size() && x >= 0, "option ", opt, " needs a non-negative integer, got '", v, "'");
      return static_cast<std::int64_t>(x);
    };
    if (opt == "--head") c.head = heads::method_info(v).key;
    else if (opt == "--data") c.data = v;
    else if (opt == "--epochs") c.epochs = integer();
    else if (opt == "--frozen-epochs") c.frozen_epochs = integer();
    else if (opt == "--batch") c.batch_size = integer();
    else if (opt == "--lr") c.lr = std::stod(v);
    else if (opt == "--seed") c.seed = static_cast<std::uint64_t>(integer());
    else if (opt == "--subset") c.subset = integer();
    else if (opt == "--checkpoint") c.checkpoint = v;
    else if (opt == "--resume") c.resume = v;
    else if (opt == "--progress") {
      DML_CHECK(v == "auto" || v == "bar" || v == "lines", "option --progress takes auto, bar or lines, got '", v, "'");
      c.progress = v == "bar" ? train::Progress::Bar : v == "lines" ? train::Progress::Lines : train::Progress::Auto;
    }
    else throw Error(::dml::detail::concat("unknown option '", opt, "' (see --help)"));
  }
  DML_CHECK(c.epochs + c.frozen_epochs >= 1, "nothing to train: --epochs and --frozen-epochs are both 0");
  return c;
}

int run(const Config& cfg) {
  data::Splits data = data::load_idx(cfg.data);
  if (cfg.subset > 0) {
    data.train = data::take(data.train, std::min(cfg.subset, data.train.size()), cfg.seed);
    data.test = data::take(data.test, std::min(std::max<std::int64_t>(cfg.subset / 4, 1), data.test.size()), cfg.seed);
  }
  const std::int64_t classes = data.train.num_classes;
  if (!cfg.quiet)
    std::cout << "data: " << cfg.data.string() << ", " << data.train.size() << " train / " << data.test.size()
              << " test images of " << data.train.image_shape().str() << ", " << classes << " classes\n"
              << "method: " << heads::method_info(cfg.head).title << "\n";

  return heads::with_method(cfg.head, [&](auto policy, double center_weight) {
    nn::ResNet18<float, Cpu> body({.in_channels = data.train.channels(), .embedding = 512, .seed = cfg.seed,
                                   .head_dropout = recipe::kHeadDropout});
    heads::MarginHead<decltype(policy)> head(512, classes, policy, cfg.seed + 1);
    losses::CenterLoss<float, Cpu> center(classes, 512);
    train::LearnerOptions opts;
    opts.batch_size = cfg.batch_size;
    opts.seed = cfg.seed;
    opts.augment = recipe::augment();
    opts.quiet = cfg.quiet;
    opts.progress = cfg.progress;
    opts.checkpoint = cfg.checkpoint;
    train::Learner learn(body, head, data, recipe::sgd(cfg.lr), opts);
    if (center_weight > 0) learn.add_loss(center, center_weight, "center", recipe::kCenterWarmup);

    if (!cfg.resume.empty()) {
      // The phase the checkpoint was taken in decides what is left to do.
      learn.resume(cfg.resume);
      if (learn.epoch() < cfg.frozen_epochs) {
        learn.fit_one_cycle(cfg.frozen_epochs - learn.epoch(), cfg.lr);
      }
    } else if (cfg.frozen_epochs > 0) {
      learn.freeze();
      learn.fit_one_cycle(cfg.frozen_epochs, cfg.lr);
    }
    const std::int64_t done_unfrozen = std::max<std::int64_t>(learn.epoch() - cfg.frozen_epochs, 0);
    if (cfg.epochs > done_unfrozen) {
      learn.unfreeze();
      learn.fit_one_cycle(cfg.epochs - done_unfrozen, cfg.lr);
    }
    if (!cfg.quiet) {
      const auto& h = learn.history();
      double seconds = 0;
      for (const auto& s : h) seconds += s.seconds;
      std::printf("test accuracy %.4f after %lld epochs (%s)%s%s\n", h.empty() ? 0.0 : h.back().accuracy,
                  static_cast<long long>(h.size()), train::format_time(seconds).c_str(),
                  cfg.checkpoint.empty() ? "" : ", checkpoint ", cfg.checkpoint.string().c_str());
    }
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const dml::Error& e) {
    std::cerr << "train_mnist: " << e.what() << "\n";
    return 1;
  }
}
