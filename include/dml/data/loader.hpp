// dml/data/loader.hpp: a seeded, shuffling DataLoader over a Dataset, with
// per-sample augmentation and a background thread that assembles the next batch
// while the caller trains on the current one.
//
// Everything a batch holds is a pure function of (seed, epoch, batch index): the
// order of epoch e is a shuffle driven by hash(seed, e) (or, with
// LoaderOptions::balanced, the class-balanced order of sampler.hpp), and sample
// i's augmentation by sample_generator(seed, e, i) (the j-th repeat of row i in
// a balanced epoch of N rows: i + j * N). So prefetch on or off, any thread
// count, and a resume from state() all give identical batches.
//
// A Dataset decoded on demand (an image folder loaded with Decode::PerBatch) is
// decoded while its batch is assembled: on the prefetch thread (and its
// `threads`), and an image that fails to decode reaches the caller of next() as
// the dml::Error that names its file.
//
// With LoaderOptions::shard (data-parallel training, one loader per rank), an
// epoch is cut into global batches of batch_size x world rows of the same
// order, and rank r takes its even share of each (rows [r m / W, (r+1) m / W)
// of a global batch of m rows): the ranks' batches are disjoint, their union in
// rank order is the batch a single loader with batch_size x world returns, and
// each sample keeps its augmentation stream whatever the number of ranks. A
// last global batch of fewer rows than ranks is dropped (every rank gets a row).
// Class-balanced batches hold each class's K samples together, so each rank's
// share is P / world whole classes.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/collective.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "dataset.hpp"
#include "sampler.hpp"
#include "transforms.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dml::data {

// One mini-batch, on the host. A copy to the GPU is the caller's: batch.images.to<Cuda>().
struct Batch {
  Tensor<float, Cpu> images;          // [B, C, H, W]
  Tensor<std::int64_t, Cpu> labels;   // [B]
  std::vector<std::int64_t> indices;  // the dataset rows, in batch order
  std::int64_t epoch = 0;             // the epoch it belongs to
  std::int64_t index = 0;             // its position in that epoch, 0..num_batches()-1
  std::int64_t size() const noexcept { return static_cast<std::int64_t>(indices.size()); }
};

struct LoaderOptions {
  std::int64_t batch_size = 128;
  bool shuffle = true;        // a fresh permutation each epoch; false: dataset order every epoch
  // Set: every batch is P classes x K samples (sampler.hpp), batch_size must be
  // P * K, and drop_last does not apply (every batch is full).
  std::optional<ClassBalanced> balanced = std::nullopt;
  bool drop_last = false;     // drop the last batch when it is short
  std::uint64_t seed = 0;     // drives the shuffle and the augmentation
  bool prefetch = true;       // assemble batch k+1 on a background thread
  Augment augment = {};       // identity by default
  SampleTransform transform = {};  // optional extra step after augment, in place
  // OpenMP threads that augment one batch: 1 (default) works serially, since the
  // training step already uses every core; 0 uses the OpenMP default.
  int threads = 1;
  // This loader's share of a data-parallel epoch (see the top of this file);
  // batch_size is then per rank. With `balanced` (P classes x K samples per
  // global batch, P * K = batch_size x world), P must divide by the world:
  // each rank gets P / world whole classes of K samples, so that the pairs of
  // an embedding loss stay on one rank.
  Shard shard = {};
};

// Where a loader stands; save it with a checkpoint and set_state() it to resume.
struct LoaderState {
  std::uint64_t seed = 0;
  std::int64_t epoch = 0;
  std::int64_t position = 0;      // batches of `epoch` already returned, 0..num_batches
  std::int64_t dataset_size = 0;  // checked by set_state
  std::int64_t batch_size = 0;    // checked by set_state
  // LoaderOptions::balanced's P and K, 0 and 0 without it; checked by set_state.
  std::int64_t classes_per_batch = 0, samples_per_class = 0;
  std::int64_t world = 1;  // LoaderOptions::shard.world; checked by set_state
  friend bool operator==(const LoaderState&, const LoaderState&) = default;
};

