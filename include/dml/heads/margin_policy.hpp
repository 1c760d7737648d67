// dml/heads/margin_policy.hpp: the policies of the classification heads, the
// kinds of head they name, and the MarginPolicy concept of the margin ones.
//
// A policy is a trivially copyable aggregate holding its hyper-parameters. A
// margin policy (the policy of a cosine head) maps, for the target column, the
// cosine c = cos(theta) between an embedding and its class weight to the
// target logit before scaling (`apply`) and gives the derivative of that map
// w.r.t. c (`dapply`); both are DML_HD member templates for float and double,
// so the CPU loop and the CUDA kernel run the same lines.
// The formulas, their sources and the numerics are in docs/heads.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <type_traits>

#include "../backend/math.hpp"
#include "../config.hpp"

namespace dml::heads {

// The kinds of head: how MarginHead turns an embedding x into logits. A kind
// is a tag type with its compile-time properties; a policy names its kind as
// `using Kind = ...;` (CosineHead when it names none), and MarginHead calls the
// overloads of heads::kind_logits (margin_head.hpp) and check_kind (below)
// for that tag. A new kind is a new tag with its own two overloads, found by
// argument-dependent lookup: no list to edit.
//
// CosineHead: scale() * cos(x, w_j), rows of x and W normalised, no bias, the
// policy's apply() on the label column in training; with P::kUsesFeatureNorm
// the cosines are multiplied by |x| instead (Sphere). Needs a MarginPolicy.
struct CosineHead {
  static constexpr bool kBias = false;    // no bias; class centres start Xavier-uniform
  static constexpr bool kMargin = true;   // the labels change the training logits
};
// LinearHead: x W^T + b (Softmax). Needs nothing of the policy.
struct LinearHead {
  static constexpr bool kBias = true;     // PyTorch's nn.Linear parameters and initialisation
  static constexpr bool kMargin = false;
};
// ScaledLinearHead: (scale() x / |x|) W^T + b (L2Constrained). Needs scale().
struct ScaledLinearHead {
  static constexpr bool kBias = true;
  static constexpr bool kMargin = false;
};
// SubCenterHead: K sub-centres per class (SubCenter<P>): the weight has
// classes * K rows, rows c K .. c K + K - 1 being class c's; the class cosine
// is the largest of its K sub-centre cosines, then the inner policy P's margin
// on the label column and its scale, as CosineHead. Needs P::Margin, a
// MarginPolicy of the plain CosineHead kind (no feature norm, no schedule).
struct SubCenterHead {
  static constexpr bool kBias = false;
  static constexpr bool kMargin = true;
};

// Half-width of the band at c = +-1 in which dapply is evaluated at
// c = +-(1 - kCosEps) instead of c, so that the derivative of acos / sqrt(1 - c^2)
// stays finite (|dtheta/dc| <= 1/sqrt(2 kCosEps): ~2.2e3 in double, ~7.1e2 in
// float). Values are never computed at the shifted point.
template <std::floating_point T>
inline constexpr T kCosEps = std::is_same_v<T, float> ? T(1e-6) : T(1e-7);

namespace detail {

template <class T>
inline constexpr T kPi = std::numbers::pi_v<T>;

// Host-side hyper-parameter checks.
inline bool finite(double x) { return std::isfinite(x); }

// c clamped into [-1, 1]: a computed cosine may exceed 1 by rounding.
template <class T>
DML_HD T clamp_cos(T c) {
  return math::clamp(c, T(-1), T(1));
}

// c clamped into [-1 + kCosEps, 1 - kCosEps], where dapply is evaluated.
template <class T>
DML_HD T clamp_cos_for_slope(T c) {
  return math::clamp(c, T(-1) + kCosEps<T>, T(1) - kCosEps<T>);
}

// sin(theta) = sqrt(1 - c^2) for c in [-1, 1]; (1 - c)(1 + c) keeps the
// relative accuracy near c = +-1 that 1 - c*c loses.
template <class T>
DML_HD T sin_from_cos(T c) {
  return math::sqrt(math::max(T(0), (T(1) - c) * (T(1) + c)));
}

// (-1)^k for an integer k of either sign.
DML_HD int alternating_sign(int k) { return (k & 1) ? -1 : 1; }

// The SphereFace monotone extension of cos(t) for t >= 0:
//   psi(t) = (-1)^k cos(t) - 2k,  k = floor(t / pi),
// continuous, decreasing, and equal to cos(t) on [0, pi). dpsi_dt is its slope.
template <class T>
DML_HD T monotone_cos(T t, int k) {
  return T(alternating_sign(k)) * math::cos(t) - T(2 * k);
}
template <class T>
DML_HD T monotone_cos_dt(T t, int k) {
  return -T(alternating_sign(k)) * math::sin(t);
}
template <class T>
DML_HD int monotone_cos_branch(T t) {
  return static_cast<int>(math::floor(t / kPi<T>));
}

}  // namespace detail

// ArcFace (Deng et al. 2019), in the threshold form of insightface /
// arcface-pytorch: with th = cos(pi - m) and mm = sin(pi - m) m (= -cos m, m sin m),
//   apply(c) = cos(theta + m)   if c > th,   c - mm   otherwise.
// The fallback is the reference's and is discontinuous at c = th: the limit
// from above is cos(pi) = -1, apply(th) = -cos m - m sin m (-1.117 for
// m = 0.5); the slope jumps from 0 to 1 there. apply is non-decreasing in c.
// easy_margin: apply(c) = cos(theta + m) if c > 0, c otherwise.
struct Arc {
  double s = 30;
  double m = 0.5;
  bool easy_margin = false;

