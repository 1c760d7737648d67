// dml/losses/miners.hpp: miners, chosen at compile time, that pick which
// pairs or triplets of a batch an embedding loss sees (after
// pytorch-metric-learning 2.x). They run inside the loss's row kernel
// (kernels/row_loss.hpp), one anchor row at a time, on the loss's own
// distance, in distance-like units u: u = d for a distance, u = -s for a
// similarity, so smaller u is always closer.
//
//   pair miners (contrastive, multi-similarity, circle, NT-Xent, SupCon):
//     AllPairs          every positive and negative pair
//     MultiSimilarity   PML's MultiSimilarityMiner(epsilon): a positive if
//                       u_ap + eps > the closest negative's u; a negative if
//                       u_an - eps < the farthest positive's u
//   triplet miners (triplet margin):
//     AllTriplets       every (anchor, positive, negative)
//     MarginTriplets    u_an - u_ap <= margin   (TripletMarginMiner "all")
//     HardTriplets      u_an - u_ap <= 0        ("hard"; margin is not used)
//     SemiHard          0 < u_an - u_ap <= margin ("semihard")
//     BatchHard         per anchor, its farthest positive and closest negative
#pragma once

#include <cstdint>

#include "../backend/kernels/row_loss.hpp"
#include "../backend/math.hpp"
#include "../config.hpp"

namespace dml::miners {

// The row's farthest positive and closest negative in u (pos, neg: their
// columns, -1 when the row has none; the first one on ties).
template <class T>
struct Hardest {
  T pos_u = T(0), neg_u = T(0);
  std::int64_t pos = -1, neg = -1;
};

template <bool kSimilarity, class T>
DML_HD T to_u(T v) {
  if constexpr (kSimilarity) return -v;
  else return v;
}

template <bool kSimilarity, class T>
DML_HD Hardest<T> hardest(const kernels::RowView<T>& row) {
  Hardest<T> h;
  for (std::int64_t j = 0; j < row.cols; ++j) {
    const T u = to_u<kSimilarity>(row.value(j));
    if (row.positive(j) && (h.pos < 0 || u > h.pos_u)) h.pos_u = u, h.pos = j;
    if (row.negative(j) && (h.neg < 0 || u < h.neg_u)) h.neg_u = u, h.neg = j;
  }
  return h;
}

// The row's hardest pair when the miner reads it, nothing otherwise.
template <class Miner, bool kSimilarity, class T>
DML_HD Hardest<T> row_stats(const kernels::RowView<T>& row) {
  if constexpr (Miner::kNeedsHardest) return hardest<kSimilarity>(row);
  else return {};
}

struct AllPairs {
  static constexpr bool kPairMiner = true, kNeedsHardest = false;
  template <class T> DML_HD bool keep_pos(T, const Hardest<T>&) const { return true; }
  template <class T> DML_HD bool keep_neg(T, const Hardest<T>&) const { return true; }
  void validate() const {}
};

struct MultiSimilarity {
  static constexpr bool kPairMiner = true, kNeedsHardest = true;
  double epsilon = 0.1;
  template <class T> DML_HD bool keep_pos(T u, const Hardest<T>& h) const {
    return h.neg >= 0 && u + T(epsilon) > h.neg_u;
  }
  template <class T> DML_HD bool keep_neg(T u, const Hardest<T>& h) const {
    return h.pos >= 0 && u - T(epsilon) < h.pos_u;
  }
  void validate() const {
    DML_CHECK(math::is_finite(epsilon) && epsilon >= 0,
              "miners::MultiSimilarity: epsilon must be finite and >= 0, got ", epsilon);
  }
};

struct AllTriplets {
  static constexpr bool kTripletMiner = true, kPerAnchor = false;
  template <class T> DML_HD bool keep(T, T) const { return true; }
  void validate() const {}
};

namespace detail {
inline void check_margin(double m, const char* who) {
  DML_CHECK(math::is_finite(m), who, ": margin must be finite, got ", m);
}
}  // namespace detail

struct MarginTriplets {
  static constexpr bool kTripletMiner = true, kPerAnchor = false;
  double margin = 0.2;
  template <class T> DML_HD bool keep(T u_ap, T u_an) const { return u_an - u_ap <= T(margin); }
  void validate() const { detail::check_margin(margin, "miners::MarginTriplets"); }
};

struct HardTriplets {
  static constexpr bool kTripletMiner = true, kPerAnchor = false;
  double margin = 0.2;
  template <class T> DML_HD bool keep(T u_ap, T u_an) const {
    return u_an - u_ap <= T(margin) && u_an - u_ap <= T(0);
  }
  void validate() const { detail::check_margin(margin, "miners::HardTriplets"); }
};

struct SemiHard {
  static constexpr bool kTripletMiner = true, kPerAnchor = false;
  double margin = 0.2;
  template <class T> DML_HD bool keep(T u_ap, T u_an) const {
    return u_an - u_ap <= T(margin) && u_an - u_ap > T(0);
  }
  void validate() const { detail::check_margin(margin, "miners::SemiHard"); }
};

struct BatchHard {
  static constexpr bool kTripletMiner = true, kPerAnchor = true;
  template <class T> DML_HD bool keep(T, T) const { return true; }
  void validate() const {}
};

template <class M>
concept PairMiner = requires { requires M::kPairMiner; };
template <class M>
concept TripletMiner = requires { requires M::kTripletMiner; };

}  // namespace dml::miners
