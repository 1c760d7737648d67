// dml/train/checkpoint.hpp: the file a Learner saves and resumes from, and
// the JSON forms of what it holds besides tensors (schedules, generator
// states, data-loader positions, the fit under way, the history). Each reader
// checks types and ranges and names the field: "'step': expected an integer
// in 0..40, found 41".
//
// A checkpoint is a safetensors file: the tensors under prefixes ("body.",
// "head.", "loss.<name>.", "optim.") and everything else as "__metadata__"
// strings, "dml.format" = kCheckpointFormat first among them. Writing is
// atomic (temporary file, fsync, rename) and keeps the previous checkpoint as
// "<path>.prev".
#pragma once

#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../config.hpp"
#include "../core/random.hpp"
#include "../data/loader.hpp"
#include "../io/json.hpp"
#include "../io/safetensors.hpp"
#include "../optim/schedule.hpp"
#include "progress.hpp"

namespace dml::train {

namespace json = io::json;

inline constexpr const char* kCheckpointFormat = "dml-checkpoint-1";

// What a checkpoint file holds.
struct CheckpointFile {
  io::TensorMap tensors;
  io::StringMap metadata;
};

// Writes `ckpt` to path atomically; an existing file at path is first renamed
// to "<path>.prev" (replacing any older one), so the last good checkpoint
// survives a crash at any point. Throws dml::Error naming the path on I/O
// failure.
inline void write_checkpoint(const std::filesystem::path& path, CheckpointFile ckpt) {
  ckpt.metadata["dml.format"] = kCheckpointFormat;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::filesystem::path prev = path;
    prev += ".prev";
    std::filesystem::rename(path, prev, ec);
    DML_CHECK(!ec, path.string(), ": cannot keep the previous checkpoint as ", prev.string(), ": ", ec.message());
  }
  io::save_safetensors(path, ckpt.tensors, ckpt.metadata);
}

namespace detail {

// A metadata entry parsed as JSON; throws naming the file and key.
inline json::Value meta_json(const CheckpointFile& f, const std::string& key, const std::string& file) {
  auto it = f.metadata.find(key);
  DML_CHECK(it != f.metadata.end(), file, ": checkpoint lacks '", key, "'");
  try {
    return json::parse(it->second);
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(file, ": checkpoint entry '", key, "': ", e.message()));
  }
}

// fn(the entry's JSON), its errors prefixed "<file>: checkpoint entry '<key>': ".
template <class F>
auto read_entry(const CheckpointFile& f, const std::string& key, const std::string& file, F&& fn) {
  const json::Value v = meta_json(f, key, file);
  try {
    return fn(v);
  } catch (const Error& e) {
    throw Error(::dml::detail::concat(file, ": checkpoint entry '", key, "': ", e.message()));
  }
}