  // The logit scale s.
  DML_HD double scale() const { return s; }

  // Target logit before scaling for the cosine c (clamped into [-1, 1]).
  template <std::floating_point T>
  DML_HD T apply(T c) const {
    c = detail::clamp_cos(c);
    const T mt = T(m);
    const T phi = c * math::cos(mt) - detail::sin_from_cos(c) * math::sin(mt);
    if (easy_margin) return c > T(0) ? phi : c;
    return c > threshold<T>() ? phi : c - math::sin(detail::kPi<T> - mt) * mt;
  }

  // d apply / dc; on the cos(theta + m) branch evaluated at clamp_cos_for_slope(c).
  template <std::floating_point T>
  DML_HD T dapply(T c) const {
    const T cv = detail::clamp_cos(c);
    if (!(easy_margin ? cv > T(0) : cv > threshold<T>())) return T(1);
    const T cd = detail::clamp_cos_for_slope(c);
    const T mt = T(m);
    return math::cos(mt) + math::sin(mt) * cd / detail::sin_from_cos(cd);
  }

  // th = cos(pi - m), computed as the reference does: below it theta + m > pi
  // and the fallback branch applies.
  template <std::floating_point T>
  DML_HD T threshold() const {
    return math::cos(detail::kPi<T> - T(m));
  }

  // Throws dml::Error unless s > 0 and 0 <= m < pi.
  void validate() const {
    DML_CHECK(s > 0 && detail::finite(s), "heads::Arc: s must be positive and finite, got s = ", s);
    DML_CHECK(m >= 0 && m < detail::kPi<double>, "heads::Arc: m must lie in [0, pi), got m = ", m);
  }
};

// CosFace / LMCL (Wang et al. 2018): apply(c) = c - m.
struct Cos {
  double s = 30;
  double m = 0.4;

  // The logit scale s.
  DML_HD double scale() const { return s; }

  // Target logit before scaling: c - m (c is not clamped; the map is linear).
  template <std::floating_point T>
  DML_HD T apply(T c) const {
    return c - T(m);
  }

  // d apply / dc = 1.
  template <std::floating_point T>
  DML_HD T dapply(T) const {
    return T(1);
  }

  // Throws dml::Error unless s > 0 and m is finite (negative margins allowed).
  void validate() const {
    DML_CHECK(s > 0 && detail::finite(s), "heads::Cos: s must be positive and finite, got s = ", s);
    DML_CHECK(detail::finite(m), "heads::Cos: m must be finite, got m = ", m);
  }
};

// SphereFace / A-Softmax (Liu et al. 2017) with the lambda annealing of the
// reference Caffe code. For integer m, k = floor(m theta / pi) (at most m - 1):
//   psi(c)   = (-1)^k T_m(c) - 2k,   T_m the Chebyshev polynomial, T_m(cos t) = cos(m t)
//   apply(c) = (lambda c + psi(c)) / (1 + lambda)
// k comes from comparing c with cos(j pi / m), so no acos is needed; psi is C^1.
// The logits are scaled by the feature norm |x|, not by a fixed s: scale() is 1
// and kUsesFeatureNorm tells MarginHead. The head owns the iteration counter
// and sets `lambda` before each training step (see at_iteration).
//
// With anneal_steps > 0 the schedule is stretched to the run: gamma is
// replaced by the value that makes lambda reach lambda_min exactly at
// iteration anneal_steps. MarginHead::plan_schedule (called by train::Learner
// when a fit starts) sets anneal_steps to anneal_fraction of the fit's steps,
// so lambda bottoms out before the end of every run, short or long.
// anneal_fraction = 0 keeps the reference schedule (gamma as given).
struct Sphere {
  static constexpr bool kUsesFeatureNorm = true;
  int m = 4;
  double base = 1000;
  double gamma = 0.12;
  double power = 1;
  double lambda_min = 5;
  double lambda = 1000;  // current blend weight, lambda_at(iteration)
  double anneal_fraction = 0.5;   // [0, 1]: share of a fit over which lambda anneals (0: use gamma)
  std::int64_t anneal_steps = 0;  // > 0: lambda reaches lambda_min at this iteration

