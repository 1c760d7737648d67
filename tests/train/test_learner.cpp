// Tests for dml/train: the Learner loop, freezing, callbacks, the non-finite
// loss error, the epoch table and progress, and exact resume from checkpoints.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dml/dml.hpp"
#include "dml/heads/margin_head.hpp"
#include "dml/losses/center_loss.hpp"
#include "dml/nn/nn.hpp"
#include "dml/optim/adam.hpp"
#include "dml/optim/sgd.hpp"
#include "dml/train/train.hpp"
#include "../support/temp_dir.hpp"
#include "mlp_body.hpp"

using namespace dml;
using dml::testing::TempDir;

namespace {

// Three classes of 1x8x8 images: class c is a bright 3x3 square at one of
// three places plus Gaussian noise, so a small network learns it in a few epochs.
data::Dataset squares(std::int64_t n, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<float> px;
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t c = i % 3;
    for (std::int64_t r = 0; r < 8; ++r)
      for (std::int64_t k = 0; k < 8; ++k) {
        const bool on = r >= 1 + 2 * c && r < 4 + 2 * c && k >= 2 && k < 5;
        px.push_back((on ? 1.5f : 0.0f) + 0.5f * static_cast<float>(gen.normal()));
      }
    labels.push_back(c);
  }
  return data::Dataset::from_vectors(px, Shape{1, 8, 8}, labels, 3);
}
data::Splits squares_splits() { return {squares(96, 1), squares(48, 2)}; }

// 64 -> 16 -> 8 with dropout 0.25: see mlp_body.hpp.
struct TinyBody : testing::MlpBody {
  explicit TinyBody(std::uint64_t seed) : MlpBody({64, 16, 8, 0.25, seed, seed + 7}) {}
};

train::LearnerOptions quiet_options() {
  train::LearnerOptions o;
  o.batch_size = 16;
  o.quiet = true;
  o.augment = {.pad = 1};
  o.seed = 11;
  return o;
}

std::vector<std::vector<float>> weights(const nn::Module<float, Cpu>& m) {
  std::vector<std::vector<float>> out;
  for (const auto& [name, entry] : m.state_dict())
    if (const auto* t = std::get_if<Tensor<float, Cpu>>(&entry)) out.push_back(t->to_vector());
  return out;
}

// A full run of the resume scenario: body, Sphere head (iteration buffer),
// Center Loss (centers), SGD with momentum, one-cycle schedule.
struct Run {
  explicit Run(std::uint64_t init_seed, heads::Sphere sphere = {}, train::LearnerOptions opts = quiet_options())
      : body(init_seed), head(8, 3, sphere, init_seed + 1), center(3, 8),
        learn(body, head, squares_splits(), optim::SGD{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4},
              std::move(opts)) {
    learn.add_loss(center, 0.125, "center");
  }
  TinyBody body;
  heads::MarginHead<heads::Sphere> head;
  losses::CenterLoss<float, Cpu> center;
  train::Learner<float, Cpu> learn;
};

}  // namespace

TEST_CASE("format_time, SmoothedLoss and EpochTable print as fastai does") {
  CHECK(train::format_time(7.2) == "00:07");
  CHECK(train::format_time(754) == "12:34");
  CHECK(train::format_time(3723) == "1:02:03");
  train::SmoothedLoss s;
  s.add(2.0);
  CHECK(s.value() == doctest::Approx(2.0));  // debiased: the first value is itself
  s.add(1.0);
  CHECK(s.value() == doctest::Approx((0.98 * 0.02 * 2 + 0.02 * 1) / (1 - 0.98 * 0.98)));
  std::ostringstream out;
  train::EpochTable t(out, {"epoch", "train_loss", "valid_loss", "accuracy", "time"});
  t.header();
  t.row({"0", train::EpochTable::number(0.25), "#na#", train::EpochTable::number(1), "00:01"});
  CHECK(out.str() ==
        "epoch     train_loss  valid_loss  accuracy  time\n"
        "0         0.250000    #na#        1.000000  00:01\n");
  CHECK_THROWS_AS(t.row({"0"}), Error);
}

