// dml/viz/detail/tsne_quadtree.hpp: the Barnes-Hut quadtree for t-SNE's
// repulsive forces and the normaliser Z.
//
// The tree is rebuilt every iteration from a Morton (Z-order) sort of the
// embedding, with leaves of up to leaf_size points and no single-child
// chains. Nodes are stored in preorder with a `next` index that skips the
// subtree, so a traversal is a loop without a stack.
//
// Points are served in *groups*: the largest subtrees of at most group_size
// points. One traversal per group builds an interaction list; a cell enters
// it as its centre of mass and point count when
//   size(cell) < theta * distance(centre of mass, bounding box of the group)
// (size = longest side of the bounding box of the cell's points), which
// implies the classic per-point criterion size / |y_i - com| < theta for
// every point of the group. Cells that fail are opened; leaves that fail
// enter as their individual points. Cells that hold group points (the
// group's ancestors, itself and its descendants) are never summarised, so
// each point meets itself exactly once, with weight exactly 1, which is
// subtracted afterwards. The list is then evaluated for every point of the
// group over 16 independent float lanes combined in a fixed order: each
// point's sums depend on nothing but the tree, never on threads.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "tsne_util.hpp"

namespace dml::viz::detail {

class QuadTree {
 public:
  static constexpr int kLeafSize = 32;    // most points in a leaf (unless 16 levels deep)
  static constexpr int kGroupSize = 128;  // most points sharing one traversal
  static constexpr int kLevels = 16;      // Morton bits per axis

  explicit QuadTree(int leaf_size = kLeafSize, int group_size = kGroupSize)
      : leaf_size_(leaf_size), group_size_(group_size) {}

  struct Node {
    float cx, cy;                        // centre of mass
    float size2;                         // squared max side of the bounding box of the points
    float mass;                          // number of points
    std::int32_t next, begin, end, pad;  // preorder skip; point range [begin, end)
  };

  // Rebuilds the tree over the n x 2 row-major positions y.
  void build(const double* y, std::int64_t n) {
    n_ = n;
    codes_.resize(n);
    order_.resize(n);
    double x0 = std::numeric_limits<double>::infinity(), y0 = x0, x1 = -x0, y1 = -x0;
    for (std::int64_t i = 0; i < n; ++i) {
      x0 = std::min(x0, y[2 * i]);
      x1 = std::max(x1, y[2 * i]);
      y0 = std::min(y0, y[2 * i + 1]);
      y1 = std::max(y1, y[2 * i + 1]);
    }
    double side = std::max(x1 - x0, y1 - y0);
    if (!(side > 0)) side = 1;
    const double scale = 65536.0 / side;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto qx = static_cast<std::uint32_t>(std::min(65535.0, (y[2 * i] - x0) * scale));
      const auto qy = static_cast<std::uint32_t>(std::min(65535.0, (y[2 * i + 1] - y0) * scale));
      codes_[i] = spread(qx) | (spread(qy) << 1);
      order_[i] = static_cast<std::int32_t>(i);
    }
    radix_sort();
    px_.resize(n);
    py_.resize(n);
    for (std::int64_t s = 0; s < n; ++s) {
      px_[s] = static_cast<float>(y[2 * order_[s]]);
      py_[s] = static_cast<float>(y[2 * order_[s] + 1]);
    }
    nodes_.clear();
    boxes_.clear();
    sums_.clear();
    groups_.clear();
    build_node(0, static_cast<std::int32_t>(n), 0, false);
  }

