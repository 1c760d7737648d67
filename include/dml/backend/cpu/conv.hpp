// dml/backend/cpu/conv.hpp: 2-D convolution on the host by padding-aware
// lowering to GEMM.
//
// The output plane is cut into rectangles whose windows all read the same taps
// inside the input (a border row of a 3x3 / pad 1 conv never reads tap row 0).
// Each rectangle becomes one GEMM over only those taps, so the lowered matrix
// holds no padding zeros and small maps (7, 4, 2, 1 pixels wide at 28x28
// input) do only the useful work. Images are folded into the GEMM (up to a
// scratch budget), so the GEMMs stay large even when the maps are tiny.
//
// Two lowerings: by channels (conv_channels.hpp: channels-last, copies whole
// C-vectors; used from 16 input channels) and by rows (conv_rows.hpp: NCHW
// rows; used for the few-channel stem).
#pragma once

#include <algorithm>
#include <cstdint>

#include "../geometry.hpp"
#include "conv_channels.hpp"
#include "conv_common.hpp"
#include "conv_rows.hpp"
#include "parallel.hpp"

namespace dml::cpu {

struct Conv {
  // Input channels from which the channel lowering is used.
  static constexpr std::int64_t kChannelLoweringMinChannels = 16;

  // y = conv(x, w) + bias for the geometry g (NCHW, weight [o, c, kh, kw]);
  // bias may be null. y is fully overwritten.
  template <class T>
  static void conv2d_forward(const Conv2dGeom& g, const T* x, const T* w, const T* bias, T* y) {
    if (g.n == 0 || g.o == 0 || g.ho <= 0 || g.wo <= 0) return;
    if (g.c >= kChannelLoweringMinChannels)
      conv_detail::channels_forward(g, x, w, bias, y);
    else
      conv_detail::rows_forward(g, x, w, bias, y);
  }

  // Gradients of conv2d_forward given gy = dL/dy. Each of gx ([n, c, h, w]),
  // gw ([o, c, kh, kw]) and gbias ([o]) may be null; the others are overwritten.
  template <class T>
  static void conv2d_backward(const Conv2dGeom& g, const T* gy, const T* x, const T* w, T* gx, T* gw, T* gbias) {
    const std::int64_t howo = g.ho * g.wo, out_img = g.o * howo;
    if (gbias)
      parallel_for(
          g.o,
          [&](std::int64_t oc) {
            T acc = T(0);
            for (std::int64_t b = 0; b < g.n; ++b) {
              const T* p = gy + b * out_img + oc * howo;
              for (std::int64_t q = 0; q < howo; ++q) acc += p[q];
            }
            gbias[oc] = acc;
          },
          g.n * howo);
    auto zero = [&] {
      if (gw) Memory<Cpu>::zero(gw, sizeof(T) * static_cast<std::size_t>(g.o * g.c * g.kh * g.kw));
      if (gx) Memory<Cpu>::zero(gx, sizeof(T) * static_cast<std::size_t>(g.n * g.c * g.h * g.w));
    };
    if ((!gx && !gw) || g.n == 0 || g.o == 0 || howo <= 0) return zero();
    if (g.c >= kChannelLoweringMinChannels) {
      conv_detail::channels_backward(g, gy, x, w, gx, gw);  // overwrites both
    } else {
      zero();
      conv_detail::rows_backward(g, gy, x, w, gx, gw);  // adds into both
    }
  }
};

}  // namespace dml::cpu