TEST_CASE("the Learner trains a small network: loss falls and accuracy rises by set margins") {
  TinyBody body(3);
  heads::MarginHead<heads::Softmax> head(8, 3, {}, 4);
  train::Learner learn(body, head, squares_splits(), optim::Adam{.lr = 1e-2}, quiet_options());
  static_assert(std::is_same_v<decltype(learn), train::Learner<float, Cpu>>);
  const train::EpochStats before = learn.validate();
  learn.fit(4);
  const auto& h = learn.history();
  REQUIRE(h.size() == 4);
  CHECK(h.back().train_loss < h.front().train_loss - 0.3);
  CHECK(h.back().valid_loss < before.valid_loss - 0.5);
  CHECK(h.back().accuracy >= 0.9);
  CHECK(h.back().accuracy >= before.accuracy + 0.3);
  for (std::size_t i = 0; i < h.size(); ++i) CHECK(h[i].epoch == static_cast<std::int64_t>(i));
  CHECK(body.is_training());  // validation restored the mode

  // predict: inference logits in dataset order, whose argmax scores as validate() does.
  Tensor<float, Cpu> logits = learn.predict(learn.data().test);
  REQUIRE(logits.shape() == Shape{48, 3});
  const std::vector<float> v = logits.to_vector();
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < 48; ++i) {
    const float* r = v.data() + i * 3;
    correct += (std::max_element(r, r + 3) - r) == learn.data().test.labels[static_cast<std::size_t>(i)];
  }
  CHECK(static_cast<double>(correct) / 48 == doctest::Approx(learn.validate().accuracy));
}

TEST_CASE("the same seeds give bitwise identical training") {
  auto train_once = [] {
    TinyBody body(5);
    heads::MarginHead<heads::Arc> head(8, 3, {}, 6);
    train::Learner learn(body, head, squares_splits(), optim::AdamW{.lr = 3e-3}, quiet_options());
    learn.fit_one_cycle(2);
    auto w = weights(body);
    for (auto& x : weights(head)) w.push_back(x);
    return w;
  };
  CHECK(train_once() == train_once());
}

TEST_CASE("the epoch table, progress lines, and quiet") {
  TinyBody body(3);
  heads::MarginHead<heads::Softmax> head(8, 3, {}, 4);
  std::ostringstream out;
  train::LearnerOptions o = quiet_options();
  o.quiet = false;
  o.progress = train::Progress::Lines;
  o.out = &out;
  train::Learner learn(body, head, squares_splits(), optim::Adam{.lr = 1e-2}, o);
  learn.fit(2);
  const std::string s = out.str();
  CHECK(s.rfind("epoch     train_loss  valid_loss  accuracy  time\n", 0) == 0);
  CHECK(s.find("\n0         ") != std::string::npos);
  CHECK(s.find("\n1         ") != std::string::npos);
  CHECK(s.find("epoch 1/2: 6/6 batches") != std::string::npos);  // 96 / 16 batches
  CHECK(s.find("\r") == std::string::npos);                      // lines, not a bar

  std::ostringstream none;
  o.quiet = true;
  o.out = &none;
  train::Learner silent(body, head, squares_splits(), optim::Adam{.lr = 1e-2}, o);
  silent.fit(1);
  CHECK(none.str().empty());
}

TEST_CASE("callbacks see every batch and can stop training early") {
  TinyBody body(3);
  heads::MarginHead<heads::Softmax> head(8, 3, {}, 4);
  train::Learner learn(body, head, squares_splits(), optim::SGD{.lr = 0.05}, quiet_options());
  std::vector<train::BatchInfo> seen;
  std::vector<std::int64_t> epochs;
  learn.add_callback({.on_batch_end = [&](auto&, const train::BatchInfo& b) { seen.push_back(b); },
                      .on_epoch_end = [&](auto& l, const train::EpochStats& s) {
                        epochs.push_back(s.epoch);
                        if (s.epoch == 1) l.stop();
                      }});
  learn.fit(5);
  CHECK(epochs == std::vector<std::int64_t>{0, 1});
  CHECK(learn.history().size() == 2);
  REQUIRE(seen.size() == 12);
  CHECK(seen[7].epoch == 1);
  CHECK(seen[7].batch == 1);
  CHECK(seen[7].batches == 6);
  CHECK(seen[7].step == 8);
  CHECK(seen[7].total_steps == 30);
  CHECK(seen[7].lr == doctest::Approx(0.05));
}

