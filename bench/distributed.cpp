// bench/distributed.cpp: data-parallel training throughput over MPI (dml::distributed).
//
//   OMP_NUM_THREADS=2 bench_distributed [GLOBAL_BATCH] [STEPS]           one process
//   OMP_NUM_THREADS=1 mpirun -np 2 bench_distributed [GLOBAL_BATCH] [STEPS]   two ranks
//
// DML_OVERLAP=0 reduces the gradients after the backward pass instead of during it
// (LearnerOptions::overlap_all_reduce); DML_BUCKET_MB=N sets the bucket size (default 25).
//
// Trains ResNet18 (1x28x28, width 64, 512-d embedding) + ArcFace + Center Loss through
// train::Learner on synthetic data: GLOBAL_BATCH (default 64) rows per step over all ranks,
// 2 warm-up steps, then STEPS (default 8) timed steps. Validation: the losses are finite.
// Rank 0 prints `name: value unit` lines: images/s and step time (mean, and of the median step:
// a shared host may pause the process for seconds), the seconds of each step spent
// in all-reduce calls or waiting for started ones (which on a shared host includes waiting for
// the slower rank), and the
// bytes all-reduced and gathered per step (this rank's payload). Also times one all-reduce of
// the gradient's size on its own (the communication cost of the scaling model in
// docs/distributed.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include <dml/distributed/distributed.hpp>
#include <dml/dml.hpp>

using namespace dml;
using Clock = std::chrono::steady_clock;

