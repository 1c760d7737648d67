// bench/resnet18_cpu.cpp: the host instantiations of bench/resnet18_common.hpp's validation
// run and convolution timing, compiled once by g++ and linked into both bench_resnet18 and
// bench_resnet18_cuda, which declare them extern (DML_BENCH_RESNET18_CPU_EXTERN;
// bench/CMakeLists.txt). Otherwise nvcc's host pass of resnet18.cu would compile them again.
#include "resnet18_common.hpp"

template bool bench::validate<dml::Cpu>(std::vector<float>*);
template bench::ConvTimes bench::time_conv<dml::Cpu>(const bench::ConvShape&, std::int64_t, int);
