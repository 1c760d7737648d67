// dml/nn/nn.hpp: every layer, ResNet18 and weight serialisation.
#pragma once

#include "basic.hpp"
#include "batchnorm.hpp"
#include "conv.hpp"
#include "dropout.hpp"
#include "init.hpp"
#include "linear.hpp"
#include "module.hpp"
#include "pool.hpp"
#include "resnet.hpp"
#include "sequential.hpp"
#include "serialize.hpp"
