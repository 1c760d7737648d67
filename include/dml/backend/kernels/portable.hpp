// dml/backend/kernels/portable.hpp: the Backend<D> entry points whose
// algorithm is the same on both devices, written once over a device's launch.
//
// Launch is cpu::Launch or cuda::Launch: for_each(n, op, cost) and
// for_each_2d(rows, cols, op, cost) run an index functor of this folder (the
// host in parallel contiguous ranges, the device with one grid-stride
// kernel). `cost` is the work of one element, which only the host's decision
// to fork threads reads. Backend<Cpu> and Backend<Cuda> derive from
// Portable<their Launch>, so these kernels have one definition, executed by
// the CPU tests. Pointers are the device's pointers; labels and indices lie in
// range (the front ends check them).
#pragma once

#include <cstdint>

#include "../broadcast.hpp"
#include "../functors.hpp"
#include "../geometry.hpp"
#include "argmax.hpp"
#include "broadcast.hpp"
#include "center_update.hpp"
#include "cross_entropy.hpp"
#include "dropout.hpp"
#include "elementwise.hpp"
#include "expand.hpp"
#include "gather.hpp"
#include "margin.hpp"
#include "pool.hpp"
#include "row_loss.hpp"

namespace dml::kernels {

template <class Launch>
struct Portable : Launch {
  using Launch::for_each;
  using Launch::for_each_2d;

  // ---- elementwise (kernels/elementwise.hpp, kernels/broadcast.hpp)
  template <class T>
  static void fill(T* out, std::int64_t n, T value) {
    for_each(n, Fill<T>{out, value});
  }
  // out[i] = f(a[i]); out may alias a.
  template <class F, class T>
  static void map(F f, const T* a, T* out, std::int64_t n) {
    for_each(n, Map<F, T>{f, a, out});
  }
  // dx[i] = f.grad(x[i], y[i], g[i])
  template <class F, class T>
  static void map_backward(F f, const T* x, const T* y, const T* g, T* dx, std::int64_t n) {
    for_each(n, MapBackward<F, T>{f, x, y, g, dx});
  }
  // out[i] = f(a[i], b[i]); out may alias a or b.
  template <class F, class T>
  static void zip(F f, const T* a, const T* b, T* out, std::int64_t n) {
    for_each(n, Zip<F, T>{f, a, b, out});
  }
  // out[i] = a[i] + b[i]; out may alias a or b. The autograd engine's gradient
  // sum: core/tensor.hpp calls it by name, so core needs no functor.
  template <class T>
  static void add(const T* a, const T* b, T* out, std::int64_t n) {
    zip(fn::Add{}, a, b, out, n);
  }
  // out[i] = f(a[i], b[i], c[i])
  template <class F, class T>
  static void zip3(F f, const T* a, const T* b, const T* c, T* out, std::int64_t n) {
    for_each(n, Zip3<F, T>{f, a, b, c, out});
  }
  // out = f(a, b) under a broadcast plan.
  template <class F, class T>
  static void broadcast_zip(F f, const ::dml::detail::BroadcastPlan& p, const T* a, const T* b, T* out) {
    const BroadcastZip<F, T> op{f, p, a, b, out};
    const std::int64_t inner = op.inner();
    if (inner > 0) for_each_2d(p.numel() / inner, inner, op);
  }

  // ---- axes (kernels/expand.hpp, kernels/argmax.hpp)
  // The reverse of sum_axis: out[o, l, i] = scale * g[o, i].
  template <class T>
  static void expand_axis(const T* g, T* out, std::int64_t outer, std::int64_t len, std::int64_t inner, T scale) {
    for_each_2d(outer * len, inner, Expand<T>{g, out, len, inner, scale});
  }
  // dx = 0 except dx[o, arg[o, i], i] = g[o, i].
  template <class T>
  static void max_axis_backward(const T* g, const std::int64_t* arg, T* dx, std::int64_t outer, std::int64_t len,
                                std::int64_t inner) {
    for_each_2d(outer * len, inner, ArgmaxBackward<T>{g, arg, dx, len, inner});
  }

  // ---- rows (kernels/gather.hpp, kernels/cross_entropy.hpp)
  // out[r] = x[r, idx[r]]
  template <class T>
  static void gather_cols(const T* x, const std::int64_t* idx, T* out, std::int64_t rows, std::int64_t cols) {
    for_each(rows, GatherCols<T>{x, idx, out, cols});
  }
  // dx = 0 except dx[r, idx[r]] = g[r].
  template <class T>
  static void scatter_cols(const T* g, const std::int64_t* idx, T* dx, std::int64_t rows, std::int64_t cols) {
    for_each_2d(rows, cols, ScatterCols<T>{g, idx, dx, cols});
  }
  // out[r] = src[idx[r]] for rows of length cols.
  template <class T>
  static void gather_rows(const T* src, const std::int64_t* idx, T* out, std::int64_t rows, std::int64_t cols) {
    for_each_2d(rows, cols, GatherRows<T>{src, idx, out, cols});
  }
  // d(mean loss)/dlogits scaled by the upstream scalar *g: (softmax - q) * g / rows.
  template <class T>
  static void cross_entropy_backward(const T* logp, const std::int64_t* labels, const T* g, T* dx,
                                     std::int64_t rows, std::int64_t cols, T eps) {
    for_each_2d(rows, cols, CrossEntropyBackward<T>{logp, labels, g, dx, rows, cols, eps});
  }

