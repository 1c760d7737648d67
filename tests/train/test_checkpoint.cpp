// Tests for dml/train/checkpoint.hpp: malformed entries are refused naming the
// file and the entry, and a run killed at random points while it writes
// checkpoints always leaves a newest complete checkpoint that resumes to the
// result of an uninterrupted run.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dml/dml.hpp"
#include "dml/heads/margin_head.hpp"
#include "dml/nn/nn.hpp"
#include "dml/optim/sgd.hpp"
#include "dml/train/train.hpp"
#include "../support/temp_dir.hpp"
#include "mlp_body.hpp"

namespace test_checkpoint {

using namespace dml;
using dml::testing::TempDir;
namespace json = io::json;

// A minimal valid checkpoint plus `key` = `value`.
train::CheckpointFile with_entry(const std::string& key, const std::string& value) {
  train::CheckpointFile c;
  c.tensors.emplace("body.w", io::RawTensor::from(std::vector<float>{1, 2}, {2}));
  c.metadata["dml.loader"] = json::dump(train::to_json(data::LoaderState{1, 0, 0, 10, 5}));
  c.metadata[key] = value;
  return c;
}

std::string read_error(const std::filesystem::path& path) {
  try {
    train::read_checkpoint(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST_CASE("a loader state round-trips through JSON; one without P and K (older files) is not class-balanced") {
  const data::LoaderState pk{7, 2, 3, 100, 12, 3, 4};
  CHECK(train::loader_state_from_json(json::parse(json::dump(train::to_json(pk)))) == pk);
  const data::LoaderState plain{7, 2, 3, 100, 12};
  const std::string text = json::dump(train::to_json(plain));
  CHECK(text.find("classes_per_batch") == std::string::npos);  // unchanged for loaders that shuffle
  CHECK(train::loader_state_from_json(json::parse(text)) == plain);
}

TEST_CASE("read_checkpoint names the file and the entry of a malformed entry") {
  TempDir dir("dml_ckpt");
  const auto path = dir / "ckpt";
  struct Case {
    const char* key;
    const char* value;
    const char* expect;
  };
  const Case cases[] = {
      {"dml.plan", R"({"active":true})", "checkpoint entry 'dml.plan': json: missing key \"schedule\""},
      {"dml.plan", "{", "checkpoint entry 'dml.plan': json: "},
      {"dml.plan", R"({"active":true,"schedule":{"kind":"StepDecay","step_size":0,"gamma":0.5},"max_lr":null,)"
                   R"("step":0,"total":4,"end_epoch":1,"loss_sum":0,"loss_count":0,"seconds":0})",
       "checkpoint entry 'dml.plan': 'schedule': 'step_size': expected an integer >= 1, found 0"},
      {"dml.plan", R"({"active":true,"schedule":{"kind":"Constant"},"max_lr":-1,)"
                   R"("step":0,"total":4,"end_epoch":1,"loss_sum":0,"loss_count":0,"seconds":0})",
       "checkpoint entry 'dml.plan': 'max_lr': expected a number > 0 or null, found -1"},
      {"dml.loader", R"({"seed":"-1","epoch":0,"position":0,"dataset_size":1,"batch_size":1})",
       "checkpoint entry 'dml.loader': 'seed': expected an unsigned integer as a decimal string, found the string "
       "\"-1\""},
      {"dml.loader", R"({"seed":"1","epoch":0,"position":0,"dataset_size":10,"batch_size":0})",
       "checkpoint entry 'dml.loader': 'batch_size': expected an integer >= 1, found 0"},
      {"dml.loader", R"({"seed":"1","epoch":0,"position":0,"dataset_size":12,"batch_size":6,)"
                     R"("classes_per_batch":2,"samples_per_class":4})",
       "checkpoint entry 'dml.loader': 'batch_size': expected classes_per_batch x samples_per_class (2 x 4), found 6"},
      {"dml.generators", R"({"body.drop":{"seed":"1","counter":"2","unused":9}})",
       "checkpoint entry 'dml.generators': 'body.drop': 'unused': expected an integer in 0..4, found 9"},
      {"dml.history", "[[1, 2, 3]]",
       "checkpoint entry 'dml.history': row 0: expected [epoch, train_loss, valid_loss, accuracy, seconds], found an "
       "array of 3 values"},
      {"dml.history", "[[0, 1.5, null, 0.5, -2]]",
       "checkpoint entry 'dml.history': row 0: 'seconds': expected a number >= 0, found -2"},
      {"dml.frozen", "maybe", "checkpoint entry 'dml.frozen': expected \"true\" or \"false\", found \"maybe\""},
  };
  for (const Case& c : cases) {
    train::write_checkpoint(path, with_entry(c.key, c.value));
    const std::string msg = read_error(path);
    INFO(c.key, " = ", c.value, " -> ", msg);
    CHECK(msg.find(path.string() + ": " + c.expect) == 0);
    CHECK(msg.find("[at ") == std::string::npos);
  }
  // The in-memory reader says the same with the name it is given.
  auto bytes = io::serialize_safetensors({}, {{"dml.format", "dml-checkpoint-0"}});
  CHECK_THROWS_WITH_AS(train::parse_checkpoint(bytes, "mem.ckpt"),
                       "mem.ckpt: checkpoint format: expected 'dml-checkpoint-1', found 'dml-checkpoint-0'", Error);
  train::write_checkpoint(path, with_entry("dml.frozen", "true"));
  CHECK(train::read_checkpoint(path).metadata.at("dml.frozen") == "true");
}

// ---- crash safety ------------------------------------------------------------------------

// 16 -> 12 -> 6 with dropout 0.2: see mlp_body.hpp.
struct Body : testing::MlpBody {
  Body() : MlpBody({16, 12, 6, 0.2, 5, 9}) {}
};

constexpr std::int64_t kEpochs = 10;

struct Run {
  explicit Run(const std::filesystem::path& checkpoint = {})
      : head(6, 3, {}, 4),
        learn(body, head, {testing::three_rows(48, 1), testing::three_rows(12, 2)}, optim::SGD{.lr = 0.05, .momentum = 0.9}, options(checkpoint)) {}
  static train::LearnerOptions options(const std::filesystem::path& checkpoint) {
    train::LearnerOptions o;
    o.batch_size = 8;
    o.quiet = true;
    o.seed = 3;
    o.checkpoint = checkpoint;
    return o;
  }
  std::vector<std::vector<float>> weights() const {
    std::vector<std::vector<float>> out;
    for (const nn::Module<float, Cpu>* m : {static_cast<const nn::Module<float, Cpu>*>(&body),
                                            static_cast<const nn::Module<float, Cpu>*>(&head)})
      for (const auto& [name, entry] : m->state_dict())
        if (const auto* t = std::get_if<Tensor<float, Cpu>>(&entry)) out.push_back(t->to_vector());
    return out;
  }
  Body body;
  heads::MarginHead<heads::Sphere> head;
  train::Learner<float, Cpu> learn;
};

// The child: run by the test below through exec (a forked copy of a process
// that has used OpenMP may hang), a fit that checkpoints after every epoch.
TEST_CASE("checkpoint crash child (does nothing unless DML_TEST_CRASH_CHECKPOINT is set)") {
  const char* path = std::getenv("DML_TEST_CRASH_CHECKPOINT");
  if (!path) return;
  Run r(path);
  r.learn.fit(kEpochs);
  std::_Exit(0);
}

pid_t spawn_child(const std::filesystem::path& checkpoint) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("DML_TEST_CRASH_CHECKPOINT", checkpoint.c_str(), 1);
    if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, 1);
    ::execl("/proc/self/exe", "dml_tests", "--test-case=checkpoint crash child*", "--no-intro=true",
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  return pid;
}

TEST_CASE("a run killed at random points while it writes checkpoints resumes to the uninterrupted result") {
  Run reference;
  reference.learn.fit(kEpochs);
  const auto want = reference.weights();

  TempDir dir("dml_crash");
  // One run to the end measures how long a child takes.
  const auto t0 = std::chrono::steady_clock::now();
  {
    const pid_t pid = spawn_child(dir / "full");
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  const double full = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Run whole;
  whole.learn.resume(dir / "full");  // a finished fit: nothing left to run
  CHECK(whole.weights() == want);

  constexpr int kKills = 24;
  Generator gen(2026);
  int from_scratch = 0, from_prev = 0, mid_run = 0;
  for (int k = 0; k < kKills; ++k) {
    const auto ckpt = dir / ("ckpt" + std::to_string(k));
    // Kill times spread over the whole run, each jittered at random.
    const double at = full * (k + gen.uniform()) / kKills;
    const pid_t pid = spawn_child(ckpt);
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);

    // The newest complete checkpoint: the file itself, else the one kept as .prev
    // (a kill between write_checkpoint's two renames leaves only that).
    std::filesystem::path newest;
    auto prev = ckpt;
    prev += ".prev";
    if (std::filesystem::exists(ckpt)) newest = ckpt;
    else if (std::filesystem::exists(prev)) newest = prev, ++from_prev;
    Run r;
    if (newest.empty()) {
      ++from_scratch;  // killed before the first checkpoint was written
      r.learn.fit(kEpochs);
    } else {
      INFO("kill ", k, " at ", at, " s; loading ", newest.string());
      const auto f = train::read_checkpoint(newest);  // must load: never a torn file
      const auto epoch = json::parse(f.metadata.at("dml.loader")).at("epoch").as_int();
      if (epoch < kEpochs) ++mid_run;
      r.learn.resume(newest);
    }
    CHECK_MESSAGE(r.weights() == want, "kill ", k, " at ", at, " s of ", full, " s");
  }
  MESSAGE("crash safety: ", kKills, " kills over a ", full, " s run: ", mid_run, " resumed mid-run, ", from_prev,
          " from .prev, ", from_scratch, " before the first checkpoint");
  CHECK(mid_run > 0);
}

}  // namespace test_checkpoint