// The permutation of 0..n-1 that epoch `epoch` visits under `seed` (identity when !shuffle).
inline std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch, bool shuffle) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (shuffle) {
    Generator gen(detail::hash_combine(detail::hash_combine(seed, detail::kShuffleStream),
                                       static_cast<std::uint64_t>(epoch)));
    detail::shuffle(order, gen);
  }
  return order;
}

namespace detail {

// make_batch, with sample k augmented by sample_generator(seed, epoch, streams[k])
// (streams empty: indices[k]).
inline Batch assemble_batch(const Dataset& ds, std::span<const std::int64_t> indices,
                            std::span<const std::int64_t> streams, const Augment& augment, std::uint64_t seed,
                            std::int64_t epoch, const SampleTransform& transform, int threads) {
  const ImageDims dims{ds.channels(), ds.height(), ds.width()};
  const std::int64_t per = dims.numel(), n = static_cast<std::int64_t>(indices.size());
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t i = indices[static_cast<std::size_t>(k)];
    DML_CHECK(i >= 0 && i < ds.size(), "make_batch: index ", i, " is out of range for ", ds.size(), " samples");
  }
  Batch b;
  b.images = Tensor<float, Cpu>::empty(Shape{n, dims.channels, dims.height, dims.width});
  b.indices.assign(indices.begin(), indices.end());
  std::vector<std::int64_t> labels(indices.size());
  for (std::size_t k = 0; k < indices.size(); ++k) labels[k] = ds.labels[static_cast<std::size_t>(indices[k])];
  b.labels = Tensor<std::int64_t, Cpu>::from_vector(labels);
  b.epoch = epoch;

  // A Dataset decoded on demand reads (decodes) each image here: on the
  // prefetch thread when the loader has one, and split over `threads`.
  const bool lazy = ds.on_demand();
  const float* src = lazy ? nullptr : ds.images.data();
  const std::vector<float> lut = lazy ? normalisation_lut(ds.channel_norms) : std::vector<float>{};
  float* dst = b.images.data();
  const std::vector<float> fill = ds.backgrounds();
  const bool plain = augment.identity() && !transform;
  auto one = [&](std::int64_t k) {
    const std::int64_t i = indices[static_cast<std::size_t>(k)];
    float* d = dst + k * per;
    if (augment.identity()) {  // the image as it is
      if (lazy) read_on_demand(ds, i, lut, d);
      else std::memcpy(d, src + i * per, static_cast<std::size_t>(per) * sizeof(float));
      if (!transform) return;
    }
    Generator gen = sample_generator(seed, epoch, streams.empty() ? i : streams[static_cast<std::size_t>(k)]);
    if (!augment.identity()) {
      std::vector<float> decoded;
      const float* s = lazy ? nullptr : src + i * per;
      if (lazy) {
        decoded.resize(static_cast<std::size_t>(per));
        read_on_demand(ds, i, lut, decoded.data());
        s = decoded.data();
      }
      augment.apply(s, d, dims, fill, ds.channel_norms, gen);
    }
    if (transform) transform(std::span<float>(d, static_cast<std::size_t>(per)), dims, fill, gen);
  };
#if defined(_OPENMP)
  if (threads != 1 && n > 1 && (!plain || lazy)) {
    const int team = threads > 0 ? threads : omp_get_max_threads();
    // The error of the lowest sample that failed, so the report does not depend on the thread count.
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
#pragma omp parallel for num_threads(team) schedule(static)
    for (std::int64_t k = 0; k < n; ++k) {
      try {
        one(k);
      } catch (...) {
        errors[static_cast<std::size_t>(k)] = std::current_exception();
      }
    }
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    return b;
  }
#else
  (void)threads;
#endif
  for (std::int64_t k = 0; k < n; ++k) one(k);
  return b;
}

}  // namespace detail

// Assembles rows `indices` of ds into a Batch, augmenting sample i with
// sample_generator(seed, epoch, i): augment, then transform (when set). Runs on
// `threads` OpenMP threads (1: serial; 0: OpenMP's default). A Dataset decoded on
// demand (Dataset::source) is decoded here. Throws for an index out of range, and
// rethrows the lowest sample's exception when a transform or a decode throws.
inline Batch make_batch(const Dataset& ds, std::span<const std::int64_t> indices, const Augment& augment,
                        std::uint64_t seed, std::int64_t epoch, const SampleTransform& transform = {},
                        int threads = 1) {
  return detail::assemble_batch(ds, indices, {}, augment, seed, epoch, transform, threads);
}

