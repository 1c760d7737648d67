// dml/core/collective.hpp: Collective, what data-parallel training needs of a
// group of processes (ranks): sum, broadcast and gather of plain arrays.
//
// It is an interface so that dml::dml stays free of MPI: the Learner, Center
// Loss and BatchNorm talk to a Collective*, and dml::distributed implements one
// over MPI (dml/distributed/mpi.hpp). Every call is collective: all ranks make
// it, in the same order, with the same sizes (gather: the same `counts`).
// Pointers are into the memory of the tensors being reduced: host memory for a
// host communicator (MPI); host or device memory for one whose
// takes_device_memory() is true (NCCL: dml/distributed/nccl.cuh). Code that
// reduces a Tensor<T, D> calls the *_on helpers below, which stage device
// memory through the host for a host communicator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../config.hpp"
#include "device.hpp"
#include "storage.hpp"

namespace dml {

enum class CommType { Float32, Float64, Int64 };

template <class T>
constexpr CommType comm_type() {
  if constexpr (std::is_same_v<T, float>) return CommType::Float32;
  else if constexpr (std::is_same_v<T, double>) return CommType::Float64;
  else {
    static_assert(std::is_same_v<T, std::int64_t>, "comm_type: float, double or int64_t");
    return CommType::Int64;
  }
}

class Collective {
 public:
  virtual ~Collective() = default;
  // This process's index in 0..size()-1, and the number of processes.
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  // In place: data[0..n) becomes the elementwise sum over ranks.
  virtual void all_reduce_sum(void* data, std::size_t n, CommType type) = 0;
  // In place: data[0..n) becomes root's.
  virtual void broadcast(void* data, std::size_t n, CommType type, int root) = 0;
  // recv (sum of counts elements) receives counts[r] elements from rank r, in
  // rank order; this rank sends send[0..counts[rank()]).
  virtual void all_gather(const void* send, void* recv, std::span<const std::size_t> counts, CommType type) = 0;
  // Whether the three calls above also take device memory. Where they do,
  // calls on device memory may return before the data is ready: they are
  // queued on dml's CUDA stream, so every later dml kernel and copy sees the
  // result.
  virtual bool takes_device_memory() const noexcept { return false; }

  // Asynchronous all-reduce, for overlapping communication with the backward
  // pass (train::GradientAverager). Where supports_async() is true,
  // start_all_reduce_sum begins data[0..n) becoming the sum over ranks on a
  // channel of its own, ordered only against other started calls (which
  // every rank must start in the same order, with the same sizes); data must
  // stay untouched, and its memory alive, until wait_all() returns. wait_all
  // returns once every started call is complete or, on device memory, once
  // they are queued before everything dml queues afterwards (as the blocking
  // calls on device memory: NCCL makes dml's CUDA stream wait for its side
  // stream, without a host wait); poll() lets started calls progress (MPI
  // progresses them only inside MPI calls). The defaults: no asynchronous
  // channel, start reduces at once.
  virtual bool supports_async() const noexcept { return false; }
  virtual void start_all_reduce_sum(void* data, std::size_t n, CommType type) { all_reduce_sum(data, n, type); }
  virtual void poll() {}
  virtual void wait_all() {}

  template <class T>
  void all_reduce_sum(std::span<T> v) {
    all_reduce_sum(v.data(), v.size(), comm_type<T>());
  }
  template <class T>
  void broadcast(std::span<T> v, int root = 0) {
    broadcast(v.data(), v.size(), comm_type<T>(), root);
  }
  // Every rank's n (one int64 all-reduce): counts for all_gather.
  std::vector<std::size_t> gather_counts(std::size_t n) {
    std::vector<std::int64_t> c(static_cast<std::size_t>(size()), 0);
    c[static_cast<std::size_t>(rank())] = static_cast<std::int64_t>(n);
    all_reduce_sum(std::span<std::int64_t>(c));
    return std::vector<std::size_t>(c.begin(), c.end());
  }
};

// The calls above on the memory of a Tensor<T, D>: directly for host tensors
// or a communicator that takes device memory; otherwise through a host copy
// (a device tensor on an MPI communicator: correct, but two copies per call).
template <class D, class T>
void all_reduce_sum_on(Collective& c, T* data, std::size_t n) {
  if (std::is_same_v<D, Cpu> || c.takes_device_memory() || n == 0) return c.all_reduce_sum(data, n, comm_type<T>());
  std::vector<T> host(n);
  Memory<D>::to_host(host.data(), data, n * sizeof(T));
  c.all_reduce_sum(host.data(), n, comm_type<T>());
  Memory<D>::from_host(data, host.data(), n * sizeof(T));
}
template <class D, class T>
void broadcast_on(Collective& c, T* data, std::size_t n, int root) {
  if (std::is_same_v<D, Cpu> || c.takes_device_memory() || n == 0) return c.broadcast(data, n, comm_type<T>(), root);
  std::vector<T> host(n);
  Memory<D>::to_host(host.data(), data, n * sizeof(T));
  c.broadcast(host.data(), n, comm_type<T>(), root);
  Memory<D>::from_host(data, host.data(), n * sizeof(T));
}
template <class D, class T>
void all_gather_on(Collective& c, const T* send, T* recv, std::span<const std::size_t> counts) {
  if (std::is_same_v<D, Cpu> || c.takes_device_memory()) return c.all_gather(send, recv, counts, comm_type<T>());
  std::size_t total = 0;
  for (std::size_t k : counts) total += k;
  const std::size_t mine = counts[static_cast<std::size_t>(c.rank())];
  std::vector<T> host_send(mine), host_recv(total);
  Memory<D>::to_host(host_send.data(), send, mine * sizeof(T));
  c.all_gather(host_send.data(), host_recv.data(), counts, comm_type<T>());
  Memory<D>::from_host(recv, host_recv.data(), total * sizeof(T));
}

// How a data-parallel group splits an epoch: this process is shard `rank` of
// `world`. {0, 1} is a single process.
struct Shard {
  std::int64_t rank = 0, world = 1;
  // Throws dml::Error unless 0 <= rank < world.
  void validate(const char* who) const {
    DML_CHECK(world >= 1 && rank >= 0 && rank < world, who, ": shard rank ", rank, " of world ", world,
              " must satisfy 0 <= rank < world");
  }
  // Rows [begin, end) of a global batch of m rows that this shard takes: an
  // even split in rank order (sizes differ by at most one; empty when m < world).
  std::int64_t begin(std::int64_t m) const { return rank * m / world; }
  std::int64_t end(std::int64_t m) const { return (rank + 1) * m / world; }
};

// The shard of a collective (a single process when null).
inline Shard shard_of(const Collective* c) { return c ? Shard{c->rank(), c->size()} : Shard{}; }

}  // namespace dml