TEST_CASE("freeze trains only the head and BatchNorm of the body; unfreeze trains everything") {
  nn::ResNet18<float, Cpu> body({.in_channels = 1, .embedding = 8, .width = 4, .blocks = {1, 1, 1, 1}, .seed = 1});
  heads::MarginHead<heads::Cos> head(8, 3, {}, 2);
  train::Learner learn(body, head, squares_splits(), optim::SGD{.lr = 0.05, .momentum = 0.9}, quiet_options());
  auto value = [&](const std::string& name) { return body.state_dict().tensor(name).to_vector(); };
  const auto conv0 = value("conv1.weight"), bn0 = value("layer1.0.bn1.weight"), lin0 = value("head.4.weight");
  learn.freeze();
  CHECK(learn.frozen());
  CHECK_FALSE(body.conv1.weight().requires_grad());
  learn.fit(1);
  CHECK(value("conv1.weight") == conv0);
  CHECK(value("layer1.0.bn1.weight") != bn0);
  CHECK(value("head.4.weight") != lin0);
  learn.unfreeze();
  learn.fit(1);
  CHECK(value("conv1.weight") != conv0);
}

TEST_CASE("a non-finite loss stops training with an error naming epoch, batch and term") {
  data::Splits d = squares_splits();
  d.train.images.data()[5 * 64 + 36] = std::numeric_limits<float>::quiet_NaN();  // the centre pixel of row 5
  TinyBody body(3);
  heads::MarginHead<heads::Softmax> head(8, 3, {}, 4);
  train::Learner learn(body, head, d, optim::SGD{.lr = 0.05}, quiet_options());
  try {
    learn.fit(1);
    FAIL("no error");
  } catch (const Error& e) {
    const std::string msg = e.message();
    CHECK(msg.find("non-finite loss at epoch 0, batch ") != std::string::npos);
    CHECK(msg.find("cross_entropy = nan") != std::string::npos);
    CHECK(msg.find("dml::DetectAnomaly") != std::string::npos);  // points to the anomaly mode
  }
  // Under the guard the same fit stops at the first op that met the NaN, which names it.
  TinyBody body2(3);
  heads::MarginHead<heads::Softmax> head2(8, 3, {}, 4);
  train::Learner learn2(body2, head2, d, optim::SGD{.lr = 0.05}, quiet_options());
  DetectAnomaly guard;
  try {
    learn2.fit(1);
    FAIL("no error");
  } catch (const Error& e) {
    const std::string msg = e.message();
    INFO(msg);
    CHECK(msg.rfind("DetectAnomaly: op '", 0) == 0);
    CHECK(msg.find("input 0 already held nan") != std::string::npos);
  }
}

// Bitwise equality of everything a run leaves behind.
static void check_same(Run& got, Run& want) {
  CHECK(weights(got.body) == weights(want.body));
  CHECK(weights(got.head) == weights(want.head));
  CHECK(got.head.iteration() == want.head.iteration());
  CHECK(got.center.centers().to_vector() == want.center.centers().to_vector());
  CHECK(got.body.drop.generator().state().counter == want.body.drop.generator().state().counter);
  const auto sa = want.learn.optimizer().state_dict(), sb = got.learn.optimizer().state_dict();
  CHECK(sa.keys() == sb.keys());
  for (const auto& key : sa.keys())
    if (const auto* ta = std::get_if<Tensor<float, Cpu>>(&sa.at(key))) CHECK(ta->to_vector() == sb.tensor(key).to_vector());
  REQUIRE(got.learn.history().size() == want.learn.history().size());
  for (std::size_t i = 0; i < want.learn.history().size(); ++i) {
    CHECK(got.learn.history()[i].train_loss == want.learn.history()[i].train_loss);
    CHECK(got.learn.history()[i].valid_loss == want.learn.history()[i].valid_loss);
  }
}

