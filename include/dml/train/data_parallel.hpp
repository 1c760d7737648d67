// dml/train/data_parallel.hpp: the data-parallel step over a Collective
// (dml/core/collective.hpp), as PyTorch's DistributedDataParallel: the state
// starts from rank 0's broadcast, and after each backward pass every gradient
// becomes the gradient of the global batch's mean loss, all-reduced in buckets,
// so that every rank's optimiser takes the same step. No MPI here: the
// communicator comes from dml::distributed (dml/distributed/mpi.hpp).
//
// train::Learner uses this when LearnerOptions::collective is set; a training
// loop of one's own calls it the same way:
//
//   train::GradientAverager<float, Cpu> avg(comm);
//   train::broadcast_state(comm, model);                  // once, before training
//   ...  loss.backward();
//   auto [n, mean] = avg.reduce(opt.params(), batch_rows, loss.item());
//   opt.step();
//
// or, overlapping the all-reduce with the backward pass (GradientAverager::begin).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "../backend/functors.hpp"
#include "../config.hpp"
#include "../core/autograd.hpp"
#include "../core/collective.hpp"
#include "../core/tensor.hpp"
#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"

namespace dml::train {

namespace detail {
template <class T, class D>
void broadcast_entries(Collective& c, const std::vector<std::pair<std::string, nn::StateTensor<T, D>>>& entries,
                       int root) {
  NoGrad no_grad;
  for (const auto& [name, entry] : entries)
    std::visit(
        [&](auto t) {
          if (t.numel() > 0) broadcast_on<D>(c, t.data(), static_cast<std::size_t>(t.numel()), root);
        },
        entry);
}
}  // namespace detail

// Every parameter and buffer of m becomes rank root's (in place). Collective.
template <class T, class D>
void broadcast_state(Collective& c, const nn::Module<T, D>& m, int root = 0) {
  std::vector<std::pair<std::string, nn::StateTensor<T, D>>> entries;
  for (auto& [name, t] : m.named_parameters()) entries.emplace_back(name, t);
  for (auto& e : m.named_buffers()) entries.push_back(e);
  detail::broadcast_entries<T, D>(c, entries, root);
}

// Every buffer of m (BatchNorm's running statistics, Center Loss's centres)
// becomes rank root's. Collective.
template <class T, class D>
void broadcast_buffers(Collective& c, const nn::Module<T, D>& m, int root = 0) {
  detail::broadcast_entries<T, D>(c, m.named_buffers(), root);
}

// What GradientAverager::reduce found: the global batch and its mean loss.
struct GlobalBatch {
  std::int64_t rows = 0;  // sum of the ranks' rows
  double loss = 0;        // sum_r rows_r * loss_r / rows
};

// Averages gradients over the ranks of a Collective, in buckets of about
// bucket_bytes (DDP's default is 25 MiB) laid out in reverse parameter order
// (the order in which the backward pass finishes them), either after the
// backward pass (reduce) or overlapped with it (begin, the backward pass under
// overlap(), finish): while the pass runs, each bucket is started on the
// Collective's asynchronous channel as soon as the last of its gradients is
// final. Both ways make the same all-reduce calls on the same buckets, so
// each element is summed over the same values: on 2 ranks, a + b whichever
// way, the results are identical; on more, the asynchronous channel may
// associate a sum differently (float rounding: MPI may pick another
// algorithm, NCCL runs it on a second communicator). Without an
// asynchronous channel (supports_async(), or device memory on a host-memory
// communicator) the buckets all wait for finish.
template <class T, class D>
class GradientAverager {
 public:
  static constexpr std::size_t kDefaultBucketBytes = std::size_t{25} << 20;

  // Throws dml::Error for a zero bucket size.
  explicit GradientAverager(Collective& c, std::size_t bucket_bytes = kDefaultBucketBytes)
      : comm_(&c), bucket_elems_(bucket_bytes / sizeof(T)) {
    DML_CHECK(bucket_elems_ >= 1, "GradientAverager: bucket_bytes must hold at least one element, got ",
              bucket_bytes);
  }
  // Waits (wait_all) for buckets still being reduced, as after an exception
  // between begin and finish, so that the bucket and the gradients are not
  // freed under the reduction. Never throws.
  ~GradientAverager() {
    if (!in_flight_) return;
    try {
      comm_->wait_all();
    } catch (...) {
    }
  }

  // After this rank's backward pass over `rows` rows whose mean loss is `loss`:
  // every parameter that has a gradient on some rank gets, on every rank, the
  // gradient of the global batch's mean loss, sum_r (rows_r / N) g_r (zero
  // where a rank has none: an empty shard, an unused parameter). Parameters
  // that no rank has a gradient for stay without one, as in one process;
  // parameters that do not require a gradient are left alone. Collective:
  // every rank calls it with the same parameter list. Throws dml::Error when
  // the ranks' lists differ in length or no rank has a row.
  GlobalBatch reduce(std::span<const optim::NamedParam<T, D>> params, std::int64_t rows, double loss) {
    const GlobalBatch g = begin(params, rows, loss);
    finish();
    return g;
  }

