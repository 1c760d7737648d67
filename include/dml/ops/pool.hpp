// dml/ops/pool.hpp: differentiable max pooling and adaptive average / max /
// concat pooling over NCHW tensors.
#pragma once

#include "../backend/geometry.hpp"
#include "common.hpp"

namespace dml {
namespace detail {
inline AdaptivePoolGeom adaptive_geom(const Shape& s, std::int64_t oh, std::int64_t ow, const char* op,
                                      std::int64_t y_channels, std::int64_t y_offset) {
  DML_CHECK(s.rank() == 4, op, ": input must have rank 4, got shape ", s.str());
  DML_CHECK(oh >= 1 && ow >= 1 && s[2] >= 1 && s[3] >= 1, op, ": cannot pool shape ", s.str(), " to ", oh, "x", ow);
  return AdaptivePoolGeom{s[0], s[1], s[2], s[3], oh, ow, y_channels, y_offset};
}
}  // namespace detail

namespace ops {

// Max over kernel x kernel windows with the given stride (0: the kernel size)
// and implicit -infinity padding, giving [N, C, Ho, Wo] with Ho = (H + 2 padding
// - kernel) / stride + 1. The gradient flows to each window's first maximum.
// Throws on a non-4-D input, kernel < 1, stride < 0, padding outside
// [0, kernel / 2] (as PyTorch) or an empty output.
template <class T, class D>
Tensor<T, D> max_pool2d(const Tensor<T, D>& x, std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0) {
  static_assert(Real<T>, "max_pool2d needs float or double tensors");
  detail::expect_rank(x, 4, "max_pool2d");
  if (stride == 0) stride = kernel;
  DML_CHECK(kernel >= 1 && stride >= 1 && padding >= 0 && 2 * padding <= kernel, "max_pool2d: kernel ", kernel,
            ", stride ", stride, ", padding ", padding, " are invalid (need padding <= kernel / 2)");
  const Pool2dGeom g =
      Pool2dGeom::make(x.dim(0), x.dim(1), x.dim(2), x.dim(3), kernel, kernel, stride, stride, padding, padding);
  DML_CHECK(g.h + 2 * padding >= kernel && g.w + 2 * padding >= kernel, "max_pool2d: kernel ", kernel, " with padding ",
            padding, " does not fit input of shape ", x.shape().str());
  Shape os{g.n, g.c, g.ho, g.wo};
  Tensor<T, D> out = Tensor<T, D>::empty(os);
  Tensor<std::int64_t, D> arg = Tensor<std::int64_t, D>::empty(os);
  Backend<D>::max_pool2d(g, x.data(), out.data(), arg.data());
  if (detail::tracking(x))
    detail::record(out, "max_pool2d", {&x}, [g, arg, in = x.shape()](const Tensor<T, D>& gy, Needs) {
      Tensor<T, D> gx = Tensor<T, D>::zeros(in);
      Backend<D>::max_pool2d_backward(g, gy.data(), arg.data(), gx.data());
      return detail::Grads<T, D>{gx};
    });
  return out;
}

// Adaptive average pooling of x [N, C, H, W] to [N, C, oh, ow] (ow = 0: oh).
// Cell (i, j) averages rows [floor(i H / oh), ceil((i + 1) H / oh)) and the
// matching columns, as PyTorch. Throws on a non-4-D or empty input.
template <class T, class D>
Tensor<T, D> adaptive_avg_pool2d(const Tensor<T, D>& x, std::int64_t oh = 1, std::int64_t ow = 0) {
  static_assert(Real<T>, "adaptive_avg_pool2d needs float or double tensors");
  DML_CHECK(x.defined(), "adaptive_avg_pool2d: input is an undefined tensor");
  if (ow == 0) ow = oh;
  const AdaptivePoolGeom g = detail::adaptive_geom(x.shape(), oh, ow, "adaptive_avg_pool2d", x.dim(1), 0);
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{g.n, g.c, oh, ow});
  Backend<D>::adaptive_avg_pool2d(g, x.data(), out.data());
  if (detail::tracking(x))
    detail::record(out, "adaptive_avg_pool2d", {&x}, [g, in = x.shape()](const Tensor<T, D>& gy, Needs) {
      Tensor<T, D> gx = Tensor<T, D>::zeros(in);
      Backend<D>::adaptive_avg_pool2d_backward(g, gy.data(), gx.data());
      return detail::Grads<T, D>{gx};
    });
  return out;
}

// Adaptive max pooling to [N, C, oh, ow] (cells as adaptive_avg_pool2d); the
// gradient flows to each cell's first maximum.
template <class T, class D>
Tensor<T, D> adaptive_max_pool2d(const Tensor<T, D>& x, std::int64_t oh = 1, std::int64_t ow = 0) {
  static_assert(Real<T>, "adaptive_max_pool2d needs float or double tensors");
  DML_CHECK(x.defined(), "adaptive_max_pool2d: input is an undefined tensor");
  if (ow == 0) ow = oh;
  const AdaptivePoolGeom g = detail::adaptive_geom(x.shape(), oh, ow, "adaptive_max_pool2d", x.dim(1), 0);
  Shape os{g.n, g.c, oh, ow};
  Tensor<T, D> out = Tensor<T, D>::empty(os);
  Tensor<std::int64_t, D> arg = Tensor<std::int64_t, D>::empty(os);
  Backend<D>::adaptive_max_pool2d(g, x.data(), out.data(), arg.data());
  if (detail::tracking(x))
    detail::record(out, "adaptive_max_pool2d", {&x}, [g, arg, in = x.shape()](const Tensor<T, D>& gy, Needs) {
      Tensor<T, D> gx = Tensor<T, D>::zeros(in);
      Backend<D>::adaptive_max_pool2d_backward(g, gy.data(), arg.data(), gx.data());
      return detail::Grads<T, D>{gx};
    });
  return out;
}

// fastai's AdaptiveConcatPool2d: [max pool, avg pool] concatenated along the
// channels (max first, as `torch.cat([self.mp(x), self.ap(x)], 1)`), giving
// [N, 2C, oh, ow]. Throws as adaptive_avg_pool2d.
template <class T, class D>
Tensor<T, D> adaptive_concat_pool2d(const Tensor<T, D>& x, std::int64_t oh = 1, std::int64_t ow = 0) {
  static_assert(Real<T>, "adaptive_concat_pool2d needs float or double tensors");
  DML_CHECK(x.defined(), "adaptive_concat_pool2d: input is an undefined tensor");
  if (ow == 0) ow = oh;
  const std::int64_t c = x.rank() == 4 ? x.dim(1) : 0;
  const AdaptivePoolGeom gmax = detail::adaptive_geom(x.shape(), oh, ow, "adaptive_concat_pool2d", 2 * c, 0);
  AdaptivePoolGeom gavg = gmax;
  gavg.y_offset = c;
  Tensor<T, D> out = Tensor<T, D>::empty(Shape{gmax.n, 2 * c, oh, ow});
  Tensor<std::int64_t, D> arg = Tensor<std::int64_t, D>::empty(Shape{gmax.n, c, oh, ow});
  Backend<D>::adaptive_max_pool2d(gmax, x.data(), out.data(), arg.data());
  Backend<D>::adaptive_avg_pool2d(gavg, x.data(), out.data());
  if (detail::tracking(x))
    detail::record(out, "adaptive_concat_pool2d", {&x},
                   [gmax, gavg, arg, in = x.shape()](const Tensor<T, D>& gy, Needs) {
                     Tensor<T, D> gx = Tensor<T, D>::zeros(in);
                     Backend<D>::adaptive_max_pool2d_backward(gmax, gy.data(), arg.data(), gx.data());
                     Backend<D>::adaptive_avg_pool2d_backward(gavg, gy.data(), gx.data());
                     return detail::Grads<T, D>{gx};
                   });
  return out;
}

}  // namespace ops
}  // namespace dml