TEST_CASE("resume is exact: a stopped run saved, then resumed by fresh objects, ends bitwise as the straight run") {
  TempDir dir("dml_learner");
  Run straight(21);
  straight.learn.fit_one_cycle(2);

  // Stops and saves after batch `stop_batch` of epoch 1, or at the end of epoch 0 when it is -1.
  auto stopped = [&](std::int64_t stop_batch) {
    Run first(21);
    train::Callback<float, Cpu> cb;
    if (stop_batch < 0) {
      cb.on_epoch_end = [&](auto& l, const train::EpochStats&) {
        l.stop();
        l.save_checkpoint(dir / "ckpt");
      };
    } else {
      cb.on_batch_end = [&](auto& l, const train::BatchInfo& b) {
        if (b.epoch == 1 && b.batch == stop_batch) {
          l.stop();
          l.save_checkpoint(dir / "ckpt");
        }
      };
    }
    first.learn.add_callback(cb);
    first.learn.fit_one_cycle(2);
    CHECK(first.learn.history().size() == 1);
  };

  SUBCASE("stopped at an epoch boundary") { stopped(-1); }
  SUBCASE("stopped in the middle of an epoch") { stopped(3); }
  Run second(999);  // other initial weights: everything must come from the file
  second.learn.resume(dir / "ckpt");
  check_same(second, straight);
}

TEST_CASE("LearnerOptions::balanced trains on P x K batches and resumes exactly mid-epoch") {
  TempDir dir("dml_learner");
  train::LearnerOptions o = quiet_options();
  o.batch_size = 6;
  o.balanced = data::ClassBalanced{.classes_per_batch = 2, .samples_per_class = 3};
  Run straight(21, {}, o);
  std::int64_t batches = 0;
  straight.learn.add_callback({.on_batch_end = [&](auto&, const train::BatchInfo& b) {
    CHECK(b.batches == 16);  // floor(96 / 6)
    ++batches;
  }});
  straight.learn.fit_one_cycle(2);
  CHECK(batches == 32);

  Run first(21, {}, o);
  first.learn.add_callback({.on_batch_end = [&](auto& l, const train::BatchInfo& b) {
    if (b.epoch == 1 && b.batch == 5) {
      l.stop();
      l.save_checkpoint(dir / "ckpt");
    }
  }});
  first.learn.fit_one_cycle(2);
  Run second(999, {}, o);
  second.learn.resume(dir / "ckpt");
  check_same(second, straight);

  // A checkpoint of balanced batches is refused by a learner that shuffles (and names the file).
  train::LearnerOptions shuffled = quiet_options();
  shuffled.batch_size = 6;
  Run other(5, {}, shuffled);
  CHECK_THROWS_WITH_AS(other.learn.load_checkpoint(dir / "ckpt"),
                       doctest::Contains("ckpt: checkpoint entry 'dml.loader': 'classes_per_batch' x "
                                         "'samples_per_class': expected none (shuffled batches), found 2 x 3 "
                                         "(class-balanced batches)"),
                       Error);
  o.batch_size = 16;
  CHECK_THROWS_WITH_AS(Run(1, {}, o), doctest::Contains("batch_size 16 disagrees with balanced"), Error);
}

TEST_CASE("fit(1), save, load into fresh objects, fit(1) equals fit(2) with a constant lr") {
  TempDir dir("dml_learner");
  // Each fit plans SphereFace's lambda over its own length (as one-cycle plans the lr), so
  // two fits equal one only with the reference's fixed schedule.
  const heads::Sphere fixed{.anneal_fraction = 0};
  Run a(21, fixed), b(21, fixed);
  a.learn.fit(2);
  b.learn.fit(1);
  b.learn.save_checkpoint(dir / "ckpt");
  Run c(5, fixed);
  c.learn.load_checkpoint(dir / "ckpt");
  c.learn.fit(1);
  check_same(c, a);
}

