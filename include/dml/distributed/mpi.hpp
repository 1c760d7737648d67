// dml/distributed/mpi.hpp: a Collective (dml/core/collective.hpp) over MPI,
// for data-parallel training on CPUs (the optional dml::distributed target).
//
//   int main(int argc, char** argv) {
//     dml::distributed::Mpi mpi(argc, argv);           // MPI_Init_thread ... MPI_Finalize
//     dml::distributed::MpiCommunicator comm;          // MPI_COMM_WORLD
//     train::LearnerOptions o;
//     o.collective = &comm;                            // batch_size is per rank
//     train::Learner learn(body, head, data, optim::AdamW{.lr = 1e-3}, o);
//     learn.fit(5);                                    // run with mpirun -np N
//   }
//
// Host memory only: the pointers handed over are those of Tensor<T, Cpu>.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "../config.hpp"
#include "../core/collective.hpp"

namespace dml::distributed {

namespace detail {

inline void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(::dml::detail::concat("MPI: ", call, " failed: ", std::string(msg, static_cast<std::size_t>(len))));
}

inline MPI_Datatype datatype(CommType t) {
  switch (t) {
    case CommType::Float32: return MPI_FLOAT;
    case CommType::Float64: return MPI_DOUBLE;
    case CommType::Int64: return MPI_INT64_T;
  }
  throw Error("MPI: unknown CommType");
}
inline std::size_t type_size(CommType t) { return t == CommType::Float32 ? 4 : 8; }

inline bool initialized() {
  int on = 0, off = 0;
  MPI_Initialized(&on);
  MPI_Finalized(&off);
  return on && !off;
}

}  // namespace detail

// MPI for the lifetime of the object: MPI_Init_thread (funneled: only the
// thread that made it calls MPI) unless MPI is already initialised, and then
// MPI_Finalize in the destructor (only if this object initialised it).
// Throws dml::Error when MPI cannot start or gives less than funneled.
class Mpi {
 public:
  Mpi(int& argc, char**& argv) { init(&argc, &argv); }
  Mpi() { init(nullptr, nullptr); }
  ~Mpi() {
    if (owner_ && detail::initialized()) MPI_Finalize();
  }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;

 private:
  void init(int* argc, char*** argv) {
    if (detail::initialized()) return;
    int provided = 0;
    detail::check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owner_ = true;
    DML_CHECK(provided >= MPI_THREAD_FUNNELED, "MPI: MPI_Init_thread gave thread level ", provided,
              ", dml needs MPI_THREAD_FUNNELED");
  }
  bool owner_ = false;
};

