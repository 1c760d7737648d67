// dml/nn/conv.hpp: the 2-D convolution layer (NCHW).
#pragma once

#include <cmath>

#include "../ops/conv.hpp"
#include "init.hpp"
#include "module.hpp"

namespace dml::nn {

// How a Conv2d starts. Default is PyTorch's reset_parameters (weight and bias
// uniform in +-1/sqrt(fan_in)); KaimingNormalFanOut is torchvision's ResNet
// init (kaiming_normal_, mode fan_out, ReLU gain; bias 0).
enum class ConvInit { Default, KaimingNormalFanOut };

struct Conv2dOptions {
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  bool bias = true;
  ConvInit init = ConvInit::Default;
};

// Square kernel k x k: weight [out, in, k, k], bias [out] (optional).
template <class T = float, class D = Cpu>
class Conv2d : public Module<T, D> {
 public:
  // Throws dml::Error for channels or kernel < 1, stride < 1 or padding < 0.
  Conv2d(std::int64_t in, std::int64_t out, std::int64_t kernel, Conv2dOptions opt, Generator& gen)
      : in_(in), out_(out), kernel_(kernel), opt_(opt) {
    DML_CHECK(in >= 1 && out >= 1 && kernel >= 1 && opt.stride >= 1 && opt.padding >= 0, "Conv2d: invalid ",
              "arguments in ", in, ", out ", out, ", kernel ", kernel, ", stride ", opt.stride, ", padding ",
              opt.padding);
    weight_ = this->register_parameter("weight", Tensor<T, D>::empty(Shape{out, in, kernel, kernel}));
    if (opt.bias) bias_ = this->register_parameter("bias", Tensor<T, D>::empty(Shape{out}));
    reset_parameters(gen);
  }
  Conv2d(std::int64_t in, std::int64_t out, std::int64_t kernel, Conv2dOptions opt = {}, std::uint64_t seed = 0)
      : Conv2d(in, out, kernel, opt, Generator(seed)) {}
  Conv2d(std::int64_t in, std::int64_t out, std::int64_t kernel, Conv2dOptions opt, Generator&& gen)
      : Conv2d(in, out, kernel, opt, gen) {}

  void reset_parameters(Generator& gen) {
    if (opt_.init == ConvInit::KaimingNormalFanOut) {
      init::kaiming_normal_(weight_, gen, init::FanMode::Out);
      if (bias_.defined()) init::constant_(bias_, 0.0);
      return;
    }
    init::kaiming_uniform_(weight_, gen, init::FanMode::In, std::sqrt(5.0));
    if (bias_.defined()) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(init::fans(weight_.shape()).in));
      init::uniform_(bias_, gen, -bound, bound);
    }
  }

  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    return ops::conv2d(x, weight_, bias_, ops::Conv2dOptions{opt_.stride, opt_.padding});
  }
  std::string type_name() const override { return "Conv2d"; }

  const Tensor<T, D>& weight() const { return weight_; }
  const Tensor<T, D>& bias() const { return bias_; }
  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  std::int64_t kernel_size() const { return kernel_; }
  const Conv2dOptions& options() const { return opt_; }

 private:
  std::int64_t in_, out_, kernel_;
  Conv2dOptions opt_;
  Tensor<T, D> weight_, bias_;
};

}  // namespace dml::nn