TEST_CASE("a corrupt or mismatched checkpoint is a clear error and changes nothing") {
  TempDir dir("dml_learner");
  Run a(21);
  a.learn.fit(1);
  a.learn.save_checkpoint(dir / "ckpt");
  a.learn.save_checkpoint(dir / "ckpt");
  CHECK(std::filesystem::exists(dir / "ckpt.prev"));

  Run b(3);
  const auto before = weights(b.body);
  SUBCASE("truncated") {
    std::filesystem::resize_file(dir / "ckpt", std::filesystem::file_size(dir / "ckpt") - 10);
    CHECK_THROWS_WITH_AS(b.learn.load_checkpoint(dir / "ckpt"), doctest::Contains("ckpt"), Error);
  }
  SUBCASE("missing") {
    CHECK_THROWS_WITH_AS(b.learn.load_checkpoint(dir / "nope"), doctest::Contains("nope"), Error);
  }
  SUBCASE("plain weights, not a checkpoint") {
    nn::save_weights(b.body, dir / "weights.safetensors");
    CHECK_THROWS_WITH_AS(b.learn.load_checkpoint(dir / "weights.safetensors"),
                         doctest::Contains("not a dml checkpoint"), Error);
  }
  SUBCASE("another optimiser") {
    TinyBody body(1);
    heads::MarginHead<heads::Sphere> head(8, 3, {}, 2);
    losses::CenterLoss<float, Cpu> center(3, 8);
    train::Learner other(body, head, squares_splits(), optim::Adam{}, quiet_options());
    other.add_loss(center, 0.125, "center");
    CHECK_THROWS_WITH_AS(other.load_checkpoint(dir / "ckpt"), doctest::Contains("SGD"), Error);
  }
  SUBCASE("another head shape: rolled back") {
    // Body loads first, then the head's shape mismatch is refused: the body must be restored.
    TinyBody body(3);
    heads::MarginHead<heads::Sphere> head(8, 4, {}, 2);
    losses::CenterLoss<float, Cpu> center(3, 8);
    train::Learner other(body, head, squares_splits(), optim::SGD{.lr = 0.05, .momentum = 0.9}, quiet_options());
    other.add_loss(center, 0.125, "center");
    const auto body_before = weights(body);
    CHECK_THROWS_WITH_AS(other.load_checkpoint(dir / "ckpt"), doctest::Contains("weight"), Error);
    CHECK(weights(body) == body_before);
  }
  CHECK(weights(b.body) == before);
}

TEST_CASE("the recipe's schedules: an extra loss's warm-up ramps its weight, and a fit plans SphereFace's lambda to its minimum") {
  TinyBody body(5);
  heads::MarginHead<heads::Sphere> head(8, 3, {}, 6);
  losses::CenterLoss<float, Cpu> center(3, 8);
  train::Learner learn(body, head, squares_splits(), optim::SGD{.lr = 0.01, .momentum = 0.9}, quiet_options());
  learn.add_loss(center, 0.5, "center", 0.5);  // 96 / 16 = 6 steps an epoch: 2 epochs = 12, ramp over 6
  std::vector<double> weights_seen, lambdas;
  learn.add_callback({.on_batch_end = [&](train::Learner<float, Cpu>& l, const train::BatchInfo&) {
    weights_seen.push_back(l.loss_weight("center"));
    lambdas.push_back(head.policy().lambda);
  }});
  CHECK(learn.loss_weight("center") == doctest::Approx(0.5));  // no fit planned yet: the full weight
  learn.fit_one_cycle(2);
  REQUIRE(weights_seen.size() == 12);
  // After step k (1-based) the next step uses 0.5 * min(1, (k + 1) / 6).
  for (std::size_t k = 1; k <= weights_seen.size(); ++k)
    CHECK(weights_seen[k - 1] == doctest::Approx(0.5 * std::min(1.0, static_cast<double>(k + 1) / 6.0)));
  // Half of the 12 steps anneal lambda; it is at lambda_min from step 6 on, and still there at the end.
  CHECK(lambdas[4] > 5);
  CHECK(lambdas[5] == doctest::Approx(5));
  CHECK(lambdas.back() == doctest::Approx(5));
  CHECK_THROWS_WITH_AS(learn.loss_weight("nope"), doctest::Contains("no loss named 'nope'"), Error);
  heads::MarginHead<heads::Sphere> h2(8, 3);
  losses::CenterLoss<float, Cpu> c2(3, 8);
  TinyBody b2(5);
  train::Learner l2(b2, h2, squares_splits(), optim::SGD{.lr = 0.01}, quiet_options());
  CHECK_THROWS_WITH_AS(l2.add_loss(c2, 0.5, "center", 1.5), doctest::Contains("warmup must lie in [0, 1]"), Error);
}

