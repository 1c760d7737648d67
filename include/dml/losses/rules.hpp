// dml/losses/rules.hpp: the maths of each embedding loss, one row of a
// pairwise matrix at a time (kernels/row_loss.hpp runs them on both devices).
// Definitions follow pytorch-metric-learning 2.x; each rule states its
// reduction in the kernel's terms: loss = A / count_A + B / count_B summed
// over rows. v is an entry of the matrix (a similarity s or a distance d);
// u = d or -s is its distance-like form (miners.hpp).
//
// A rule is a trivially copyable struct with its hyper-parameters, its miner
// and distance, DML_HD forward(row) -> RowTerms and backward(row, ga, gb, out)
// (adds ga * dA/dv + gb * dB/dv of its row into out), and a host validate().
#pragma once

#include <cstdint>

#include "../backend/kernels/row_loss.hpp"
#include "../backend/math.hpp"
#include "../config.hpp"
#include "distances.hpp"
#include "miners.hpp"

namespace dml::losses::rules {

using kernels::RowTerms;
using kernels::RowView;

// log(sum_j exp(x_j)) accumulated one x at a time without overflow; with
// add_one the sum starts at exp(0) = 1 (PML's logsumexp(add_one=True)).
template <class T>
struct Lse {
  T m = T(0), s = T(0);
  bool empty = true;
  DML_HD static Lse with_one() { return Lse{T(0), T(1), false}; }
  DML_HD void add(T x) {
    if (empty) m = x, s = T(1), empty = false;
    else if (x > m) s = s * math::exp(m - x) + T(1), m = x;
    else s += math::exp(x - m);
  }
  DML_HD T value() const { return m + math::log(s); }
};

template <class T>
DML_HD T relu(T x) {
  return x > T(0) ? x : T(0);
}
template <class T>
DML_HD T softplus(T x) {
  return x > T(0) ? x + math::log1p(math::exp(-x)) : math::log1p(math::exp(x));
}
template <class T>
DML_HD T sigmoid(T x) {
  return x >= T(0) ? T(1) / (T(1) + math::exp(-x)) : math::exp(x) / (T(1) + math::exp(x));
}

// Which side of the anchor column j is on after the miner: 1 for a kept
// positive, -1 for a kept negative, 0 for neither (on a similarity matrix).
template <class Miner, class T>
DML_HD int mined(const Miner& miner, const RowView<T>& row, std::int64_t j, const miners::Hardest<T>& h) {
  const T uj = -row.value(j);
  if (row.positive(j)) return miner.keep_pos(uj, h) ? 1 : 0;
  if (row.negative(j)) return miner.keep_neg(uj, h) ? -1 : 0;
  return 0;
}

// du/dv: +1 for a distance, -1 for a similarity.
template <class Dist, class T>
DML_HD T du_dv() {
  return Dist::kSimilarity ? T(-1) : T(1);
}

// ---------------------------------------------------------------------------------------------
// Triplet margin: relu(u_ap - u_an + margin) over the mined triplets (every
// positive p and negative n of the anchor that the miner keeps; BatchHard: the
// anchor's farthest positive and closest negative). A = the sum, count_A = the
// triplets with a loss > 0 (PML's AvgNonZeroReducer). Default distance:
// Euclidean on normalised embeddings, margin 0.05 (PML's defaults).
template <class Miner = miners::AllTriplets, class Dist = distances::Euclidean>
struct TripletMargin {
  static_assert(miners::TripletMiner<Miner>, "TripletMargin takes a triplet miner (miners.hpp)");
  static constexpr const char* kName = "TripletMarginLoss";
  double margin = 0.05;
  Miner miner = {};
  Dist distance = {};