namespace detail {

// The loader's guts, on the heap so the worker thread's pointer survives a move
// of the DataLoader.
class LoaderCore {
 public:
  LoaderCore(Dataset ds, LoaderOptions opt) : ds_(std::move(ds)), opt_(std::move(opt)) {
    ds_.validate();
    DML_CHECK(ds_.size() > 0, "DataLoader: the dataset is empty");
    DML_CHECK(opt_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", opt_.batch_size);
    DML_CHECK(opt_.threads >= 0, "DataLoader: threads must be >= 0, got ", opt_.threads);
    opt_.augment.validate(ImageDims{ds_.channels(), ds_.height(), ds_.width()});
    opt_.shard.validate("DataLoader");
    DML_CHECK(!opt_.balanced || opt_.balanced->classes_per_batch % opt_.shard.world == 0,
              "DataLoader: balanced batches of ", opt_.balanced ? opt_.balanced->classes_per_batch : 0,
              " classes cannot be shared by ", opt_.shard.world, " ranks in whole classes: classes_per_batch must ",
              "divide by the rank count");
    const std::int64_t n = ds_.size(), b = opt_.batch_size * opt_.shard.world;
    if (opt_.balanced) {
      const ClassBalanced& cb = *opt_.balanced;
      validate_balanced(cb, ds_);
      DML_CHECK(b == cb.batch_size(), "DataLoader: batch_size ", b, " disagrees with balanced: classes_per_batch ",
                cb.classes_per_batch, " x samples_per_class ", cb.samples_per_class, " = ", cb.batch_size(),
                "; set batch_size = ", cb.batch_size());
      DML_CHECK(opt_.shuffle, "DataLoader: balanced batches are always drawn at random; shuffle = false ",
                "conflicts with them");
      num_batches_ = balanced_num_batches(cb, n);
    } else {
      // Sharded, a last batch with fewer rows than ranks is dropped: every rank needs a row.
      num_batches_ = opt_.drop_last || n % b < opt_.shard.world ? n / b : n / b + 1;
    }
    DML_CHECK(num_batches_ >= 1, "DataLoader: drop_last with batch_size ", b, " leaves no batch of ", n,
              " samples");
    state_ = {opt_.seed, 0, 0, n, opt_.batch_size};
    state_.world = opt_.shard.world;
    if (opt_.balanced) {
      state_.classes_per_batch = opt_.balanced->classes_per_batch;
      state_.samples_per_class = opt_.balanced->samples_per_class;
    }
    if (opt_.prefetch) {
      worker_ = std::thread([this] { work(); });
      schedule(current_key());
    }
  }

  ~LoaderCore() {
    if (!worker_.joinable()) return;
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  LoaderCore(const LoaderCore&) = delete;
  LoaderCore& operator=(const LoaderCore&) = delete;

  std::int64_t num_batches() const noexcept { return num_batches_; }
  const Dataset& dataset() const noexcept { return ds_; }
  const LoaderOptions& options() const noexcept { return opt_; }
  LoaderState state() const noexcept { return state_; }

  void set_state(const LoaderState& s) {
    DML_CHECK(s.dataset_size == ds_.size() && s.batch_size == opt_.batch_size, "DataLoader::set_state: the state ",
              "is for ", s.dataset_size, " samples in batches of ", s.batch_size, ", this loader has ", ds_.size(),
              " in batches of ", opt_.batch_size);
    DML_CHECK(s.world == state_.world, "DataLoader::set_state: the state is for ", s.world,
              " data-parallel rank(s), this loader is one of ", state_.world,
              " (resume with the number of ranks that wrote it)");
    DML_CHECK(s.classes_per_batch == state_.classes_per_batch && s.samples_per_class == state_.samples_per_class,
              "DataLoader::set_state: the state is for ", sampling_name(s), " batches, this loader draws ",
              sampling_name(state_), " batches");
    DML_CHECK(s.epoch >= 0 && s.position >= 0 && s.position <= num_batches_, "DataLoader::set_state: epoch ",
              s.epoch, " position ", s.position, " is out of range (positions 0..", num_batches_, ")");
    state_ = s;
    if (opt_.prefetch) schedule(current_key());
  }

  std::optional<Batch> next() {
    if (state_.position == num_batches_) {  // end of the epoch: report it, move to the next
      ++state_.epoch;
      state_.position = 0;
      return std::nullopt;
    }
    const Key key = current_key();
    Batch b = opt_.prefetch ? fetch(key) : build(key);
    ++state_.position;
    return b;
  }

 private:
  // Names one batch: everything it depends on.
  struct Key {
    std::uint64_t seed = 0;
    std::int64_t epoch = 0, index = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct Result {
    Key key;
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  static std::string sampling_name(const LoaderState& s) {
    if (s.classes_per_batch == 0 && s.samples_per_class == 0) return "shuffled or sequential";
    return ::dml::detail::concat("class-balanced (", s.classes_per_batch, " classes x ", s.samples_per_class,
                                 " samples)");
  }

  // The batch the next next() returns (past an epoch's end: the next epoch's first).
  Key current_key() const noexcept {
    return state_.position < num_batches_ ? Key{state_.seed, state_.epoch, state_.position}
                                          : Key{state_.seed, state_.epoch + 1, 0};
  }
  Key following(Key k) const noexcept {
    return k.index + 1 < num_batches_ ? Key{k.seed, k.epoch, k.index + 1} : Key{k.seed, k.epoch + 1, 0};
  }

  // Builds batch `key`. One thread only: the worker with prefetch, the caller without.
  Batch build(Key key) {
    if (order_key_.epoch != key.epoch || order_key_.seed != key.seed || order_.empty()) {
      if (opt_.balanced) {
        order_ = balanced_order(ds_, *opt_.balanced, key.seed, key.epoch, num_batches_);
        streams_ = occurrence_streams(order_, ds_.size());
      } else {
        order_ = epoch_order(ds_.size(), key.seed, key.epoch, opt_.shuffle);
      }
      order_key_ = key;
    }
    const auto size = static_cast<std::int64_t>(order_.size());
    const std::int64_t global = opt_.batch_size * opt_.shard.world;
    const std::int64_t first = key.index * global, m = std::min(first + global, size) - first;
    const std::int64_t begin = first + opt_.shard.begin(m), end = first + opt_.shard.end(m);
    const auto count = static_cast<std::size_t>(end - begin);
    std::span<const std::int64_t> rows(order_.data() + begin, count);
    std::span<const std::int64_t> streams;  // a balanced epoch may repeat rows: each repeat has its own stream
    if (opt_.balanced) streams = std::span<const std::int64_t>(streams_.data() + begin, count);
    Batch b = assemble_batch(ds_, rows, streams, opt_.augment, key.seed, key.epoch, opt_.transform, opt_.threads);
    b.index = key.index;
    return b;
  }

  // Caller side: asks the worker for `key` unless it is done or under way.
  void schedule(Key key) {
    {
      std::lock_guard lk(mu_);
      request_locked(key);
    }
    cv_.notify_all();
  }
  void request_locked(Key key) {
    if ((ready_ && ready_->key == key) || (busy_ && busy_key_ == key)) request_.reset();
    else request_ = key;
  }

  Batch fetch(Key key) {
    std::optional<Result> got;
    {
      std::unique_lock lk(mu_);
      while (!(ready_ && ready_->key == key)) {
        ready_.reset();  // a batch for another key: made before a set_state
        request_locked(key);
        cv_.notify_all();
        cv_.wait(lk);
      }
      got = std::move(ready_);
      ready_.reset();
      request_locked(following(key));  // prefetch the batch after this one
    }
    cv_.notify_all();
    if (got->error) std::rethrow_exception(got->error);
    return std::move(*got->batch);
  }

  void work() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || request_.has_value(); });
      if (stop_) return;
      const Key key = *request_;
      request_.reset();
      busy_ = true;
      busy_key_ = key;
      lk.unlock();
      Result r{key, std::nullopt, nullptr};
      try {
        r.batch = build(key);
      } catch (...) {
        r.error = std::current_exception();
      }
      lk.lock();
      busy_ = false;
      ready_ = std::move(r);
      cv_.notify_all();
    }
  }

