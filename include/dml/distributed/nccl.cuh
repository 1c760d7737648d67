// dml/distributed/nccl.cuh: a Collective (dml/core/collective.hpp) over NCCL,
// for data-parallel training of Tensor<T, Cuda> (the optional dml::nccl
// target: dml::distributed + dml::cuda + NCCL). One GPU per rank.
//
//   int main(int argc, char** argv) {
//     dml::distributed::Mpi mpi(argc, argv);           // MPI starts the ranks
//     dml::distributed::MpiCommunicator host;          // carries NCCL's id, and host arrays
//     dml::distributed::NcclCommunicator comm(host);   // picks this rank's GPU: before any Cuda tensor
//     nn::ResNet18<float, Cuda> body(...);
//     train::LearnerOptions o;
//     o.collective = &comm;
//     ...                                              // run with mpirun -np <GPUs>
//   }
//
// Device memory goes through NCCL, queued on dml's CUDA stream (so the call
// returns before the data is ready, and every later dml kernel or copy sees
// it); host memory (the small headers of GradientAverager, row counts) goes
// through the MPI communicator. GradientAverager's buckets, started while the
// backward pass runs, go through a second NCCL communicator on a stream of
// their own (the asynchronous channel: start_all_reduce_sum, wait_all).
#pragma once

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../backend/cuda/context.cuh"
#include "../config.hpp"
#include "../core/collective.hpp"
#include "mpi.hpp"