  void validate() const {
    DML_CHECK(math::is_finite(margin), "TripletMarginLoss: margin must be finite, got ", margin);
    miner.validate();
  }
  template <class T>
  DML_HD T u(const RowView<T>& row, std::int64_t j) const {
    return miners::to_u<Dist::kSimilarity>(row.value(j));
  }
  // Calls f(p, n, loss) for each mined triplet with a loss > 0.
  template <class T, class F>
  DML_HD void each(const RowView<T>& row, F&& f) const {
    if constexpr (Miner::kPerAnchor) {
      const miners::Hardest<T> h = miners::hardest<Dist::kSimilarity>(row);
      if (h.pos < 0 || h.neg < 0) return;
      const T l = h.pos_u - h.neg_u + T(margin);
      if (l > T(0)) f(h.pos, h.neg, l);
    } else {
      for (std::int64_t p = 0; p < row.cols; ++p) {
        if (!row.positive(p)) continue;
        const T up = u(row, p);
        for (std::int64_t n = 0; n < row.cols; ++n) {
          if (!row.negative(n)) continue;
          const T un = u(row, n);
          if (!miner.keep(up, un)) continue;
          const T l = up - un + T(margin);
          if (l > T(0)) f(p, n, l);
        }
      }
    }
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    RowTerms<T> t;
    each(row, [&](std::int64_t, std::int64_t, T l) { t.a_sum += l, t.a_count += T(1); });
    return t;
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T, T* out) const {
    const T g = ga * du_dv<Dist, T>();
    each(row, [&](std::int64_t p, std::int64_t n, T) { out[p] += g, out[n] -= g; });
  }
};

// ---------------------------------------------------------------------------------------------
// Contrastive: positive pairs cost relu(d - pos_margin) (similarity:
// relu(pos_margin - s)), negative pairs relu(neg_margin - d) (relu(s -
// neg_margin)). A = the positive part, B = the negative part, each averaged
// over its pairs with a loss > 0. Defaults: Euclidean on normalised
// embeddings, pos_margin 0, neg_margin 1 (PML's).
template <class Miner = miners::AllPairs, class Dist = distances::Euclidean>
struct Contrastive {
  static_assert(miners::PairMiner<Miner>, "Contrastive takes a pair miner (miners.hpp)");
  static constexpr const char* kName = "ContrastiveLoss";
  double pos_margin = 0, neg_margin = 1;
  Miner miner = {};
  Dist distance = {};

  void validate() const {
    DML_CHECK(math::is_finite(pos_margin) && math::is_finite(neg_margin),
              "ContrastiveLoss: margins must be finite, got pos_margin ", pos_margin, " and neg_margin ", neg_margin);
    miner.validate();
  }
  template <class T>
  DML_HD T pos_loss(T v) const {
    return Dist::kSimilarity ? relu(T(pos_margin) - v) : relu(v - T(pos_margin));
  }
  template <class T>
  DML_HD T neg_loss(T v) const {
    return Dist::kSimilarity ? relu(v - T(neg_margin)) : relu(T(neg_margin) - v);
  }
  template <class T, class F>
  DML_HD void each(const RowView<T>& row, F&& f) const {  // f(j, positive, loss) for pairs with a loss > 0
    const miners::Hardest<T> h = miners::row_stats<Miner, Dist::kSimilarity>(row);
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const T v = row.value(j), uj = miners::to_u<Dist::kSimilarity>(v);
      if (row.positive(j) && miner.keep_pos(uj, h)) {
        if (const T l = pos_loss(v); l > T(0)) f(j, true, l);
      } else if (row.negative(j) && miner.keep_neg(uj, h)) {
        if (const T l = neg_loss(v); l > T(0)) f(j, false, l);
      }
    }
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    RowTerms<T> t;
    each(row, [&](std::int64_t, bool pos, T l) {
      if (pos) t.a_sum += l, t.a_count += T(1);
      else t.b_sum += l, t.b_count += T(1);
    });
    return t;
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T gb, T* out) const {
    // d relu(d - m)/dd = 1 on a positive pair, -1 on a negative one; a similarity flips both.
    const T sign = Dist::kSimilarity ? T(-1) : T(1);
    each(row, [&](std::int64_t j, bool pos, T) { out[j] += pos ? sign * ga : -sign * gb; });
  }
};