// What a JSON value is, for the "found ..." of a message.
inline std::string json_found(const json::Value& v) {
  switch (v.kind()) {
    case json::Kind::Null: return "null";
    case json::Kind::Bool: return v.as_bool() ? "true" : "false";
    case json::Kind::Int: return std::to_string(v.as_int());
    case json::Kind::Double: {  // 8.0, not 8, where an integer was expected
      const std::string d = ::dml::detail::concat(v.as_double());
      return d.find_first_of(".en") == std::string::npos ? d + ".0" : d;
    }
    case json::Kind::String: {
      const std::string& s = v.as_string();
      return "the string \"" + (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "\"";
    }
    case json::Kind::Array: return "an array of " + std::to_string(v.as_array().size()) + " values";
    default: return "an object";
  }
}

// Member `key` of the object v, checked: each throws dml::Error
// "'key': expected <what>, found <what is there>" (json's "missing key" when absent).
inline std::int64_t int_field(const json::Value& v, std::string_view key, std::int64_t lo,
                              std::int64_t hi = std::numeric_limits<std::int64_t>::max()) {
  const json::Value& x = v.at(key);
  DML_CHECK(x.is_int() && x.as_int() >= lo && x.as_int() <= hi, "'", key, "': expected an integer ",
            hi == std::numeric_limits<std::int64_t>::max() ? ::dml::detail::concat(">= ", lo)
                                                           : ::dml::detail::concat("in ", lo, "..", hi),
            ", found ", json_found(x));
  return x.as_int();
}
// The value x (named `key`) as a number (JSON holds only finite ones) in
// [lo, hi], or [lo, hi) when `open_hi`; with `nullable`, null is nullopt.
inline std::optional<double> number_value(const json::Value& x, std::string_view key, double lo, double hi,
                                          bool open_hi, bool nullable) {
  if (nullable && x.is_null()) return std::nullopt;
  const double d = x.is_number() ? x.as_double() : 0;
  const bool ok = x.is_number() && d >= lo && (open_hi ? d < hi : d <= hi);
  if (!ok) {
    constexpr double inf = std::numeric_limits<double>::infinity();
    std::string what = "a number";
    if (lo > -inf && hi < inf) what += ::dml::detail::concat(" in [", lo, ", ", hi, open_hi ? ")" : "]");
    else if (lo > -inf) what += ::dml::detail::concat(" >= ", lo);
    throw Error(::dml::detail::concat("'", key, "': expected ", what, nullable ? " or null" : "", ", found ",
                                      json_found(x)));
  }
  return d;
}
inline double number_field(const json::Value& v, std::string_view key,
                           double lo = -std::numeric_limits<double>::infinity(),
                           double hi = std::numeric_limits<double>::infinity(), bool open_hi = false) {
  return *number_value(v.at(key), key, lo, hi, open_hi, false);
}
// A positive number (> 0).
inline double positive_field(const json::Value& v, std::string_view key) {
  const json::Value& x = v.at(key);
  DML_CHECK(x.is_number() && x.as_double() > 0, "'", key, "': expected a number > 0, found ", json_found(x));
  return x.as_double();
}
inline bool bool_field(const json::Value& v, std::string_view key) {
  const json::Value& x = v.at(key);
  DML_CHECK(x.is_bool(), "'", key, "': expected true or false, found ", json_found(x));
  return x.as_bool();
}

// 64-bit unsigned values travel as decimal strings (JSON integers are int64).
inline json::Value u64(std::uint64_t v) { return json::Value(std::to_string(v)); }
inline std::uint64_t u64_field(const json::Value& v, std::string_view key) {
  const json::Value& x = v.at(key);
  const std::string s = x.is_string() ? x.as_string() : std::string();
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DML_CHECK(x.is_string() && used == s.size() && !s.empty() && s[0] >= '0' && s[0] <= '9', "'", key,
            "': expected an unsigned integer as a decimal string, found ", json_found(x));
  return static_cast<std::uint64_t>(n);
}

}  // namespace detail

// Generator states as {"seed": "…", "counter": "…", "unused": n}.
inline json::Value to_json(const Generator::State& s) {
  json::Object o;
  o.emplace_back("seed", detail::u64(s.seed));
  o.emplace_back("counter", detail::u64(s.counter));
  o.emplace_back("unused", static_cast<std::int64_t>(s.unused));
  return o;
}
// Throws dml::Error "'field': expected ..., found ..." for a missing or bad field.
inline Generator::State generator_state_from_json(const json::Value& v) {
  const std::uint64_t seed = detail::u64_field(v, "seed"), counter = detail::u64_field(v, "counter");
  return {seed, counter, static_cast<std::uint32_t>(detail::int_field(v, "unused", 0, 4))};
}

