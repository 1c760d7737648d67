// dml/train/checkpoint.hpp: the file a Learner saves and resumes from, and
// the JSON forms of what it holds besides tensors (schedules, generator
// states, data-loader positions).
//
// A checkpoint is a safetensors file: the tensors under prefixes ("body.",
// "head.", "loss.<name>.", "optim.") and everything else as "__metadata__"
// strings, "dml.format" = kCheckpointFormat first among them. Writing is
// atomic (temporary file, fsync, rename) and keeps the previous checkpoint as
// "<path>.prev".
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

#include "../config.hpp"
#include "../core/random.hpp"
#include "../data/loader.hpp"
#include "../io/json.hpp"
#include "../io/safetensors.hpp"
#include "../optim/schedule.hpp"

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
    throw Error(::dml::detail::concat(file, ": checkpoint entry '", key, "' is not valid JSON: ", e.message()));
  }
}

// 64-bit unsigned values travel as decimal strings (JSON integers are int64).
inline json::Value u64(std::uint64_t v) { return json::Value(std::to_string(v)); }
inline std::uint64_t u64(const json::Value& v) {
  const std::string& s = v.as_string();
  std::size_t used = 0;
  unsigned long long x = 0;
  try {
    x = std::stoull(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DML_CHECK(used == s.size() && !s.empty() && s[0] != '-', "expected an unsigned integer as a decimal string, found '", s, "'");
  return static_cast<std::uint64_t>(x);
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
inline Generator::State generator_state_from_json(const json::Value& v) {
  const std::int64_t unused = v.at("unused").as_int();
  DML_CHECK(unused >= 0 && unused <= 4, "generator 'unused': expected 0..4, found ", unused);
  return {detail::u64(v.at("seed")), detail::u64(v.at("counter")), static_cast<std::uint32_t>(unused)};
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
  return o;
}
// Reads to_json's object; without classes_per_batch and samples_per_class
// (a loader that is not class-balanced, or an older checkpoint) both are 0.
inline data::LoaderState loader_state_from_json(const json::Value& v) {
  data::LoaderState s{detail::u64(v.at("seed")), v.at("epoch").as_int(), v.at("position").as_int(),
                      v.at("dataset_size").as_int(), v.at("batch_size").as_int()};
  if (const json::Value* p = v.find("classes_per_batch")) s.classes_per_batch = p->as_int();
  if (const json::Value* k = v.find("samples_per_class")) s.samples_per_class = k->as_int();
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
inline optim::Schedule schedule_from_json(const json::Value& v) {
  const std::string& kind = v.at("kind").as_string();
  if (kind == "Constant") return optim::Constant{};
  if (kind == "StepDecay") return optim::StepDecay{v.at("step_size").as_int(), v.at("gamma").as_double()};
  if (kind == "Cosine") return optim::Cosine{v.at("eta_min").as_double()};
  if (kind == "OneCycle") {
    optim::OneCycle s;
    s.pct_start = v.at("pct_start").as_double();
    s.div = v.at("div").as_double();
    s.div_final = v.at("div_final").as_double();
    const json::Array& m = v.at("moms").as_array();
    DML_CHECK(m.size() == 3, "OneCycle 'moms': expected 3 values, found ", m.size());
    for (std::size_t i = 0; i < 3; ++i) s.moms[i] = m[i].as_double();
    s.cycle_momentum = v.at("cycle_momentum").as_bool();
    return s;
  }
  throw Error(::dml::detail::concat("schedule 'kind': expected Constant, StepDecay, Cosine or OneCycle, found '", kind, "'"));
}

// Checks the entries a Learner reads besides tensors, where present:
// dml.loader, dml.generators, dml.plan (with its schedule), dml.history and
// dml.frozen. Throws dml::Error naming `file`, the entry, and what was
// expected against what was found.
inline void validate_checkpoint(const CheckpointFile& f, const std::string& file) {
  auto check = [&](const char* key, auto&& fn) {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end()) return;
    try {
      fn(json::parse(it->second));
    } catch (const Error& e) {
      throw Error(::dml::detail::concat(file, ": checkpoint entry '", key, "': ", e.message()));
    }
  };
  check("dml.loader", [](const json::Value& v) { (void)loader_state_from_json(v); });
  check("dml.generators", [](const json::Value& v) {
    for (const auto& [name, g] : v.as_object()) (void)generator_state_from_json(g);
  });
  check("dml.plan", [](const json::Value& v) {
    (void)v.at("active").as_bool();
    (void)schedule_from_json(v.at("schedule"));
    if (!v.at("max_lr").is_null()) (void)v.at("max_lr").as_double();
    for (const char* k : {"step", "total", "end_epoch", "loss_count"}) (void)v.at(k).as_int();
    for (const char* k : {"loss_sum", "seconds"}) (void)v.at(k).as_double();
  });
  check("dml.history", [](const json::Value& v) {
    for (const json::Value& r : v.as_array()) {
      const json::Array& a = r.as_array();
      DML_CHECK(a.size() == 5, "a history row must hold 5 values, found ", a.size());
      (void)a[0].as_int();
      for (std::size_t i = 1; i < 4; ++i)
        if (!a[i].is_null()) (void)a[i].as_double();
      (void)a[4].as_double();
    }
  });
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