TEST_CASE("lr_scales: matched parameters train at a fraction of the lr, through every schedule") {
  // One step of plain SGD from the same start on the same batch: fc1's update is a quarter of
  // the unscaled run's, fc2's the same (to float rounding of weight - weight: a few 1e-8).
  auto first_step = [](std::vector<train::LrScale> scales) {
    TinyBody body(5);
    heads::MarginHead<heads::Softmax> head(8, 3, {}, 6);
    train::LearnerOptions o = quiet_options();
    o.lr_scales = std::move(scales);
    train::Learner learn(body, head, squares_splits(), optim::SGD{.lr = 0.05}, o);
    const auto fc1 = body.fc1.weight().to_vector(), fc2 = body.fc2.weight().to_vector();
    learn.add_callback({.on_batch_end = [](auto& l, const train::BatchInfo&) { l.stop(); }, .on_epoch_end = {}});
    learn.fit(1);
    std::vector<float> d1 = body.fc1.weight().to_vector(), d2 = body.fc2.weight().to_vector();
    for (std::size_t i = 0; i < d1.size(); ++i) d1[i] -= fc1[i];
    for (std::size_t i = 0; i < d2.size(); ++i) d2[i] -= fc2[i];
    return std::pair{d1, d2};
  };
  const auto [plain1, plain2] = first_step({});
  const auto [scaled1, scaled2] = first_step({{"body.fc1.", 0.25}});
  double moved = 0;
  for (std::size_t i = 0; i < plain1.size(); ++i) {
    CHECK(scaled1[i] == doctest::Approx(0.25 * plain1[i]).epsilon(1e-3).scale(1e-4));
    moved += std::abs(plain1[i]);
  }
  CHECK(moved > 0);
  for (std::size_t i = 0; i < plain2.size(); ++i) CHECK(scaled2[i] == doctest::Approx(plain2[i]).epsilon(1e-3).scale(1e-4));

  // Through a one-cycle fit with max_lr: every group keeps its ratio at every step.
  TinyBody body(5);
  heads::MarginHead<heads::Softmax> head(8, 3, {}, 6);
  train::LearnerOptions o = quiet_options();
  o.lr_scales = {{"body.fc1.", 0.1}, {"body.bn.", 0.5}};
  train::Learner learn(body, head, squares_splits(), optim::SGD{.lr = 0.05, .momentum = 0.9}, o);
  std::int64_t checked = 0;
  learn.add_callback({.on_batch_end = [&](auto& l, const train::BatchInfo&) {
    optim::Optimizer<float, Cpu>& opt = l.optimizer();
    REQUIRE(opt.num_groups() == 5);  // unscaled (decay, no decay), fc1 (decay, no decay), bn (no decay)
    for (std::size_t g = 0; g < opt.num_groups(); ++g) {
      const double ratio = opt.base_lr(g) / 0.05;
      CHECK(opt.lr(g) == doctest::Approx(opt.lr(0) * ratio));
    }
    CHECK(opt.base_lr(2) == doctest::Approx(0.005));
    CHECK(opt.base_lr(4) == doctest::Approx(0.025));
    ++checked;
  }, .on_epoch_end = {}});
  learn.fit_one_cycle(1, 0.2);
  CHECK(checked == 6);

  // resnet_lr_scales: geometric steps from the stem to layer4.
  const std::vector<train::LrScale> r = train::resnet_lr_scales(0.1);
  REQUIRE(r.size() == 5);
  CHECK(r[0].prefix == "body.conv1.");
  CHECK(r[3].scale == doctest::Approx(std::pow(0.1, 2.0 / 3.0)));

  // Errors: a prefix that matches nothing (at the first fit), a bad scale (at once).
  TinyBody b2(5);
  heads::MarginHead<heads::Softmax> h2(8, 3, {}, 6);
  train::LearnerOptions bad = quiet_options();
  bad.lr_scales = {{"body.layer9.", 0.1}};
  train::Learner l2(b2, h2, squares_splits(), optim::SGD{.lr = 0.05}, bad);
  CHECK_THROWS_WITH_AS(l2.fit(1), doctest::Contains("prefix 'body.layer9.' matches no parameter"), Error);
  bad.lr_scales = {{"body.fc1.", 0.0}};
  CHECK_THROWS_WITH_AS(train::Learner(b2, h2, squares_splits(), optim::SGD{.lr = 0.05}, bad),
                       doctest::Contains("finite scale > 0"), Error);
}

