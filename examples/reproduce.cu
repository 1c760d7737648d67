// examples/reproduce.cu: the CUDA build of dml's main demo, target
// reproduce_cuda (the program is in reproduce.hpp). Training and embedding
// run on the GPU by default (--device cuda) or on the CPU (--device cpu);
// t-SNE, kNN and the metrics run on the CPU either way. Without a usable GPU,
// --device cuda stops with one message saying why.
#include <dml/cuda.hpp>

#include "reproduce.hpp"

int main(int argc, char** argv) {
  return reproduce::main_with(argc, argv, "cuda", [](reproduce::Config cfg) {
    if (cfg.device == "cpu") return reproduce::run<dml::Cpu>(cfg);
    const std::string why = dml::cuda::device_status();
    DML_CHECK(why.empty(), "--device cuda: no usable GPU (", why, "); pass --device cpu to train on the CPU");
    cfg.device_name = "cuda (" + dml::cuda::context().name + ")";
    return reproduce::run<dml::Cuda>(cfg);
  });
}
