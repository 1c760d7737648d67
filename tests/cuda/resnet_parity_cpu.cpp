// The host side of test_cuda_resnet.cu: ResNet18 on Cpu, compiled by g++ once
// rather than in each of nvcc's passes.
#include "resnet_parity.hpp"

namespace dml_test {

template Snapshot<float> resnet_forward_backward<float, dml::Cpu>();
template Snapshot<double> resnet_forward_backward<double, dml::Cpu>();
template std::vector<double> train_losses<float, dml::Cpu>(int);
template std::vector<double> train_losses<double, dml::Cpu>(int);

}  // namespace dml_test
