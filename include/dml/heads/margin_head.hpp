// dml/heads/margin_head.hpp: MarginHead<Policy>, the classifier that turns an
// embedding into logits; the policy type selects the metric-learning method.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../nn/init.hpp"
#include "../nn/module.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/linear.hpp"
#include "../ops/margin.hpp"
#include "../ops/matmul.hpp"
#include "../ops/norm.hpp"
#include "../ops/reduce.hpp"
#include "margin_policy.hpp"

namespace dml::heads {

// The logits of each kind of head (margin_policy.hpp), given the policy (with
// its schedule applied), the N x dim embedding, the head's weight [classes,
// dim] and bias ([classes], undefined for kinds without one), and the labels
// to put a margin on (null in eval mode or without labels). Kinds defined
// elsewhere add an overload in their own namespace.
constexpr double kHeadNormEps = 1e-12;  // normalisation epsilon for embedding and weight rows

template <class P, class T, class D>
Tensor<T, D> kind_logits(LinearHead, const P&, const Tensor<T, D>& emb, const Tensor<T, D>& weight,
                         const Tensor<T, D>& bias, const Tensor<std::int64_t, D>*) {
  return ops::linear(emb, weight, bias);
}

template <class P, class T, class D>
Tensor<T, D> kind_logits(ScaledLinearHead, const P& p, const Tensor<T, D>& emb, const Tensor<T, D>& weight,
                         const Tensor<T, D>& bias, const Tensor<std::int64_t, D>*) {
  return ops::linear(ops::l2_normalize(emb, kHeadNormEps) * T(p.scale()), weight, bias);
}

// cos(x_i, w_j) for every embedding row i and weight row j: [N, rows of weight].
template <class T, class D>
Tensor<T, D> head_cosines(const Tensor<T, D>& emb, const Tensor<T, D>& weight) {
  return ops::matmul(ops::l2_normalize(emb, kHeadNormEps), ops::l2_normalize(weight, kHeadNormEps), false, true);
}

template <class P, class T, class D>
Tensor<T, D> kind_logits(CosineHead, const P& p, const Tensor<T, D>& emb, const Tensor<T, D>& weight,
                         const Tensor<T, D>&, const Tensor<std::int64_t, D>* labels) {
  Tensor<T, D> cos = head_cosines(emb, weight);
  if (labels) cos = ops::apply_margin(cos, *labels, p);
  if constexpr (PolicyTraits<P>::kUsesFeatureNorm) {
    return cos * ops::sqrt(ops::sum(ops::square(emb), 1, true) + T(kHeadNormEps));
  } else {
    return cos * T(p.scale());
  }
}

// Sub-centre heads: the weight is [classes * k, dim]; the class cosine is the
// largest of its k sub-centre cosines (the gradient goes to that sub-centre,
// the first one on a tie), then the inner margin and scale.
template <class P, class T, class D>
Tensor<T, D> kind_logits(SubCenterHead, const P& p, const Tensor<T, D>& emb, const Tensor<T, D>& weight,
                         const Tensor<T, D>&, const Tensor<std::int64_t, D>* labels) {
  const std::int64_t k = p.centers_per_class(), classes = weight.dim(0) / k;
  Tensor<T, D> cos = ops::max(head_cosines(emb, weight).reshape(Shape{emb.dim(0), classes, k}), 2);
  if (labels) cos = ops::apply_margin(cos, *labels, p.margin);
  return cos * T(p.margin.scale());
}

// AdaCos's dynamic scale update (see heads::AdaCos) from a training batch's
// cosines [N, C] (no gradient needed) and labels [N]: returns the policy with
// the new s; p itself when p is fixed or the batch is empty. Throws dml::Error
// for labels that do not match the cosines or lie outside [0, C).
template <class T, class D>
AdaCos adapt(const AdaCos& p, const Tensor<T, D>& cos, const Tensor<std::int64_t, D>& labels) {
  ::dml::detail::expect_rank(cos, 2, "heads::adapt (AdaCos)", "cosines");
  DML_CHECK(labels.defined() && labels.rank() == 1 && labels.dim(0) == cos.dim(0),
            "heads::adapt (AdaCos): labels of shape ", labels.defined() ? labels.shape().str() : "undefined",
            " do not match cosines of shape ", cos.shape().str());
  ::dml::detail::expect_indices(labels, cos.dim(1), "heads::adapt (AdaCos)");
  const std::int64_t rows = cos.dim(0), cols = cos.dim(1);
  if (!p.dynamic || rows == 0) return p;
  Tensor<T, D> b = Tensor<T, D>::empty(Shape{rows}), theta = Tensor<T, D>::empty(Shape{rows});
  Backend<D>::adacos_row_stats(cos.data(), labels.data(), p.s, b.data(), theta.data(), rows, cols);
  double b_sum = 0;
  for (T v : b.to_vector()) b_sum += double(v);
  std::vector<T> angles = theta.to_vector();
  const auto mid = angles.begin() + (rows - 1) / 2;  // the lower median, as torch.median
  std::nth_element(angles.begin(), mid, angles.end());
  return p.updated(b_sum / double(rows), double(*mid));
}

namespace detail {

// A policy whose state the head updates from each training batch: heads::adapt(p, cos, labels)
// returns the next policy, and its scale s is the state (the head's buffer `scale`).
template <class P, class T, class D>
concept AdaptivePolicy = requires(P p, const Tensor<T, D>& cos, const Tensor<std::int64_t, D>& labels) {
  { adapt(p, cos, labels) } -> std::same_as<P>;
  p.s = 1.0;
};

}  // namespace detail

// The logits of an N x dim embedding for `classes` classes under policy P:
//   Softmax        x W^T + b                                   (weight, bias)
//   L2Constrained  (alpha x / |x|) W^T + b                     (weight, bias)
//   Arc, Cos, Combined: s * margin(cos(x, w_j)) on the label column, no bias
//   Sphere         |x| * blend(cos(x, w_j)) on the label column, no bias
//   SubCenter<P>   P's logits of max_k cos(x, w_{j,k}), weight [classes * k, dim]
//   AdaCos         s * cos(x, w_j), s adapted to each training batch (buffer `scale`)
// (the kind of head, PolicyTraits<P>::Kind, decides which). Margins apply only
// in training mode when labels are given; otherwise the head returns the plain
// scaled cosines (or linear logits). Parameter names:
// `weight` [classes, dim], `bias` [classes]; Sphere adds the int64 buffer
// `iteration` (its lambda schedule position) and `anneal_steps` (where the
// schedule ends, see plan_schedule); AdaCos adds the buffer `scale` [1]
// (its current s). The head keeps host copies of these buffers, so that a training step
// on a GPU reads nothing back: write them through load_state_dict, which refreshes the copies. An all-zero embedding row is
// normalised to zero, so its cosines are 0: a defined result, never NaN.
template <class P, class T = float, class D = Cpu>
class MarginHead : public nn::Module<T, D> {
  static_assert(check_head_policy<P>());
  using Traits = PolicyTraits<P>;
  using TensorT = Tensor<T, D>;
  using Labels = Tensor<std::int64_t, D>;

