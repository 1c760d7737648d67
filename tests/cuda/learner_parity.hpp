// tests/cuda/learner_parity.hpp: the training-loop runs test_cuda_train.cu
// compares across devices: train::Learner (frozen epoch, then an unfrozen
// one-cycle epoch) with ResNet18 + ArcFace + Center Loss, eval::embed after
// it, and checkpoints written on one device and loaded on the other. The Cpu
// instantiations live in learner_parity_cpu.cpp (g++, once).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include <dml/data/dataset.hpp>
#include <dml/eval/embed.hpp>
#include <dml/optim/adam.hpp>
#include <dml/train/learner.hpp>

#include "resnet_parity.hpp"

namespace dml_test {

// Three classes of 1x16x16 images: a bright 4x4 square at one of three places
// plus Gaussian noise.
inline dml::data::Dataset squares16(i64 n, std::uint64_t seed) {
  dml::Generator gen(seed);
  std::vector<float> px;
  std::vector<i64> labels;
  for (i64 i = 0; i < n; ++i) {
    const i64 c = i % 3;
    for (i64 r = 0; r < 16; ++r)
      for (i64 k = 0; k < 16; ++k) {
        const bool on = r >= 2 + 4 * c && r < 6 + 4 * c && k >= 6 && k < 10;
        px.push_back((on ? 1.5f : 0.0f) + 0.5f * static_cast<float>(gen.normal()));
      }
    labels.push_back(c);
  }
  return dml::data::Dataset::from_vectors(px, dml::Shape{1, 16, 16}, labels, 3);
}

struct LearnerRun {
  std::vector<double> batch_losses;     // every training batch, in order
  std::vector<double> valid_loss, accuracy;  // every epoch
  std::vector<double> embeddings, logits;    // eval::embed of the test set at the end
};

// The learner both devices build: ResNet18 (width 8) + MarginHead<Arc> +
// Center Loss (1/8), AdamW, batch 16, no augmentation or prefetch thread.
template <class T, class D>
struct LearnerSetup {
  dml::nn::ResNet18<T, D> body{small_resnet(21)};
  dml::heads::MarginHead<dml::heads::Arc, T, D> head{kEmbedding, 3, {.s = 16, .m = 0.5}, 22};
  dml::losses::CenterLoss<T, D> center{3, kEmbedding};
  dml::train::Learner<T, D> learn;

  LearnerSetup()
      : learn(body, head, {squares16(48, 1), squares16(24, 2)}, dml::optim::AdamW{.lr = 2e-3},
              {.batch_size = 16, .seed = 7, .prefetch = false, .quiet = true}) {
    learn.add_loss(center, 1.0 / 8, "center");
  }

  // Embeddings and logits of the test set, as doubles on the host.
  void embed_into(LearnerRun& r) {
    auto e = dml::eval::embed(body, head, learn.data().test);
    for (T x : e.embeddings.to_vector()) r.embeddings.push_back(static_cast<double>(x));
    for (T x : e.logits.to_vector()) r.logits.push_back(static_cast<double>(x));
  }
};

// One frozen epoch, then one unfrozen one-cycle epoch on D; saves a
// checkpoint to `save_to` at the end.
template <class T, class D>
LearnerRun learner_run(const std::filesystem::path& save_to) {
  LearnerSetup<T, D> s;
  LearnerRun r;
  s.learn.add_callback({.on_batch_end = [&](dml::train::Learner<T, D>&, const dml::train::BatchInfo& b) {
    r.batch_losses.push_back(b.loss);
  }});
  s.learn.freeze();
  s.learn.fit_one_cycle(1);
  s.learn.unfreeze();
  s.learn.fit_one_cycle(1);
  for (const auto& e : s.learn.history()) r.valid_loss.push_back(e.valid_loss), r.accuracy.push_back(e.accuracy);
  s.embed_into(r);
  s.learn.save_checkpoint(save_to);
  return r;
}

// A fresh learner on D that loads `path` (written on either device), then
// validates and embeds: the last epoch's figures of the run that wrote it.
template <class T, class D>
LearnerRun reload_run(const std::filesystem::path& path) {
  LearnerSetup<T, D> s;
  s.learn.load_checkpoint(path);
  LearnerRun r;
  const dml::train::EpochStats v = s.learn.validate();
  r.valid_loss.push_back(v.valid_loss), r.accuracy.push_back(v.accuracy);
  s.embed_into(r);
  return r;
}

extern template LearnerRun learner_run<double, dml::Cpu>(const std::filesystem::path&);
extern template LearnerRun learner_run<float, dml::Cpu>(const std::filesystem::path&);
extern template LearnerRun reload_run<double, dml::Cpu>(const std::filesystem::path&);

}  // namespace dml_test
