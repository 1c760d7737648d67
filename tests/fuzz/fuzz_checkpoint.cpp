// Fuzzes train::parse_checkpoint: the safetensors container plus the
// metadata a Learner resumes from (loader position, generator states, the
// fit's plan and schedule, history). Bad bytes are a dml::Error naming the file.
#include <dml/train/checkpoint.hpp>

#include "fuzz.hpp"

namespace io = dml::io;
namespace train = dml::train;
namespace json = dml::io::json;

static void make_seeds(const std::filesystem::path& dir) {
  for (int k = 0; k < 4; ++k) {
    train::CheckpointFile c;
    c.tensors.emplace("body.fc.weight", io::RawTensor::from(std::vector<float>{1, 2, 3, 4}, {2, 2}));
    c.tensors.emplace("optim.step", io::RawTensor::from(std::vector<std::int64_t>{10}, {}));
    auto& m = c.metadata;
    m["dml.format"] = train::kCheckpointFormat;
    m["dml.element"] = "float32";
    m["dml.optimizer"] = "AdamW";
    m["dml.loader"] = json::dump(train::to_json(dml::data::LoaderState{18446744073709551615ull, 2, 3, 100, 8}));
    json::Object gens;
    gens.emplace_back("loader", train::to_json(dml::Generator::State{7, 123456789, static_cast<std::uint32_t>(k)}));
    gens.emplace_back("body.drop", train::to_json(dml::Generator::State{0, 0, 0}));
    m["dml.generators"] = json::dump(gens);
    const dml::optim::Schedule schedules[] = {dml::optim::Constant{}, dml::optim::StepDecay{3, 0.1},
                                              dml::optim::Cosine{1e-5}, dml::optim::OneCycle{}};
    json::Object plan;
    plan.emplace_back("active", k % 2 == 0);
    plan.emplace_back("schedule", train::to_json(schedules[k]));
    plan.emplace_back("max_lr", k == 1 ? json::Value(nullptr) : json::Value(0.01));
    plan.emplace_back("step", 5);
    plan.emplace_back("total", 40);
    plan.emplace_back("end_epoch", 4);
    plan.emplace_back("loss_sum", 3.25);
    plan.emplace_back("loss_count", 2);
    plan.emplace_back("seconds", 0.5);
    m["dml.plan"] = json::dump(plan);
    m["dml.frozen"] = k == 3 ? "true" : "false";
    json::Array hist;
    hist.push_back(json::Array{1, 2.5, nullptr, 0.75, 1.0});
    m["dml.history"] = json::dump(hist);
    dml_fuzz::write_seed(dir, "ckpt" + std::to_string(k) + ".safetensors",
                         io::serialize_safetensors(c.tensors, c.metadata));
  }
}
DML_FUZZ_SEEDS(make_seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::string_view kName = "fuzz.ckpt";
  try {
    train::CheckpointFile f = train::parse_checkpoint(dml_fuzz::bytes(data, size), kName);
    // What validate_checkpoint accepted, the Learner's own reads accept too.
    if (auto it = f.metadata.find("dml.loader"); it != f.metadata.end())
      (void)train::loader_state_from_json(json::parse(it->second));
    if (auto it = f.metadata.find("dml.plan"); it != f.metadata.end())
      (void)train::schedule_from_json(json::parse(it->second).at("schedule"));
  } catch (const dml::Error& e) {
    dml_fuzz::expect_names(e, kName);
  }
  return 0;
}
