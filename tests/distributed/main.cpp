// The runner of dml_distributed_tests: doctest under MPI (mpirun -np N). Every rank runs every
// test (the tests are collective); the exit status is the worst of the ranks', and only rank 0
// reports unless a rank fails.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <dml/distributed/mpi.hpp>

int main(int argc, char** argv) {
  dml::distributed::Mpi mpi(argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  doctest::Context ctx(argc, argv);
  if (rank != 0) ctx.setOption("minimal", true);
  const int rc = ctx.run();
  int worst = rc;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return ctx.shouldExit() ? rc : worst;
}
