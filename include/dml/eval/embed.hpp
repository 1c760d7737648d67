// dml/eval/embed.hpp: run a trained body (and optionally its head) over a
// whole Dataset for evaluation: batched, in eval mode, without a graph.
//
//   auto emb = eval::embed(body, data.test);             // [N, 512] on the body's device
//   auto out = eval::embed(body, head, data.test);       // out.embeddings, out.logits
//
// The images live on the host (a Dataset decoded on demand is decoded batch by
// batch, on the calling thread); each batch is copied to the body's device
// (images.to<D>()) and converted to its element type. The modules are put in
// eval mode for the run and get back exactly the modes they had (per module,
// also when the run throws).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/autograd.hpp"
#include "../core/tensor.hpp"
#include "../data/dataset.hpp"
#include "../nn/module.hpp"
#include "../ops/tracking.hpp"

namespace dml::eval {

struct EmbedOptions {
  std::int64_t batch_size = 256;
  // Called after every batch with (rows done, total rows); empty: silent.
  std::function<void(std::int64_t done, std::int64_t total)> progress = {};
};

// What embed(body, head, dataset) returns.
template <class T = float, class D = Cpu>
struct Embedded {
  Tensor<T, D> embeddings;  // [N, dim]
  Tensor<T, D> logits;      // [N, classes]: the head's inference output (no margin)
};

namespace detail {

// Puts modules in eval mode and restores every module's own mode on exit.
template <class T, class D>
class EvalModeGuard {
 public:
  // Null entries are skipped.
  explicit EvalModeGuard(std::span<nn::Module<T, D>* const> modules) {
    for (nn::Module<T, D>* m : modules)
      if (m) record(m);
    for (nn::Module<T, D>* m : modules)
      if (m) m->eval();
  }
  explicit EvalModeGuard(std::initializer_list<nn::Module<T, D>*> modules)
      : EvalModeGuard(std::span<nn::Module<T, D>* const>(modules.begin(), modules.size())) {}
  ~EvalModeGuard() {
    // Pre-order: a module's own call comes after its ancestors', which reset it.
    for (auto& [m, training] : saved_) m->train(training);
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  void record(nn::Module<T, D>* m) {
    saved_.emplace_back(m, m->is_training());
    for (auto& [name, child] : m->named_children()) record(child);
  }
  std::vector<std::pair<nn::Module<T, D>*, bool>> saved_;
};

// Host float images (a data::Batch's, or rows of a Dataset) as the input of a
// Tensor<T, D> module: the same tensor for float on the host, else a device
// copy and, for double, a conversion.
template <class T, class D>
Tensor<T, D> images_as(const Tensor<float, Cpu>& x) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (std::is_same_v<D, Cpu>) return x;
    else return x.template to<D>();
  } else {
    const std::vector<float> v = x.to_vector();
    return Tensor<T, D>::from_vector(std::vector<T>(v.begin(), v.end()), x.shape());
  }
}

// Rows [start, start + count) of ds's images as a [count, C, H, W] tensor of
// element type T on device D.
template <class T, class D>
Tensor<T, D> image_batch(const data::Dataset& ds, std::int64_t start, std::int64_t count) {
  const std::int64_t per = ds.image_numel();
  auto host = Tensor<float, Cpu>::empty(Shape{count, ds.channels(), ds.height(), ds.width()});
  if (ds.on_demand()) {  // decoded here, one image at a time
    const std::vector<float> lut = data::detail::normalisation_lut(ds.channel_norms);
    for (std::int64_t k = 0; k < count; ++k) data::detail::read_on_demand(ds, start + k, lut, host.data() + k * per);
  } else {
    std::memcpy(host.data(), ds.images.data() + start * per, static_cast<std::size_t>(count * per) * sizeof(float));
  }
  return images_as<T, D>(host);
}

// Checks what can be checked before the first forward: a non-empty, valid
// dataset, a positive batch size, and (for bodies that say how many input
// channels they take, like nn::ResNet18) matching channels.
template <class Body>
void check_embed_input(const Body& body, const data::Dataset& ds, const EmbedOptions& opts) {
  DML_CHECK(opts.batch_size >= 1, "embed: batch_size must be >= 1, got ", opts.batch_size);
  DML_CHECK(!ds.empty(), "embed: the dataset is empty");
  ds.validate();
  if constexpr (requires { body.options().in_channels; }) {
    DML_CHECK(body.options().in_channels == ds.channels(), "embed: the dataset's images have ", ds.channels(),
              " channel(s) (shape ", ds.image_shape().str(), ") but ", body.type_name(), " takes ",
              body.options().in_channels);
  }
}

// Writes batch (rank >= 1, [b, ...]) into rows [start, start + b) of out,
// allocating out [n, row width] on the first call. Throws when a later batch
// has a different row width.
template <class T, class D>
void put_rows(Tensor<T, D>& out, const Tensor<T, D>& batch, std::int64_t start, std::int64_t n, const char* what) {
  DML_CHECK(batch.defined() && batch.rank() >= 1, "embed: the ", what, " returned ",
            dml::detail::shape_or_undefined(batch), ", expected [batch, dim]");
  const std::int64_t b = batch.dim(0);
  const std::int64_t width = b == 0 ? 0 : batch.numel() / b;
  if (!out.defined()) {
    DML_CHECK(width >= 1, "embed: the ", what, " returned an empty row, shape ", batch.shape().str());
    out = Tensor<T, D>::empty(Shape{n, width});
  }
  DML_CHECK(width == out.dim(1), "embed: the ", what, " returned rows of ", width, " values, earlier ones had ",
            out.dim(1));
  Memory<D>::copy(out.data() + start * width, batch.data(), batch.bytes());
}

template <class T, class D, class Body>
Embedded<T, D> run_embed(Body& body, nn::Module<T, D>* head, const data::Dataset& ds, const EmbedOptions& opts) {
  check_embed_input(body, ds, opts);
  nn::Module<T, D>& body_module = body;
  EvalModeGuard<T, D> guard{&body_module, head};
  NoGrad no_grad;
  Embedded<T, D> out;
  const std::int64_t n = ds.size();
  for (std::int64_t start = 0; start < n; start += opts.batch_size) {
    const std::int64_t count = std::min(opts.batch_size, n - start);
    Tensor<T, D> emb = body_module(image_batch<T, D>(ds, start, count));
    DML_CHECK(emb.defined() && emb.rank() >= 1 && emb.dim(0) == count, "embed: ", body.type_name(), " returned ",
              dml::detail::shape_or_undefined(emb), " for a batch of ", count, " images");
    if (emb.rank() != 2) emb = emb.reshape({count, -1});
    put_rows(out.embeddings, emb, start, n, "body");
    if (head) {
      Tensor<T, D> logits = (*head)(emb);
      DML_CHECK(logits.defined() && logits.rank() == 2 && logits.dim(0) == count, "embed: ", head->type_name(),
                " returned ", dml::detail::shape_or_undefined(logits), " for ", count, " embeddings");
      put_rows(out.logits, logits, start, n, "head");
    }
    if (opts.progress) opts.progress(start + count, n);
  }
  return out;
}

// The element type and device of a module class (through its nn::Module<T, D> base).
template <class T, class D>
struct ModuleTypes {
  using value_type = T;
  using device_type = D;
};
template <class T, class D>
ModuleTypes<T, D> module_types(const nn::Module<T, D>*);
template <class M>
using ModuleTypesOf = decltype(module_types(static_cast<const M*>(nullptr)));

}  // namespace detail

