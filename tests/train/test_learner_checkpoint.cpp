// Tests for dml/train/learner_checkpoint.hpp: Learner::load_checkpoint refuses
// a hand-edited checkpoint (a tensor of another shape or dtype under any
// prefix, a metadata field out of range or of the wrong JSON type) before it
// changes anything, with a message that names the file, the full key or the
// field, and expected against found.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

#include "dml/dml.hpp"
#include "dml/heads/margin_head.hpp"
#include "dml/losses/center_loss.hpp"
#include "dml/optim/sgd.hpp"
#include "dml/train/train.hpp"
#include "../support/temp_dir.hpp"
#include "mlp_body.hpp"

namespace test_learner_checkpoint {

using namespace dml;
using dml::testing::TempDir;
namespace json = io::json;

// Body 16 -> 12 -> 6 (BatchNorm, dropout), SphereFace head (an int64 buffer),
// Center Loss, SGD with momentum; 48 samples in batches of 8: 6 batches an epoch.
struct Run {
  explicit Run(std::uint64_t seed)
      : body({16, 12, 6, 0.2, seed, seed + 1}), head(6, 3, {}, seed + 2), center(3, 6),
        learn(body, head, {testing::three_rows(48, 1), testing::three_rows(12, 2)}, optim::SGD{.lr = 0.05, .momentum = 0.9}, options()) {
    learn.add_loss(center, 0.125, "center");
  }
  static train::LearnerOptions options() {
    train::LearnerOptions o;
    o.batch_size = 8;
    o.quiet = true;
    o.seed = 3;
    return o;
  }
  // Everything a load may change, as text.
  std::string fingerprint() {
    std::string out;
    auto add = [&](const auto& sd) {
      for (const auto& item : sd) {
        out += item.first + "=";
        std::visit([&](const auto& t) {
          for (auto v : t.to_vector()) out += std::to_string(static_cast<double>(v)) + ",";
        }, item.second);
        out += ";";
      }
    };
    for (nn::Module<float, Cpu>* m : std::initializer_list<nn::Module<float, Cpu>*>{&body, &head, &center})
      add(m->state_dict());
    add(learn.optimizer().state_dict());
    out += "epoch=" + std::to_string(learn.epoch()) + ";history=" + std::to_string(learn.history().size());
    out += ";frozen=" + std::to_string(learn.frozen());
    out += ";drop=" + std::to_string(body.drop.generator().state().counter);
    return out;
  }
  testing::MlpBody body;
  heads::MarginHead<heads::Sphere> head;
  losses::CenterLoss<float, Cpu> center;
  train::Learner<float, Cpu> learn;
};

// rows x cols floats, all 0.5.
io::RawTensor floats(std::vector<std::int64_t> shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return io::RawTensor::from(std::vector<float>(static_cast<std::size_t>(n), 0.5f), std::move(shape));
}
// Sets field `key` of the JSON object in metadata entry `entry` (a path through nested objects).
void set_json(train::CheckpointFile& f, const std::string& entry, const std::vector<std::string>& path, json::Value v) {
  json::Value root = json::parse(f.metadata.at(entry));
  json::Value* at = &root;
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    at = const_cast<json::Value*>(at->find(path[i]));
    REQUIRE(at != nullptr);
  }
  at->set(path.back(), std::move(v));
  f.metadata[entry] = json::dump(root);
}

