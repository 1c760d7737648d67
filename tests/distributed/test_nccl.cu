// Tests for dml::nccl (issue 18): the NCCL communicator and what runs over it on Cuda tensors,
// each checked against the same computation on host tensors over MPI, and the asynchronous
// channel (GradientAverager overlapped with the backward pass) against NCCL's blocking calls,
// bit for bit. Run under mpirun with 1 and 2 ranks (tests/CMakeLists.txt). Every test is
// collective; each skips, passing, on every rank when some rank lacks a GPU of its own (no
// device, or more ranks on a node than GPUs), except that under DML_REQUIRE_GPU=1
// (scripts/gpu_check.sh) a rank with no device at all fails.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dml/backend/cpu/backend.hpp"
#include "dml/backend/cuda/backend.cuh"
#include "dml/core/random.hpp"
#include "dml/core/tensor.hpp"
#include "dml/distributed/distributed.hpp"
#include "dml/distributed/nccl.cuh"
#include "dml/nn/resnet.hpp"
#include "dml/ops/elementwise.hpp"
#include "dml/ops/reduce.hpp"
#include "dml/ops/sync_batchnorm.hpp"
#include "dml/train/data_parallel.hpp"

using namespace dml;

namespace {

distributed::MpiCommunicator& host_comm() {
  static distributed::MpiCommunicator c;
  return c;
}

// Made on first use, once every rank has a GPU of its own (gpus_for_every_rank).
// Never destroyed: main's distributed::Mpi finalises MPI first, and NCCL's and CUDA's state
// goes with the process.
distributed::NcclCommunicator& nccl() {
  static auto* c = new distributed::NcclCommunicator(host_comm());
  return *c;
}

int min_over_ranks(int v) {
  int out = v;
  MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MIN, host_comm().native());
  return out;
}

// Whether every rank has a GPU of its own; otherwise a skip message (or, with DML_REQUIRE_GPU
// set and some rank without any device, a failure) and false on every rank. Collective.
bool gpus_for_every_rank() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    count = 0;
  }
  const int local_size = distributed::node_rank(host_comm().native()).second;
  const int all_have_one = min_over_ranks(count > 0 ? 1 : 0);
  const int enough = min_over_ranks(count >= local_size ? 1 : 0);
  if (all_have_one && enough) return true;
  const char* env = std::getenv("DML_REQUIRE_GPU");
  const bool required = env && *env && std::strcmp(env, "0") != 0;
  if (!all_have_one && required) {
    FAIL_CHECK("no CUDA device on some rank, but DML_REQUIRE_GPU is set (this rank sees ", count, ")");
  } else if (host_comm().rank() == 0) {
    const std::string why = all_have_one ? "skipped: fewer GPUs than ranks on a node" : "skipped: no CUDA device";
    MESSAGE(why, " (this rank sees ", count, " for ", local_size, " rank(s) on its node)");
  }
  return false;
}

template <class T>
std::vector<T> to_host(const Tensor<T, Cuda>& t) {
  return t.to_vector();
}

// max |a - b| / (1 + |b|)
template <class T>
double max_rel_diff(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    d = std::max(d, std::abs(double(a[i]) - double(b[i])) / (1 + std::abs(double(b[i]))));
  return d;
}

}  // namespace

