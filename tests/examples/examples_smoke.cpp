// End-to-end checks of the example programs on a tiny synthetic MNIST-style
// dataset: examples/reproduce (every output file appears and holds what it
// should) and examples/train_mnist (the table, the checkpoint a second model
// loads, the embeddings).
// Built as its own doctest binary (examples_smoke) because it runs the
// executables, whose paths come in as DML_REPRODUCE_EXE and DML_TRAIN_MNIST_EXE
// (and DML_REPRODUCE_CUDA_EXE for the nvcc build of the demo, when there is one).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <dml/core/random.hpp>
#include <dml/data/idx.hpp>
#include <dml/io/json.hpp>
#include <dml/io/npy.hpp>
#include <dml/backend/cpu/backend.hpp>
#include <dml/nn/resnet.hpp>
#include <dml/nn/serialize.hpp>
#include <dml/train/checkpoint.hpp>

#include "../support/temp_dir.hpp"

#if !defined(DML_REPRODUCE_EXE) || !defined(DML_TRAIN_MNIST_EXE)
#error "compile with -DDML_REPRODUCE_EXE=\"<path>\" -DDML_TRAIN_MNIST_EXE=\"<path>\""
#endif

namespace fs = std::filesystem;
using namespace dml;

namespace {

constexpr std::int64_t kSide = 16, kClasses = 10;

// count images of kSide x kSide: class c is a bright 4x4 square at one of ten
// places on a noisy background, labels i % kClasses.
void write_split(const fs::path& dir, const std::string& prefix, std::int64_t count, std::uint64_t seed) {
  Generator gen(seed);
  data::IdxArray images{.dims = {count, kSide, kSide}, .data = {}};
  data::IdxArray labels{.dims = {count}, .data = {}};
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t c = i % kClasses;
    const std::int64_t r0 = 2 + (c / 5) * 7, c0 = 1 + (c % 5) * 3;
    for (std::int64_t y = 0; y < kSide; ++y)
      for (std::int64_t x = 0; x < kSide; ++x) {
        const bool on = y >= r0 && y < r0 + 4 && x >= c0 && x < c0 + 4;
        images.data.push_back(static_cast<std::uint8_t>(on ? 200 + gen.below(56) : gen.below(40)));
      }
    labels.data.push_back(static_cast<std::uint8_t>(c));
  }
  data::write_idx(dir / (prefix + "-images-idx3-ubyte"), images);
  data::write_idx(dir / (prefix + "-labels-idx1-ubyte"), labels);
}