  // The overlapped form of reduce, in three steps:
  //   avg.begin(opt.params(), rows, loss.item());    // before backward: rows and loss
  //   { auto during = avg.overlap(); loss.backward(); }
  //   avg.finish();                                  // before the optimiser step
  // begin all-reduces the rows and losses (so the weights rows_r / N are known
  // while the pass runs); the guard that overlap() returns has the backward
  // pass on this thread start each bucket once its gradients are final;
  // finish starts the rest, waits for all, and writes the averages back.
  // Collective (begin and finish); same contract and errors as reduce, and
  // throws when a gradient changes after its bucket started (one backward
  // pass between begin and finish).
  GlobalBatch begin(std::span<const optim::NamedParam<T, D>> params, std::int64_t rows, double loss) {
    DML_CHECK(!active_, "GradientAverager::begin: the previous step was not finished");
    const std::size_t p = params.size();
    params_.clear();
    std::size_t trainable = 0;
    for (const auto& [name, t] : params) {
      params_.push_back(t);
      trainable += t.requires_grad() ? 1 : 0;
    }
    std::vector<double> head = {static_cast<double>(rows), rows > 0 ? static_cast<double>(rows) * loss : 0.0,
                                static_cast<double>(p), static_cast<double>(trainable)};
    comm_->all_reduce_sum(std::span<double>(head));
    const int world = comm_->size();
    DML_CHECK(head[2] == static_cast<double>(p) * world && head[3] == static_cast<double>(trainable) * world,
              "GradientAverager: the ranks reduce different parameter lists (this rank has ", p, " parameters, ",
              trainable, " trainable; the sums over ", world, " ranks are ", head[2], " and ", head[3], ")");
    DML_CHECK(head[0] > 0, "GradientAverager: no rank has a row in this batch");
    weight_ = static_cast<double>(rows) / head[0];
    bytes_ = head.size() * sizeof(double);
    layout();
    remaining_.assign(buckets_.size(), 0);
    for (std::size_t b = 0; b < buckets_.size(); ++b) remaining_[b] = buckets_[b].members.size();
    done_.assign(p, 0);
    had_grad_.assign(p, 0.0);
    next_ = overlapped_ = 0;
    async_ = comm_->supports_async() && (std::is_same_v<D, Cpu> || comm_->takes_device_memory());
    active_ = true;
    return {static_cast<std::int64_t>(head[0]), head[1] / head[0]};
  }

  // The guard for the backward pass between begin and finish (OnLeafGradient
  // in core/autograd.hpp): keep it alive over loss.backward() only.
  [[nodiscard]] OnLeafGradient<T, D> overlap() {
    return OnLeafGradient<T, D>([this](const Tensor<T, D>& leaf) { leaf_done(leaf); });
  }

  void finish() {
    DML_CHECK(active_, "GradientAverager::finish without begin");
    active_ = false;
    while (next_ < buckets_.size()) start(next_++);
    if (async_) comm_->wait_all();
    in_flight_ = false;
    const std::size_t p = params_.size();
    // Which parameters some rank had a gradient for (the others stay without one).
    std::vector<double> flags(had_grad_);
    comm_->all_reduce_sum(std::span<double>(flags));
    bytes_ += flags.size() * sizeof(double);
    for (const Bucket& b : buckets_) {
      std::size_t off = b.offset;
      for (std::size_t i : b.members) {
        Tensor<T, D> g = params_[i].grad();
        const std::int64_t n = params_[i].numel();
        if (!b.own) Backend<D>::map(fn::Affine{1.0, 0.0}, bucket_.data() + off, g.data(), n);
        off += static_cast<std::size_t>(n);
      }
    }
    for (std::size_t i = 0; i < p; ++i)
      if (params_[i].requires_grad() && flags[i] == 0) params_[i].zero_grad();
  }

  // Bytes all-reduced by the last reduce() or begin/finish (gradients plus
  // the small headers).
  std::size_t bytes_last_step() const noexcept { return bytes_; }
  // Buckets of the last step, and how many of them started during the
  // backward pass (0 after reduce, or without an asynchronous channel).
  std::size_t buckets_last_step() const noexcept { return buckets_.size(); }
  std::size_t buckets_overlapped() const noexcept { return overlapped_; }
  Collective& collective() const noexcept { return *comm_; }

 private:
  struct Bucket {
    std::vector<std::size_t> members;  // parameter indices, in reverse parameter order
    std::size_t offset = 0, size = 0;  // in bucket_ (own: the parameter's gradient itself)
    bool own = false;                  // one parameter larger than a bucket, reduced in place
  };

