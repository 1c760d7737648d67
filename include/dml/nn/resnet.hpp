// dml/nn/resnet.hpp: ResNet18 (torchvision's topology and names) with a
// torchvision classifier head, fastai's embedding head, or no head.
//
// Body: conv1 (7x7/2, no bias) - bn1 - relu - maxpool (3x3/2, pad 1) -
// layer1..layer4 of BasicBlocks (strides 1, 2, 2, 2; widths w, 2w, 4w, 8w);
// a block whose stride or width changes has `downsample` = [1x1 conv, BN].
// Parameter and buffer names equal torchvision's resnet18().state_dict().
//
// Heads (ResNetOptions::head):
//   Torchvision  avgpool - flatten - fc (Linear(8w, num_classes)): logits
//   Fastai       `head` = fastai v1's create_head without its last Linear:
//                  head.0 AdaptiveConcatPool2d   head.4 Linear(16w, embedding)
//                  head.1 Flatten                head.5 ReLU
//                  head.2 BatchNorm1d(16w)       head.6 BatchNorm1d(embedding)
//                  head.3 Dropout(0.25)          head.7 Dropout(0.5)
//                the indices are fastai's, so fastai's `1.<i>.*` maps to `head.<i>.*`.
//   None         avgpool - flatten: the 8w-d pooled features
//
// Init as torchvision: convs kaiming_normal_(fan_out, relu), BN weight 1 and
// bias 0 (zero_init_residual off), fc PyTorch's Linear default; the fastai
// head's Linear kaiming_normal_ (fan_in) with bias 0, its BNs 1 and 0.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "../ops/elementwise.hpp"
#include "basic.hpp"
#include "batchnorm.hpp"
#include "conv.hpp"
#include "dropout.hpp"
#include "linear.hpp"
#include "module.hpp"
#include "pool.hpp"
#include "sequential.hpp"

namespace dml::nn {

enum class Head { Torchvision, Fastai, None };

struct ResNetOptions {
  std::int64_t in_channels = 1;  // 1 (MNIST-like) or 3 (RGB)
  std::int64_t embedding = 512;  // output width of the Fastai head
  Head head = Head::Fastai;
  std::int64_t num_classes = 1000;  // output width of the Torchvision head
  std::int64_t width = 64;          // base channels; stages have w, 2w, 4w, 8w
  std::array<std::int64_t, 4> blocks = {2, 2, 2, 2};
  std::uint64_t seed = 0;                            // weight init and dropout masks
  std::array<double, 2> head_dropout = {0.25, 0.5};  // Fastai head: head.3, head.7
  // The stem's 3x3/2 max-pool. false skips it, so stage 1 runs at H/2 x W/2 instead of H/4 x W/4:
  // for small inputs such as 28x28 digits, at about four times the FLOPs. No weight changes.
  bool max_pool = true;
};

// torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
template <class T = float, class D = Cpu>
class BasicBlock : public Module<T, D> {
 public:
  BasicBlock(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, Generator& gen)
      : conv1(inplanes, planes, 3,
              {.stride = stride, .padding = 1, .bias = false, .init = ConvInit::KaimingNormalFanOut}, gen),
        bn1(planes),
        conv2(planes, planes, 3, {.stride = 1, .padding = 1, .bias = false, .init = ConvInit::KaimingNormalFanOut},
              gen),
        bn2(planes) {
    this->register_module("conv1", conv1);
    this->register_module("bn1", bn1);
    this->register_module("conv2", conv2);
    this->register_module("bn2", bn2);
    if (stride != 1 || inplanes != planes) {
      auto ds = std::make_unique<Sequential<T, D>>();
      ds->template emplace<Conv2d<T, D>>(
          inplanes, planes, 1,
          Conv2dOptions{.stride = stride, .padding = 0, .bias = false, .init = ConvInit::KaimingNormalFanOut}, gen);
      ds->template emplace<BatchNorm2d<T, D>>(planes);
      downsample = &this->register_module("downsample", std::move(ds));
    }
  }

  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    Tensor<T, D> out = ops::relu(bn1(conv1(x)));
    out = bn2(conv2(out));
    return ops::relu(out + (downsample ? downsample->forward(x) : x));
  }
  std::string type_name() const override { return "BasicBlock"; }

  Conv2d<T, D> conv1;
  BatchNorm2d<T, D> bn1;
  Conv2d<T, D> conv2;
  BatchNorm2d<T, D> bn2;
  Sequential<T, D>* downsample = nullptr;  // null when the shortcut is the identity
};

// ResNet18 (or any BasicBlock ResNet through `blocks`). forward(x [N, C, H, W])
// returns the head's output: logits, the embedding, or pooled features.
template <class T = float, class D = Cpu>
class ResNet18 : public Module<T, D> {
 public:
  using Options = ResNetOptions;

