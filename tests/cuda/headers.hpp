// tests/cuda/headers.hpp: the parts of dml the GPU tests use, host side
// (tensors, autograd, ops, nn, heads, losses, optimisers, Backend<Cpu>).
// Deliberately narrower than <dml/dml.hpp>: see tests/cuda/cuda_test.cuh.
#pragma once

#include <dml/backend/cpu/backend.hpp>
#include <dml/config.hpp>
#include <dml/core/autograd.hpp>
#include <dml/core/device.hpp>
#include <dml/core/random.hpp>
#include <dml/core/shape.hpp>
#include <dml/core/storage.hpp>
#include <dml/core/tensor.hpp>
#include <dml/heads/margin_head.hpp>
#include <dml/heads/margin_policy.hpp>
#include <dml/losses/center_loss.hpp>
#include <dml/losses/cross_entropy.hpp>
#include <dml/losses/embedding_loss.hpp>
#include <dml/nn/nn.hpp>
#include <dml/ops/batchnorm.hpp>
#include <dml/ops/conv.hpp>
#include <dml/ops/dropout.hpp>
#include <dml/ops/elementwise.hpp>
#include <dml/ops/index.hpp>
#include <dml/ops/linear.hpp>
#include <dml/ops/margin.hpp>
#include <dml/ops/matmul.hpp>
#include <dml/ops/norm.hpp>
#include <dml/ops/pool.hpp>
#include <dml/ops/reduce.hpp>
#include <dml/ops/softmax.hpp>
#include <dml/optim/adam.hpp>
#include <dml/optim/optimizer.hpp>
#include <dml/optim/sgd.hpp>