inline json::Value to_json(const data::LoaderState& s) {
  json::Object o;
  o.emplace_back("seed", detail::u64(s.seed));
  o.emplace_back("epoch", s.epoch);
  o.emplace_back("position", s.position);
  o.emplace_back("dataset_size", s.dataset_size);
  o.emplace_back("batch_size", s.batch_size);
  if (s.classes_per_batch != 0 || s.samples_per_class != 0) {
    o.emplace_back("classes_per_batch", s.classes_per_batch);
    o.emplace_back("samples_per_class", s.samples_per_class);
  }
  if (s.world != 1) o.emplace_back("world", s.world);  // data-parallel ranks (issue 18)
  return o;
}
// Reads to_json's object; without classes_per_batch and samples_per_class
// (a loader that is not class-balanced, or an older checkpoint) both are 0,
// without world (one process) it is 1.
// Throws dml::Error "'field': expected ..., found ..." for a missing field, a
// wrong JSON type or a value no loader has: a negative epoch, an empty
// dataset or batch, a position past the epoch's last batch, P x K other than
// the batch size.
inline data::LoaderState loader_state_from_json(const json::Value& v) {
  data::LoaderState s;
  s.seed = detail::u64_field(v, "seed");
  s.epoch = detail::int_field(v, "epoch", 0);
  s.dataset_size = detail::int_field(v, "dataset_size", 1);
  s.batch_size = detail::int_field(v, "batch_size", 1);
  // At most ceil(n / b) batches an epoch (drop_last and P x K batches have fewer).
  s.position = detail::int_field(v, "position", 0, (s.dataset_size - 1) / s.batch_size + 1);
  const bool pk = v.find("classes_per_batch") || v.find("samples_per_class");
  if (pk) {
    const std::int64_t p = detail::int_field(v, "classes_per_batch", 1);
    const std::int64_t k = detail::int_field(v, "samples_per_class", 1);
    DML_CHECK(s.batch_size % p == 0 && s.batch_size / p == k, "'batch_size': expected classes_per_batch x ",
              "samples_per_class (", p, " x ", k, "), found ", s.batch_size);
    s.classes_per_batch = p;
    s.samples_per_class = k;
  }
  if (v.find("world")) s.world = detail::int_field(v, "world", 1);  // data-parallel ranks (issue 18)
  return s;
}

// A schedule as {"kind": "OneCycle", <its fields>}.
inline json::Value to_json(const optim::Schedule& schedule) {
  json::Object o;
  std::visit(
      [&](const auto& s) {
        using S = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<S, optim::Constant>) {
          o.emplace_back("kind", "Constant");
        } else if constexpr (std::is_same_v<S, optim::StepDecay>) {
          o.emplace_back("kind", "StepDecay");
          o.emplace_back("step_size", s.step_size);
          o.emplace_back("gamma", s.gamma);
        } else if constexpr (std::is_same_v<S, optim::Cosine>) {
          o.emplace_back("kind", "Cosine");
          o.emplace_back("eta_min", s.eta_min);
        } else {
          o.emplace_back("kind", "OneCycle");
          o.emplace_back("pct_start", s.pct_start);
          o.emplace_back("div", s.div);
          o.emplace_back("div_final", s.div_final);
          o.emplace_back("moms", json::Array{s.moms[0], s.moms[1], s.moms[2]});
          o.emplace_back("cycle_momentum", s.cycle_momentum);
        }
      },
      schedule);
  return o;
}
// Reads to_json's object. Throws dml::Error "'field': expected ..., found ..."
// for an unknown kind, a missing field, a wrong JSON type, or a value the
// schedule refuses (StepDecay step_size >= 1 and gamma > 0; Cosine eta_min >=
// 0; OneCycle pct_start and moms in [0, 1), div and div_final > 0).
inline optim::Schedule schedule_from_json(const json::Value& v) {
  const json::Value& k = v.at("kind");
  const std::string kind = k.is_string() ? k.as_string() : std::string();
  if (kind == "Constant") return optim::Constant{};
  if (kind == "StepDecay")
    return optim::StepDecay{detail::int_field(v, "step_size", 1), detail::positive_field(v, "gamma")};
  if (kind == "Cosine") return optim::Cosine{detail::number_field(v, "eta_min", 0)};
  if (kind == "OneCycle") {
    optim::OneCycle s;
    s.pct_start = detail::number_field(v, "pct_start", 0, 1, true);
    s.div = detail::positive_field(v, "div");
    s.div_final = detail::positive_field(v, "div_final");
    const json::Value& m = v.at("moms");
    DML_CHECK(m.is_array() && m.as_array().size() == 3, "'moms': expected an array of 3 values, found ",
              detail::json_found(m));
    for (std::size_t i = 0; i < 3; ++i)
      s.moms[i] = *detail::number_value(m.as_array()[i], "moms", 0, 1, true, false);
    s.cycle_momentum = detail::bool_field(v, "cycle_momentum");
    return s;
  }
  throw Error(::dml::detail::concat("'kind': expected \"Constant\", \"StepDecay\", \"Cosine\" or \"OneCycle\", found ",
                                    detail::json_found(k)));
}