  // 1: SphereFace multiplies by |x| instead (kUsesFeatureNorm).
  DML_HD double scale() const { return 1; }

  // The decay rate in use: gamma, or with anneal_steps > 0 (and a reachable
  // lambda_min: 0 < lambda_min < base, power > 0) the rate that gives
  // lambda_at(anneal_steps) = lambda_min.
  DML_HD double decay_rate() const {
    if (anneal_steps <= 0 || !(lambda_min > 0 && lambda_min < base && power > 0)) return gamma;
    return (math::pow(base / lambda_min, 1 / power) - 1) / double(anneal_steps);
  }

  // lambda = max(lambda_min, base (1 + decay_rate() iter)^(-power)).
  DML_HD double lambda_at(std::int64_t iter) const {
    return math::max(lambda_min, base * math::pow(1 + decay_rate() * double(iter), -power));
  }

  // A copy with lambda = lambda_at(iter).
  DML_HD Sphere at_iteration(std::int64_t iter) const {
    Sphere p = *this;
    p.lambda = lambda_at(iter);
    return p;
  }

  // Target logit before multiplying by |x|, for the cosine c (clamped into [-1, 1]).
  template <std::floating_point T>
  DML_HD T apply(T c) const {
    c = detail::clamp_cos(c);
    T tm, dtm;
    chebyshev(c, tm, dtm);
    const int k = branch(c);
    const T psi = T(detail::alternating_sign(k)) * tm - T(2 * k);
    const T lam = T(lambda);
    return (lam * c + psi) / (T(1) + lam);
  }

  // d apply / dc = (lambda + (-1)^k T_m'(c)) / (1 + lambda); finite everywhere.
  template <std::floating_point T>
  DML_HD T dapply(T c) const {
    c = detail::clamp_cos(c);
    T tm, dtm;
    chebyshev(c, tm, dtm);
    const T lam = T(lambda);
    return (lam + T(detail::alternating_sign(branch(c))) * dtm) / (T(1) + lam);
  }

  // Throws dml::Error unless m >= 1, base > 0, gamma, power, lambda_min, lambda >= 0.
  void validate() const {
    DML_CHECK(m >= 1, "heads::Sphere: m must be an integer >= 1, got m = ", m);
    DML_CHECK(base > 0 && detail::finite(base),
              "heads::Sphere: base must be positive and finite, got ", base);
    DML_CHECK(gamma >= 0 && detail::finite(gamma),
              "heads::Sphere: gamma must be >= 0, got ", gamma);
    DML_CHECK(power >= 0 && detail::finite(power),
              "heads::Sphere: power must be >= 0, got ", power);
    DML_CHECK(lambda_min >= 0 && detail::finite(lambda_min),
              "heads::Sphere: lambda_min must be >= 0, got ", lambda_min);
    DML_CHECK(lambda >= 0 && detail::finite(lambda),
              "heads::Sphere: lambda must be >= 0, got ", lambda);
    DML_CHECK(anneal_fraction >= 0 && anneal_fraction <= 1,
              "heads::Sphere: anneal_fraction must lie in [0, 1], got ", anneal_fraction);
    DML_CHECK(anneal_steps >= 0, "heads::Sphere: anneal_steps must be >= 0, got ", anneal_steps);
  }

 private:
  // T_m(c) and T_m'(c) = m U_{m-1}(c) by the three-term recurrences.
  template <class T>
  DML_HD void chebyshev(T c, T& tm, T& dtm) const {
    T t_prev = 1, t = c;           // T_0, T_1
    T u_prev = 0, u = 1;           // U_{-1}, U_0
    for (int n = 1; n < m; ++n) {
      const T t_next = T(2) * c * t - t_prev;
      const T u_next = T(2) * c * u - u_prev;
      t_prev = t, t = t_next;
      u_prev = u, u = u_next;
    }
    tm = t;
    dtm = T(m) * u;
  }