TEST_CASE("NcclCommunicator sums, broadcasts and gathers device memory in rank order; host memory goes to MPI") {
  if (!gpus_for_every_rank()) return;
  auto& c = nccl();
  const int r = c.rank(), w = c.size();
  CHECK(c.takes_device_memory());
  CHECK(c.device() >= 0);

  auto f = Tensor<float, Cuda>::from_vector({1.0f, static_cast<float>(r), 0.5f});
  c.all_reduce_sum(f.data(), 3, CommType::Float32);
  CHECK(to_host(f) == std::vector<float>{float(w), float(w * (w - 1) / 2), 0.5f * float(w)});
  auto d = Tensor<double, Cuda>::from_vector({static_cast<double>(r) + 0.25});
  c.all_reduce_sum(d.data(), 1, CommType::Float64);
  CHECK(to_host(d)[0] == doctest::Approx(w * (w - 1) / 2.0 + 0.25 * w));
  auto i = Tensor<std::int64_t, Cuda>::from_vector({r == 0 ? std::int64_t{42} : std::int64_t{-1}, std::int64_t{r}});
  c.broadcast(i.data(), 2, CommType::Int64, 0);
  CHECK(to_host(i) == std::vector<std::int64_t>{42, 0});

  std::vector<double> h = {1.0, static_cast<double>(r)};  // host memory: through MPI
  c.all_reduce_sum(std::span<double>(h));
  CHECK(h == std::vector<double>{double(w), w * (w - 1) / 2.0});

  // Unequal counts (rank q sends q + 1 values q): one broadcast per rank in a group.
  auto send = Tensor<float, Cuda>::full(Shape{r + 1}, static_cast<float>(r));
  const std::vector<std::size_t> counts = c.gather_counts(static_cast<std::size_t>(r + 1));
  auto recv = Tensor<float, Cuda>::zeros(Shape{w * (w + 1) / 2});
  c.all_gather(send.data(), recv.data(), counts, CommType::Float32);
  std::vector<float> expect;
  for (int q = 0; q < w; ++q) expect.insert(expect.end(), static_cast<std::size_t>(q + 1), static_cast<float>(q));
  CHECK(to_host(recv) == expect);
  // Equal counts: ncclAllGather.
  auto two = Tensor<std::int64_t, Cuda>::from_vector({std::int64_t{r}, std::int64_t{10 + r}});
  auto all = Tensor<std::int64_t, Cuda>::zeros(Shape{2 * w});
  const std::vector<std::size_t> equal(static_cast<std::size_t>(w), 2);
  c.all_gather(two.data(), all.data(), equal, CommType::Int64);
  std::vector<std::int64_t> expect2;
  for (int q = 0; q < w; ++q) expect2.insert(expect2.end(), {std::int64_t{q}, std::int64_t{10 + q}});
  CHECK(to_host(all) == expect2);
}

TEST_CASE("GradientAverager over NCCL gives Cuda gradients equal to the host ones over MPI") {
  if (!gpus_for_every_rank()) return;
  const int r = nccl().rank();
  // Three parameters: a bucket of 4 floats holds a and b, c is larger and is reduced on its own;
  // u has a gradient on no rank and must stay without one.
  const std::vector<std::vector<float>> values = {{1, 2}, {3}, {4, 5, 6, 7, 8}, {9}};
  const auto grad_of = [&](std::size_t k) {
    std::vector<float> g = values[k];
    for (std::size_t j = 0; j < g.size(); ++j) g[j] = g[j] * float(r + 1) + 0.125f * float(j);
    return g;
  };
  const auto run = [&]<class D>(Collective& comm) {
    std::vector<optim::NamedParam<float, D>> params;
    const char* names[] = {"a", "b", "c", "u"};
    for (std::size_t k = 0; k < values.size(); ++k) {
      auto p = Tensor<float, D>::from_vector(values[k]).requires_grad_();
      if (k < 3) p.set_grad(Tensor<float, D>::from_vector(grad_of(k)));
      params.emplace_back(names[k], p);
    }
    train::GradientAverager<float, D> avg(comm, 4 * sizeof(float));
    const train::GlobalBatch g = avg.reduce(params, r + 1, 0.5 * (r + 1));
    std::vector<std::vector<float>> out;
    for (std::size_t k = 0; k < 3; ++k) out.push_back(params[k].second.grad().to_vector());
    CHECK(!params[3].second.grad().defined());
    return std::make_pair(g, out);
  };
  const auto [g_host, host] = run.template operator()<Cpu>(host_comm());
  const auto [g_dev, dev] = run.template operator()<Cuda>(nccl());
  CHECK(g_dev.rows == g_host.rows);
  CHECK(g_dev.loss == g_host.loss);
  for (std::size_t k = 0; k < 3; ++k) CHECK(max_rel_diff(dev[k], host[k]) < 1e-6);
}

namespace {

// The NCCL communicator without its asynchronous channel (supports_async() false): GradientAverager
// then reduces every bucket after the backward pass with blocking all-reduces on the first NCCL
// communicator, queued on dml's stream, as before the channel existed.
class BlockingOnly : public Collective {
 public:
  explicit BlockingOnly(Collective& c) : c_(&c) {}
  using Collective::all_reduce_sum;
  using Collective::broadcast;
  int rank() const noexcept override { return c_->rank(); }
  int size() const noexcept override { return c_->size(); }
  void all_reduce_sum(void* data, std::size_t n, CommType type) override { c_->all_reduce_sum(data, n, type); }
  void broadcast(void* data, std::size_t n, CommType type, int root) override { c_->broadcast(data, n, type, root); }
  void all_gather(const void* send, void* recv, std::span<const std::size_t> counts, CommType type) override {
    c_->all_gather(send, recv, counts, type);
  }
  bool takes_device_memory() const noexcept override { return c_->takes_device_memory(); }

