// dml/backend/cpu/conv_rows.hpp: the row lowering of a host convolution, in
// NCHW. The im2col matrix holds, per block tap (ci, i, j), rows of the output
// block; GEMM: out[o, positions] = w[o, taps] @ col[taps, positions]. Suits
// few input channels (the stem: one channel, 14-pixel rows).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "conv_common.hpp"
#include "gemm.hpp"
#include "parallel.hpp"

namespace dml::cpu::conv_detail {

// out[o, ci, i, j] = w[o, ci, r.t0 + i, c.t0 + j]: the weight columns of a block's taps.
template <class T>
void pack_weight(const Conv2dGeom& g, const ConvBlock& blk, const T* w, T* out) {
  std::int64_t nr = blk.r.taps(), nc = blk.c.taps();
  parallel_for(
      g.o * g.c,
      [&](std::int64_t oc) {
        const T* src = w + oc * g.kh * g.kw;
        T* dst = out + oc * nr * nc;
        for (std::int64_t i = 0; i < nr; ++i)
          for (std::int64_t j = 0; j < nc; ++j) dst[i * nc + j] = src[(blk.r.t0 + i) * g.kw + blk.c.t0 + j];
      },
      nr * nc);
}

// The reverse of pack_weight, adding into gw.
template <class T>
void unpack_add_weight(const Conv2dGeom& g, const ConvBlock& blk, const T* packed, T* gw) {
  std::int64_t nr = blk.r.taps(), nc = blk.c.taps();
  parallel_for(
      g.o * g.c,
      [&](std::int64_t oc) {
        const T* src = packed + oc * nr * nc;
        T* dst = gw + oc * g.kh * g.kw;
        for (std::int64_t i = 0; i < nr; ++i)
          for (std::int64_t j = 0; j < nc; ++j) dst[(blk.r.t0 + i) * g.kw + blk.c.t0 + j] += src[i * nc + j];
      },
      nr * nc);
}

// col[(ci, i, j), b * P + p] = x[b, ci, ih, iw] for the block's taps and
// positions; every read lies inside the input by construction.
template <class T>
void im2col_block(const Conv2dGeom& g, const ConvBlock& blk, const T* x, std::int64_t nb, T* col) {
  std::int64_t nr = blk.r.taps(), nc = blk.c.taps(), taps = nr * nc;
  std::int64_t hr = blk.r.size(), wr = blk.c.size(), P = hr * wr, ld = nb * P;
  parallel_for(
      g.c * taps * nb,
      [&](std::int64_t idx) {
        std::int64_t row = idx / nb, b = idx % nb;
        std::int64_t ci = row / taps, t = row % taps;
        std::int64_t i = blk.r.t0 + t / nc, j = blk.c.t0 + t % nc;
        const T* xp = x + (b * g.c + ci) * g.h * g.w;
        T* dst = col + row * ld + b * P;
        std::int64_t ih0 = blk.r.lo * g.sh - g.ph + i, iw0 = blk.c.lo * g.sw - g.pw + j;
        if (g.sh == 1 && g.sw == 1 && wr == g.w && iw0 == 0) {
          std::memcpy(dst, xp + ih0 * g.w, static_cast<std::size_t>(P) * sizeof(T));
          return;
        }
        for (std::int64_t q = 0; q < hr; ++q, dst += wr) {
          const T* src = xp + (ih0 + q * g.sh) * g.w + iw0;
          if (g.sw == 1)
            std::memcpy(dst, src, static_cast<std::size_t>(wr) * sizeof(T));
          else
            for (std::int64_t v = 0; v < wr; ++v) dst[v] = src[v * g.sw];
        }
      },
      P);
}

// gx[b, ci, ih, iw] += dcol[(ci, i, j), b * P + p]: the adjoint of im2col_block.
template <class T>
void col2im_add_block(const Conv2dGeom& g, const ConvBlock& blk, const T* dcol, std::int64_t nb, T* gx) {
  std::int64_t nr = blk.r.taps(), nc = blk.c.taps(), taps = nr * nc;
  std::int64_t hr = blk.r.size(), wr = blk.c.size(), P = hr * wr, ld = nb * P;
  parallel_for(
      nb * g.c,
      [&](std::int64_t plane) {
        std::int64_t b = plane / g.c, ci = plane % g.c;
        T* xp = gx + plane * g.h * g.w;
        for (std::int64_t t = 0; t < taps; ++t) {
          std::int64_t i = blk.r.t0 + t / nc, j = blk.c.t0 + t % nc;
          const T* src = dcol + (ci * taps + t) * ld + b * P;
          std::int64_t ih0 = blk.r.lo * g.sh - g.ph + i, iw0 = blk.c.lo * g.sw - g.pw + j;
          for (std::int64_t q = 0; q < hr; ++q, src += wr) {
            T* dst = xp + (ih0 + q * g.sh) * g.w + iw0;
            for (std::int64_t v = 0; v < wr; ++v) dst[v * g.sw] += src[v];
          }
        }
      },
      taps * P);
}

// y[b, o, block] = tmp[o, b * P + p] + bias[o] (tmp null: bias or zero only).
template <class T>
void scatter_block(const Conv2dGeom& g, const ConvBlock& blk, const T* tmp, const T* bias, std::int64_t nb, T* y) {
  std::int64_t hr = blk.r.size(), wr = blk.c.size(), P = hr * wr, ld = nb * P;
  parallel_for(
      nb * g.o,
      [&](std::int64_t idx) {
        std::int64_t b = idx / g.o, oc = idx % g.o;
        T add = bias ? bias[oc] : T(0);
        const T* src = tmp ? tmp + oc * ld + b * P : nullptr;
        T* dst = y + idx * g.ho * g.wo + blk.r.lo * g.wo + blk.c.lo;
        for (std::int64_t q = 0; q < hr; ++q, dst += g.wo) {
          if (src) {
            for (std::int64_t v = 0; v < wr; ++v) dst[v] = src[v] + add;
            src += wr;
          } else {
            for (std::int64_t v = 0; v < wr; ++v) dst[v] = add;
          }
        }
      },
      P);
}

// tmp[o, b * P + p] = gy[b, o, block]: the adjoint of scatter_block.
template <class T>
void gather_block(const Conv2dGeom& g, const ConvBlock& blk, const T* gy, std::int64_t nb, T* tmp) {
  std::int64_t hr = blk.r.size(), wr = blk.c.size(), P = hr * wr, ld = nb * P;
  parallel_for(
      nb * g.o,
      [&](std::int64_t idx) {
        std::int64_t b = idx / g.o, oc = idx % g.o;
        T* dst = tmp + oc * ld + b * P;
        const T* src = gy + idx * g.ho * g.wo + blk.r.lo * g.wo + blk.c.lo;
        for (std::int64_t q = 0; q < hr; ++q, src += g.wo, dst += wr)
          std::memcpy(dst, src, static_cast<std::size_t>(wr) * sizeof(T));
      },
      P);
}

// The row lowering of Conv::conv2d_forward: overwrites y.
template <class T>
void rows_forward(const Conv2dGeom& g, const T* x, const T* w, const T* bias, T* y) {
  if (g.n == 0 || g.o == 0 || g.ho <= 0 || g.wo <= 0) return;
  const std::int64_t howo = g.ho * g.wo, in_img = g.c * g.h * g.w, out_img = g.o * howo;
  const bool pointwise = is_pointwise(g);
  const auto blocks = conv_blocks(g);
  const bool whole = blocks.size() == 1;
  const std::int64_t chunk = conv_chunk(g, pointwise);
  for (std::int64_t b0 = 0; b0 < g.n; b0 += chunk) {
    const std::int64_t nb = std::min(chunk, g.n - b0);
    const T* xb = x + b0 * in_img;
    T* yb = y + b0 * out_img;
    for (const ConvBlock& blk : blocks) {
      const std::int64_t taps = blk.taps(), K = g.c * taps, P = blk.positions(), N = nb * P;
      if (taps == 0 || g.c == 0) {
        scatter_block<T>(g, blk, nullptr, bias, nb, yb);
        continue;
      }
      const T* wc = w;
      if (taps != g.kh * g.kw) {
        T* packed = scratch<T>(0, g.o * K);
        pack_weight(g, blk, w, packed);
        wc = packed;
      }
      const T* col = xb;
      if (!(pointwise && nb == 1)) {
        T* c = scratch<T>(1, K * N);
        im2col_block(g, blk, xb, nb, c);
        col = c;
      }
      if (whole && nb == 1) {
        Gemm::gemm(false, false, g.o, N, K, T(1), wc, K, col, N, T(0), yb, N);
        if (bias)
          parallel_for(
              g.o,
              [&](std::int64_t oc) {
                for (std::int64_t p = 0; p < P; ++p) yb[oc * P + p] += bias[oc];
              },
              P);
      } else {
        T* tmp = scratch<T>(2, g.o * N);
        Gemm::gemm(false, false, g.o, N, K, T(1), wc, K, col, N, T(0), tmp, N);
        scatter_block(g, blk, static_cast<const T*>(tmp), bias, nb, yb);
      }
    }
  }
}

// The row lowering of Conv::conv2d_backward: adds into gw and gx (either may
// be null), which the caller has zeroed.
template <class T>
void rows_backward(const Conv2dGeom& g, const T* gy, const T* x, const T* w, T* gx, T* gw) {
  const std::int64_t howo = g.ho * g.wo, in_img = g.c * g.h * g.w, out_img = g.o * howo;
  if ((!gx && !gw) || g.n == 0 || g.o == 0 || howo <= 0) return;
  const bool pointwise = is_pointwise(g);
  const auto blocks = conv_blocks(g);
  const bool whole = blocks.size() == 1;
  const std::int64_t chunk = conv_chunk(g, pointwise);
  for (std::int64_t b0 = 0; b0 < g.n; b0 += chunk) {
    const std::int64_t nb = std::min(chunk, g.n - b0);
    const T* xb = x + b0 * in_img;
    const T* gyb = gy + b0 * out_img;
    for (const ConvBlock& blk : blocks) {
      const std::int64_t taps = blk.taps(), K = g.c * taps, P = blk.positions(), N = nb * P;
      if (taps == 0 || g.c == 0) continue;
      const bool full = taps == g.kh * g.kw;
      const T* gyp = gyb;
      if (!(whole && nb == 1)) {
        T* t = scratch<T>(2, g.o * N);
        gather_block(g, blk, gyb, nb, t);
        gyp = t;
      }
      if (gw) {
        const T* col = xb;
        if (!(pointwise && nb == 1)) {
          T* c = scratch<T>(1, K * N);
          im2col_block(g, blk, xb, nb, c);
          col = c;
        }
        if (full) {
          Gemm::gemm(false, true, g.o, K, N, T(1), gyp, N, col, N, T(1), gw, K);
        } else {
          T* dwc = scratch<T>(3, g.o * K);
          Gemm::gemm(false, true, g.o, K, N, T(1), gyp, N, col, N, T(0), dwc, K);
          unpack_add_weight(g, blk, static_cast<const T*>(dwc), gw);
        }
      }
      if (gx) {
        T* gxb = gx + b0 * in_img;
        const T* wc = w;
        if (!full) {
          T* packed = scratch<T>(0, g.o * K);
          pack_weight(g, blk, w, packed);
          wc = packed;
        }
        if (pointwise && nb == 1) {
          Gemm::gemm(true, false, K, N, g.o, T(1), wc, K, gyp, N, T(0), gxb, N);
        } else {
          T* dcol = scratch<T>(1, K * N);
          Gemm::gemm(true, false, K, N, g.o, T(1), wc, K, gyp, N, T(0), dcol, N);
          col2im_add_block(g, blk, static_cast<const T*>(dcol), nb, gxb);
        }
      }
    }
  }
}

}  // namespace dml::cpu::conv_detail