  Dataset ds_;
  LoaderOptions opt_;
  std::int64_t num_batches_ = 0;
  LoaderState state_;  // the caller's; the worker never reads it

  // The builder's: the order of one epoch (and, balanced, its augmentation streams).
  std::vector<std::int64_t> order_, streams_;
  Key order_key_;

  // Shared with the worker, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Key> request_;
  std::optional<Result> ready_;
  bool busy_ = false;
  Key busy_key_;
  bool stop_ = false;
  std::thread worker_;  // starts in the constructor body, after everything above
};

}  // namespace detail

// Iterates a Dataset in seeded, shuffled mini-batches:
//
//   DataLoader loader(data.train, {.batch_size = 128, .seed = 1, .augment = {.pad = 2, .rotate_degrees = 10}});
//   for (int e = 0; e < epochs; ++e)
//     for (Batch& b : loader) step(b.images, b.labels);   // one epoch per loop
//
// or in class-balanced batches of 8 classes x 4 samples:
//
//   DataLoader pk(data.train, {.batch_size = 32, .balanced = ClassBalanced{.classes_per_batch = 8,
//                                                                         .samples_per_class = 4}});
//
// next() returns the batches of the current epoch, then one nullopt that ends
// the epoch and moves to the next. A range-for runs next() until that nullopt,
// starting wherever the loader stands (mid-epoch after a set_state). Movable,
// not copyable; the destructor stops and joins the prefetch thread.
class DataLoader {
 public:
  // Keeps its own copy of ds (the images tensor or source is shared, not copied). Throws
  // dml::Error for an empty or inconsistent dataset, batch_size < 1, bad augment
  // options, threads < 0, drop_last leaving no batch, or with `balanced`: what
  // validate_balanced throws, batch_size other than P * K, or shuffle = false.
  explicit DataLoader(Dataset ds, LoaderOptions opt = {})
      : core_(std::make_unique<detail::LoaderCore>(std::move(ds), std::move(opt))) {}

