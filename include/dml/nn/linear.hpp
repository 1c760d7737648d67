// dml/nn/linear.hpp: the fully connected layer.
#pragma once

#include <cmath>

#include "../ops/linear.hpp"
#include "init.hpp"
#include "module.hpp"

namespace dml::nn {

// How a Linear starts. Default is PyTorch's reset_parameters (weight and bias
// uniform in +-1/sqrt(in)); KaimingNormal is fastai's head init
// (kaiming_normal_ fan_in, bias 0).
enum class LinearInit { Default, KaimingNormal };

// y = x W^T + b with weight [out, in] and bias [out], on x of shape [N, in].
template <class T = float, class D = Cpu>
class Linear : public Module<T, D> {
 public:
  // Throws dml::Error unless in, out >= 1.
  Linear(std::int64_t in, std::int64_t out, bool bias, Generator& gen, LinearInit how = LinearInit::Default)
      : in_(in), out_(out) {
    DML_CHECK(in >= 1 && out >= 1, "Linear: in and out features must be >= 1, got ", in, " and ", out);
    weight_ = this->register_parameter("weight", Tensor<T, D>::empty(Shape{out, in}));
    if (bias) bias_ = this->register_parameter("bias", Tensor<T, D>::empty(Shape{out}));
    reset_parameters(gen, how);
  }
  Linear(std::int64_t in, std::int64_t out, bool bias = true, std::uint64_t seed = 0)
      : Linear(in, out, bias, Generator(seed)) {}
  Linear(std::int64_t in, std::int64_t out, bool bias, Generator&& gen, LinearInit how = LinearInit::Default)
      : Linear(in, out, bias, gen, how) {}

  void reset_parameters(Generator& gen, LinearInit how = LinearInit::Default) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
    if (how == LinearInit::KaimingNormal)
      init::kaiming_normal_(weight_, gen, init::FanMode::In);
    else
      init::kaiming_uniform_(weight_, gen, init::FanMode::In, std::sqrt(5.0));
    if (bias_.defined()) {
      if (how == LinearInit::KaimingNormal)
        init::constant_(bias_, 0.0);
      else
        init::uniform_(bias_, gen, -bound, bound);
    }
  }

  Tensor<T, D> forward(const Tensor<T, D>& x) override { return ops::linear(x, weight_, bias_); }
  std::string type_name() const override { return "Linear"; }

  const Tensor<T, D>& weight() const { return weight_; }
  // Undefined when the layer has no bias.
  const Tensor<T, D>& bias() const { return bias_; }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }

 private:
  std::int64_t in_, out_;
  Tensor<T, D> weight_, bias_;
};

}  // namespace dml::nn
