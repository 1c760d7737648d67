// dml/train/learner_checkpoint.hpp: what a train::Learner writes into a
// checkpoint (checkpoint.hpp) and how it reads one back. The Learner hands over
// its parts (modules by prefix, optimiser, training loader) and its run state
// (the fit under way, the partial epoch, frozen, history); see
// Learner::save_checkpoint and Learner::load_checkpoint.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/random.hpp"
#include "../data/loader.hpp"
#include "../io/json.hpp"
#include "../nn/module.hpp"
#include "../nn/serialize.hpp"
#include "../optim/optimizer.hpp"
#include "../optim/schedule.hpp"
#include "checkpoint.hpp"
#include "options.hpp"

namespace dml::train {

// The fit under way: lr schedule over `total` optimiser steps, ending when the
// training loader reaches `end_epoch`.
struct FitPlan {
  bool active = false;
  optim::Schedule schedule = optim::Constant{};
  std::optional<double> max_lr;
  std::int64_t step = 0, total = 1, end_epoch = 0;
};

// What a learner's checkpoint holds besides tensors, the loader's position and
// the generators: the fit, the interrupted epoch's partial loss and time,
// whether the body is frozen, and the epoch rows so far.
struct RunState {
  FitPlan plan;
  double loss_sum = 0, seconds = 0;
  std::int64_t loss_count = 0;
  bool frozen = false;
  std::vector<EpochStats> history;
};

namespace detail {

// The parts of a learner whose state a checkpoint holds.
template <class T, class D>
struct CheckpointParts {
  std::vector<std::pair<std::string, nn::Module<T, D>*>> modules;  // "body.", "head.", "loss.<name>." and the module
  optim::Optimizer<T, D>* optimizer = nullptr;
  data::DataLoader* loader = nullptr;
};

template <class T>
const char* element_name() {
  return std::is_same_v<T, float> ? "float" : "double";
}
inline json::Value finite_or_null(double x) { return std::isfinite(x) ? json::Value(x) : json::Value(nullptr); }
inline double number_or_nan(const json::Value& v) {
  return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.as_double();
}

// f(prefixed name, generator) for every random generator of the parts' modules.
template <class T, class D, class F>
void for_each_generator(const CheckpointParts<T, D>& parts, F&& f) {
  for (const auto& [prefix, m] : parts.modules)
    for (auto& [name, g] : m->named_generators()) f(prefix + name, *g);
}

// Every module's state dict under its prefix, the optimiser's under "optim.".
template <class T, class D>
io::TensorMap checkpoint_tensors(const CheckpointParts<T, D>& parts) {
  io::TensorMap out;
  for (const auto& [prefix, m] : parts.modules) nn::append_tensor_map(m->state_dict(), prefix, out);
  nn::append_tensor_map(parts.optimizer->state_dict(), "optim.", out);
  return out;
}

// Loads tensors and the loader position; throws, changing nothing that the
// checks before it did not already refuse, what a module or the optimiser refuses.
template <class T, class D>
void load_parts(const CheckpointParts<T, D>& parts, const io::TensorMap& tensors, const data::LoaderState& loader) {
  for (const auto& [prefix, m] : parts.modules) m->load_state_dict(nn::state_dict_from<T, D>(tensors, prefix));
  parts.optimizer->load_state_dict(nn::state_dict_from<T, D>(tensors, "optim."));
  parts.loader->set_state(loader);
}

}  // namespace detail

// The checkpoint of a learner with these parts and run state (the file
// format of checkpoint.hpp).
template <class T, class D>
CheckpointFile learner_checkpoint(const detail::CheckpointParts<T, D>& parts, const RunState& run) {
  CheckpointFile f;
  f.tensors = detail::checkpoint_tensors(parts);
  auto& m = f.metadata;
  m["dml.element"] = detail::element_name<T>();
  m["dml.optimizer"] = parts.optimizer->name();
  m["dml.loader"] = json::dump(to_json(parts.loader->state()));
  json::Object gens;
  detail::for_each_generator(parts,
                             [&](const std::string& name, Generator& g) { gens.emplace_back(name, to_json(g.state())); });
  m["dml.generators"] = json::dump(gens);
  const FitPlan& p = run.plan;
  json::Object plan;
  plan.emplace_back("active", p.active);
  plan.emplace_back("schedule", to_json(p.schedule));
  plan.emplace_back("max_lr", p.max_lr ? json::Value(*p.max_lr) : json::Value(nullptr));
  plan.emplace_back("step", p.step);
  plan.emplace_back("total", p.total);
  plan.emplace_back("end_epoch", p.end_epoch);
  plan.emplace_back("loss_sum", run.loss_sum);
  plan.emplace_back("loss_count", run.loss_count);
  plan.emplace_back("seconds", run.seconds);
  m["dml.plan"] = json::dump(plan);
  m["dml.frozen"] = run.frozen ? "true" : "false";
  json::Array hist;
  for (const EpochStats& s : run.history)
    hist.push_back(json::Array{s.epoch, detail::finite_or_null(s.train_loss), detail::finite_or_null(s.valid_loss),
                               detail::finite_or_null(s.accuracy), s.seconds});
  m["dml.history"] = json::dump(hist);
  return f;
}

// Reads the checkpoint at `path` into the parts (tensors, loader position,
// generators) and returns its run state. The parts must be those of a learner
// built the same way (same modules, extra losses, optimiser rule and data
// sizes). Throws dml::Error naming the file and every mismatch, leaving the
// parts as they were.
template <class T, class D>
RunState load_learner_checkpoint(const detail::CheckpointParts<T, D>& parts, const std::filesystem::path& path) {
  const std::string file = path.string();
  CheckpointFile f = read_checkpoint(path);
  // Parse and check everything before touching any state.
  const char* element = detail::element_name<T>();
  DML_CHECK(f.metadata["dml.element"] == element, file, ": checkpoint holds ", f.metadata["dml.element"],
            " weights, this learner trains ", element);
  DML_CHECK(f.metadata["dml.optimizer"] == parts.optimizer->name(), file, ": checkpoint was written by a ",
            f.metadata["dml.optimizer"], " optimiser, this learner uses ", parts.optimizer->name());
  const data::LoaderState ls = loader_state_from_json(detail::meta_json(f, "dml.loader", file));
  const json::Value gens = detail::meta_json(f, "dml.generators", file);
  const json::Value plan = detail::meta_json(f, "dml.plan", file);
  const json::Value hist = detail::meta_json(f, "dml.history", file);
  std::vector<std::string> prefixes = {"optim."};
  for (const auto& [prefix, m] : parts.modules) prefixes.push_back(prefix);
  for (const auto& [name, t] : f.tensors)
    DML_CHECK(nn::detail::has_prefix(name, prefixes), file, ": unexpected tensor '", name,
              "' (a checkpoint of a learner with other extra losses?)");
  RunState run;
  run.plan = FitPlan{plan.at("active").as_bool(), schedule_from_json(plan.at("schedule")),
                     plan.at("max_lr").is_null() ? std::nullopt : std::optional<double>(plan.at("max_lr").as_double()),
                     plan.at("step").as_int(), plan.at("total").as_int(), plan.at("end_epoch").as_int()};
  run.loss_sum = plan.at("loss_sum").as_double();
  run.loss_count = plan.at("loss_count").as_int();
  run.seconds = plan.at("seconds").as_double();
  std::vector<std::pair<Generator*, Generator::State>> gen_states;
  detail::for_each_generator(parts, [&](const std::string& name, Generator& g) {
    const json::Value* v = gens.find(name);
    DML_CHECK(v, file, ": checkpoint has no state for generator '", name, "'");
    gen_states.emplace_back(&g, generator_state_from_json(*v));
  });
  for (const json::Value& r : hist.as_array()) {
    const json::Array& a = r.as_array();
    DML_CHECK(a.size() == 5, file, ": a history row must hold 5 values");
    run.history.push_back({a[0].as_int(), detail::number_or_nan(a[1]), detail::number_or_nan(a[2]),
                           detail::number_or_nan(a[3]), a[4].as_double()});
  }
  run.frozen = f.metadata["dml.frozen"] == "true";

  // Apply, rolling back to a snapshot if any part is refused.
  const io::TensorMap backup = detail::checkpoint_tensors(parts);
  const data::LoaderState old_loader = parts.loader->state();
  try {
    detail::load_parts(parts, f.tensors, ls);
  } catch (const Error& e) {
    detail::load_parts(parts, backup, old_loader);
    throw Error(::dml::detail::concat(file, ": ", e.message()));
  }
  for (auto& [g, st] : gen_states) g->set_state(st);
  return run;
}

}  // namespace dml::train
