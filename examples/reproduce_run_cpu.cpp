// examples/reproduce_run_cpu.cpp: reproduce::run<dml::Cpu>, the CPU experiment, compiled once
// by g++ and linked into both reproduce and reproduce_cuda (its --device cpu), which declare it
// extern (DML_REPRODUCE_RUN_CPU_EXTERN; examples/CMakeLists.txt). Otherwise nvcc's host pass
// of reproduce.cu would instantiate the whole CPU experiment a second time.
#include "reproduce.hpp"

template int reproduce::run<dml::Cpu>(const reproduce::Config&);
