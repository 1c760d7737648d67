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
// through the MPI communicator.
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
// before the first Cuda tensor; rank 0 creates NCCL's unique id, MPI
// broadcasts it, ncclCommInitRank joins. Every rank of a node needs a GPU of
// its own (with CUDA_VISIBLE_DEVICES giving each rank one device, that one is
// device 0). Collective. Throws dml::Error without a CUDA device, when a node
// has more ranks than visible GPUs and more than one is visible (NCCL cannot
// share a GPU between ranks), when dml already runs on another device, or
// when NCCL fails.
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
    ncclUniqueId id{};
    if (host.rank() == 0) detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    detail::check(MPI_Bcast(&id, static_cast<int>(sizeof id), MPI_BYTE, 0, host.native()), "MPI_Bcast");
    detail::nccl_check(ncclCommInitRank(&comm_, host.size(), id, host.rank()), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  using Collective::all_reduce_sum;
  using Collective::broadcast;
  int rank() const noexcept override { return host_->rank(); }
  int size() const noexcept override { return host_->size(); }
  bool takes_device_memory() const noexcept override { return true; }
  // The CUDA device this rank uses, and the NCCL communicator.
  int device() const noexcept { return device_; }
  ncclComm_t native() const noexcept { return comm_; }

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

  // Waits for everything queued on dml's stream (NCCL calls included); throws
  // dml::Error on an asynchronous error.
  void synchronize() const { cuda::synchronize(); }

  // Bytes of device payload all-reduced and gathered by this rank (host calls
  // are counted by the MPI communicator).
  std::size_t bytes_all_reduced() const noexcept { return reduced_; }
  std::size_t bytes_gathered() const noexcept { return gathered_; }

 private:
  MpiCommunicator* host_;
  ncclComm_t comm_ = nullptr;
  int device_ = 0;
  std::size_t reduced_ = 0, gathered_ = 0;
};

}  // namespace dml::distributed