// The fit under way: lr schedule over `total` optimiser steps, ending when the
// training loader reaches `end_epoch`.
struct FitPlan {
  bool active = false;
  optim::Schedule schedule = optim::Constant{};
  std::optional<double> max_lr;
  std::int64_t step = 0, total = 1, end_epoch = 0;
};

// What a learner's checkpoint holds besides tensors, the loader's position and
// the generators: the fit ("dml.plan", with the interrupted epoch's partial
// loss and time), whether the body is frozen ("dml.frozen") and the epoch
// rows so far ("dml.history").
struct RunState {
  FitPlan plan;
  double loss_sum = 0, seconds = 0;
  std::int64_t loss_count = 0;
  bool frozen = false;
  std::vector<EpochStats> history;
};

// "dml.plan": {"active", "schedule", "max_lr" (null when unset), "step",
// "total", "end_epoch", "loss_sum", "loss_count", "seconds"}.
inline json::Value plan_to_json(const RunState& run) {
  const FitPlan& p = run.plan;
  json::Object o;
  o.emplace_back("active", p.active);
  o.emplace_back("schedule", to_json(p.schedule));
  o.emplace_back("max_lr", p.max_lr ? json::Value(*p.max_lr) : json::Value(nullptr));
  o.emplace_back("step", p.step);
  o.emplace_back("total", p.total);
  o.emplace_back("end_epoch", p.end_epoch);
  o.emplace_back("loss_sum", run.loss_sum);
  o.emplace_back("loss_count", run.loss_count);
  o.emplace_back("seconds", run.seconds);
  return o;
}
// Reads plan_to_json's object into run's plan and partial epoch. Throws
// dml::Error "'field': expected ..., found ..." (the schedule's as
// "'schedule': ...") for a missing field, a wrong JSON type, or a value no fit
// has: step outside 0..total, a negative total, end_epoch or loss_count,
// max_lr <= 0, negative seconds.
inline void plan_from_json(const json::Value& v, RunState& run) {
  FitPlan p;
  p.active = detail::bool_field(v, "active");
  try {
    p.schedule = schedule_from_json(v.at("schedule"));
  } catch (const Error& e) {
    if (e.message().rfind("json: missing key \"schedule\"", 0) == 0) throw;
    throw Error("'schedule': " + e.message());
  }
  const json::Value& max_lr = v.at("max_lr");
  DML_CHECK(max_lr.is_null() || (max_lr.is_number() && max_lr.as_double() > 0),
            "'max_lr': expected a number > 0 or null, found ", detail::json_found(max_lr));
  if (!max_lr.is_null()) p.max_lr = max_lr.as_double();
  p.total = detail::int_field(v, "total", 0);
  p.step = detail::int_field(v, "step", 0, p.total);
  p.end_epoch = detail::int_field(v, "end_epoch", 0);
  run.plan = p;
  run.loss_sum = detail::number_field(v, "loss_sum");
  run.loss_count = detail::int_field(v, "loss_count", 0);
  run.seconds = detail::number_field(v, "seconds", 0);
}