namespace {

// Times every call that goes through it.
struct TimedCollective : Collective {
  explicit TimedCollective(distributed::MpiCommunicator& c) : inner(c) {}
  using Collective::all_reduce_sum;
  using Collective::broadcast;
  int rank() const noexcept override { return inner.rank(); }
  int size() const noexcept override { return inner.size(); }
  void all_reduce_sum(void* d, std::size_t n, CommType t) override {
    const auto t0 = Clock::now();
    inner.all_reduce_sum(d, n, t);
    reduce_s += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  void broadcast(void* d, std::size_t n, CommType t, int root) override { inner.broadcast(d, n, t, root); }
  void all_gather(const void* s, void* r, std::span<const std::size_t> c, CommType t) override {
    inner.all_gather(s, r, c, t);
  }
  // The asynchronous channel: starting and polling cost little; what the step waits for is wait_all.
  bool supports_async() const noexcept override { return inner.supports_async(); }
  void start_all_reduce_sum(void* d, std::size_t n, CommType t) override { inner.start_all_reduce_sum(d, n, t); }
  void poll() override { inner.poll(); }
  void wait_all() override {
    const auto t0 = Clock::now();
    inner.wait_all();
    reduce_s += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  distributed::MpiCommunicator& inner;
  double reduce_s = 0;
};

data::Dataset synthetic(std::int64_t n) {
  Generator gen(3);
  std::vector<float> px(static_cast<std::size_t>(n * 28 * 28));
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (auto& v : px) v = static_cast<float>(gen.normal());
  for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i % 10;
  return data::Dataset::from_vectors(px, Shape{1, 28, 28}, labels, 10);
}

}  // namespace

int main(int argc, char** argv) try {
  distributed::Mpi mpi(argc, argv);
  distributed::MpiCommunicator comm;
  TimedCollective timed(comm);
  const std::int64_t global = argc > 1 ? std::atol(argv[1]) : 64, steps = argc > 2 ? std::atol(argv[2]) : 8;
  const std::int64_t warm = 2, world = comm.size();
  DML_CHECK(global % world == 0 && steps >= 1, "bench_distributed: GLOBAL_BATCH must divide by the ", world,
            " ranks and STEPS be >= 1");
  nn::ResNet18<float, Cpu> body({.in_channels = 1, .embedding = 512, .head_dropout = {0, 0}});
  heads::MarginHead<heads::Arc> head(512, 10, {.s = 30, .m = 0.5});
  losses::CenterLoss<float, Cpu> center(10, 512);
  train::LearnerOptions o;
  o.batch_size = global / world;
  o.quiet = true;
  o.prefetch = true;
  if (world > 1) o.collective = &timed;
  const char* overlap = std::getenv("DML_OVERLAP");
  o.overlap_all_reduce = !(overlap && std::string(overlap) == "0");
  if (const char* mb = std::getenv("DML_BUCKET_MB")) o.bucket_bytes = static_cast<std::size_t>(std::atof(mb) * (1 << 20));
  train::Learner learn(body, head, data::Splits{synthetic(global * (warm + steps)), {}},
                       optim::SGD{.lr = 0.01, .momentum = 0.9}, o);
  learn.add_loss(center, 1.0 / 8, "center");
  Clock::time_point t0;
  std::vector<Clock::time_point> ends;  // of each timed step
  double reduce0 = 0;
  std::size_t bytes0 = 0, gathered0 = 0;
  bool finite = true;
  learn.add_callback({.on_batch_end =
                          [&](auto&, const train::BatchInfo& b) {
                            finite = finite && std::isfinite(b.loss);
                            if (b.batch + 1 > warm) ends.push_back(Clock::now());
                            if (b.batch + 1 == warm) {
                              t0 = Clock::now();
                              reduce0 = timed.reduce_s;
                              bytes0 = comm.bytes_all_reduced();
                              gathered0 = comm.bytes_gathered();
                            }
                          },
                      .on_epoch_end = {}});
  learn.fit(1);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  DML_CHECK(finite, "bench_distributed: a non-finite loss");
  const double per_step = seconds / static_cast<double>(steps);
  // The median step: robust to a host that pauses the process now and then.
  std::vector<double> step_s;
  for (std::size_t i = 0; i < ends.size(); ++i)
    step_s.push_back(std::chrono::duration<double>(ends[i] - (i == 0 ? t0 : ends[i - 1])).count());
  std::sort(step_s.begin(), step_s.end());
  const double median = step_s.empty() ? per_step : step_s[step_s.size() / 2];
  const double reduce = (timed.reduce_s - reduce0) / static_cast<double>(steps);
  const double bytes = static_cast<double>(comm.bytes_all_reduced() - bytes0) / static_cast<double>(steps);
  const double gathered = static_cast<double>(comm.bytes_gathered() - gathered0) / static_cast<double>(steps);

  // One all-reduce of the gradient's size alone, averaged over 5 after one warm-up.
  std::size_t params = 0;
  for (const auto& p : learn.optimizer().params()) params += static_cast<std::size_t>(p.second.numel());
  std::vector<float> grad(params, 1.0f);
  comm.barrier();
  comm.all_reduce_sum(std::span<float>(grad));
  comm.barrier();
  const auto a0 = Clock::now();
  for (int i = 0; i < 5; ++i) comm.all_reduce_sum(std::span<float>(grad));
  const double allreduce = std::chrono::duration<double>(Clock::now() - a0).count() / 5;

  if (comm.rank() == 0) {
    const char* threads = std::getenv("OMP_NUM_THREADS");
    std::printf("# %ld rank(s) x OMP_NUM_THREADS=%s, global batch %ld (%ld per rank), %ld timed steps, "
                "all-reduce %s the backward pass, buckets of %.1f MiB\n",
                long(world), threads ? threads : "(unset)", long(global), long(global / world), long(steps),
                o.overlap_all_reduce ? "during" : "after", static_cast<double>(o.bucket_bytes) / (1 << 20));
    std::printf("train_images_per_s: %.1f images/s\n", static_cast<double>(global * steps) / seconds);
    std::printf("step_time: %.1f ms\n", 1e3 * per_step);
    std::printf("median_step_time: %.1f ms\n", 1e3 * median);
    std::printf("train_images_per_s_median_step: %.1f images/s\n", static_cast<double>(global) / median);
    std::printf("allreduce_time_in_step: %.1f ms\n", 1e3 * reduce);
    std::printf("allreduce_bytes_per_step: %.0f bytes\n", bytes);
    std::printf("gathered_bytes_per_step: %.0f bytes\n", gathered);
    std::printf("gradient_elements: %zu floats\n", params);
    std::printf("allreduce_gradient_alone: %.1f ms\n", 1e3 * allreduce);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_distributed: %s\n", e.what());
  return 1;
}