  // Batches per epoch: ceil(N / B), or floor(N / B) with drop_last, where B is
  // batch_size x shard.world; balanced: max(1, floor(N / (P * K))).
  std::int64_t num_batches() const { return core().num_batches(); }
  std::int64_t size() const { return num_batches(); }
  std::int64_t epoch() const { return core().state().epoch; }
  // Batches of the current epoch already returned.
  std::int64_t position() const { return core().state().position; }
  const Dataset& dataset() const { return core().dataset(); }
  const LoaderOptions& options() const { return core().options(); }

  // The next batch of the current epoch, or nullopt once the epoch is done (the
  // loader then stands at the start of the next epoch). Rethrows, in the caller,
  // whatever assembling the batch threw; the position then stays where it was.
  std::optional<Batch> next() { return core().next(); }

  LoaderState state() const { return core().state(); }
  // Resumes exactly where `s` was taken (possibly with another seed). Throws when
  // s is for another dataset size, batch size or balanced P x K, or its position
  // is out of range.
  void set_state(const LoaderState& s) { core().set_state(s); }
  // Jumps to the start of epoch e.
  void set_epoch(std::int64_t e) {
    LoaderState s = state();
    s.epoch = e;
    s.position = 0;
    set_state(s);
  }

  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    Batch& operator*() { return *batch_; }
    Batch* operator->() { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !batch_.has_value(); }

   private:
    friend class DataLoader;
    explicit Iterator(DataLoader* loader) : loader_(loader), batch_(loader->next()) {}
    DataLoader* loader_;
    std::optional<Batch> batch_;
  };
  // The rest of the current epoch (fetches its first batch).
  Iterator begin() { return Iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  detail::LoaderCore& core() const {
    DML_CHECK(core_ != nullptr, "DataLoader: used after being moved from");
    return *core_;
  }
  std::unique_ptr<detail::LoaderCore> core_;
};

}  // namespace dml::data
