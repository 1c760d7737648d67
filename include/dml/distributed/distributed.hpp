// dml/distributed/distributed.hpp: the optional dml::distributed target in one
// include: the MPI communicator, and what uses any Collective (the
// data-parallel step, synchronised BatchNorm). docs/distributed.md.
#pragma once

#include "../nn/batchnorm.hpp"
#include "../train/data_parallel.hpp"
#include "mpi.hpp"
