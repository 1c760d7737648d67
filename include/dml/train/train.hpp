// dml/train/train.hpp: the training loop (Learner), its objective, options,
// progress display and checkpoints.
#pragma once

#include "checkpoint.hpp"
#include "learner.hpp"
#include "learner_checkpoint.hpp"
#include "objective.hpp"
#include "options.hpp"
#include "progress.hpp"