// tmp/data with 120 training and 40 test images; returns that directory.
fs::path write_dataset(const testing::TempDir& tmp) {
  const fs::path data = tmp / "data";
  fs::create_directories(data);
  write_split(data, "train", 120, 1);
  write_split(data, "t10k", 40, 2);
  return data;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `exe args` (after `env`, e.g. "OMP_NUM_THREADS=1 "), output to log;
// returns the exit status and the output.
std::pair<int, std::string> run(const char* exe, const std::string& args, const fs::path& log,
                                const std::string& env = "") {
  const std::string cmd = env + "\"" + exe + "\" " + args + " > \"" + log.string() + "\" 2>&1";
  const int rc = std::system(cmd.c_str());
  return {rc, read_text(log)};
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("reproduce writes every result file on a tiny synthetic dataset") {
  testing::TempDir tmp("dml_reproduce_smoke");
  const fs::path data = write_dataset(tmp), out = tmp / "results";

  const auto [rc, log] = run(DML_REPRODUCE_EXE,
                              "--data \"" + data.string() + "\" --out \"" + out.string() +
                                  "\" --epochs 1 --cases 2 --width 8 --batch-size 32 --tsne-iterations 250 --quiet",
                              tmp / "log.txt");
  INFO("reproduce output:\n" << log);
  REQUIRE(rc == 0);
  CHECK(log.find("left]") != std::string::npos);  // the progress line with the time left

  const std::vector<std::string> methods = {"softmax", "l2softmax", "arcface", "cosface", "sphereface", "centerloss"};
  for (const std::string& m : methods) {
    CAPTURE(m);
    const fs::path dir = out / m;
    for (const char* f : {"tsne_embeddings.svg", "tsne_logits.svg", "embeddings.npy", "labels.npy", "metrics.json"})
      REQUIRE_MESSAGE(fs::is_regular_file(dir / f), (dir / f).string() << " is missing");

    const io::NpyArray emb = io::load_npy(dir / "embeddings.npy");
    CHECK(emb.dtype == io::DType::F32);
    CHECK(emb.shape == std::vector<std::int64_t>{40, 512});
    const io::NpyArray lab = io::load_npy(dir / "labels.npy");
    CHECK(lab.dtype == io::DType::I64);
    CHECK(lab.shape == std::vector<std::int64_t>{40});

    for (const char* f : {"tsne_embeddings.svg", "tsne_logits.svg"}) {
      const std::string svg = read_text(dir / f);
      CHECK(svg.find("<svg") != std::string::npos);
      CHECK(count(svg, "<circle") == 40 + kClasses);  // one per test image, one legend key per class
    }

    const io::json::Value metrics = io::json::parse(read_text(dir / "metrics.json"));
    CHECK(metrics.at("method").as_string() == m);
    for (const char* k : {"accuracy", "precision_at_1", "r_precision", "map_at_r", "nmi", "ami"}) {
      const double v = metrics.at("test").at(k).as_double();
      CHECK(v >= 0.0);
      CHECK(v <= 1.0);
    }
    CHECK(metrics.at("training").at("history").as_array().size() == 1);  // no frozen stage without --pretrained
    CHECK(metrics.at("test").at("spread_ratio").as_double() > 0.0);
    CHECK(metrics.at("anomaly").at("cases").as_array().size() == 2);
    const double auc = metrics.at("anomaly").at("auc_min").as_double();
    CHECK(auc >= 0.0);
    CHECK(auc <= 1.0);
  }

  const std::string box = read_text(out / "anomaly_auc.svg");
  CHECK(count(box, "class=\"box\"") == methods.size());
  const std::string report = read_text(out / "report.md");
  for (const char* title : {"Softmax", "L2-constrained softmax", "ArcFace", "CosFace", "SphereFace", "Center Loss"})
    CHECK(report.find(std::string("| ") + title + " |") != std::string::npos);
  CHECK(report.find("anomaly_auc.svg") != std::string::npos);
  CHECK(report.find("host ISA ") != std::string::npos);
  CHECK(report.find("## Against the reference article") != std::string::npos);
  CHECK(report.find("- Center Loss: accuracy ") != std::string::npos);  // a line per method: above or below
}

TEST_CASE("reproduce --methods with embedding losses: no head, 1-NN accuracy, P x K batches") {
  testing::TempDir tmp("dml_reproduce_losses");
  const fs::path data = write_dataset(tmp), out = tmp / "results";
  const auto [rc, log] = run(DML_REPRODUCE_EXE,
                              "--data \"" + data.string() + "\" --out \"" + out.string() +
                                  "\" --methods triplet,proxyanchor,softmax --epochs 1 --cases 1 --width 4 "
                                  "--batch-size 40 --tsne-iterations 50 --jobs 1",
                              tmp / "log.txt");
  INFO("reproduce output:\n" << log);
  REQUIRE(rc == 0);
  for (const std::string m : {"tripletbatchhard", "proxyanchor"}) {
    CAPTURE(m);
    const fs::path dir = out / m;
    for (const char* f : {"tsne_embeddings.svg", "embeddings.npy", "labels.npy", "metrics.json"})
      REQUIRE_MESSAGE(fs::is_regular_file(dir / f), (dir / f).string() << " is missing");
    CHECK_FALSE(fs::exists(dir / "tsne_logits.svg"));  // no head, no logits
    const io::json::Value metrics = io::json::parse(read_text(dir / "metrics.json"));
    CHECK(metrics.at("test").at("accuracy_from").as_string() == "1-NN against the training embeddings");
    const double acc = metrics.at("test").at("accuracy").as_double();
    CHECK(acc >= 0.0);
    CHECK(acc <= 1.0);
    CHECK(metrics.at("anomaly").at("cases").as_array().size() == 1);
  }
  CHECK(io::json::parse(read_text(out / "softmax" / "metrics.json")).at("test").at("accuracy_from").as_string() ==
        "argmax of the logits");
  // The learner's table: no accuracy without logits. (The triplet loss trains on P x K
  // batches, 10 x 4 on the ten classes and 5 x 8 in the anomaly case: a batch of 40 fits both.)
  CHECK(log.find("#na#") != std::string::npos);
  const std::string report = read_text(out / "report.md");
  CHECK(report.find("| Triplet (batch-hard) |") != std::string::npos);
  CHECK(report.find("no head, no logits") != std::string::npos);
  CHECK(report.find("1-NN") != std::string::npos);
  CHECK(report.find("- ProxyAnchor: not in the article.") != std::string::npos);

  const auto [rc2, log2] = run(DML_REPRODUCE_EXE, "--methods triplet,npair", tmp / "log2.txt");
  CHECK(rc2 != 0);
  CHECK(log2.find("unknown method 'npair' (expected one of softmax, l2, arc, cos, sphere, center, subcenter, "
                  "adacos, triplet, ms, proxyanchor, supcon, contrastive, circle, ntxent, proxynca)") !=
        std::string::npos);
}

// metrics.json without its timings (the lines with "seconds").
std::string metrics_without_times(const fs::path& file) {
  std::istringstream in(read_text(file));
  std::string out;
  for (std::string line; std::getline(in, line);)
    if (line.find("\"seconds\"") == std::string::npos) out += line + "\n";
  return out;
}

TEST_CASE("reproduce --jobs: models trained at once are the models trained one by one") {
  testing::TempDir tmp("dml_reproduce_jobs");
  const fs::path data = write_dataset(tmp);
  const std::string common = "--data \"" + data.string() + "\" --methods softmax,ms,arc --epochs 1 --cases 2 "
                             "--width 4 --batch-size 40 --tsne-iterations 50 --quiet";
  // One OpenMP thread per model both times: 1 job of 1 thread, then 3 jobs of 1 thread each.
  const auto [rc1, log1] = run(DML_REPRODUCE_EXE, common + " --jobs 1 --out \"" + (tmp / "one").string() + "\"",
                               tmp / "one.txt", "OMP_NUM_THREADS=1 ");
  INFO("--jobs 1:\n" << log1);
  REQUIRE(rc1 == 0);
  const auto [rc3, log3] = run(DML_REPRODUCE_EXE, common + " --jobs 3 --out \"" + (tmp / "three").string() + "\"",
                               tmp / "three.txt", "OMP_NUM_THREADS=3 ");
  INFO("--jobs 3:\n" << log3);
  REQUIRE(rc3 == 0);
  CHECK(log3.find("3 models at once, 1 thread(s) each") != std::string::npos);
  CHECK(read_text(tmp / "three" / "report.md").find("3 models at once") != std::string::npos);
  for (const char* m : {"softmax", "multisimilarity", "arcface"}) {
    CAPTURE(m);
    const std::string one = metrics_without_times(tmp / "one" / m / "metrics.json");
    CHECK(one.find("\"auc_median\"") != std::string::npos);
    CHECK(one == metrics_without_times(tmp / "three" / m / "metrics.json"));
  }
  const auto [rc4, log4] = run(DML_REPRODUCE_EXE, common + " --jobs 2 --device cuda", tmp / "cuda.txt");
  CHECK(rc4 != 0);
  CHECK(log4.find("option --jobs 2: models train one at a time on a GPU") != std::string::npos);
}

TEST_CASE("reproduce: a frozen stage needs pretrained weights, and --pretrained brings one") {
  testing::TempDir tmp("dml_reproduce_frozen");
  const fs::path data = write_dataset(tmp), out = tmp / "results";
  const auto [rc, log] = run(DML_REPRODUCE_EXE, "--frozen-epochs 1 --data \"" + data.string() + "\"", tmp / "log.txt");
  INFO("reproduce output:\n" << log);
  CHECK(rc != 0);
  CHECK(log.find("a randomly initialised body has none; pass --pretrained FILE") != std::string::npos);

  // A body of the demo's shape saved as weights: with it, one frozen epoch comes first.
  nn::ResNet18<float, Cpu> body({.in_channels = 1, .embedding = 512, .width = 8, .seed = 3});
  const fs::path weights = tmp / "body.safetensors";
  nn::save_weights(body, weights);
  const std::string common = "--data \"" + data.string() + "\" --out \"" + out.string() +
                             "\" --methods softmax --cases 0 --epochs 1 --width 8 --batch-size 32 --tsne-iterations 250 --quiet";
  const auto [rc2, log2] = run(DML_REPRODUCE_EXE, common + " --pretrained \"" + weights.string() + "\"", tmp / "log2.txt");
  INFO("reproduce --pretrained output:\n" << log2);
  REQUIRE(rc2 == 0);
  const io::json::Value metrics = io::json::parse(read_text(out / "softmax" / "metrics.json"));
  CHECK(metrics.at("training").at("history").as_array().size() == 2);  // one frozen, one unfrozen epoch
  CHECK(metrics.at("training").at("frozen_epochs").as_int() == 1);
  // Weights of another width are refused with the file's name.
  const auto [rc3, log3] = run(DML_REPRODUCE_EXE, "--width 16 " + common.substr(0, common.find(" --width")) +
                                                      " --methods softmax --cases 0 --epochs 1 --quiet --pretrained \"" +
                                                      weights.string() + "\"", tmp / "log3.txt");
  CHECK(rc3 != 0);
  CHECK(log3.find("body.safetensors") != std::string::npos);
}

TEST_CASE("reproduce: --device, and batches cut to a training set smaller than one") {
  testing::TempDir tmp("dml_reproduce_device");
  const fs::path data = write_dataset(tmp);
  const std::string common = "--data \"" + data.string() + "\" --methods arc --cases 1 --width 4 --batch-size 128 "
                             "--tsne-iterations 50 --quiet --out \"" + (tmp / "results").string() + "\" ";

  // 120 training images, 60 of them in the anomaly case's known classes: batch 128 would leave
  // the loader (drop_last) without a single batch.
  const auto [rc, log] = run(DML_REPRODUCE_EXE, common + "--device cpu", tmp / "cpu.txt");
  INFO("reproduce output:\n" << log);
  REQUIRE(rc == 0);
  CHECK(log.find("batches of 120") != std::string::npos);
  CHECK(log.find("batches of 60") != std::string::npos);
  CHECK(read_text(tmp / "results" / "report.md").find("training and embedding on cpu") != std::string::npos);

  const auto [rc2, log2] = run(DML_REPRODUCE_EXE, common + "--device cuda", tmp / "cuda.txt");
  CHECK(rc2 != 0);
  CHECK(log2.find("this build has no CUDA; build the reproduce_cuda target") != std::string::npos);
  const auto [rc3, log3] = run(DML_REPRODUCE_EXE, common + "--device tpu", tmp / "tpu.txt");
  CHECK(rc3 != 0);
  CHECK(log3.find("option --device: expected cpu or cuda, got 'tpu'") != std::string::npos);

#ifdef DML_REPRODUCE_CUDA_EXE
  // The nvcc build: --device cpu trains on the host; --device cuda trains on a GPU or, without
  // one, stops with the reason.
  const auto [rc4, log4] = run(DML_REPRODUCE_CUDA_EXE, common + "--device cpu", tmp / "cuda_exe_cpu.txt");
  INFO("reproduce_cuda --device cpu output:\n" << log4);
  CHECK(rc4 == 0);
  const auto [rc5, log5] = run(DML_REPRODUCE_CUDA_EXE, common + "--device cuda", tmp / "cuda_exe_cuda.txt");
  INFO("reproduce_cuda --device cuda output:\n" << log5);
  if (rc5 != 0) {
    CHECK(log5.find("--device cuda: no usable GPU (") != std::string::npos);
    MESSAGE("reproduce_cuda --device cuda: no GPU here, the message was checked");
  } else {
    CHECK(read_text(tmp / "results" / "report.md").find("training and embedding on cuda (") != std::string::npos);
  }
#endif
}

// The rest of the first line of s that starts with `prefix` ("" when none does).
std::string line_after(const std::string& s, const std::string& prefix) {
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  return "";
}

TEST_CASE("train_mnist trains, saves a checkpoint that a second model loads, and writes the embeddings") {
  testing::TempDir tmp("dml_train_mnist_smoke");
  const fs::path data = write_dataset(tmp);
  const std::string in_tmp = "cd \"" + tmp.path.string() + "\" && ";  // it writes its files where it runs

  auto [rc, log] = run(DML_TRAIN_MNIST_EXE, "\"" + data.string() + "\"", tmp / "log1.txt", in_tmp);
  INFO("train_mnist output:\n" << log);
  REQUIRE(rc == 0);
  CHECK(count(log, "epoch     train_loss  valid_loss  accuracy  time\n") == 1);  // one fit of two epochs
  CHECK(log.find("\n0         ") != std::string::npos);
  CHECK(log.find("\n1         ") != std::string::npos);
  CHECK(log.find("\n2         ") == std::string::npos);

  // The second learner, loaded from the checkpoint, validates to the same digits as the first.
  const std::string trained = line_after(log, "trained: "), loaded = line_after(log, "loaded:  ");
  CHECK(trained.rfind("test accuracy ", 0) == 0);
  CHECK(trained.find(", valid loss ") != std::string::npos);
  CHECK(loaded == trained);

  const fs::path ckpt = tmp / "train_mnist.ckpt";
  REQUIRE(fs::is_regular_file(ckpt));
  const train::CheckpointFile f = train::read_checkpoint(ckpt);
  CHECK(io::json::parse(f.metadata.at("dml.history")).as_array().size() == 2);
  CHECK(f.tensors.count("loss.center.centers") == 1);  // the Center Loss term went in with its centres

  CHECK(log.find("embeddings [40, 512]: P@1 ") != std::string::npos);
  const io::NpyArray emb = io::load_npy(tmp / "embeddings.npy");
  CHECK(emb.dtype == io::DType::F32);
  CHECK(emb.shape == std::vector<std::int64_t>{40, 512});
  CHECK(io::load_npy(tmp / "labels.npy").shape == std::vector<std::int64_t>{40});

  // A missing data directory is one line naming it and a non-zero status.
  auto [rc2, log2] = run(DML_TRAIN_MNIST_EXE, "\"" + (tmp / "absent").string() + "\"", tmp / "log2.txt", in_tmp);
  INFO("train_mnist on a missing directory:\n" << log2);
  CHECK(rc2 != 0);
  CHECK(log2.rfind("train_mnist: ", 0) == 0);
  CHECK(log2.find("absent") != std::string::npos);
}

#if defined(DML_CLI_EXE)
TEST_CASE("dml: train, resume, embed, evaluate and anomaly from the command line; errors name the option") {
  testing::TempDir tmp("dml_cli_smoke");
  const fs::path data = write_dataset(tmp), run_dir = tmp / "run";
  const std::string small = " --width 8 --batch-size 16 --quiet";
  auto q = [](const fs::path& p) { return "\"" + p.string() + "\""; };

  auto [rc, log] = run(DML_CLI_EXE, "train --data " + q(data) + " --head arc --epochs 1 --out " + q(run_dir) + small,
                       tmp / "train.txt");
  INFO("dml train:\n" << log);
  REQUIRE(rc == 0);
  CHECK(log.find("(idx): 120 training and 40 held-out images of [1, 16, 16], 10 classes") != std::string::npos);
  CHECK(fs::is_regular_file(run_dir / "model.safetensors"));
  CHECK(fs::is_regular_file(run_dir / "checkpoint.safetensors"));
  CHECK(count(read_text(run_dir / "history.json"), "\"epoch\"") == 1);
  auto [rc2, log2] = run(DML_CLI_EXE, "train --data " + q(data) + " --head arc --epochs 2 --resume --out " + q(run_dir) + small,
                         tmp / "resume.txt");
  INFO("dml train --resume:\n" << log2);
  REQUIRE(rc2 == 0);
  CHECK(count(read_text(run_dir / "history.json"), "\"epoch\"") == 2);

  auto [rc3, log3] = run(DML_CLI_EXE, "embed --model " + q(run_dir) + " --data " + q(data) + " --out " + q(tmp / "e" / "emb.npy"),
                         tmp / "embed.txt");
  INFO("dml embed:\n" << log3);
  REQUIRE(rc3 == 0);
  CHECK(log3.find("[40, 512]") != std::string::npos);
  CHECK(fs::is_regular_file(tmp / "e" / "labels.npy"));
  auto [rc4, log4] = run(DML_CLI_EXE, "evaluate --tsne-iterations 50 --model " + q(run_dir) + " --data " + q(data) +
                                          " --out " + q(tmp / "report"), tmp / "evaluate.txt");
  INFO("dml evaluate:\n" << log4);
  REQUIRE(rc4 == 0);
  CHECK(read_text(tmp / "report" / "metrics.json").find("\"map_at_r\"") != std::string::npos);
  CHECK(fs::is_regular_file(tmp / "report" / "tsne_embeddings.svg"));
  CHECK(read_text(tmp / "report" / "report.md").find("| accuracy | P@1") != std::string::npos);

  // Errors: one line naming the option, status != 0.
  auto expect_error = [&](const std::string& args, const std::string& what) {
    auto [erc, elog] = run(DML_CLI_EXE, args, tmp / "err.txt");
    INFO(args << " ->\n" << elog);
    CHECK(erc != 0);
    CHECK(elog.find(what) != std::string::npos);
  };
  expect_error("train --data " + q(data), "option --out is required");
  expect_error("train --data " + q(data) + " --out x --bogus 1", "unknown option --bogus");
  expect_error("train --data " + q(data) + " --out x --epochs two", "--epochs must be an integer >= 1, got 'two'");
  expect_error("train --data " + q(data) + " --out x --head nope", "unknown method 'nope'");
  expect_error("embed --model " + q(tmp / "absent") + " --data " + q(data) + " --out x.npy", "no model at");
  expect_error("trian", "unknown command 'trian'");
  auto [hrc, help] = run(DML_CLI_EXE, "train --help", tmp / "help.txt");
  CHECK(hrc == 0);
  CHECK(help.find("--epochs X") != std::string::npos);
  CHECK(help.find("(default 2)") != std::string::npos);

#if defined(DML_CLI_HAS_IMAGE)
  // The image-folder path: export 8 of the 10 classes as PNGs, train on them, score all 10.
  const fs::path known = tmp / "known", all = tmp / "all", frun = tmp / "frun";
  auto [xrc, xlog] = run(DML_CLI_EXE, "export --data " + q(data) + " --classes 0,1,2,3,4,5,6,7 --out " + q(known), tmp / "x1.txt");
  INFO("dml export:\n" << xlog);
  REQUIRE(xrc == 0);
  CHECK(xlog.find("wrote 128 PNGs") != std::string::npos);  // 96 train + 32 test
  REQUIRE(run(DML_CLI_EXE, "export --data " + q(data) + " --out " + q(all), tmp / "x2.txt").first == 0);
  auto [frc, flog] = run(DML_CLI_EXE, "train --data " + q(known) + " --epochs 1 --out " + q(frun) + small, tmp / "ftrain.txt");
  INFO("dml train on a folder:\n" << flog);
  REQUIRE(frc == 0);
  CHECK(flog.find("image folder (train/valid)") != std::string::npos);
  // --decode batch decodes in the loader's prefetch thread: the same batches, so the same model.
  const fs::path brun = tmp / "brun";
  auto [brc, blog] = run(DML_CLI_EXE, "train --data " + q(known) + " --epochs 1 --decode batch --out " + q(brun) + small,
                         tmp / "btrain.txt");
  INFO("dml train --decode batch:\n" << blog);
  REQUIRE(brc == 0);
  CHECK(blog.find("decoded per batch in the loader") != std::string::npos);
  CHECK(read_text(brun / "model.safetensors") == read_text(frun / "model.safetensors"));
  expect_error("train --data " + q(known) + " --out x --decode lazy", "--decode must be load or batch, got 'lazy'");
  auto [arc, alog] = run(DML_CLI_EXE, "anomaly --model " + q(frun) + " --reference " + q(known) + " --data " + q(all) +
                                          " --fpr 0.1 --out " + q(tmp / "scores.csv"), tmp / "anomaly.txt");
  INFO("dml anomaly:\n" << alog);
  REQUIRE(arc == 0);
  CHECK(alog.find("threshold ") != std::string::npos);
  CHECK(alog.find("ROC-AUC ") != std::string::npos);
  const std::string csv = read_text(tmp / "scores.csv");
  CHECK(csv.rfind("index,file,class,score,anomalous\n", 0) == 0);
  CHECK(count(csv, "\n") == 41);  // the header and the 40 held-out images
#endif
}
#endif

#if defined(DML_CLI_EXE) && defined(DML_CLI_MPIEXEC)
TEST_CASE("dml train under mpirun: two ranks, one table, one model; resume needs the same rank count") {
  testing::TempDir tmp("dml_cli_mpi");
  const fs::path data = write_dataset(tmp), run_dir = tmp / "run";
  auto q = [](const fs::path& p) { return "\"" + p.string() + "\""; };
  const std::string mpirun = std::string("-np 2 ") + DML_CLI_MPIEXEC_FLAGS + " \"" + DML_CLI_EXE + "\" ";
  const std::string args = "train --data " + q(data) + " --head arc --out " + q(run_dir) + " --width 8 --batch-size 16";
  auto [rc, log] = run(DML_CLI_MPIEXEC, mpirun + args + " --epochs 1", tmp / "train.txt", "OMP_NUM_THREADS=1 ");
  INFO("mpirun dml train:\n" << log);
  REQUIRE(rc == 0);
  CHECK(count(log, "(idx): 120 training") == 1);  // rank 0 alone prints
  CHECK(count(log, "train_loss") == 1);
  CHECK(count(log, "saved ") == 1);
  CHECK(count(read_text(run_dir / "history.json"), "\"epoch\"") == 1);
  auto [rc2, log2] = run(DML_CLI_MPIEXEC, mpirun + args + " --epochs 2 --resume", tmp / "resume.txt",
                         "OMP_NUM_THREADS=1 ");
  INFO("mpirun dml train --resume:\n" << log2);
  REQUIRE(rc2 == 0);
  CHECK(count(read_text(run_dir / "history.json"), "\"epoch\"") == 2);
  auto [rc3, log3] = run(DML_CLI_EXE, args + " --epochs 3 --resume", tmp / "one.txt");
  INFO("dml train --resume in one process:\n" << log3);
  CHECK(rc3 != 0);
  CHECK(log3.find("checkpoint.safetensors") != std::string::npos);
}
#endif