  // k = #{ j in 1..m-1 : c <= cos(j pi / m) } = floor(m theta / pi) capped at
  // m - 1, so that c = -1 lies on the last branch and its slope keeps its sign.
  template <class T>
  DML_HD int branch(T c) const {
    int k = 0;
    for (int j = 1; j < m; ++j) k += c <= math::cos(T(j) * detail::kPi<T> / T(m));
    return k;
  }
};

// insightface's combined margin: apply(c) = cos(m1 theta + m2) - m3 with
// theta = acos(c). Contains Cos (m1 = 1, m2 = 0) and, for c > cos(pi - m2), Arc
// (m1 = 1, m3 = 0). Where t = m1 theta + m2 leaves [0, pi) dml continues cos(t)
// monotonically as SphereFace does, (-1)^k cos(t) - 2k with k = floor(t / pi),
// instead of letting it rise again (insightface) or jumping (Arc's fallback).
struct Combined {
  double s = 64;
  double m1 = 1;
  double m2 = 0.5;
  double m3 = 0;

  // The logit scale s.
  DML_HD double scale() const { return s; }

  // Target logit before scaling for the cosine c (clamped into [-1, 1]).
  template <std::floating_point T>
  DML_HD T apply(T c) const {
    const T t = T(m1) * math::acos(detail::clamp_cos(c)) + T(m2);
    return detail::monotone_cos(t, detail::monotone_cos_branch(t)) - T(m3);
  }

  // d apply / dc = -m1 psi'(t) / sin(theta), evaluated at clamp_cos_for_slope(c).
  template <std::floating_point T>
  DML_HD T dapply(T c) const {
    c = detail::clamp_cos_for_slope(c);
    const T t = T(m1) * math::acos(c) + T(m2);
    return -T(m1) * detail::monotone_cos_dt(t, detail::monotone_cos_branch(t)) /
           detail::sin_from_cos(c);
  }

  // Throws dml::Error unless s > 0, m1 > 0 and m2, m3 are finite.
  void validate() const {
    DML_CHECK(s > 0 && detail::finite(s),
              "heads::Combined: s must be positive and finite, got s = ", s);
    DML_CHECK(m1 > 0 && detail::finite(m1),
              "heads::Combined: m1 must be positive and finite, got m1 = ", m1);
    DML_CHECK(detail::finite(m2), "heads::Combined: m2 must be finite, got ", m2);
    DML_CHECK(detail::finite(m3), "heads::Combined: m3 must be finite, got ", m3);
  }
};

// Sub-centre ArcFace (Deng et al., ECCV 2020) and, with another inner policy,
// sub-centre CosFace etc.: K sub-centres per class, the class cosine is the
// largest of the class's K sub-centre cosines (the gradient reaches the
// nearest sub-centre only), then `margin` as a plain cosine head applies it.
// After training, heads::dominant_centers (heads/sub_center.hpp) keeps each
// class's dominant sub-centre and makes a plain MarginHead<P>.
template <class P>
struct SubCenter {
  using Kind = SubCenterHead;
  using Margin = P;
  P margin{};
  std::int64_t k = 3;  // sub-centres per class (the paper's K = 3)

  // The weight rows per class: MarginHead's weight is [classes * k, dim].
  DML_HD std::int64_t centers_per_class() const { return k; }
  // The inner policy's logit scale.
  DML_HD double scale() const { return margin.scale(); }

  // Throws dml::Error unless k >= 1 and the inner policy is valid.
  void validate() const {
    DML_CHECK(k >= 1, "heads::SubCenter: k (sub-centres per class) must be >= 1, got k = ", k);
    if constexpr (requires { margin.validate(); }) margin.validate();
  }
};

// AdaCos (Zhang et al., CVPR 2019): no margin, the logits are s cos(theta_j)
// with s chosen from the data. Fixed AdaCos (dynamic = false) keeps
// s = sqrt(2) log(C - 1); dynamic AdaCos starts there and, at each training
// step, before the batch's logits are computed (as the reference PyTorch
// AdaCos does), sets
//   B_avg = (1/N) sum_i sum_{j != y_i} exp(s_old cos theta_ij)
//   s     = log(B_avg) / cos(min(pi/4, theta_med)),
// theta_med the median target angle of the batch (the lower median for an even
// batch, as torch.median; angles from cosines clamped into [-1 + 1e-7, 1 - 1e-7]).
// The head keeps s in its buffer `scale` and calls the update (heads::adapt in
// margin_head.hpp) without gradient. s = 0 asks the head for the fixed value.
struct AdaCos {
  double s = 0;         // the current scale; 0: sqrt(2) log(C - 1), set by for_classes
  bool dynamic = true;  // false: the fixed AdaCos

