// dml/train/learner_checkpoint.hpp: what a train::Learner writes into a
// checkpoint (checkpoint.hpp) and how it reads one back. The Learner hands
// over its parts (modules by prefix, optimiser, training loader) and its run
// state (the fit under way, the partial epoch, frozen, history); see
// Learner::save_checkpoint and Learner::load_checkpoint.
//
// A load checks everything against the learner before it changes anything,
// and every refusal names the file and the key or field with expected
// against found, in one of two wordings:
//   run.ckpt: load_checkpoint into Learner: 'head.weight': expected F32 [10, 512], found F32 [12, 512];
//             missing keys: ...; unexpected keys: ...
//   run.ckpt: checkpoint entry 'dml.plan': 'step': expected an integer in 0..40, found 41
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/random.hpp"
#include "../data/loader.hpp"
#include "../io/json.hpp"
#include "../io/raw_tensor.hpp"
#include "../nn/module.hpp"
#include "../nn/serialize.hpp"
#include "../optim/optimizer.hpp"
#include "checkpoint.hpp"

namespace dml::train {
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

// "F32 [2, 3]".
inline std::string raw_type(const io::RawTensor& r) {
  return ::dml::detail::concat(io::dtype_name(r.dtype), " ", nn::detail::dims_str(r.shape));
}

// Every problem of the file's tensors against the parts, in nn::load_weights'
// wording: "'key': expected <dtype> <shape>, found <dtype> <shape>", then
// missing and unexpected keys. A checkpoint holds exactly the dtypes a learner
// writes: T's for floating entries, I64 for counters. Optimiser entries are
// checked against its parameters and rule: "optim.steps" (I64 [] >= 0),
// "optim.<parameter>.<buffer>" (the parameter's shape) and, for rules that
// count per parameter, "optim.<parameter>.step" (I64 [] >= 1), all or none of
// them per parameter.
template <class T, class D>
std::vector<std::string> tensor_problems(const io::TensorMap& tensors, const CheckpointParts<T, D>& parts) {
  io::TensorMap own;
  for (const auto& [prefix, m] : parts.modules) nn::append_tensor_map(m->state_dict(), prefix, own);
  const std::string float_name(io::dtype_name(io::dtype_of<T>));
  std::vector<std::string> wrong, missing, unexpected;
  auto expect = [&](const std::string& key, const io::RawTensor& r, const std::string& dtype, const Shape& shape) {
    const bool same = io::dtype_name(r.dtype) == dtype && std::equal(r.shape.begin(), r.shape.end(), shape.begin(),
                                                                     shape.end());
    if (!same) wrong.push_back(::dml::detail::concat("'", key, "': expected ", dtype, " ", shape.str(), ", found ",
                                                     raw_type(r)));
    return same;
  };
  auto count_at_least = [&](const std::string& key, const io::RawTensor& r, std::int64_t min) {
    if (!expect(key, r, "I64", Shape{})) return;
    const std::int64_t v = nn::detail::convert_raw<std::int64_t>(key, r)[0];
    if (v < min) wrong.push_back(::dml::detail::concat("'", key, "': expected a value >= ", min, ", found ", v));
  };
  // The optimiser's parameters by name, and which of their entries the file holds.
  const optim::Optimizer<T, D>& opt = *parts.optimizer;
  std::map<std::string, Shape> params;
  for (const auto& [name, p] : opt.params()) params.emplace(name, p.shape());
  std::vector<std::string> fields = opt.state_names();
  if (opt.per_param_step()) fields.push_back("step");
  std::map<std::string, std::vector<bool>> seen;
  for (const auto& [key, r] : tensors) {
    if (key.rfind("optim.", 0) != 0) {
      auto it = own.find(key);
      if (it == own.end()) unexpected.push_back(key);
      else
        expect(key, r, std::string(io::dtype_name(it->second.dtype)),
               Shape(std::span<const std::int64_t>(it->second.shape.data(), it->second.shape.size())));
      continue;
    }
    const std::string name = key.substr(6);
    if (name == "steps") {
      count_at_least(key, r, 0);
      continue;
    }
    const std::size_t dot = name.rfind('.');
    const std::string pname = dot == std::string::npos ? name : name.substr(0, dot);
    const std::string field = dot == std::string::npos ? std::string() : name.substr(dot + 1);
    const auto f = std::find(fields.begin(), fields.end(), field);
    auto p = params.find(pname);
    if (p == params.end() || f == fields.end()) {
      unexpected.push_back(key);
      continue;
    }
    auto& s = seen[pname];
    s.resize(fields.size(), false);
    s[static_cast<std::size_t>(f - fields.begin())] = true;
    if (field == "step" && opt.per_param_step()) count_at_least(key, r, 1);
    else expect(key, r, float_name, p->second);
  }
  for (const auto& [key, r] : own)
    if (!tensors.contains(key)) missing.push_back(key);
  if (!tensors.contains("optim.steps")) missing.push_back("optim.steps");
  if (opt.per_param_step())
    for (const auto& [pname, s] : seen)
      for (std::size_t i = 0; i < fields.size(); ++i)
        if (!s[i]) missing.push_back("optim." + pname + "." + fields[i]);
  std::string hint;
  for (const auto& k : unexpected)
    if (k.rfind("loss.", 0) == 0) hint = " (a checkpoint of a learner with other extra losses?)";
  if (!missing.empty()) wrong.push_back("missing keys: " + nn::detail::join(missing));
  if (!unexpected.empty()) wrong.push_back("unexpected keys: " + nn::detail::join(unexpected) + hint);
  return wrong;
}

// Checks a loader state from a checkpoint against the learner's loader:
// the same data and batch sizes and sampling, a position within its epoch.
inline void check_loader_state(const data::LoaderState& s, const data::DataLoader& loader) {
  const data::LoaderState own = loader.state();
  DML_CHECK(s.dataset_size == own.dataset_size, "'dataset_size': expected ", own.dataset_size,
            " (this learner's training set), found ", s.dataset_size);
  DML_CHECK(s.batch_size == own.batch_size, "'batch_size': expected ", own.batch_size,
            " (this learner's batch_size), found ", s.batch_size);
  auto sampling = [](const data::LoaderState& l) {
    return l.classes_per_batch == 0 ? std::string("none (shuffled batches)")
                                    : ::dml::detail::concat(l.classes_per_batch, " x ", l.samples_per_class,
                                                            " (class-balanced batches)");
  };
  DML_CHECK(s.classes_per_batch == own.classes_per_batch && s.samples_per_class == own.samples_per_class,
            "'classes_per_batch' x 'samples_per_class': expected ", sampling(own), ", found ", sampling(s));
  DML_CHECK(s.position <= loader.num_batches(), "'position': expected an integer in 0..", loader.num_batches(),
            " (batches per epoch of this learner's loader), found ", s.position);
}

// Checks an active plan against the loader position it resumes from: the fit
// ends after the loader's epoch, and the steps left are the batches left.
inline void check_plan(const FitPlan& p, const data::LoaderState& s, std::int64_t batches_per_epoch) {
  if (!p.active) return;
  DML_CHECK(p.end_epoch > s.epoch, "'end_epoch': expected > ", s.epoch, " (the loader's epoch in dml.loader, the ",
            "fit being active), found ", p.end_epoch);
  std::int64_t batches = 0;  // to end_epoch from the start of the loader's epoch
  const bool fits = !__builtin_mul_overflow(p.end_epoch - s.epoch, batches_per_epoch, &batches);
  DML_CHECK(fits, "'end_epoch': expected at most ",
            std::numeric_limits<std::int64_t>::max() / batches_per_epoch, " epochs after the loader's epoch ", s.epoch,
            " (of ", batches_per_epoch, " batches), found ", p.end_epoch);
  const std::int64_t left = batches - s.position;
  DML_CHECK(p.total >= left, "'total': expected >= ", left, " (the batches dml.loader has left to end_epoch ",
            p.end_epoch, "), found ", p.total);
  DML_CHECK(p.total - p.step == left, "'step': expected ", p.total - left, " (total ", p.total, " minus the ", left,
            " batches dml.loader has left to end_epoch ", p.end_epoch, "), found ", p.step);
}

// Loads tensors and the loader position; throws what a module or the
// optimiser refuses (the checks before it make that a bug).
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
  auto put = [&](const std::string& name, Generator& g) { gens.emplace_back(name, to_json(g.state())); };
  detail::for_each_generator(parts, put);
  m["dml.generators"] = json::dump(gens);
  m["dml.plan"] = json::dump(plan_to_json(run));
  m["dml.frozen"] = run.frozen ? "true" : "false";
  m["dml.history"] = json::dump(history_to_json(run.history));
  return f;
}

