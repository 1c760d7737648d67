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
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "../backend/functors.hpp"
#include "../config.hpp"
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
// bucket_bytes (DDP's default is 25 MiB). Not overlapped with the backward pass:
// the autograd engine has no per-leaf hook yet, so reduce() runs after it.
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

  // After this rank's backward pass over `rows` rows whose mean loss is `loss`:
  // every parameter that has a gradient on some rank gets, on every rank, the
  // gradient of the global batch's mean loss, sum_r (rows_r / N) g_r (zero
  // where a rank has none: an empty shard, an unused parameter). Parameters
  // that no rank has a gradient for stay without one, as in one process.
  // Collective: every rank calls it with the same parameter list. Throws
  // dml::Error when the ranks' lists differ in length or no rank has a row.
  GlobalBatch reduce(std::span<const optim::NamedParam<T, D>> params, std::int64_t rows, double loss) {
    const std::size_t p = params.size();
    std::vector<double> head(3 + p, 0.0);  // rows, rows * loss, parameter count, has-gradient flags
    head[0] = static_cast<double>(rows);
    head[1] = rows > 0 ? static_cast<double>(rows) * loss : 0.0;
    head[2] = static_cast<double>(p);
    for (std::size_t i = 0; i < p; ++i) head[3 + i] = params[i].second.grad().defined() ? 1.0 : 0.0;
    comm_->all_reduce_sum(std::span<double>(head));
    const int world = comm_->size();
    DML_CHECK(head[2] == static_cast<double>(p) * world, "GradientAverager: the ranks reduce different parameter ",
              "lists (this rank has ", p, " parameters; the sum over ", world, " ranks is ", head[2], ")");
    DML_CHECK(head[0] > 0, "GradientAverager: no rank has a row in this batch");
    const GlobalBatch global{static_cast<std::int64_t>(head[0]), head[1] / head[0]};
    const double weight = static_cast<double>(rows) / head[0];

    bytes_ = 0;
    std::size_t packed = 0;  // elements that go through the bucket
    for (std::size_t i = 0; i < p; ++i)
      if (head[3 + i] != 0 && static_cast<std::size_t>(params[i].second.numel()) <= bucket_elems_)
        packed += static_cast<std::size_t>(params[i].second.numel());
    const std::size_t capacity = std::min(packed, bucket_elems_);
    if (capacity > 0 && (!bucket_.defined() || static_cast<std::size_t>(bucket_.numel()) < capacity))
      bucket_ = Tensor<T, D>::empty(Shape{static_cast<std::int64_t>(capacity)});
    std::vector<Tensor<T, D>> pending;
    std::size_t used = 0;
    for (std::size_t i = 0; i < p; ++i) {
      if (head[3 + i] == 0) continue;
      Tensor<T, D> param = params[i].second;
      Tensor<T, D> g = param.grad();
      if (!g.defined()) {
        g = Tensor<T, D>::zeros(param.shape());
        param.set_grad(g);
      }
      const auto n = static_cast<std::size_t>(g.numel());
      if (used + n > bucket_elems_ && !pending.empty()) flush(pending, used);
      if (n > bucket_elems_) {  // larger than a bucket: reduced in place on its own
        Backend<D>::map(fn::Affine{weight, 0.0}, g.data(), g.data(), g.numel());
        all_reduce_sum_on<D>(*comm_, g.data(), n);
        bytes_ += n * sizeof(T);
        continue;
      }
      Backend<D>::map(fn::Affine{weight, 0.0}, g.data(), bucket_.data() + used, g.numel());
      used += n;
      pending.push_back(g);
    }
    if (!pending.empty()) flush(pending, used);
    bytes_ += head.size() * sizeof(double);
    return global;
  }

  // Bytes all-reduced by the last reduce() (gradients plus its small header).
  std::size_t bytes_last_step() const noexcept { return bytes_; }
  Collective& collective() const noexcept { return *comm_; }

 private:
  void flush(std::vector<Tensor<T, D>>& pending, std::size_t& used) {
    all_reduce_sum_on<D>(*comm_, bucket_.data(), used);
    bytes_ += used * sizeof(T);
    std::size_t off = 0;
    for (Tensor<T, D>& g : pending) {
      Backend<D>::map(fn::Affine{1.0, 0.0}, bucket_.data() + off, g.data(), g.numel());
      off += static_cast<std::size_t>(g.numel());
    }
    pending.clear();
    used = 0;
  }

  Collective* comm_;
  std::size_t bucket_elems_;
  Tensor<T, D> bucket_;
  std::size_t bytes_ = 0;
};

}  // namespace dml::train