  // The logit scale s.
  DML_HD double scale() const { return s; }

  // No margin: the label column's cosine as it is.
  template <std::floating_point T>
  DML_HD T apply(T c) const {
    return c;
  }
  template <std::floating_point T>
  DML_HD T dapply(T) const {
    return T(1);
  }

  // sqrt(2) log(C - 1), the fixed AdaCos scale of C classes.
  static double fixed_scale(std::int64_t classes) {
    return std::numbers::sqrt2 * std::log(static_cast<double>(classes - 1));
  }

  // A copy for a head of `classes` classes: s = fixed_scale(classes) when s is
  // 0. Throws dml::Error for s = 0 and classes < 3 (where that scale is <= 0).
  AdaCos for_classes(std::int64_t classes) const {
    if (s != 0) return *this;
    DML_CHECK(classes >= 3, "heads::AdaCos: the scale sqrt(2) log(C - 1) needs C >= 3 classes, got C = ", classes,
              " (give s > 0 explicitly)");
    AdaCos p = *this;
    p.s = fixed_scale(classes);
    return p;
  }

  // The dynamic update from a batch's B_avg and median target angle theta_med:
  // a copy with s = log(b_avg) / cos(min(pi/4, theta_med)). Unchanged when not
  // dynamic, or when that s is not positive and finite (B_avg <= 1, or no
  // non-target class), where the reference would go on with a scale <= 0.
  AdaCos updated(double b_avg, double theta_med) const {
    if (!dynamic) return *this;
    const double next = std::log(b_avg) / std::cos(std::min(detail::kPi<double> / 4, theta_med));
    AdaCos p = *this;
    if (next > 0 && std::isfinite(next)) p.s = next;
    return p;
  }

  // Throws dml::Error unless s >= 0 and finite (0: the fixed value, see for_classes).
  void validate() const {
    DML_CHECK(s >= 0 && detail::finite(s), "heads::AdaCos: s must be >= 0 and finite (0: sqrt(2) log(C - 1)), got s = ", s);
  }
};

// Plain softmax: a linear layer with bias, nothing normalised, no margin.
struct Softmax {
  using Kind = LinearHead;
};

// L2-constrained softmax (Ranjan et al. 2017): each embedding row is normalised
// and multiplied by alpha, then a linear layer with bias; weights are not
// normalised and there is no margin.
struct L2Constrained {
  using Kind = ScaledLinearHead;
  double alpha = 16;

  // alpha, the norm every embedding row is scaled to.
  DML_HD double scale() const { return alpha; }

