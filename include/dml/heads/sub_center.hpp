// dml/heads/sub_center.hpp: after training a sub-centre head (SubCenter<P>),
// each class's dominant sub-centre, the samples far from it, and a plain
// MarginHead<P> that keeps only the dominant sub-centres (Deng et al. 2020,
// section 3.2: drop the non-dominant sub-centres and, optionally, the outliers,
// then train on).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "margin_head.hpp"

namespace dml::heads {

struct DominantCenters {
  std::int64_t classes = 0, k = 0;
  std::vector<std::int64_t> center;    // [classes]: the dominant sub-centre of each class, in [0, k)
  std::vector<std::int64_t> votes;     // [classes * k]: samples of class c nearest to sub-centre j at c * k + j
  std::vector<std::int64_t> outliers;  // indices of the samples farther than max_angle from their class's dominant sub-centre
  std::vector<double> cos_to_dominant; // [N]: each sample's cosine to its class's dominant sub-centre
};

// For an N x dim embedding batch `emb` with labels [N] (typically the whole
// training set, in eval mode), the sub-centre each sample of class c is
// nearest to among c's k sub-centres; each class's dominant sub-centre is the
// one most of its samples pick (the lowest index on a tie, and 0 for a class
// without samples, as argmax of PyTorch Metric Learning's bincount); outliers
// are the samples whose angle to their class's dominant sub-centre exceeds
// `max_angle_degrees` (PML's get_outliers threshold, 75 by default). Throws
// dml::Error for shapes that do not match the head, labels outside [0, classes)
// or an angle outside [0, 180].
template <class P, class T, class D>
DominantCenters dominant_centers(const MarginHead<SubCenter<P>, T, D>& head, const Tensor<T, D>& emb,
                                 const Tensor<std::int64_t, D>& labels, double max_angle_degrees = 75) {
  DML_CHECK(emb.defined() && emb.rank() == 2 && emb.dim(1) == head.dim(), "heads::dominant_centers: embedding of shape ",
            emb.defined() ? emb.shape().str() : "undefined", " does not match the head's dimension ", head.dim());
  DML_CHECK(labels.defined() && labels.rank() == 1 && labels.dim(0) == emb.dim(0),
            "heads::dominant_centers: labels of shape ", labels.defined() ? labels.shape().str() : "undefined",
            " do not match embeddings of shape ", emb.shape().str());
  DML_CHECK(max_angle_degrees >= 0 && max_angle_degrees <= 180,
            "heads::dominant_centers: max_angle_degrees must lie in [0, 180], got ", max_angle_degrees);
  ::dml::detail::expect_indices(labels, head.classes(), "heads::dominant_centers");
  DominantCenters out;
  out.classes = head.classes();
  out.k = head.policy().k;
  const std::int64_t n = emb.dim(0), k = out.k, cols = out.classes * k;
  std::vector<T> cos;
  {
    NoGrad no_grad;
    cos = head_cosines(emb.detach(), head.weight().detach()).to_vector();
  }
  const std::vector<std::int64_t> y = labels.to_vector();
  std::vector<std::int64_t> nearest(static_cast<std::size_t>(n));
  out.votes.assign(static_cast<std::size_t>(cols), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const T* row = cos.data() + i * cols + y[i] * k;
    std::int64_t best = 0;
    for (std::int64_t j = 1; j < k; ++j)
      if (row[j] > row[best]) best = j;
    nearest[i] = best;
    ++out.votes[y[i] * k + best];
  }
  out.center.assign(static_cast<std::size_t>(out.classes), 0);
  for (std::int64_t c = 0; c < out.classes; ++c)
    for (std::int64_t j = 1; j < k; ++j)
      if (out.votes[c * k + j] > out.votes[c * k + out.center[c]]) out.center[c] = j;
  const double min_cos = std::cos(max_angle_degrees * detail::kPi<double> / 180);
  out.cos_to_dominant.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double c = cos[i * cols + y[i] * k + out.center[y[i]]];
    out.cos_to_dominant[i] = c;
    if (c < min_cos) out.outliers.push_back(i);
  }
  return out;
}

// The plain weight [classes, dim]: row c is class c's dominant sub-centre
// dc.center[c] of `head` (a copy). Throws dml::Error when dc was made for
// another head shape or names a sub-centre outside [0, k).
template <class P, class T, class D>
Tensor<T, D> dominant_center_weight(const MarginHead<SubCenter<P>, T, D>& head, const DominantCenters& dc) {
  const std::int64_t k = head.policy().k, classes = head.classes();
  DML_CHECK(dc.classes == classes && dc.k == k && static_cast<std::int64_t>(dc.center.size()) == classes,
            "heads::dominant_center_weight: dominant centres of ", dc.classes, " classes x ", dc.k,
            " sub-centres do not match the head's ", classes, " x ", k);
  std::vector<std::int64_t> rows;
  for (std::int64_t c = 0; c < classes; ++c) {
    DML_CHECK(dc.center[c] >= 0 && dc.center[c] < k, "heads::dominant_center_weight: class ", c,
              "'s dominant sub-centre ", dc.center[c], " is outside [0, ", k, ")");
    rows.push_back(c * k + dc.center[c]);
  }
  NoGrad no_grad;
  return ops::gather_rows(head.weight().detach(), Tensor<std::int64_t, D>::from_vector(rows));
}

// Makes `plain`, a head of the inner policy P (MarginHead<Arc> for
// SubCenter<Arc>), the head of `head`'s dominant sub-centres: copies
// dominant_center_weight(head, dc) into its weight (nothing is shared), so that
// it serves for inference or further training as an ordinary ArcFace (CosFace,
// ...) head. Throws dml::Error as dominant_center_weight does, or when plain's
// dim or classes differ from head's.
template <class P, class T, class D>
void load_dominant_centers(MarginHead<P, T, D>& plain, const MarginHead<SubCenter<P>, T, D>& head,
                           const DominantCenters& dc) {
  DML_CHECK(plain.dim() == head.dim() && plain.classes() == head.classes(), "heads::load_dominant_centers: a head of ",
            plain.classes(), " classes x ", plain.dim(), " dims cannot take the sub-centre head's ", head.classes(),
            " x ", head.dim());
  Tensor<T, D> w = dominant_center_weight(head, dc);
  NoGrad no_grad;
  Tensor<T, D> dst = plain.weight();
  dst.copy_(w);
}

}  // namespace dml::heads