 private:
  Collective* c_;
};

// Only cuDNN's deterministic convolution algorithms while it lives: the two runs compared below
// then compute the same local gradients, bit for bit.
struct DeterministicConv {
  DeterministicConv() { cuda::set_conv_deterministic(true); }
  ~DeterministicConv() { cuda::set_conv_deterministic(false); }
  DeterministicConv(const DeterministicConv&) = delete;
  DeterministicConv& operator=(const DeterministicConv&) = delete;
};

struct Averaged {
  std::vector<std::vector<float>> grads;
  std::size_t buckets = 0, overlapped = 0;
};

// The gradients of a ResNet18 of width 4 on Cuda with SyncBatchNorm over nccl() (whose blocking
// all-reduces run on the first communicator during the backward pass, among the started
// buckets) on 5 + rank random images, averaged over `avg_comm` in 4 KiB buckets: with `overlap`,
// each bucket started as the pass finishes its gradients (begin, overlap, finish); without,
// all after the pass (reduce).
Averaged cuda_averaged_gradients(Collective& avg_comm, bool overlap) {
  const int r = nccl().rank();
  nn::ResNet18<float, Cuda> body({.in_channels = 1, .embedding = 16, .width = 4, .seed = 7, .head_dropout = {0.0, 0.0}});
  CHECK(nn::sync_batch_norm(body, &nccl()) == 22);
  train::broadcast_state(nccl(), body);
  Generator gen(100 + static_cast<std::uint64_t>(r));
  const auto x0 = Tensor<float>::randn(Shape{5 + r, 1, 16, 16}, gen);
  const auto x = Tensor<float, Cuda>::from_vector(x0.to_vector(), x0.shape());
  const Tensor<float, Cuda> e = body.forward(x);
  const Tensor<float, Cuda> loss = ops::mean(e * e);
  const auto params = body.named_parameters();
  train::GradientAverager<float, Cuda> avg(avg_comm, 4096);
  if (overlap) {
    avg.begin(params, x.dim(0), loss.item());
    {
      auto during = avg.overlap();
      loss.backward();
    }
    avg.finish();
  } else {
    loss.backward();
    avg.reduce(params, x.dim(0), loss.item());
  }
  Averaged out;
  out.buckets = avg.buckets_last_step();
  out.overlapped = avg.buckets_overlapped();
  for (const auto& [name, p] : params) out.grads.push_back(p.grad().to_vector());  // waits for dml's stream
  return out;
}

}  // namespace

TEST_CASE("GradientAverager on Cuda over NCCL's asynchronous channel, overlapped with the backward pass, gives "
          "the blocking result, bit for bit") {
  if (!gpus_for_every_rank()) return;
  auto& c = nccl();
  CHECK(c.supports_async());
  CHECK((c.async_native() != nullptr));
  CHECK((c.async_native() != c.native()));
  CHECK((c.async_stream() != nullptr));
  CHECK((c.async_stream() != cuda::stream()));
  DeterministicConv deterministic;
  BlockingOnly blocking_comm(c);
  const Averaged blocking = cuda_averaged_gradients(blocking_comm, false);
  const Averaged during = cuda_averaged_gradients(c, true);
  const Averaged after = cuda_averaged_gradients(c, false);  // the asynchronous channel, all after the pass
  CHECK(blocking.overlapped == 0);
  CHECK(after.overlapped == 0);
  // 4 KiB buckets over ResNet18 of width 4 (about 45,000 parameters): dozens of buckets, all but
  // those of the first layers started before the pass ends.
  if (c.rank() == 0) MESSAGE("buckets started during the backward pass: ", during.overlapped, " of ", during.buckets);
  CHECK(during.buckets == blocking.buckets);
  CHECK(during.overlapped > 10);
  REQUIRE(during.grads.size() == blocking.grads.size());
  REQUIRE(after.grads.size() == blocking.grads.size());
  // On 1 or 2 ranks each element is a + b on either communicator (the same sum, commutative), so
  // the results are equal; on more, the two communicators could associate a sum differently.
  for (std::size_t i = 0; i < blocking.grads.size(); ++i) {
    if (c.size() <= 2) {
      CHECK(during.grads[i] == blocking.grads[i]);
      CHECK(after.grads[i] == blocking.grads[i]);
    } else {
      CHECK(max_rel_diff(during.grads[i], blocking.grads[i]) < 1e-6);
      CHECK(max_rel_diff(after.grads[i], blocking.grads[i]) < 1e-6);
    }
  }
  // The step left nothing in flight: a synchronize returns, and the device reports no error.
  c.synchronize();
}