  // Throws dml::Error unless alpha > 0 and finite.
  void validate() const {
    DML_CHECK(alpha > 0 && detail::finite(alpha),
              "heads::L2Constrained: alpha must be positive and finite, got alpha = ", alpha);
  }
};

namespace detail {

template <class P>
concept HasApply = requires(const P& p, float f, double d) {
  { p.apply(f) } -> std::same_as<float>;
  { p.apply(d) } -> std::same_as<double>;
};

template <class P>
concept HasDapply = requires(const P& p, float f, double d) {
  { p.dapply(f) } -> std::same_as<float>;
  { p.dapply(d) } -> std::same_as<double>;
};

template <class P>
concept HasScale = requires(const P& p) {
  { p.scale() } -> std::convertible_to<double>;
};

template <class P>
struct KindOf {
  using type = CosineHead;
};
template <class P>
  requires requires { typename P::Kind; }
struct KindOf<P> {
  using type = typename P::Kind;
};

template <class P>
constexpr std::int64_t centers_per_class(const P& p) {
  if constexpr (requires { { p.centers_per_class() } -> std::convertible_to<std::int64_t>; }) {
    return p.centers_per_class();
  } else {
    return 1;
  }
}

template <class P>
P for_classes(const P& p, std::int64_t classes) {
  if constexpr (requires { { p.for_classes(classes) } -> std::same_as<P>; }) {
    return p.for_classes(classes);
  } else {
    return p;
  }
}

template <class P>
constexpr bool uses_feature_norm() {
  if constexpr (requires { { P::kUsesFeatureNorm } -> std::convertible_to<bool>; }) {
    return P::kUsesFeatureNorm;
  } else {
    return false;
  }
}

}  // namespace detail

// The kind of head of policy P: P::Kind, or CosineHead when P names none.
template <class P>
using head_kind_t = typename detail::KindOf<P>::type;

// A margin policy, what a CosineHead needs and ops::apply_margin takes:
// trivially copyable (it is copied into CUDA kernels), with apply/dapply
// mapping float -> float and double -> double, and scale(). Optional: static
// bool kUsesFeatureNorm (default false), `P at_iteration(std::int64_t) const`
// for annealed policies, `std::int64_t centers_per_class() const` (weight rows
// per class, default 1), `P for_classes(std::int64_t) const` (called once by
// the head), an adaptive state (`double s` and an ADL `adapt(p, cos, labels)`,
// see MarginHead), and a host `validate()` that throws dml::Error for bad
// hyper-parameters.
template <class P>
concept MarginPolicy =
    std::is_trivially_copyable_v<P> && detail::HasApply<P> && detail::HasDapply<P> && detail::HasScale<P>;

template <class P>
inline constexpr bool is_margin_policy_v = MarginPolicy<P>;

// What MarginHead needs to know about a policy P at compile time.
template <class P>
struct PolicyTraits {
  using Kind = head_kind_t<P>;
  static constexpr bool kBias = Kind::kBias;
  static constexpr bool kMargin = Kind::kMargin;
  static constexpr bool kUsesFeatureNorm = detail::uses_feature_norm<P>();
  static constexpr bool kScheduled = requires(const P& p, std::int64_t i) {
    { p.at_iteration(i) } -> std::same_as<P>;
  };
};

// Compile-time check of a margin policy with one readable message per missing
// requirement; call it as `static_assert(check_margin_policy<P>())`.
template <class P>
consteval bool check_margin_policy() {
  static_assert(std::is_trivially_copyable_v<P>,
                "dml::heads: a margin policy must be trivially copyable (it is passed by value "
                "to CUDA kernels)");
  static_assert(detail::HasApply<P>,
                "dml::heads: a margin policy needs `template <class T> DML_HD T apply(T cos) "
                "const` returning T for T = float and double");
  static_assert(detail::HasDapply<P>,
                "dml::heads: a margin policy needs `template <class T> DML_HD T dapply(T cos) "
                "const` (d apply / d cos) returning T for T = float and double");
  static_assert(detail::HasScale<P>,
                "dml::heads: a margin policy needs `DML_HD double scale() const`");
  return MarginPolicy<P>;
}

// What each kind needs of its policy, checked with readable messages (the
// overloads take the kind's tag; a new kind may add its own).
template <class P>
consteval bool check_kind(CosineHead) {
  return check_margin_policy<P>();
}
template <class P>
consteval bool check_kind(LinearHead) {
  return true;
}
template <class P>
consteval bool check_kind(SubCenterHead) {
  static_assert(requires { typename P::Margin; }, "dml::heads: a sub-centre head's policy needs `using Margin = ...;` (use heads::SubCenter<P>)");
  if constexpr (requires { typename P::Margin; }) {
    using M = typename P::Margin;
    static_assert(std::is_same_v<head_kind_t<M>, CosineHead> && !PolicyTraits<M>::kUsesFeatureNorm &&
                      !PolicyTraits<M>::kScheduled,
                  "dml::heads: SubCenter<P> needs a plain cosine-head margin policy P (Arc, Cos, Combined), "
                  "not a linear, feature-norm or scheduled one");
    return check_margin_policy<M>() && std::is_same_v<head_kind_t<M>, CosineHead>;
  } else {
    return false;
  }
}
template <class P>
consteval bool check_kind(ScaledLinearHead) {
  static_assert(detail::HasScale<P>, "dml::heads: an L2-constrained head's policy needs `DML_HD double scale() const`");
  return detail::HasScale<P>;
}

// Compile-time check of any head policy: trivially copyable, plus what its
// kind needs. MarginHead asserts it.
template <class P>
consteval bool check_head_policy() {
  static_assert(std::is_trivially_copyable_v<P>, "dml::heads: a head policy must be trivially copyable");
  return std::is_trivially_copyable_v<P> && check_kind<P>(head_kind_t<P>{});
}

// Calls p.validate() when P has one: throws dml::Error for bad hyper-parameters.
template <class P>
void validate_policy(const P& p) {
  if constexpr (requires { p.validate(); }) p.validate();
}

}  // namespace dml::heads
