// dml/nn/pool.hpp: pooling layers.
#pragma once

#include "../ops/pool.hpp"
#include "module.hpp"

namespace dml::nn {

// Square max pooling (kernel, stride (0: kernel), padding), as nn.MaxPool2d.
template <class T = float, class D = Cpu>
class MaxPool2d : public Module<T, D> {
 public:
  explicit MaxPool2d(std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0)
      : kernel_(kernel), stride_(stride == 0 ? kernel : stride), padding_(padding) {
    DML_CHECK(kernel >= 1 && stride_ >= 1 && padding >= 0 && 2 * padding <= kernel, "MaxPool2d: kernel ", kernel,
              ", stride ", stride, ", padding ", padding, " are invalid");
  }
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return ops::max_pool2d(x, kernel_, stride_, padding_); }
  std::string type_name() const override { return "MaxPool2d"; }

 private:
  std::int64_t kernel_, stride_, padding_;
};

// Adaptive pooling to out_h x out_w (out_w = 0: square).
template <class T = float, class D = Cpu>
class AdaptiveAvgPool2d : public Module<T, D> {
 public:
  explicit AdaptiveAvgPool2d(std::int64_t out_h = 1, std::int64_t out_w = 0) : oh_(out_h), ow_(out_w ? out_w : out_h) {}
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return ops::adaptive_avg_pool2d(x, oh_, ow_); }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }

 private:
  std::int64_t oh_, ow_;
};

template <class T = float, class D = Cpu>
class AdaptiveMaxPool2d : public Module<T, D> {
 public:
  explicit AdaptiveMaxPool2d(std::int64_t out_h = 1, std::int64_t out_w = 0) : oh_(out_h), ow_(out_w ? out_w : out_h) {}
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return ops::adaptive_max_pool2d(x, oh_, ow_); }
  std::string type_name() const override { return "AdaptiveMaxPool2d"; }

 private:
  std::int64_t oh_, ow_;
};

// fastai's AdaptiveConcatPool2d: [max, avg] along the channels (2C outputs).
template <class T = float, class D = Cpu>
class AdaptiveConcatPool2d : public Module<T, D> {
 public:
  explicit AdaptiveConcatPool2d(std::int64_t out_h = 1, std::int64_t out_w = 0)
      : oh_(out_h), ow_(out_w ? out_w : out_h) {}
  Tensor<T, D> forward(const Tensor<T, D>& x) override { return ops::adaptive_concat_pool2d(x, oh_, ow_); }
  std::string type_name() const override { return "AdaptiveConcatPool2d"; }

 private:
  std::int64_t oh_, ow_;
};

}  // namespace dml::nn