// "dml.history": one row [epoch, train_loss, valid_loss, accuracy, seconds]
// per epoch, non-finite losses and accuracy as null.
inline json::Value history_to_json(const std::vector<EpochStats>& history) {
  auto finite_or_null = [](double x) { return std::isfinite(x) ? json::Value(x) : json::Value(nullptr); };
  json::Array rows;
  for (const EpochStats& s : history)
    rows.push_back(json::Array{s.epoch, finite_or_null(s.train_loss), finite_or_null(s.valid_loss),
                               finite_or_null(s.accuracy), s.seconds});
  return rows;
}
// Reads history_to_json's rows (null as NaN). Throws dml::Error "row <i>: ..."
// for a row that is not 5 values, or "row <i>: '<value>': expected ..., found
// ..." for a negative epoch, a loss that is not a number or null, an accuracy
// outside [0, 1], negative seconds.
inline std::vector<EpochStats> history_from_json(const json::Value& v) {
  DML_CHECK(v.is_array(), "expected an array of rows, found ", detail::json_found(v));
  std::vector<EpochStats> out;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < v.as_array().size(); ++i) {
    const json::Value& r = v.as_array()[i];
    try {
      DML_CHECK(r.is_array() && r.as_array().size() == 5,
                "expected [epoch, train_loss, valid_loss, accuracy, seconds], found ", detail::json_found(r));
      const json::Array& a = r.as_array();
      DML_CHECK(a[0].is_int() && a[0].as_int() >= 0, "'epoch': expected an integer >= 0, found ",
                detail::json_found(a[0]));
      out.push_back({a[0].as_int(), detail::number_value(a[1], "train_loss", -inf, inf, false, true).value_or(nan),
                     detail::number_value(a[2], "valid_loss", -inf, inf, false, true).value_or(nan),
                     detail::number_value(a[3], "accuracy", 0, 1, false, true).value_or(nan),
                     *detail::number_value(a[4], "seconds", 0, inf, false, false)});
    } catch (const Error& e) {
      throw Error(::dml::detail::concat("row ", i, ": ", e.message()));
    }
  }
  return out;
}

// Checks the entries a Learner reads besides tensors, where present:
// dml.loader, dml.generators, dml.plan (with its schedule), dml.history and
// dml.frozen, with the readers above. Throws dml::Error "<file>: checkpoint
// entry '<key>': '<field>': expected ..., found ...".
inline void validate_checkpoint(const CheckpointFile& f, const std::string& file) {
  auto check = [&](const char* key, auto&& fn) {
    if (f.metadata.contains(key)) detail::read_entry(f, key, file, fn);
  };
  check("dml.loader", [](const json::Value& v) { return loader_state_from_json(v); });
  check("dml.generators", [](const json::Value& v) {
    for (const auto& [name, g] : v.as_object()) {
      try {
        (void)generator_state_from_json(g);
      } catch (const Error& e) {
        throw Error(::dml::detail::concat("'", name, "': ", e.message()));
      }
    }
    return 0;
  });
  check("dml.plan", [](const json::Value& v) {
    RunState run;
    plan_from_json(v, run);
    return run;
  });
  check("dml.history", [](const json::Value& v) { return history_from_json(v); });
  auto frozen = f.metadata.find("dml.frozen");
  DML_CHECK(frozen == f.metadata.end() || frozen->second == "true" || frozen->second == "false", file,
            ": checkpoint entry 'dml.frozen': expected \"true\" or \"false\", found \"", frozen->second, "\"");
}

namespace detail {
inline CheckpointFile checkpoint_from(io::SafetensorsFile f, const std::string& file) {
  auto it = f.metadata.find("dml.format");
  DML_CHECK(it != f.metadata.end(), file, ": not a dml checkpoint (no dml.format in the metadata)");
  DML_CHECK(it->second == kCheckpointFormat, file, ": checkpoint format: expected '", kCheckpointFormat,
            "', found '", it->second, "'");
  CheckpointFile out{std::move(f.tensors), std::move(f.metadata)};
  validate_checkpoint(out, file);
  return out;
}
}  // namespace detail

// Reads a checkpoint. Throws dml::Error naming the file when it is missing,
// malformed (see io::read_safetensors), not a dml checkpoint of this format,
// or holds a malformed entry (see validate_checkpoint).
inline CheckpointFile read_checkpoint(const std::filesystem::path& path) {
  return detail::checkpoint_from(io::read_safetensors(path), path.string());
}

// read_checkpoint for a file held in memory; `name` stands for the file in
// messages.
inline CheckpointFile parse_checkpoint(std::span<const std::byte> bytes, std::string_view name = "<memory>") {
  const std::string file(name);
  return detail::checkpoint_from(io::parse_safetensors(bytes, file), file);
}

}  // namespace dml::train