  // Repulsive forces, n x 2 in input order: rep_i = sum_{j != i} w_ij^2 (y_i - y_j)
  // with w_ij = 1 / (1 + |y_i - y_j|^2), and sumw_i = sum_{j != i} w_ij, both
  // approximated with the criterion above.
  void repulsion(double theta, int threads, double* rep, double* sumw) const {
    const float theta2 = static_cast<float>(theta * theta);
    const auto groups = static_cast<std::int64_t>(groups_.size());
    // A list holds at most every node once, every point once, one
    // speculative write and the padding.
    const std::size_t capacity = nodes_.size() + static_cast<std::size_t>(n_) + kLanes + 1;
    if (static_cast<int>(scratch_.size()) < threads) scratch_.resize(threads);
    for (auto& buffer : scratch_) buffer.resize(3 * capacity);
    // Groups differ in cost (dense and sparse regions): dynamic chunks of one.
    cpu::parallel_dynamic(
        groups,
        [&](std::int64_t gi, int thread) {
          float* lx = scratch_[thread].data();
          float* ly = lx + capacity;
          float* lw = ly + capacity;
          const std::int32_t g = groups_[gi];
          const std::int64_t len = interaction_list(g, theta2, lx, ly, lw);
          evaluate(nodes_[g], len, lx, ly, lw, rep, sumw);
        },
        1, std::max(threads, 1));
  }