 public:
  // Normalisation epsilon for embedding and weight rows.
  static constexpr double kNormEps = kHeadNormEps;

  // Whether the policy adapts to each training batch (AdaCos), see detail::AdaptivePolicy.
  static constexpr bool kAdaptive = detail::AdaptivePolicy<P, T, D>;

  // Throws dml::Error for dim or classes < 1, or bad policy hyper-parameters.
  MarginHead(std::int64_t dim, std::int64_t classes, P policy = {}, std::uint64_t seed = 0)
      : policy_(policy), dim_(dim), classes_(classes) {
    DML_CHECK(dim >= 1 && classes >= 1, "MarginHead: dim and classes must be >= 1, got ", dim, " and ", classes);
    validate_policy(policy_);
    policy_ = detail::for_classes(policy_, classes);
    const std::int64_t rows = classes * detail::centers_per_class(policy_);
    Generator gen(seed);
    weight_ = this->register_parameter("weight", TensorT::empty(Shape{rows, dim}));
    if constexpr (Traits::kBias) {
      // PyTorch's nn.Linear initialisation for the linear heads.
      double bound = 1.0 / std::sqrt(static_cast<double>(dim));
      nn::init::uniform_(weight_, gen, -bound, bound);
      bias_ = this->register_parameter("bias", TensorT::empty(Shape{classes}));
      nn::init::uniform_(bias_, gen, -bound, bound);
    } else {
      // Xavier (Glorot) uniform for the class centres of the cosine heads.
      double a = std::sqrt(6.0 / static_cast<double>(dim + rows));
      nn::init::uniform_(weight_, gen, -a, a);
    }
    if constexpr (Traits::kScheduled) {
      iteration_ = this->register_buffer("iteration", Labels::zeros(Shape{1}));
      anneal_steps_ = this->register_buffer("anneal_steps", Labels::from_vector({policy_.anneal_steps}, Shape{1}));
      anneal_host_ = policy_.anneal_steps;
    }
    if constexpr (kAdaptive) {
      scale_ = this->register_buffer("scale", TensorT::from_vector({T(policy_.s)}, Shape{1}));
      scale_host_ = double(T(policy_.s));
    }
  }

