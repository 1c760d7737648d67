// examples/train_mnist.cpp: the library calls of one training run, to copy and
// change. ResNet18 + ArcFace + Center Loss on MNIST-format IDX files, trained
// from scratch with the recipe of docs/training.md; then the test accuracy, a
// checkpoint, a second model loaded from it, and the test set's embeddings.
//
//   bash scripts/get_data.sh              # data/mnist
//   ./train_mnist [DATA_DIR]              # default data/mnist; writes train_mnist.ckpt,
//                                         # embeddings.npy and labels.npy in the current directory
//
// The one argument is the data directory. For a program driven by flags (every
// head, epochs, resume, image folders) use `dml train --help`. On a GPU this is
// the same program in a .cu file, with Cuda for Cpu and <dml/cuda.hpp> (docs/cuda.md).
#include <cstdio>
#include <iostream>

#include <dml/dml.hpp>

using namespace dml;

int main(int argc, char** argv) try {
  const data::Splits data = data::load_idx(argc > 1 ? argv[1] : "data/mnist");
  const std::int64_t classes = data.train.num_classes, dim = 512;

  // The values of examples/recipe.hpp, spelled out so that this file copies alone: no dropout
  // in the embedding head, SGD with Nesterov momentum peaking at lr 0.05 (weight decay 5e-4),
  // batches of 64 shifted by up to 2 pixels and rotated by up to 10 degrees.
  const nn::ResNetOptions net{.in_channels = data.train.channels(), .embedding = dim, .head_dropout = {0, 0}};
  const heads::Arc arc{.s = 30, .m = 0.5};
  const optim::SGD sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true};
  const train::LearnerOptions opts{.batch_size = 64, .augment = {.pad = 2, .rotate_degrees = 10}};

  nn::ResNet18<float, Cpu> body(net);                        // images -> 512-d embeddings
  heads::MarginHead<heads::Arc> head(dim, classes, arc);     // embeddings -> logits (margin in training only)
  losses::CenterLoss<float, Cpu> center(classes, dim);       // optional: pulls each class to its centre
  train::Learner learn(body, head, data, sgd, opts);
  learn.add_loss(center, 1.0 / 8, "center", 0.5);            // weight 1/8, ramped up over half the fit
  learn.fit_one_cycle(2);                                    // prints the epoch table
  const train::EpochStats trained = learn.validate();        // on data.test, inference logits
  std::printf("trained: test accuracy %.4f, valid loss %.6f\n", trained.accuracy, trained.valid_loss);
  learn.save_checkpoint("train_mnist.ckpt");  // weights, optimiser, centres, history

  // Later, or in another process: the same objects again, loaded from the checkpoint.
  // learn2.resume(file) instead would also finish a fit the checkpoint interrupted.
  nn::ResNet18<float, Cpu> body2(net);
  heads::MarginHead<heads::Arc> head2(dim, classes, arc);
  losses::CenterLoss<float, Cpu> center2(classes, dim);
  train::Learner learn2(body2, head2, data, sgd, opts);
  learn2.add_loss(center2, 1.0 / 8, "center", 0.5);
  learn2.load_checkpoint("train_mnist.ckpt");
  const train::EpochStats loaded = learn2.validate();
  std::printf("loaded:  test accuracy %.4f, valid loss %.6f\n", loaded.accuracy, loaded.valid_loss);

  // The embeddings: retrieval quality on the test set, and files for numpy.
  const Tensor<float> emb = eval::embed(body2, data.test);  // [N, 512]
  const eval::RetrievalReport r = eval::retrieval(emb, data.test.labels);
  std::printf("embeddings [%lld, %lld]: P@1 %.4f, MAP@R %.4f\n", static_cast<long long>(emb.dim(0)),
              static_cast<long long>(emb.dim(1)), r.precision_at_1, r.map_at_r);
  io::save_npy("embeddings.npy", emb.data(), {emb.dim(0), emb.dim(1)});
  io::save_npy("labels.npy", data.test.labels, {data.test.size()});
} catch (const Error& e) {
  std::cerr << "train_mnist: " << e.what() << "\n";
  return 1;
}