// A Collective over a duplicate of an MPI communicator (MPI_COMM_WORLD by
// default), with MPI_ERRORS_RETURN so that failures become dml::Error naming
// the call. Counts the bytes each kind of call moved (this rank's payload).
// Not copyable; destroy it before MPI_Finalize.
class MpiCommunicator : public Collective {
 public:
  // Throws dml::Error when MPI is not initialised (make a distributed::Mpi first).
  explicit MpiCommunicator(MPI_Comm base = MPI_COMM_WORLD) {
    DML_CHECK(detail::initialized(), "MpiCommunicator: MPI is not initialised (create a dml::distributed::Mpi "
                                     "first, under mpirun or srun)");
    detail::check(MPI_Comm_dup(base, &comm_), "MPI_Comm_dup");
    detail::check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    detail::check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    detail::check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    detail::check(MPI_Comm_dup(comm_, &async_), "MPI_Comm_dup");
  }
  ~MpiCommunicator() override {
    if (!detail::initialized()) return;
    if (!requests_.empty()) MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    MPI_Comm_free(&async_);
    MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  using Collective::all_reduce_sum;  // the span overloads, hidden by the overrides below
  using Collective::broadcast;
  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  MPI_Comm native() const noexcept { return comm_; }

  void all_reduce_sum(void* data, std::size_t n, CommType type) override {
    auto* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < n;) {
      const int k = static_cast<int>(std::min<std::size_t>(n - done, INT_MAX));
      detail::check(MPI_Allreduce(MPI_IN_PLACE, p + done * detail::type_size(type), k, detail::datatype(type),
                                  MPI_SUM, comm_),
                    "MPI_Allreduce");
      done += static_cast<std::size_t>(k);
    }
    reduced_ += n * detail::type_size(type);
  }
  void broadcast(void* data, std::size_t n, CommType type, int root) override {
    DML_CHECK(root >= 0 && root < size_, "MpiCommunicator::broadcast: root ", root, " is not a rank of ", size_);
    auto* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < n;) {
      const int k = static_cast<int>(std::min<std::size_t>(n - done, INT_MAX));
      detail::check(MPI_Bcast(p + done * detail::type_size(type), k, detail::datatype(type), root, comm_),
                    "MPI_Bcast");
      done += static_cast<std::size_t>(k);
    }
    broadcast_ += n * detail::type_size(type);
  }
  void all_gather(const void* send, void* recv, std::span<const std::size_t> counts, CommType type) override {
    DML_CHECK(counts.size() == static_cast<std::size_t>(size_), "MpiCommunicator::all_gather: ", counts.size(),
              " counts for ", size_, " ranks");
    std::vector<int> cnt(counts.size()), displ(counts.size());
    std::size_t off = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      DML_CHECK(counts[r] <= INT_MAX && off <= INT_MAX, "MpiCommunicator::all_gather: more than INT_MAX elements");
      cnt[r] = static_cast<int>(counts[r]);
      displ[r] = static_cast<int>(off);
      off += counts[r];
    }
    detail::check(MPI_Allgatherv(send, cnt[static_cast<std::size_t>(rank_)], detail::datatype(type), recv, cnt.data(),
                                 displ.data(), detail::datatype(type), comm_),
                  "MPI_Allgatherv");
    gathered_ += off * detail::type_size(type);
  }

  // MPI_Iallreduce on a duplicate of the communicator (so that the blocking
  // calls above, e.g. SyncBatchNorm's during the backward pass, never meet a
  // started one); poll is MPI_Testall, wait_all MPI_Waitall.
  bool supports_async() const noexcept override { return true; }
  void start_all_reduce_sum(void* data, std::size_t n, CommType type) override {
    auto* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < n;) {
      const int k = static_cast<int>(std::min<std::size_t>(n - done, INT_MAX));
      MPI_Request req = MPI_REQUEST_NULL;
      detail::check(MPI_Iallreduce(MPI_IN_PLACE, p + done * detail::type_size(type), k, detail::datatype(type),
                                   MPI_SUM, async_, &req),
                    "MPI_Iallreduce");
      requests_.push_back(req);
      done += static_cast<std::size_t>(k);
    }
    reduced_ += n * detail::type_size(type);
  }
  void poll() override {
    if (requests_.empty()) return;
    int all_done = 0;
    detail::check(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &all_done, MPI_STATUSES_IGNORE),
                  "MPI_Testall");
    if (all_done) requests_.clear();
  }
  void wait_all() override {
    if (requests_.empty()) return;
    const int rc = MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    requests_.clear();
    detail::check(rc, "MPI_Waitall");
  }

  // A barrier (for timing).
  void barrier() { detail::check(MPI_Barrier(comm_), "MPI_Barrier"); }

  // Bytes of payload this rank handed to all-reduce, broadcast and all-gather
  // (received, for all-gather) since construction or reset_counters().
  std::size_t bytes_all_reduced() const noexcept { return reduced_; }
  std::size_t bytes_broadcast() const noexcept { return broadcast_; }
  std::size_t bytes_gathered() const noexcept { return gathered_; }
  void reset_counters() noexcept { reduced_ = broadcast_ = gathered_ = 0; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL, async_ = MPI_COMM_NULL;
  std::vector<MPI_Request> requests_;  // started by start_all_reduce_sum, not yet waited for
  int rank_ = 0, size_ = 1;
  std::size_t reduced_ = 0, broadcast_ = 0, gathered_ = 0;
};

}  // namespace dml::distributed