  // Fits the schedule of a scheduled policy (Sphere's lambda) to a fit of
  // `steps` training steps starting now: with anneal_fraction f > 0, lambda
  // reaches its minimum after iteration() + f * steps steps. A schedule that
  // has already reached its end is left as it is, so a second fit does not
  // raise lambda again. train::Learner calls this when a fit starts; a no-op
  // for the other policies. Throws dml::Error for steps < 0.
  void plan_schedule(std::int64_t steps) {
    DML_CHECK(steps >= 0, "MarginHead::plan_schedule: steps must be >= 0, got ", steps);
    if constexpr (Traits::kScheduled) {
      if (!(policy_.anneal_fraction > 0) || steps == 0) return;
      const std::int64_t it = iteration_host_, end = anneal_host_;
      if (end > 0 && it >= end) return;
      const auto n = static_cast<std::int64_t>(std::ceil(policy_.anneal_fraction * static_cast<double>(steps)));
      anneal_host_ = it + std::max<std::int64_t>(n, 1);
      anneal_steps_.copy_(Labels::from_vector({anneal_host_}, Shape{1}));
    }
  }

  // Inference logits: no margin, whatever the mode.
  TensorT forward(const TensorT& emb) override { return logits(emb, nullptr); }

  // Training logits with the margin on each row's label column when the head
  // is in training mode; in eval mode the same as forward(emb). A scheduled
  // policy (Sphere) advances its iteration counter once per training call, an
  // adaptive one (AdaCos) updates its scale from the batch first.
  TensorT operator()(const TensorT& emb, const Labels& labels) { return logits(emb, &labels); }
  using nn::Module<T, D>::operator();

  std::string type_name() const override { return "MarginHead"; }

  // The policy with its current schedule or state applied (Sphere's lambda, AdaCos's s).
  P policy() const {
    if constexpr (Traits::kScheduled) {
      P p = policy_;
      p.anneal_steps = anneal_host_;
      return p.at_iteration(iteration_host_);
    } else if constexpr (kAdaptive) {
      P p = policy_;
      p.s = scale_host_;
      return p;
    } else {
      return policy_;
    }
  }
  // Training steps taken by a scheduled policy; 0 for the others.
  std::int64_t iteration() const {
    if constexpr (Traits::kScheduled) return iteration_host_;
    else return 0;
  }
  // [classes * centers per class, dim]: SubCenter<P> has k rows per class, the others one.
  const TensorT& weight() const { return weight_; }
  // Undefined for the cosine heads, which have no bias.
  const TensorT& bias() const { return bias_; }
  std::int64_t dim() const { return dim_; }
  std::int64_t classes() const { return classes_; }

 private:
  TensorT logits(const TensorT& emb, const Labels* labels) {
    DML_CHECK(emb.defined() && emb.rank() == 2 && emb.dim(1) == dim_, "MarginHead: embedding of shape ",
              emb.defined() ? emb.shape().str() : "undefined", " does not match the head's dimension ", dim_,
              " (expected [N, ", dim_, "])");
    const bool training = labels && this->is_training();
    const bool margin = Traits::kMargin && training;
    // The schedule is read (on a GPU, copied to the host) only where it matters: with a margin.
    // An adaptive policy's state is its scale, which every call needs.
    P p = margin || kAdaptive ? policy() : policy_;
    if constexpr (kAdaptive) {
      if (training) {
        NoGrad no_grad;
        p = adapt(p, head_cosines(emb.detach(), weight_.detach()), *labels);
        scale_host_ = double(T(p.s));
        scale_.copy_(TensorT::from_vector({T(p.s)}, Shape{1}));
      }
    }
    TensorT out = kind_logits(typename Traits::Kind{}, p, emb, weight_, bias_, margin ? labels : nullptr);
    if constexpr (Traits::kScheduled)
      if (margin) iteration_.copy_(Labels::from_vector({++iteration_host_}, Shape{1}));
    return out;
  }

  // The buffers were overwritten (a checkpoint, another head's state): read them back once.
  void on_state_loaded() override {
    if constexpr (Traits::kScheduled) {
      iteration_host_ = iteration_.item();
      anneal_host_ = anneal_steps_.item();
    }
    if constexpr (kAdaptive) scale_host_ = double(scale_.item());
  }

  P policy_;
  std::int64_t dim_, classes_;
  TensorT weight_, bias_;
  // The buffers are what state_dict saves; the host copies beside them are what a training
  // step reads, so that a step on the GPU copies nothing back (buffers are written from the
  // host copies, and read back only in on_state_loaded).
  Labels iteration_, anneal_steps_;                      // scheduled policies only
  std::int64_t iteration_host_ = 0, anneal_host_ = 0;
  TensorT scale_;                                        // adaptive policies only
  double scale_host_ = 0;
};

}  // namespace dml::heads