TEST_CASE("load_checkpoint names the file, the full key or field, expected and found; the learner stays as it was") {
  TempDir dir("dml_learner_ckpt");
  const auto good = dir / "good.ckpt";
  {
    // Stopped after batch 2 of epoch 1 of a 3-epoch one-cycle fit: step 9 of 18, 9 batches left.
    Run a(1);
    a.learn.add_callback({.on_batch_end = [&](auto& l, const train::BatchInfo& b) {
                            if (b.epoch == 1 && b.batch == 2) {
                              l.stop();
                              l.save_checkpoint(good);
                            }
                          },
                          .on_epoch_end = {}});
    a.learn.fit_one_cycle(3);
  }
  const train::CheckpointFile base = train::read_checkpoint(good);
  Run b(7);
  b.learn.fit(1);  // some state of its own: optimiser buffers, history, an epoch
  const std::string before = b.fingerprint();

  struct Case {
    std::string what;
    std::function<void(train::CheckpointFile&)> edit;
    std::string expect;  // after "<file>: "
  };
  const std::string into = "load_checkpoint into Learner: ";
  const std::vector<Case> cases = {
      {"a head weight of another shape", [](auto& f) { f.tensors["head.weight"] = floats({3, 7}); },
       into + "'head.weight': expected F32 [3, 6], found F32 [3, 7]"},
      {"a body weight in another dtype",
       [](auto& f) { f.tensors["body.fc1.weight"] = io::RawTensor::from(std::vector<double>(12 * 16, 0.5), {12, 16}); },
       into + "'body.fc1.weight': expected F32 [12, 16], found F64 [12, 16]"},
      {"a float in an int64 buffer", [](auto& f) { f.tensors["head.iteration"] = floats({1}); },
       into + "'head.iteration': expected I64 [1], found F32 [1]"},
      {"an extra loss's buffer", [](auto& f) { f.tensors["loss.center.centers"] = floats({4, 6}); },
       into + "'loss.center.centers': expected F32 [3, 6], found F32 [4, 6]"},
      {"an optimiser buffer", [](auto& f) { f.tensors["optim.body.fc2.weight.momentum_buffer"] = floats({6, 11}); },
       into + "'optim.body.fc2.weight.momentum_buffer': expected F32 [6, 12], found F32 [6, 11]"},
      {"a negative step count",
       [](auto& f) { f.tensors["optim.steps"] = io::RawTensor::from(std::vector<std::int64_t>{-1}, {}); },
       into + "'optim.steps': expected a value >= 0, found -1"},
      {"a missing and an unexpected tensor",
       [](auto& f) {
         f.tensors.erase("body.bn.running_mean");
         f.tensors["loss.other.centers"] = floats({3, 6});
         f.tensors["optim.body.fc9.weight.momentum_buffer"] = floats({6, 12});
       },
       into + "missing keys: body.bn.running_mean; unexpected keys: loss.other.centers, "
              "optim.body.fc9.weight.momentum_buffer (a checkpoint of a learner with other extra losses?)"},
      {"two problems at once",
       [](auto& f) {
         f.tensors["head.weight"] = floats({3, 7});
         f.tensors.erase("body.fc2.bias");
       },
       into + "'head.weight': expected F32 [3, 6], found F32 [3, 7]; missing keys: body.fc2.bias"},
      {"another element type", [](auto& f) { f.metadata["dml.element"] = "double"; },
       "checkpoint entry 'dml.element': expected float (this learner's element type), found double"},
      {"step past total", [](auto& f) { set_json(f, "dml.plan", {"step"}, 19); },
       "checkpoint entry 'dml.plan': 'step': expected an integer in 0..18, found 19"},
      {"step of the wrong JSON type", [](auto& f) { set_json(f, "dml.plan", {"step"}, "9"); },
       "checkpoint entry 'dml.plan': 'step': expected an integer in 0..18, found the string \"9\""},
      {"a negative loss count", [](auto& f) { set_json(f, "dml.plan", {"loss_count"}, -2); },
       "checkpoint entry 'dml.plan': 'loss_count': expected an integer >= 0, found -2"},
      {"a step that disagrees with the loader", [](auto& f) { set_json(f, "dml.plan", {"step"}, 8); },
       "checkpoint entry 'dml.plan': 'step': expected 9 (total 18 minus the 9 batches dml.loader has left to "
       "end_epoch 3), found 8"},
      {"an active fit that already ended", [](auto& f) { set_json(f, "dml.plan", {"end_epoch"}, 1); },
       "checkpoint entry 'dml.plan': 'end_epoch': expected > 1 (the loader's epoch in dml.loader, the fit being "
       "active), found 1"},
      {"a schedule field out of range", [](auto& f) { set_json(f, "dml.plan", {"schedule", "pct_start"}, 1.5); },
       "checkpoint entry 'dml.plan': 'schedule': 'pct_start': expected a number in [0, 1), found 1.5"},
      {"a loader position past the epoch", [](auto& f) { set_json(f, "dml.loader", {"position"}, 7); },
       "checkpoint entry 'dml.loader': 'position': expected an integer in 0..6, found 7"},
      {"another training set size", [](auto& f) { set_json(f, "dml.loader", {"dataset_size"}, 50); },
       "checkpoint entry 'dml.loader': 'dataset_size': expected 48 (this learner's training set), found 50"},
      {"a negative epoch", [](auto& f) { set_json(f, "dml.loader", {"epoch"}, -1); },
       "checkpoint entry 'dml.loader': 'epoch': expected an integer >= 0, found -1"},
      {"a batch size as a double", [](auto& f) { set_json(f, "dml.loader", {"batch_size"}, 8.0); },
       "checkpoint entry 'dml.loader': 'batch_size': expected an integer >= 1, found 8.0"},
      {"a class-balanced loader state", [](auto& f) {
         set_json(f, "dml.loader", {"classes_per_batch"}, 2);
         set_json(f, "dml.loader", {"samples_per_class"}, 4);
       },
       "checkpoint entry 'dml.loader': 'classes_per_batch' x 'samples_per_class': expected none (shuffled batches), "
       "found 2 x 4 (class-balanced batches)"},
      {"a history accuracy above 1",
       [](auto& f) {
         json::Value h = json::parse(f.metadata.at("dml.history"));
         h.as_array()[0].as_array()[3] = 1.5;
         f.metadata["dml.history"] = json::dump(h);
       },
       "checkpoint entry 'dml.history': row 0: 'accuracy': expected a number in [0, 1] or null, found 1.5"},
      {"a missing generator",
       [](auto& f) {
         json::Value g = json::parse(f.metadata.at("dml.generators"));
         json::Object& o = g.as_object();
         auto it = std::find_if(o.begin(), o.end(), [](const auto& kv) { return kv.first == "body.drop.generator"; });
         REQUIRE(it != o.end());
         o.erase(it);
         f.metadata["dml.generators"] = json::dump(g);
       },
       "checkpoint entry 'dml.generators': missing keys: body.drop.generator"},
      {"a generator counter as a number",
       [](auto& f) { set_json(f, "dml.generators", {"body.drop.generator", "counter"}, 5); },
       "checkpoint entry 'dml.generators': 'body.drop.generator': 'counter': expected an unsigned integer as a "
       "decimal string, found 5"},
      {"a frozen flag that is not a bool", [](auto& f) { f.metadata["dml.frozen"] = "yes"; },
       "checkpoint entry 'dml.frozen': expected \"true\" or \"false\", found \"yes\""},
  };
  int k = 0;
  for (const Case& c : cases) {
    const auto path = dir / ("edited" + std::to_string(k++) + ".ckpt");
    train::CheckpointFile f = base;
    c.edit(f);
    train::write_checkpoint(path, f);
    std::string msg = "no error";
    try {
      b.learn.load_checkpoint(path);
    } catch (const Error& e) {
      msg = e.what();
    }
    INFO(c.what, ": ", msg);
    CHECK(msg == path.string() + ": " + c.expect);
    CHECK(b.fingerprint() == before);
  }
  // The file they were all made from loads.
  b.learn.load_checkpoint(good);
  CHECK(b.learn.epoch() == 1);
  CHECK(b.fingerprint() != before);
}

}  // namespace test_learner_checkpoint