// ---------------------------------------------------------------------------------------------
// Multi-similarity (Wang et al. 2019): per anchor
//   1/alpha log(1 + sum_pos exp(-alpha (s - base))) + 1/beta log(1 + sum_neg exp(beta (s - base)))
// over the mined pairs; A = the sum, count_A = every anchor (PML's mean over
// elements). Similarities only; defaults alpha 2, beta 50, base 0.5 (PML's).
template <class Miner = miners::AllPairs, class Dist = distances::Cosine>
struct MultiSimilarity {
  static_assert(miners::PairMiner<Miner>, "MultiSimilarity takes a pair miner (miners.hpp)");
  static_assert(Dist::kSimilarity, "MultiSimilarity needs a similarity (distances::Cosine or Dot)");
  static constexpr const char* kName = "MultiSimilarityLoss";
  double alpha = 2, beta = 50, base = 0.5;
  Miner miner = {};
  Dist distance = {};

  void validate() const {
    DML_CHECK(alpha > 0 && beta > 0 && math::is_finite(alpha) && math::is_finite(beta) && math::is_finite(base),
              "MultiSimilarityLoss: alpha and beta must be finite and > 0 and base finite, got alpha ", alpha,
              ", beta ", beta, ", base ", base);
    miner.validate();
  }
  template <class T>
  DML_HD void sums(const RowView<T>& row, const miners::Hardest<T>& h, Lse<T>& pos, Lse<T>& neg) const {
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const int w = mined(miner, row, j, h);
      if (w > 0) pos.add(-T(alpha) * (row.value(j) - T(base)));
      else if (w < 0) neg.add(T(beta) * (row.value(j) - T(base)));
    }
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    const miners::Hardest<T> h = miners::row_stats<Miner, true>(row);
    Lse<T> pos = Lse<T>::with_one(), neg = Lse<T>::with_one();
    sums(row, h, pos, neg);
    return {pos.value() / T(alpha) + neg.value() / T(beta), T(1), T(0), T(0)};
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T, T* out) const {
    const miners::Hardest<T> h = miners::row_stats<Miner, true>(row);
    Lse<T> pos = Lse<T>::with_one(), neg = Lse<T>::with_one();
    sums(row, h, pos, neg);
    const T lp = pos.value(), ln = neg.value();
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const int w = mined(miner, row, j, h);
      const T v = row.value(j);
      if (w > 0) out[j] += -ga * math::exp(-T(alpha) * (v - T(base)) - lp);
      else if (w < 0) out[j] += ga * math::exp(T(beta) * (v - T(base)) - ln);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Circle loss (Sun et al. 2020), PML's form: per anchor with a mined positive and negative,
//   softplus(lse_p(-gamma a_p (s_p - (1 - m))) + lse_n(gamma a_n (s_n - m))),
//   a_p = relu(1 + m - s_p), a_n = relu(s_n + m) held constant.
// A = the sum, count_A = the anchors with a loss > 0. Similarities only;
// defaults m 0.4, gamma 80 (PML's).
template <class Miner = miners::AllPairs, class Dist = distances::Cosine>
struct Circle {
  static_assert(miners::PairMiner<Miner>, "Circle takes a pair miner (miners.hpp)");
  static_assert(Dist::kSimilarity, "Circle needs a similarity (distances::Cosine or Dot)");
  static constexpr const char* kName = "CircleLoss";
  double m = 0.4, gamma = 80;
  Miner miner = {};
  Dist distance = {};

  void validate() const {
    DML_CHECK(math::is_finite(m) && gamma > 0 && math::is_finite(gamma),
              "CircleLoss: m must be finite and gamma finite and > 0, got m ", m, ", gamma ", gamma);
    miner.validate();
  }
  // The logit of column j and its slope d(logit)/ds (which: as MultiSimilarity).
  template <class T>
  DML_HD T logit(T s, int w, T& slope) const {
    if (w > 0) {
      const T a = relu(T(1 + m) - s);
      slope = -T(gamma) * a;
      return slope * (s - T(1 - m));
    }
    const T a = relu(s + T(m));
    slope = T(gamma) * a;
    return slope * (s - T(m));
  }
  template <class T>
  DML_HD bool sums(const RowView<T>& row, const miners::Hardest<T>& h, Lse<T>& pos, Lse<T>& neg) const {
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const int w = mined(miner, row, j, h);
      T slope;
      if (w > 0) pos.add(logit(row.value(j), w, slope));
      else if (w < 0) neg.add(logit(row.value(j), w, slope));
    }
    return !pos.empty && !neg.empty;
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    const miners::Hardest<T> h = miners::row_stats<Miner, true>(row);
    Lse<T> pos, neg;
    if (!sums(row, h, pos, neg)) return {};
    const T l = softplus(pos.value() + neg.value());
    return {l, l > T(0) ? T(1) : T(0), T(0), T(0)};
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T, T* out) const {
    const miners::Hardest<T> h = miners::row_stats<Miner, true>(row);
    Lse<T> pos, neg;
    if (!sums(row, h, pos, neg)) return;
    const T lp = pos.value(), ln = neg.value(), g = ga * sigmoid(lp + ln);
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const int w = mined(miner, row, j, h);
      if (w == 0) continue;
      T slope;
      const T z = logit(row.value(j), w, slope);
      out[j] += g * math::exp(z - (w > 0 ? lp : ln)) * slope;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// NT-Xent / N-pair with temperature (SimCLR's loss, PML's NTXentLoss): per
// mined positive pair (a, p), -log(exp(s_ap/t) / (exp(s_ap/t) + sum_n exp(s_an/t)))
// over the anchor's mined negatives n. A = the sum, count_A = the positive
// pairs (PML's mean over pairs). Similarities only; default t 0.07.
template <class Miner = miners::AllPairs, class Dist = distances::Cosine>
struct NTXent {
  static_assert(miners::PairMiner<Miner>, "NTXent takes a pair miner (miners.hpp)");
  static_assert(Dist::kSimilarity, "NTXent needs a similarity (distances::Cosine or Dot)");
  static constexpr const char* kName = "NTXentLoss";
  double temperature = 0.07;
  Miner miner = {};
  Dist distance = {};

  void validate() const {
    DML_CHECK(temperature > 0 && math::is_finite(temperature), "NTXentLoss: temperature must be finite and > 0, got ",
              temperature);
    miner.validate();
  }
  // The negatives' log-sum-exp of s/t (empty when there are none).
  template <class T>
  DML_HD Lse<T> negatives(const RowView<T>& row, const miners::Hardest<T>& h) const {
    Lse<T> neg;
    for (std::int64_t j = 0; j < row.cols; ++j)
      if (mined(miner, row, j, h) < 0) neg.add(row.value(j) / T(temperature));
    return neg;
  }
  // log(exp(z) + exp(lse_neg)) for a positive's z.
  template <class T>
  DML_HD static T log_denominator(T z, const Lse<T>& neg) {
    if (neg.empty) return z;
    const T n = neg.value(), hi = z > n ? z : n, lo = z > n ? n : z;
    return hi + math::log1p(math::exp(lo - hi));
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    const miners::Hardest<T> h = miners::row_stats<Miner, true>(row);
    const Lse<T> neg = negatives(row, h);
    RowTerms<T> t;
    for (std::int64_t j = 0; j < row.cols; ++j)
      if (mined(miner, row, j, h) > 0) {
        const T z = row.value(j) / T(temperature);
        t.a_sum += log_denominator(z, neg) - z;
        t.a_count += T(1);
      }
    return t;
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T, T* out) const {
    const miners::Hardest<T> h = miners::row_stats<Miner, true>(row);
    const Lse<T> neg = negatives(row, h);
    const T g = ga / T(temperature);
    // Each positive p: d/dz_p = softmax_p - 1, and every negative n gets
    // exp(z_n - log_den_p); sum those weights over p once (relative to the
    // negatives' largest z, so nothing overflows).
    T weight = T(0);
    for (std::int64_t j = 0; j < row.cols; ++j)
      if (mined(miner, row, j, h) > 0) {
        const T z = row.value(j) / T(temperature), ld = log_denominator(z, neg);
        out[j] += g * (math::exp(z - ld) - T(1));
        if (!neg.empty) weight += math::exp(neg.m - ld);  // <= 1: ld >= the negatives' lse >= their max
      }
    if (neg.empty) return;
    for (std::int64_t j = 0; j < row.cols; ++j)
      if (mined(miner, row, j, h) < 0) out[j] += g * math::exp(row.value(j) / T(temperature) - neg.m) * weight;
  }
};

// ---------------------------------------------------------------------------------------------
// Supervised contrastive (Khosla et al. 2020, PML's SupConLoss): per anchor
// with a mined positive, -1/|P| sum_{p in P} log(exp(s_ap/t) / sum_{k in P u N} exp(s_ak/t))
// over its mined positives P and negatives N. A = the sum, count_A = the
// anchors with a loss > 0. Similarities only; default t 0.1.
template <class Miner = miners::AllPairs, class Dist = distances::Cosine>
struct SupCon {
  static_assert(miners::PairMiner<Miner>, "SupCon takes a pair miner (miners.hpp)");
  static_assert(Dist::kSimilarity, "SupCon needs a similarity (distances::Cosine or Dot)");
  static constexpr const char* kName = "SupConLoss";
  double temperature = 0.1;
  Miner miner = {};
  Dist distance = {};

  void validate() const {
    DML_CHECK(temperature > 0 && math::is_finite(temperature), "SupConLoss: temperature must be finite and > 0, got ",
              temperature);
    miner.validate();
  }
  // lse over P u N, the number of positives and the mean z of the positives.
  template <class T>
  DML_HD T loss(const RowView<T>& row, const miners::Hardest<T>& h, T& lse, T& npos) const {
    Lse<T> all;
    T zsum = T(0);
    npos = T(0);
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const int w = mined(miner, row, j, h);
      if (w == 0) continue;
      const T z = row.value(j) / T(temperature);
      all.add(z);
      if (w > 0) zsum += z, npos += T(1);
    }
    if (npos == T(0)) return T(0);
    lse = all.value();
    return lse - zsum / npos;
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    T lse, npos;
    const T l = loss(row, miners::row_stats<Miner, true>(row), lse, npos);
    return {l, l > T(0) ? T(1) : T(0), T(0), T(0)};
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T, T* out) const {
    const miners::Hardest<T> h = miners::row_stats<Miner, true>(row);
    T lse, npos;
    if (loss(row, h, lse, npos) <= T(0)) return;
    const T g = ga / T(temperature);
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const int w = mined(miner, row, j, h);
      if (w == 0) continue;
      out[j] += g * (math::exp(row.value(j) / T(temperature) - lse) - (w > 0 ? T(1) / npos : T(0)));
    }
  }
};