  std::int64_t size() const { return n_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<std::int32_t>& groups() const { return groups_; }

 private:
  static constexpr int kLanes = 16;

  static std::uint32_t spread(std::uint32_t v) {
    v = (v | (v << 8)) & 0x00FF00FFu;
    v = (v | (v << 4)) & 0x0F0F0F0Fu;
    v = (v | (v << 2)) & 0x33333333u;
    v = (v | (v << 1)) & 0x55555555u;
    return v;
  }

  // Stable LSD radix sort of (codes_, order_), 8 bits a pass.
  void radix_sort() {
    codes_tmp_.resize(n_);
    order_tmp_.resize(n_);
    for (int shift = 0; shift < 32; shift += 8) {
      std::array<std::int64_t, 257> start{};
      for (std::int64_t i = 0; i < n_; ++i) ++start[((codes_[i] >> shift) & 0xFFu) + 1];
      for (int b = 0; b < 256; ++b) start[b + 1] += start[b];
      for (std::int64_t i = 0; i < n_; ++i) {
        const auto pos = start[(codes_[i] >> shift) & 0xFFu]++;
        codes_tmp_[pos] = codes_[i];
        order_tmp_[pos] = order_[i];
      }
      codes_.swap(codes_tmp_);
      order_.swap(order_tmp_);
    }
  }

  std::int32_t build_node(std::int32_t a, std::int32_t b, int level, bool in_group) {
    const auto id = static_cast<std::int32_t>(nodes_.size());
    nodes_.push_back({});
    boxes_.push_back({});
    sums_.push_back({});
    if (!in_group && b - a <= group_size_) {
      groups_.push_back(id);
      in_group = true;
    }
    // Skip levels where all points fall in one quadrant: no chains of
    // single-child nodes.
    while (b - a > leaf_size_ && level < kLevels) {
      const int shift = 2 * (kLevels - 1 - level);
      if (((codes_[a] >> shift) & 3u) != ((codes_[b - 1] >> shift) & 3u)) break;
      ++level;
    }
    std::array<float, 4> box{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
    double sx = 0, sy = 0;
    if (b - a <= leaf_size_ || level >= kLevels) {
      for (std::int32_t s = a; s < b; ++s) {
        sx += px_[s];
        sy += py_[s];
        box = {std::min(box[0], px_[s]), std::max(box[1], px_[s]), std::min(box[2], py_[s]), std::max(box[3], py_[s])};
      }
    } else {
      const int shift = 2 * (kLevels - 1 - level);
      for (std::int32_t s = a; s < b;) {
        const std::uint32_t q = (codes_[s] >> shift) & 3u;
        const auto e =
            static_cast<std::int32_t>(std::partition_point(codes_.begin() + s, codes_.begin() + b,
                                                           [&](std::uint32_t c) { return ((c >> shift) & 3u) <= q; }) -
                                      codes_.begin());
        const std::int32_t c = build_node(s, e, level + 1, in_group);
        sx += sums_[c][0];
        sy += sums_[c][1];
        const auto& cb = boxes_[c];
        box = {std::min(box[0], cb[0]), std::max(box[1], cb[1]), std::min(box[2], cb[2]), std::max(box[3], cb[3])};
        s = e;
      }
    }
    const auto count = static_cast<double>(b - a);
    const float side = std::max(box[1] - box[0], box[3] - box[2]);
    nodes_[id] = {static_cast<float>(sx / count),
                  static_cast<float>(sy / count),
                  side * side,
                  static_cast<float>(count),
                  static_cast<std::int32_t>(nodes_.size()),
                  a,
                  b,
                  0};
    boxes_[id] = box;
    sums_[id] = {sx, sy};
    return id;
  }

  // Writes group g's interaction list (x, y, weight) and returns its length,
  // a multiple of kLanes.
  std::int64_t interaction_list(std::int32_t g, float theta2, float* lx, float* ly, float* lw) const {
    const auto& box = boxes_[g];
    const auto count = static_cast<std::int32_t>(nodes_.size());
    const std::int32_t g_next = nodes_[g].next;
    std::int64_t len = 0;
    for (std::int32_t i = 0; i < count;) {
      const Node& c = nodes_[i];
      const float dx = std::max({box[0] - c.cx, 0.0f, c.cx - box[1]});
      const float dy = std::max({box[2] - c.cy, 0.0f, c.cy - box[3]});
      // The group, its ancestors and its descendants hold group points:
      // never summarised, so every point meets itself exactly.
      const bool related = i <= g ? g < c.next : i < g_next;
      const bool accept = c.size2 < theta2 * (dx * dx + dy * dy) && !related;
      const bool leaf = c.next == i + 1;
      lx[len] = c.cx;  // speculative: kept only when accepted
      ly[len] = c.cy;
      lw[len] = c.mass;
      len += accept;
      if (leaf && !accept) {
        for (std::int32_t s = c.begin; s < c.end; ++s, ++len) {
          lx[len] = px_[s];
          ly[len] = py_[s];
          lw[len] = 1.0f;
        }
      }
      i = accept || leaf ? c.next : i + 1;
    }
    for (; len % kLanes != 0; ++len) {  // zero-weight padding
      lx[len] = 0.0f;
      ly[len] = 0.0f;
      lw[len] = 0.0f;
    }
    return len;
  }

  void evaluate(const Node& group, std::int64_t len, const float* ax, const float* ay, const float* aw, double* rep,
                double* sumw) const {
    for (std::int32_t s = group.begin; s < group.end; ++s) {
      const float xi = px_[s], yi = py_[s];
      float aq[kLanes] = {}, afx[kLanes] = {}, afy[kLanes] = {};
      for (std::int64_t j = 0; j < len; j += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
          const float dx = xi - ax[j + l], dy = yi - ay[j + l];
          const float q = 1.0f / (1.0f + dx * dx + dy * dy);
          const float wq = aw[j + l] * q;
          const float wq2 = wq * q;
          aq[l] += wq;
          afx[l] += wq2 * dx;
          afy[l] += wq2 * dy;
        }
      }
      double sq = 0, fx = 0, fy = 0;
      for (int l = 0; l < kLanes; ++l) {
        sq += aq[l];
        fx += afx[l];
        fy += afy[l];
      }
      const std::int64_t o = order_[s];
      sumw[o] = sq - 1.0;  // the point itself: dx = dy = 0, weight exactly 1
      rep[2 * o] = fx;
      rep[2 * o + 1] = fy;
    }
  }

  int leaf_size_, group_size_;
  mutable std::vector<std::vector<float>> scratch_;  // per-thread interaction lists
  std::int64_t n_ = 0;
  std::vector<std::uint32_t> codes_, codes_tmp_;
  std::vector<std::int32_t> order_, order_tmp_;
  std::vector<float> px_, py_;
  std::vector<Node> nodes_;
  std::vector<std::array<float, 4>> boxes_;  // xmin, xmax, ymin, ymax
  std::vector<std::array<double, 2>> sums_;
  std::vector<std::int32_t> groups_;  // nodes whose subtree is one traversal group
};

}  // namespace dml::viz::detail