  // Buckets over the trainable parameters, last parameter first; rebuilt when
  // the parameter list changes.
  void layout() {
    std::vector<std::pair<const void*, std::int64_t>> key;  // identity and size (an address may be reused)
    for (const auto& t : params_) key.emplace_back(t.requires_grad() ? t.impl().get() : nullptr, t.numel());
    if (key == key_) return;
    key_ = key;
    buckets_.clear();
    index_.clear();
    bucket_of_.assign(params_.size(), 0);
    std::size_t packed = 0;
    Bucket cur;
    for (std::size_t k = params_.size(); k-- > 0;) {
      if (!key[k].first) continue;
      index_[key[k].first] = k;
      const auto n = static_cast<std::size_t>(params_[k].numel());
      if ((n > bucket_elems_ || cur.size + n > bucket_elems_) && !cur.members.empty()) {  // close the open one
        packed += cur.size;
        buckets_.push_back(std::move(cur));
        cur = Bucket{{}, packed, 0, false};
      }
      if (n > bucket_elems_) {
        buckets_.push_back(Bucket{{k}, 0, n, true});
        continue;
      }
      cur.members.push_back(k);
      cur.size += n;
    }
    if (!cur.members.empty()) {
      packed += cur.size;
      buckets_.push_back(std::move(cur));
    }
    for (std::size_t b = 0; b < buckets_.size(); ++b)
      for (std::size_t i : buckets_[b].members) bucket_of_[i] = b;
    if (packed > 0 && (!bucket_.defined() || static_cast<std::size_t>(bucket_.numel()) < packed))
      bucket_ = Tensor<T, D>::empty(Shape{static_cast<std::int64_t>(packed)});
  }

  // The hook: param's gradient is final; start every bucket, in order, whose
  // gradients all are (only with an asynchronous channel: otherwise the
  // buckets' order among the ranks' other calls could differ).
  void leaf_done(const Tensor<T, D>& leaf) {
    if (!active_) return;
    const auto it = index_.find(leaf.impl().get());
    if (it == index_.end()) return;  // not one of the parameters (an input that requires a gradient)
    const std::size_t i = it->second;
    DML_CHECK(!done_[i], "GradientAverager: a second backward pass reached parameter ", i,
              " after its gradient was final (one backward pass between begin and finish)");
    done_[i] = 1;
    --remaining_[bucket_of_[i]];
    if (!async_) return;
    while (next_ < buckets_.size() && remaining_[next_] == 0) {
      start(next_++);
      ++overlapped_;
    }
    comm_->poll();
  }

  // Scales bucket b's gradients by this rank's weight into the bucket (zeros
  // for a parameter without a gradient here) and starts its all-reduce.
  void start(std::size_t b) {
    const Bucket& k = buckets_[b];
    T* data = nullptr;
    if (k.own) {
      Tensor<T, D> param = params_[k.members[0]];
      had_grad_[k.members[0]] = param.grad().defined() ? 1.0 : 0.0;
      if (!param.grad().defined()) param.set_grad(Tensor<T, D>::zeros(param.shape()));
      Tensor<T, D> g = param.grad();
      Backend<D>::map(fn::Affine{weight_, 0.0}, g.data(), g.data(), g.numel());
      data = g.data();
    } else {
      std::size_t off = k.offset;
      for (std::size_t i : k.members) {
        Tensor<T, D> param = params_[i];
        const std::int64_t n = param.numel();
        had_grad_[i] = param.grad().defined() ? 1.0 : 0.0;
        if (!param.grad().defined()) param.set_grad(Tensor<T, D>::zeros(param.shape()));
        Backend<D>::map(fn::Affine{weight_, 0.0}, param.grad().data(), bucket_.data() + off, n);
        off += static_cast<std::size_t>(n);
      }
      data = bucket_.data() + k.offset;
    }
    if (async_) {
      in_flight_ = true;
      comm_->start_all_reduce_sum(data, k.size, comm_type<T>());
    } else {
      all_reduce_sum_on<D>(*comm_, data, k.size);
    }
    bytes_ += k.size * sizeof(T);
  }

  Collective* comm_;
  std::size_t bucket_elems_;
  Tensor<T, D> bucket_;
  std::vector<Tensor<T, D>> params_;
  std::vector<std::pair<const void*, std::int64_t>> key_;  // the parameter list the layout is for
  std::vector<Bucket> buckets_;
  std::vector<std::size_t> bucket_of_, remaining_;
  std::unordered_map<const void*, std::size_t> index_;
  std::vector<char> done_;
  std::vector<double> had_grad_;
  std::size_t next_ = 0, overlapped_ = 0, bytes_ = 0;
  double weight_ = 0;
  bool async_ = false, active_ = false;
  bool in_flight_ = false;  // buckets started and not yet waited for
};

}  // namespace dml::train