TEST_CASE("a learner without a head trains an embedding loss on balanced batches") {
  TinyBody body(3);
  train::LearnerOptions o = quiet_options();
  o.batch_size = 12;
  o.balanced = data::ClassBalanced{.classes_per_batch = 3, .samples_per_class = 4};
  losses::MultiSimilarity<miners::MultiSimilarity> ms;
  train::Learner learn(body, squares_splits(), optim::Adam{.lr = 1e-2}, o);
  static_assert(std::is_same_v<decltype(learn), train::Learner<float, Cpu>>);
  CHECK_THROWS_WITH_AS(learn.fit(1), doctest::Contains("a learner without a head trains the losses given to add_loss"),
                       Error);
  learn.add_loss(ms, 1.0, "ms");
  const double before = learn.validate().valid_loss;
  learn.fit(6);
  const auto& h = learn.history();
  REQUIRE(h.size() == 6);
  CHECK(std::isnan(h.back().accuracy));  // no head, no logits
  CHECK(h.back().train_loss < h.front().train_loss - 0.2);
  CHECK(h.back().valid_loss < before - 0.3);
  CHECK_THROWS_WITH_AS(learn.predict(learn.data().test), doctest::Contains("has no head"), Error);
  // The embeddings separate the classes: leave-one-out P@1 on the test set.
  const Tensor<float, Cpu> e = eval::embed(body, learn.data().test);
  const std::vector<float> v = e.to_vector();
  const auto rep = eval::retrieval(v.data(), e.dim(0), e.dim(1), learn.data().test.labels);
  CHECK(rep.precision_at_1 >= 0.9);
}

TEST_CASE("a headless learner with a proxy loss checkpoints its proxies and resumes exactly") {
  TempDir dir;
  TinyBody b1(5), b2(5);
  losses::ProxyAnchor<> p1(3, 8), p2(3, 8, {}, 99);  // different initial proxies: the checkpoint must restore them
  train::Learner<float, Cpu> straight(b1, squares_splits(), optim::SGD{.lr = 0.05, .momentum = 0.9},
                                     quiet_options());
  straight.add_loss(p1, 1.0, "proxy");
  straight.fit(1);
  straight.save_checkpoint(dir.path / "ckpt.safetensors");
  straight.fit(1);
  train::Learner<float, Cpu> resumed(b2, squares_splits(), optim::SGD{.lr = 0.05, .momentum = 0.9},
                                     quiet_options());
  resumed.add_loss(p2, 1.0, "proxy");
  resumed.load_checkpoint(dir.path / "ckpt.safetensors");
  resumed.fit(1);
  CHECK(weights(b2) == weights(b1));
  CHECK(p2.proxies().to_vector() == p1.proxies().to_vector());
}