TEST_CASE("SyncBatchNorm on Cuda over NCCL equals SyncBatchNorm on the host over MPI (uneven batches)") {
  if (!gpus_for_every_rank()) return;
  const int r = nccl().rank();
  const std::int64_t n = 3 + r, c = 4;  // rank r holds 3 + r images of 4 x 5 x 5
  Generator gen(11 + static_cast<std::uint64_t>(r));
  const auto x0 = Tensor<float>::randn(Shape{n, c, 5, 5}, gen, 0.5, 2.0);
  const auto gy0 = Tensor<float>::randn(Shape{n, c, 5, 5}, gen);
  const std::vector<float> w0 = {1.0f, 0.5f, -1.5f, 2.0f}, b0 = {0.0f, 0.25f, -0.5f, 1.0f};
  struct Result {
    std::vector<float> y, rm, rv, gx, gw, gb;
  };
  const auto run = [&]<class D>(Collective& comm) {
    auto x = Tensor<float, D>::from_vector(x0.to_vector(), x0.shape()).requires_grad_();
    auto w = Tensor<float, D>::from_vector(w0).requires_grad_();
    auto b = Tensor<float, D>::from_vector(b0).requires_grad_();
    auto rm = Tensor<float, D>::zeros(Shape{c});
    auto rv = Tensor<float, D>::ones(Shape{c});
    Tensor<float, D> y = ops::sync_batch_norm(x, w, b, rm, rv, comm, {.training = true, .momentum = 0.1});
    y.backward(Tensor<float, D>::from_vector(gy0.to_vector(), gy0.shape()));
    return Result{y.to_vector(),          rm.to_vector(),       rv.to_vector(),
                  x.grad().to_vector(), w.grad().to_vector(), b.grad().to_vector()};
  };
  const Result host = run.template operator()<Cpu>(host_comm());
  const Result dev = run.template operator()<Cuda>(nccl());
  CHECK(max_rel_diff(dev.y, host.y) < 1e-5);
  CHECK(max_rel_diff(dev.rm, host.rm) < 1e-6);
  CHECK(max_rel_diff(dev.rv, host.rv) < 1e-6);
  CHECK(max_rel_diff(dev.gx, host.gx) < 1e-5);
  CHECK(max_rel_diff(dev.gw, host.gw) < 1e-5);
  CHECK(max_rel_diff(dev.gb, host.gb) < 1e-5);
  // The running variance moved by the global statistics: with 2 ranks it is not rank 0's alone.
  std::vector<float> rv0 = host.rv;
  host_comm().broadcast(std::span<float>(rv0));
  CHECK(max_rel_diff(host.rv, rv0) == 0);
}

TEST_CASE("nn::BatchNorm2d<float, Cuda> with sync_batch_norm and broadcast_state over NCCL") {
  if (!gpus_for_every_rank()) return;
  const int r = nccl().rank();
  nn::BatchNorm2d<float, Cuda> bn(3);
  nn::BatchNorm2d<float, Cpu> ref(3);
  // Rank-dependent weights: broadcast_state must leave rank 0's on every rank.
  Tensor<float, Cuda> weight = bn.weight();  // shares the parameter's storage
  Backend<Cuda>::fill(weight.data(), 3, 1.0f + float(r));
  train::broadcast_state(nccl(), bn);
  CHECK(bn.weight().to_vector() == std::vector<float>{1, 1, 1});
  CHECK(nn::sync_batch_norm(bn, &nccl()) == 1);
  CHECK(nn::sync_batch_norm(ref, &host_comm()) == 1);
  Generator gen(5 + static_cast<std::uint64_t>(r));
  const auto x0 = Tensor<float>::randn(Shape{2, 3, 4, 4}, gen);
  const auto y_dev = bn.forward(Tensor<float, Cuda>::from_vector(x0.to_vector(), x0.shape())).to_vector();
  const auto y_host = ref.forward(x0).to_vector();
  CHECK(max_rel_diff(y_dev, y_host) < 1e-5);
  CHECK(max_rel_diff(bn.running_mean().to_vector(), ref.running_mean().to_vector()) < 1e-6);
}