  // ---- margins and Center Loss (kernels/margin.hpp, kernels/center_update.hpp)
  // out = cos, except out[r, y_r] = p.apply(cos[r, y_r]).
  template <class P, class T>
  static void margin_forward(P p, const T* cos, const std::int64_t* labels, T* out, std::int64_t rows,
                             std::int64_t cols) {
    for_each_2d(rows, cols, MarginForward<P, T>{p, cos, labels, out, cols});
  }
  // dcos = g, except dcos[r, y_r] = g[r, y_r] * p.dapply(cos[r, y_r]).
  template <class P, class T>
  static void margin_backward(P p, const T* cos, const std::int64_t* labels, const T* g, T* dcos, std::int64_t rows,
                              std::int64_t cols) {
    for_each_2d(rows, cols, MarginBackward<P, T>{p, cos, labels, g, dcos, cols});
  }
  // AdaCos's per-row statistics (kernels/margin.hpp): b[r], the sum of
  // exp(s cos) over the row's non-target columns, and theta[r], its target angle.
  template <class T>
  static void adacos_row_stats(const T* cos, const std::int64_t* labels, double s, T* b, T* theta,
                               std::int64_t rows, std::int64_t cols) {
    for_each(rows, AdaCosRowStats<T>{cos, labels, s, b, theta, cols}, cols);
  }
  // Center Loss update: c_j -= alpha / (1 + n_j) * sum_{y_i = j} (c_j - x_i)
  // for each class j present; deterministic.
  template <class T>
  static void center_update(T* centers, const T* x, const std::int64_t* labels, std::int64_t rows, std::int64_t dim,
                            std::int64_t classes, T alpha) {
    for_each_2d(classes, dim, CenterUpdate<T>{centers, x, labels, rows, dim, alpha}, rows);
  }

  // ---- embedding losses (kernels/row_loss.hpp; the rules are in losses/rules.hpp)
  // terms[4 r + k] = the four partial sums of row r of mat [rows, cols].
  template <class R, class T>
  static void row_loss_forward(R rule, const T* mat, const std::int64_t* row_labels, const std::int64_t* col_labels,
                               T* terms, std::int64_t rows, std::int64_t cols, bool same_set) {
    for_each(rows, RowLossForward<R, T>{rule, mat, row_labels, col_labels, terms, cols, same_set}, cols * cols);
  }
  // grad = d(loss)/d(mat), with ga and gb the upstream gradient over each part's divisor.
  template <class R, class T>
  static void row_loss_backward(R rule, const T* mat, const std::int64_t* row_labels, const std::int64_t* col_labels,
                                T* grad, std::int64_t rows, std::int64_t cols, bool same_set, T ga, T gb) {
    for_each(rows, RowLossBackward<R, T>{rule, mat, row_labels, col_labels, grad, cols, same_set, ga, gb},
             cols * cols);
  }

  // ---- forward poolings (kernels/pool.hpp)
  template <class T>
  static void max_pool2d(const Pool2dGeom& g, const T* x, T* y, std::int64_t* arg) {
    for_each_2d(g.n * g.c, g.ho * g.wo, MaxPool<T>{g, x, y, arg}, g.kh * g.kw);
  }
  template <class T>
  static void adaptive_avg_pool2d(const AdaptivePoolGeom& g, const T* x, T* y) {
    for_each_2d(g.n * g.c, g.ho * g.wo, AdaptiveAvg<T>{g, x, y}, cell_cost(g));
  }
  template <class T>
  static void adaptive_max_pool2d(const AdaptivePoolGeom& g, const T* x, T* y, std::int64_t* arg) {
    for_each_2d(g.n * g.c, g.ho * g.wo, AdaptiveMax<T>{g, x, y, arg}, cell_cost(g));
  }

  // ---- dropout, optimisers (kernels/dropout.hpp, kernels/optim.hpp)
  // mask[i] = scale where element i is kept, 0 where dropped (see DropoutMask).
  template <class T>
  static void dropout_mask(const DropoutMask& d, T scale, T* mask, std::int64_t n) {
    for_each((n + 3) / 4, DropoutFill<T>{d, scale, mask, n}, 16);
  }
  // Calls op(i) for every i in [0, n): one pass over a parameter and its
  // state (ops in kernels/optim.hpp). Elements are independent.
  template <class Op>
  static void optim_update(const Op& op, std::int64_t n) {
    for_each(n, op, 8);
  }

 private:
  static std::int64_t cell_cost(const AdaptivePoolGeom& g) {
    const std::int64_t cells = g.ho * g.wo;
    return cells > 0 && g.h * g.w > cells ? g.h * g.w / cells : 1;
  }
};

}  // namespace dml::kernels
