// examples/reproduce.cpp: the CPU build of dml's main demo (the program is in
// reproduce.hpp). With nvcc and cuDNN the build also makes reproduce_cuda,
// whose --device cuda trains on the GPU.
#include "reproduce.hpp"

int main(int argc, char** argv) {
  return reproduce::main_with(argc, argv, "cpu", [](const reproduce::Config& cfg) {
    DML_CHECK(cfg.device == "cpu", "--device ", cfg.device,
              ": this build has no CUDA; build the reproduce_cuda target (nvcc and cuDNN) to train on a GPU");
    return reproduce::run<dml::Cpu>(cfg);
  });
}