// Reads the checkpoint at `path` into the parts (tensors, loader position,
// generators) and returns its run state. The parts must be those of a learner
// built the same way (same modules, extra losses, optimiser rule and data
// sizes). Checks everything first; throws dml::Error naming the file, each
// offending key or field, and expected against found (see the top of this
// file), leaving the parts as they were.
template <class T, class D>
RunState load_learner_checkpoint(const detail::CheckpointParts<T, D>& parts, const std::filesystem::path& path) {
  const std::string file = path.string();
  const CheckpointFile f = read_checkpoint(path);  // the format, and each entry's types and ranges
  auto expect_entry = [&](const char* key, const std::string& want, const char* what) {
    auto it = f.metadata.find(key);
    DML_CHECK(it != f.metadata.end(), file, ": checkpoint lacks '", key, "'");
    DML_CHECK(it->second == want, file, ": checkpoint entry '", key, "': expected ", want, " (", what, "), found ",
              it->second);
  };
  expect_entry("dml.element", detail::element_name<T>(), "this learner's element type");
  expect_entry("dml.optimizer", parts.optimizer->name(), "this learner's optimiser");
  if (const std::vector<std::string> bad = detail::tensor_problems(f.tensors, parts); !bad.empty()) {
    std::string msg;
    for (const std::string& b : bad) msg += "; " + b;
    throw Error(::dml::detail::concat(file, ": load_checkpoint into Learner: ", msg.substr(2)));
  }
  const data::LoaderState ls = detail::read_entry(f, "dml.loader", file, [&](const json::Value& v) {
    const data::LoaderState s = loader_state_from_json(v);
    detail::check_loader_state(s, *parts.loader);
    return s;
  });
  std::vector<std::pair<Generator*, Generator::State>> gen_states;
  detail::read_entry(f, "dml.generators", file, [&](const json::Value& v) {
    std::vector<std::string> missing, unexpected;
    std::vector<std::string> names;
    detail::for_each_generator(parts, [&](const std::string& name, Generator& g) {
      names.push_back(name);
      if (const json::Value* s = v.find(name)) gen_states.emplace_back(&g, generator_state_from_json(*s));
      else missing.push_back(name);
    });
    for (const auto& [name, s] : v.as_object())
      if (std::find(names.begin(), names.end(), name) == names.end()) unexpected.push_back(name);
    std::string msg;
    if (!missing.empty()) msg += "; missing keys: " + nn::detail::join(missing);
    if (!unexpected.empty()) msg += "; unexpected keys: " + nn::detail::join(unexpected);
    if (!msg.empty()) throw Error(msg.substr(2));
    return 0;
  });
  RunState run = detail::read_entry(f, "dml.plan", file, [&](const json::Value& v) {
    RunState r;
    plan_from_json(v, r);
    detail::check_plan(r.plan, ls, parts.loader->num_batches());
    return r;
  });
  run.history =
      detail::read_entry(f, "dml.history", file, [](const json::Value& v) { return history_from_json(v); });
  const auto frozen = f.metadata.find("dml.frozen");
  run.frozen = frozen != f.metadata.end() && frozen->second == "true";

  // Apply, rolling back to a snapshot if any part is refused after all.
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