namespace dml::distributed {

namespace detail {

inline void nccl_check(ncclResult_t rc, const char* call) {
  if (rc == ncclSuccess) return;
  throw Error(::dml::detail::concat("NCCL: ", call, " failed: ", ncclGetErrorString(rc)));
}

inline ncclDataType_t nccl_type(CommType t) {
  switch (t) {
    case CommType::Float32: return ncclFloat32;
    case CommType::Float64: return ncclFloat64;
    case CommType::Int64: return ncclInt64;
  }
  throw Error("NCCL: unknown CommType");
}

// Whether p is device (or managed) memory; host memory, registered or not, is not.
inline bool on_device(const void* p) {
  if (!p) return false;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error of an unknown pointer
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

// A new NCCL communicator over the ranks of host: rank 0 makes a unique id,
// MPI broadcasts it, ncclCommInitRank joins. Collective over host.
inline ncclComm_t init_comm(MpiCommunicator& host) {
  ncclUniqueId id{};
  if (host.rank() == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check(MPI_Bcast(&id, static_cast<int>(sizeof id), MPI_BYTE, 0, host.native()), "MPI_Bcast");
  ncclComm_t comm = nullptr;
  nccl_check(ncclCommInitRank(&comm, host.size(), id, host.rank()), "ncclCommInitRank");
  return comm;
}

}  // namespace detail

// This process's index among the ranks of comm on its node, and their number
// (MPI_Comm_split_type shared memory). Collective over comm.
inline std::pair<int, int> node_rank(MPI_Comm comm) {
  MPI_Comm node = MPI_COMM_NULL;
  detail::check(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int r = 0, n = 1;
  MPI_Comm_rank(node, &r);
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return {r, n};
}

// A Collective over NCCL for the ranks of `host` (which must outlive it and
// carries host-memory calls). The constructor chooses this rank's GPU, device
// (node rank) mod (visible devices), for dml (cuda::select_device), so make it
// before the first Cuda tensor; then it makes two NCCL communicators over the
// ranks (each: rank 0 creates NCCL's unique id, MPI broadcasts it,
// ncclCommInitRank joins): one for the blocking calls, on dml's stream, and
// one for the asynchronous channel, on a side stream of its own. Every rank of
// a node needs a GPU of its own (with CUDA_VISIBLE_DEVICES giving each rank
// one device, that one is device 0). Collective. Throws dml::Error without a
// CUDA device, when a node has more ranks than visible GPUs and more than one
// is visible (NCCL cannot share a GPU between ranks), when dml already runs on
// another device, or when NCCL or CUDA fails.
//
// The asynchronous channel (supports_async(): GradientAverager reduces its
// buckets over it while the backward pass runs, as PyTorch's DDP does):
// start_all_reduce_sum records an event on dml's stream after the work that
// wrote the bucket, has the side stream wait for it and queues ncclAllReduce
// on the second communicator there; wait_all records an event on the side
// stream and has dml's stream wait for it. Neither waits on the host, so the
// backward pass keeps queueing kernels while the buckets are reduced, and
// every kernel or copy queued on dml's stream after wait_all sees the sums.
//
// Why the memory of a started bucket is not reused under the reduction: the
// caching allocator (backend/cuda/memory.cuh) hands a freed block to the next
// allocation at once, which is safe only for work on dml's stream. A started
// range is either a slice of GradientAverager's bucket tensor (a member,
// reallocated only in begin(), after the previous step's wait_all) or a
// parameter's gradient (held by the parameter and by the averager's list;
// OnLeafGradient's contract: the pass no longer touches it). Neither is freed
// or written on dml's stream between start_all_reduce_sum and wait_all (the
// bucket kernels of later starts write disjoint slices), and a block freed
// after wait_all is next touched only by work queued on dml's stream after
// its wait for the side stream, so after the reduction. The averager's
// destructor calls wait_all when buckets are still in flight (an exception
// in the backward pass), and this destructor synchronises the side stream
// before it destroys anything.
//
// Why the two communicators cannot deadlock each other. (1) Each one's calls
// come in the same order on every rank: the blocking calls in program order
// (the Collective contract), the asynchronous ones in GradientAverager's
// bucket order, all from the one thread that runs the step. (2) The streams
// wait on each other in one direction at a time: a started reduction waits
// for dml's stream up to its start (so for every blocking call issued before
// it); dml's stream waits for the side stream only at wait_all, which
// GradientAverager::finish calls after its last start and before any later
// blocking call. Number the wait_all calls: a blocking call issued between
// the k-th and the (k+1)-th waits only for blocking calls before it and for
// reductions started before the k-th wait_all; a reduction started in that
// span waits only for earlier reductions and for blocking calls before its
// start. By induction over k, every rank can complete every call of span k:
// the blocking ones first (they depend on nothing of span k's channel), then
// the started ones; there is no cycle, whatever the interleaving of starts
// and blocking calls within a span. (3) What NCCL adds: it promises nothing
// about two communicators' kernels progressing side by side, only that
// operations serialised into one order, the same on every rank (by stream
// dependencies, or from NCCL 2.26 on with NCCL_LAUNCH_ORDER_IMPLICIT=1 by
// the host's launch order), cannot deadlock. By (2) the two channels are so
// serialised except where a blocking call on device memory is issued between
// a start and wait_all: SyncBatchNorm's backward all-reduces. With per-rank
// BatchNorm there is none (Center Loss gathers in the forward pass, and
// GradientAverager's headers and flags go through MPI), so the order is total
// by stream dependencies. With SyncBatchNorm one of its reductions and a
// bucket may be in flight together; each NCCL kernel takes a few thread
// blocks (one per channel), so they run side by side in practice, which any
// program relies on that reduces gradients on one NCCL communicator while its
// backward pass uses another. For NCCL's own guarantee there, set
// NCCL_LAUNCH_ORDER_IMPLICIT=1: the host's launch order is the same on every
// rank, since the autograd engine visits the graph in an order that depends
// only on its shape, the same on every rank that runs the same model.
class NcclCommunicator : public Collective {
 public:
  explicit NcclCommunicator(MpiCommunicator& host) : host_(&host) {
    const auto [local, local_size] = node_rank(host.native());
    int count = 0;
    const cudaError_t st = cudaGetDeviceCount(&count);
    if (st != cudaSuccess) (void)cudaGetLastError();
    DML_CHECK(st == cudaSuccess && count > 0, "NcclCommunicator: no CUDA device on rank ", host.rank(), " (",
              st == cudaSuccess ? "none visible" : cudaGetErrorString(st), ")");
    DML_CHECK(count == 1 || local_size <= count, "NcclCommunicator: ", local_size, " ranks on rank ", host.rank(),
              "'s node but ", count, " GPUs: NCCL needs a GPU per rank (start at most ", count, " ranks per node)");
    device_ = local % count;
    cuda::select_device(device_);
    (void)cuda::context();  // creates dml's stream on the device and makes the device current
    try {
      comm_ = detail::init_comm(host);
      async_comm_ = detail::init_comm(host);
      DML_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
      DML_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
      DML_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    } catch (...) {
      release();
      throw;
    }
  }
  ~NcclCommunicator() override { release(); }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  using Collective::all_reduce_sum;
  using Collective::broadcast;
  int rank() const noexcept override { return host_->rank(); }
  int size() const noexcept override { return host_->size(); }
  bool takes_device_memory() const noexcept override { return true; }
  // The CUDA device this rank uses, and the NCCL communicator of the blocking calls.
  int device() const noexcept { return device_; }
  ncclComm_t native() const noexcept { return comm_; }
  // The NCCL communicator of the asynchronous channel, and its stream.
  ncclComm_t async_native() const noexcept { return async_comm_; }
  cudaStream_t async_stream() const noexcept { return side_; }

  void all_reduce_sum(void* data, std::size_t n, CommType type) override {
    if (n == 0) return;
    if (!detail::on_device(data)) return host_->all_reduce_sum(data, n, type);
    detail::nccl_check(ncclAllReduce(data, data, n, detail::nccl_type(type), ncclSum, comm_, cuda::stream()),
                       "ncclAllReduce");
    reduced_ += n * detail::type_size(type);
  }
  void broadcast(void* data, std::size_t n, CommType type, int root) override {
    DML_CHECK(root >= 0 && root < size(), "NcclCommunicator::broadcast: root ", root, " is not a rank of ", size());
    if (n == 0) return;
    if (!detail::on_device(data)) return host_->broadcast(data, n, type, root);
    detail::nccl_check(ncclBroadcast(data, data, n, detail::nccl_type(type), root, comm_, cuda::stream()),
                       "ncclBroadcast");
  }
  // Device memory: ncclAllGather when every rank sends as many elements, else
  // one ncclBroadcast per rank in a group (counts may differ, as MPI_Allgatherv).
  void all_gather(const void* send, void* recv, std::span<const std::size_t> counts, CommType type) override {
    DML_CHECK(counts.size() == static_cast<std::size_t>(size()), "NcclCommunicator::all_gather: ", counts.size(),
              " counts for ", size(), " ranks");
    std::size_t total = 0;
    bool equal = true;
    for (std::size_t k : counts) {
      total += k;
      equal = equal && k == counts[0];
    }
    if (total == 0) return;
    if (!detail::on_device(recv)) return host_->all_gather(send, recv, counts, type);
    const std::size_t mine = counts[static_cast<std::size_t>(rank())];
    DML_CHECK(mine == 0 || detail::on_device(send),
              "NcclCommunicator::all_gather: recv is device memory but send is not");
    const ncclDataType_t t = detail::nccl_type(type);
    const std::size_t elem = detail::type_size(type);
    auto* out = static_cast<char*>(recv);
    if (equal) {
      detail::nccl_check(ncclAllGather(send, recv, counts[0], t, comm_, cuda::stream()), "ncclAllGather");
    } else {
      detail::nccl_check(ncclGroupStart(), "ncclGroupStart");
      std::size_t off = 0;
      for (int r = 0; r < size(); ++r) {
        const std::size_t k = counts[static_cast<std::size_t>(r)];
        if (k > 0) {
          const void* src = r == rank() ? send : out + off * elem;
          const ncclResult_t rc = ncclBroadcast(src, out + off * elem, k, t, r, comm_, cuda::stream());
          if (rc != ncclSuccess) {
            (void)ncclGroupEnd();
            detail::nccl_check(rc, "ncclBroadcast (all_gather)");
          }
        }
        off += k;
      }
      detail::nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    }
    gathered_ += total * elem;
  }

  // The asynchronous channel (see the class comment). Device memory: the
  // second communicator on the side stream, ordered after everything queued
  // on dml's stream so far; host memory: the MPI communicator's channel.
  bool supports_async() const noexcept override { return true; }
  void start_all_reduce_sum(void* data, std::size_t n, CommType type) override {
    if (n == 0) return;
    if (!detail::on_device(data)) {
      host_pending_ = true;
      return host_->start_all_reduce_sum(data, n, type);
    }
    const cudaStream_t s = cuda::stream();
    DML_CUDA_CHECK(cudaEventRecord(ready_, s));             // dml's stream has written the bucket by here
    DML_CUDA_CHECK(cudaStreamWaitEvent(side_, ready_, 0));  // a later re-record does not move this wait
    detail::nccl_check(ncclAllReduce(data, data, n, detail::nccl_type(type), ncclSum, async_comm_, side_),
                       "ncclAllReduce (asynchronous channel)");
    device_pending_ = true;
    reduced_ += n * detail::type_size(type);
  }
  // Nothing to do for device memory (the GPU progresses the reductions).
  void poll() override {
    if (host_pending_) host_->poll();
  }
  // Returns at once: dml's stream waits (on the GPU) for every reduction
  // started so far; host-memory starts are waited for through MPI.
  void wait_all() override {
    if (host_pending_) {
      host_pending_ = false;
      host_->wait_all();
    }
    if (!device_pending_) return;
    device_pending_ = false;
    DML_CUDA_CHECK(cudaEventRecord(done_, side_));
    DML_CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(), done_, 0));
  }

  // Waits on the host for everything queued on dml's stream and on the side
  // stream (NCCL calls included); throws dml::Error on an asynchronous error.
  void synchronize() const {
    DML_CUDA_CHECK(cudaStreamSynchronize(side_));
    cuda::synchronize();
  }

  // Bytes of device payload all-reduced (both channels) and gathered by this
  // rank (host calls are counted by the MPI communicator).
  std::size_t bytes_all_reduced() const noexcept { return reduced_; }
  std::size_t bytes_gathered() const noexcept { return gathered_; }

 private:
  // Frees what the constructor made, in reverse; the side stream is drained
  // first, so no reduction still uses a communicator or a bucket. Never throws.
  void release() noexcept {
    if (side_) (void)cudaStreamSynchronize(side_);
    if (async_comm_) (void)ncclCommDestroy(async_comm_);
    if (comm_) (void)ncclCommDestroy(comm_);
    if (done_) (void)cudaEventDestroy(done_);
    if (ready_) (void)cudaEventDestroy(ready_);
    if (side_) (void)cudaStreamDestroy(side_);
    (void)cudaGetLastError();  // a failure here must not surface in a later dml call
    async_comm_ = comm_ = nullptr;
    done_ = ready_ = nullptr;
    side_ = nullptr;
  }

  MpiCommunicator* host_;
  ncclComm_t comm_ = nullptr;        // blocking calls, on dml's stream
  ncclComm_t async_comm_ = nullptr;  // start_all_reduce_sum, on side_
  cudaStream_t side_ = nullptr;      // non-blocking: not ordered with the legacy default stream either
  cudaEvent_t ready_ = nullptr;      // recorded on dml's stream by each start
  cudaEvent_t done_ = nullptr;       // recorded on side_ by wait_all
  int device_ = 0;
  bool device_pending_ = false, host_pending_ = false;  // started since the last wait_all
  std::size_t reduced_ = 0, gathered_ = 0;
};

}  // namespace dml::distributed
