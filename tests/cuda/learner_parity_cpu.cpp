// The host side of test_cuda_train.cu: the Learner runs on Cpu, compiled by g++ once.
#include "learner_parity.hpp"

namespace dml_test {

template LearnerRun learner_run<double, dml::Cpu>(const std::filesystem::path&);
template LearnerRun learner_run<float, dml::Cpu>(const std::filesystem::path&);
template LearnerRun reload_run<double, dml::Cpu>(const std::filesystem::path&);

}  // namespace dml_test