// The body's output for every image of ds, in dataset order: an [N, dim]
// tensor on the body's device (outputs of rank > 2 are flattened per row).
// Runs in batches of opts.batch_size under NoGrad with the body in eval mode,
// then restores each module's previous mode. Throws dml::Error for an empty
// or invalid dataset, batch_size < 1, images whose channel count the body does
// not take, or whatever the body's forward throws.
template <class Body, class M = detail::ModuleTypesOf<Body>>
Tensor<typename M::value_type, typename M::device_type> embed(Body& body, const data::Dataset& ds,
                                                              const EmbedOptions& opts = {}) {
  using T = typename M::value_type;
  using D = typename M::device_type;
  return detail::run_embed<T, D>(body, static_cast<nn::Module<T, D>*>(nullptr), ds, opts).embeddings;
}

// As above, and the head's inference output for each embedding (a MarginHead
// adds no margin outside training): embeddings [N, dim] and logits
// [N, classes]. Both modules run in eval mode and get their modes back.
// Throws as above, and when the head rejects the embeddings.
template <class Body, class Head, class M = detail::ModuleTypesOf<Body>>
  requires std::is_base_of_v<nn::Module<typename M::value_type, typename M::device_type>, Head>
Embedded<typename M::value_type, typename M::device_type> embed(Body& body, Head& head, const data::Dataset& ds,
                                                                const EmbedOptions& opts = {}) {
  using T = typename M::value_type;
  using D = typename M::device_type;
  return detail::run_embed<T, D>(body, static_cast<nn::Module<T, D>*>(&head), ds, opts);
}

}  // namespace dml::eval