// ---------------------------------------------------------------------------------------------
// NCA with proxies (ProxyNCA, Movshovitz-Attias et al. 2017, PML's
// ProxyNCALoss): rows are embeddings, columns the class proxies; with
// z_j = -scale u_j, -log(sum_{same class} softmax(z)_j). A = the sum, count_A =
// the rows that have a proxy of their class. Default distance: squared
// Euclidean on normalised vectors, scale 1 (PML's).
template <class Dist = distances::SquaredEuclidean>
struct ProxyNCA {
  static constexpr const char* kName = "ProxyNCALoss";
  double softmax_scale = 1;
  Dist distance = {};

  void validate() const {
    DML_CHECK(softmax_scale > 0 && math::is_finite(softmax_scale),
              "ProxyNCALoss: softmax_scale must be finite and > 0, got ", softmax_scale);
  }
  template <class T>
  DML_HD T z(const RowView<T>& row, std::int64_t j) const {
    return -T(softmax_scale) * miners::to_u<Dist::kSimilarity>(row.value(j));
  }
  template <class T>
  DML_HD bool sums(const RowView<T>& row, Lse<T>& all, Lse<T>& same) const {
    for (std::int64_t j = 0; j < row.cols; ++j) {
      if (j == row.self) continue;
      const T zj = z(row, j);
      all.add(zj);
      if (row.positive(j)) same.add(zj);
    }
    return !same.empty;
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    Lse<T> all, same;
    if (!sums(row, all, same)) return {};
    return {all.value() - same.value(), T(1), T(0), T(0)};
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T, T* out) const {
    Lse<T> all, same;
    if (!sums(row, all, same)) return;
    const T la = all.value(), ls = same.value();
    const T dz_dv = -T(softmax_scale) * (Dist::kSimilarity ? T(-1) : T(1));
    for (std::int64_t j = 0; j < row.cols; ++j) {
      if (j == row.self) continue;
      const T zj = z(row, j);
      T dz = math::exp(zj - la);
      if (row.positive(j)) dz -= math::exp(zj - ls);
      out[j] += ga * dz * dz_dv;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Proxy-Anchor (Kim et al. 2020, PML's ProxyAnchorLoss): rows are the class
// proxies c, columns the batch's embeddings x, s = cos(x, p_c):
//   A = sum over proxies with a positive of log(1 + sum_{x of class c} exp(-alpha (s - delta))),
//       count_A = those proxies;
//   B = sum over all proxies of log(1 + sum_{x not of class c} exp(alpha (s + delta))), count_B = C.
// Similarities only; defaults delta (margin) 0.1, alpha 32 (PML's).
template <class Dist = distances::Cosine>
struct ProxyAnchor {
  static_assert(Dist::kSimilarity, "ProxyAnchor needs a similarity (distances::Cosine or Dot)");
  static constexpr const char* kName = "ProxyAnchorLoss";
  double margin = 0.1, alpha = 32;
  Dist distance = {};

  void validate() const {
    DML_CHECK(math::is_finite(margin) && alpha > 0 && math::is_finite(alpha),
              "ProxyAnchorLoss: margin must be finite and alpha finite and > 0, got margin ", margin, ", alpha ",
              alpha);
  }
  template <class T>
  DML_HD bool sums(const RowView<T>& row, Lse<T>& pos, Lse<T>& neg) const {
    bool any = false;
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const T s = row.value(j);
      if (row.positive(j)) pos.add(-T(alpha) * (s - T(margin))), any = true;
      else if (row.negative(j)) neg.add(T(alpha) * (s + T(margin)));
    }
    return any;
  }
  template <class T>
  DML_HD RowTerms<T> forward(const RowView<T>& row) const {
    Lse<T> pos = Lse<T>::with_one(), neg = Lse<T>::with_one();
    const bool any = sums(row, pos, neg);
    return {any ? pos.value() : T(0), any ? T(1) : T(0), neg.value(), T(1)};
  }
  template <class T>
  DML_HD void backward(const RowView<T>& row, T ga, T gb, T* out) const {
    Lse<T> pos = Lse<T>::with_one(), neg = Lse<T>::with_one();
    sums(row, pos, neg);
    const T lp = pos.value(), ln = neg.value();
    for (std::int64_t j = 0; j < row.cols; ++j) {
      const T s = row.value(j);
      if (row.positive(j)) out[j] += -ga * T(alpha) * math::exp(-T(alpha) * (s - T(margin)) - lp);
      else if (row.negative(j)) out[j] += gb * T(alpha) * math::exp(T(alpha) * (s + T(margin)) - ln);
    }
  }
};

}  // namespace dml::losses::rules
