// dml/dml.hpp: the host library in one include. Needs Eigen, nothing else.
#pragma once

#include "backend/cpu/backend.hpp"
#include "config.hpp"
#include "core/autograd.hpp"
#include "core/device.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "core/storage.hpp"
#include "core/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/matmul.hpp"
#include "ops/norm.hpp"
#include "ops/reduce.hpp"
#include "ops/softmax.hpp"
