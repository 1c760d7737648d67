// dml/cuda.hpp: the GPU build in one include: the host library plus
// Backend<Cuda>, Memory<Cuda>, the caching allocator and the CUDA context.
// Compile the including file with nvcc (a .cu file) and link dml::cuda.
#pragma once

#if !defined(__CUDACC__)
#error "dml/cuda.hpp must be compiled by nvcc: put this code in a .cu file (or set LANGUAGE CUDA on it) and link dml::cuda. CPU-only code includes <dml/dml.hpp> instead."
#else
#include "dml.hpp"
#include "backend/cuda/backend.cuh"
#endif