  // Throws dml::Error for in_channels, width, embedding or num_classes < 1, or
  // a stage with no block.
  explicit ResNet18(const ResNetOptions& opt = {})
      : opt_(checked(opt)),
        gen_(opt.seed),
        conv1(opt.in_channels, opt.width, 7,
              {.stride = 2, .padding = 3, .bias = false, .init = ConvInit::KaimingNormalFanOut}, gen_),
        bn1(opt.width),
        maxpool(3, 2, 1) {
    this->register_module("conv1", conv1);
    this->register_module("bn1", bn1);
    this->register_module("relu", relu);
    this->register_module("maxpool", maxpool);
    std::int64_t inplanes = opt.width;
    Sequential<T, D>* stages[4] = {&layer1, &layer2, &layer3, &layer4};
    for (int s = 0; s < 4; ++s) {
      std::int64_t planes = opt.width << s, stride = s == 0 ? 1 : 2;
      for (std::int64_t b = 0; b < opt.blocks[static_cast<std::size_t>(s)]; ++b) {
        stages[s]->template emplace<BasicBlock<T, D>>(inplanes, planes, b == 0 ? stride : 1, gen_);
        inplanes = planes;
      }
      this->register_module("layer" + std::to_string(s + 1), *stages[s]);
    }
    const std::int64_t features = 8 * opt.width;
    switch (opt.head) {
      case Head::Torchvision:
        this->register_module("avgpool", avgpool);
        fc = &this->register_module("fc", std::make_unique<Linear<T, D>>(features, opt.num_classes, true, gen_));
        break;
      case Head::Fastai: {
        auto h = std::make_unique<Sequential<T, D>>();
        h->template emplace<AdaptiveConcatPool2d<T, D>>(1);
        h->template emplace<Flatten<T, D>>();
        h->template emplace<BatchNorm1d<T, D>>(2 * features);
        h->template emplace<Dropout<T, D>>(opt.head_dropout[0], opt.seed ^ 0x9E3779B97F4A7C15ull);
        h->template emplace<Linear<T, D>>(2 * features, opt.embedding, true, gen_, LinearInit::KaimingNormal);
        h->template emplace<ReLU<T, D>>();
        h->template emplace<BatchNorm1d<T, D>>(opt.embedding);
        h->template emplace<Dropout<T, D>>(opt.head_dropout[1], opt.seed ^ 0xD1B54A32D192ED03ull);
        head = &this->register_module("head", std::move(h));
        break;
      }
      case Head::None:
        this->register_module("avgpool", avgpool);
        break;
    }
  }

  // The stage-4 feature map [N, 8w, H/32, W/32] (rounded up), before any head.
  Tensor<T, D> forward_features(const Tensor<T, D>& x) {
    DML_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == opt_.in_channels, "ResNet18: expected input [N, ",
              opt_.in_channels, ", H, W], got ", dml::detail::shape_or_undefined(x));
    Tensor<T, D> y = relu(bn1(conv1(x)));
    if (opt_.max_pool) y = maxpool(y);
    y = layer1(y);
    y = layer2(y);
    y = layer3(y);
    return layer4(y);
  }

  Tensor<T, D> forward(const Tensor<T, D>& x) override {
    Tensor<T, D> f = forward_features(x);
    switch (opt_.head) {
      case Head::Torchvision:
        return (*fc)(flatten(avgpool(f)));
      case Head::Fastai:
        return (*head)(f);
      case Head::None:
        break;
    }
    return flatten(avgpool(f));
  }
  std::string type_name() const override { return "ResNet18"; }

  const ResNetOptions& options() const { return opt_; }
  // Width of forward's output: num_classes, embedding or 8 * width.
  std::int64_t output_dim() const {
    return opt_.head == Head::Torchvision ? opt_.num_classes
           : opt_.head == Head::Fastai    ? opt_.embedding
                                          : 8 * opt_.width;
  }

 private:
  static const ResNetOptions& checked(const ResNetOptions& o) {
    DML_CHECK(o.in_channels >= 1 && o.width >= 1 && o.embedding >= 1 && o.num_classes >= 1, "ResNet18: in_channels ",
              o.in_channels, ", width ", o.width, ", embedding ", o.embedding, " and num_classes ", o.num_classes,
              " must all be >= 1");
    for (std::int64_t b : o.blocks) DML_CHECK(b >= 1, "ResNet18: every stage needs at least one block");
    return o;
  }
  ResNetOptions opt_;
  Generator gen_;  // weight init only

 public:
  Conv2d<T, D> conv1;
  BatchNorm2d<T, D> bn1;
  ReLU<T, D> relu;
  MaxPool2d<T, D> maxpool;
  Sequential<T, D> layer1, layer2, layer3, layer4;
  AdaptiveAvgPool2d<T, D> avgpool;
  Flatten<T, D> flatten;
  Linear<T, D>* fc = nullptr;        // Torchvision head only
  Sequential<T, D>* head = nullptr;  // Fastai head only
};

}  // namespace dml::nn
