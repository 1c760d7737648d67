// dml/train/train.hpp: the training loop (Learner), its progress display and checkpoints.
#pragma once

#include "checkpoint.hpp"
#include "learner.hpp"
#include "progress.hpp"
