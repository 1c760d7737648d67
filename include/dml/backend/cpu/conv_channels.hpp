// dml/backend/cpu/conv_channels.hpp: the channel lowering of a host
// convolution. The input is transposed once to channels-last (NHWC), so the
// lowered matrix is built from whole C-vectors (horizontally adjacent taps are
// even one contiguous run): A[(b, position), (i, j, c)]. GEMM: out[positions, o]
// = A @ w_block^T, written channels-last and transposed back to NCHW. Suits
// 16 or more input channels: every copy moves at least 64 bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "conv_common.hpp"
#include "gemm.hpp"
#include "parallel.hpp"

namespace dml::cpu::conv_detail {

// Tiles of a transpose: tasks of 32 channels of one image.
constexpr std::int64_t kTransposeTile = 32;

// dst[b, q, c] = src[b, c, q] for nb images of c channels and hw pixels.
template <class T>
void to_channels_last(const T* src, T* dst, std::int64_t nb, std::int64_t c, std::int64_t hw) {
  const std::int64_t tiles = (c + kTransposeTile - 1) / kTransposeTile;
  parallel_for(
      nb * tiles,
      [&](std::int64_t task) {
        std::int64_t b = task / tiles, c0 = (task % tiles) * kTransposeTile, c1 = std::min(c, c0 + kTransposeTile);
        const T* s = src + b * c * hw;
        T* d = dst + b * c * hw;
        for (std::int64_t q = 0; q < hw; ++q)
          for (std::int64_t ch = c0; ch < c1; ++ch) d[q * c + ch] = s[ch * hw + q];
      },
      kTransposeTile * hw);
}

// dst[b, c, q] = src[b, q, c] (+ bias[c] when bias is non-null).
template <class T>
void to_channels_first(const T* src, T* dst, std::int64_t nb, std::int64_t c, std::int64_t hw, const T* bias) {
  const std::int64_t tiles = (c + kTransposeTile - 1) / kTransposeTile;
  parallel_for(
      nb * tiles,
      [&](std::int64_t task) {
        std::int64_t b = task / tiles, c0 = (task % tiles) * kTransposeTile, c1 = std::min(c, c0 + kTransposeTile);
        const T* s = src + b * c * hw;
        T* d = dst + b * c * hw;
        for (std::int64_t ch = c0; ch < c1; ++ch) {
          const T add = bias ? bias[ch] : T(0);
          for (std::int64_t q = 0; q < hw; ++q) d[ch * hw + q] = s[q * c + ch] + add;
        }
      },
      kTransposeTile * hw);
}

// A[(b, p), (i, j, c)] = xt[b, ih, iw, c] over the block's positions p and taps.
template <class T>
void gather_rows_block(const Conv2dGeom& g, const ConvBlock& blk, const T* xt, std::int64_t nb, T* a) {
  const std::int64_t nc = blk.c.taps(), wr = blk.c.size(), P = blk.positions(), K = blk.taps() * g.c;
  const std::size_t run = static_cast<std::size_t>(nc * g.c) * sizeof(T);
  parallel_for(
      nb * P,
      [&](std::int64_t row) {
        std::int64_t b = row / P, q = row % P;
        std::int64_t oh = blk.r.lo + q / wr, ow = blk.c.lo + q % wr;
        std::int64_t ih0 = oh * g.sh - g.ph, iw = ow * g.sw - g.pw + blk.c.t0;
        T* dst = a + row * K;
        for (std::int64_t i = blk.r.t0; i < blk.r.t1; ++i, dst += nc * g.c)
          std::memcpy(dst, xt + ((b * g.h + ih0 + i) * g.w + iw) * g.c, run);
      },
      K);
}

// gxt[b, ih, iw, c] += dA[(b, p), (i, j, c)]: the adjoint of gather_rows_block.
// Tasks own (image, channel range) pairs, so no two write the same element.
template <class T>
void scatter_rows_add_block(const Conv2dGeom& g, const ConvBlock& blk, const T* da, std::int64_t nb, T* gxt) {
  const std::int64_t nr = blk.r.taps(), nc = blk.c.taps(), wr = blk.c.size(), P = blk.positions();
  const std::int64_t K = nr * nc * g.c;
  const std::int64_t cb = nb >= 2 * max_threads() ? g.c : std::min<std::int64_t>(g.c, 32);
  const std::int64_t tiles = (g.c + cb - 1) / cb;
  parallel_for(
      nb * tiles,
      [&](std::int64_t task) {
        std::int64_t b = task / tiles, c0 = (task % tiles) * cb, c1 = std::min(g.c, c0 + cb);
        for (std::int64_t q = 0; q < P; ++q) {
          std::int64_t oh = blk.r.lo + q / wr, ow = blk.c.lo + q % wr;
          std::int64_t ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw + blk.c.t0;
          const T* src = da + (b * P + q) * K;
          for (std::int64_t i = 0; i < nr; ++i)
            for (std::int64_t j = 0; j < nc; ++j) {
              T* dst = gxt + ((b * g.h + ih0 + blk.r.t0 + i) * g.w + iw0 + j) * g.c;
              const T* s = src + (i * nc + j) * g.c;
              for (std::int64_t ch = c0; ch < c1; ++ch) dst[ch] += s[ch];
            }
        }
      },
      P * K / tiles);
}

// wt[o, t, c] = w[o, c, t] over the kh * kw taps t: the weight taps-major.
template <class T>
void weight_to_taps_major(const Conv2dGeom& g, const T* w, T* wt) {
  const std::int64_t kk = g.kh * g.kw, size = g.c * kk;
  parallel_for(
      g.o,
      [&](std::int64_t o) {
        const T* s = w + o * size;
        T* d = wt + o * size;
        for (std::int64_t c = 0; c < g.c; ++c)
          for (std::int64_t t = 0; t < kk; ++t) d[t * g.c + c] = s[c * kk + t];
      },
      size);
}

// gw[o, c, t] = gwt[o, t, c]: the reverse of weight_to_taps_major.
template <class T>
void taps_major_to_weight(const Conv2dGeom& g, const T* gwt, T* gw) {
  const std::int64_t kk = g.kh * g.kw, size = g.c * kk;
  parallel_for(
      g.o,
      [&](std::int64_t o) {
        const T* s = gwt + o * size;
        T* d = gw + o * size;
        for (std::int64_t c = 0; c < g.c; ++c)
          for (std::int64_t t = 0; t < kk; ++t) d[c * kk + t] = s[t * g.c + c];
      },
      size);
}

// The block's weight columns out[o, (i, j, c)] = wt[o, r.t0 + i, c.t0 + j, c],
// copied as nr runs of nc * C; a block reading every tap uses wt itself.
template <class T>
const T* block_weight(const Conv2dGeom& g, const ConvBlock& blk, const T* wt, T* out) {
  if (blk.taps() == g.kh * g.kw) return wt;
  const std::int64_t nr = blk.r.taps(), run = blk.c.taps() * g.c, K = nr * run, full = g.kh * g.kw * g.c;
  parallel_for(
      g.o,
      [&](std::int64_t o) {
        for (std::int64_t i = 0; i < nr; ++i)
          std::memcpy(out + o * K + i * run, wt + o * full + ((blk.r.t0 + i) * g.kw + blk.c.t0) * g.c,
                      static_cast<std::size_t>(run) * sizeof(T));
      },
      K);
  return out;
}

// gwt[o, r.t0 + i, c.t0 + j, c] += dwc[o, (i, j, c)]: the adjoint of block_weight.
template <class T>
void block_weight_add(const Conv2dGeom& g, const ConvBlock& blk, const T* dwc, T* gwt) {
  const std::int64_t nr = blk.r.taps(), run = blk.c.taps() * g.c, K = nr * run, full = g.kh * g.kw * g.c;
  parallel_for(
      g.o,
      [&](std::int64_t o) {
        for (std::int64_t i = 0; i < nr; ++i) {
          const T* s = dwc + o * K + i * run;
          T* d = gwt + o * full + ((blk.r.t0 + i) * g.kw + blk.c.t0) * g.c;
          for (std::int64_t q = 0; q < run; ++q) d[q] += s[q];
        }
      },
      K);
}

// The direct forms of block_weight / block_weight_add, reading and writing w
// in its own [o, c, kh, kw] layout (strided), for blocks that use few taps.
// visit_block_weight calls f(packed, strided) for every weight element of the
// block: its index in the block's [o, (i, j, c)] matrix and in w.
template <class F>
void visit_block_weight(const Conv2dGeom& g, const ConvBlock& blk, F&& f) {
  const std::int64_t nr = blk.r.taps(), nc = blk.c.taps(), K = nr * nc * g.c;
  parallel_for(
      g.o,
      [&](std::int64_t o) {
        for (std::int64_t i = 0; i < nr; ++i)
          for (std::int64_t j = 0; j < nc; ++j)
            for (std::int64_t c = 0; c < g.c; ++c)
              f(o * K + (i * nc + j) * g.c + c, ((o * g.c + c) * g.kh + blk.r.t0 + i) * g.kw + blk.c.t0 + j);
      },
      K);
}
template <class T>
void gather_block_weight(const Conv2dGeom& g, const ConvBlock& blk, const T* w, T* out) {
  visit_block_weight(g, blk, [&](std::int64_t packed, std::int64_t strided) { out[packed] = w[strided]; });
}
template <class T>
void scatter_add_block_weight(const Conv2dGeom& g, const ConvBlock& blk, const T* dwc, T* gw) {
  visit_block_weight(g, blk, [&](std::int64_t packed, std::int64_t strided) { gw[strided] += dwc[packed]; });
}

// Where the block's weight column (i, j, c) lies in a row of w ([o, c, kh, kw]):
// offsets[(i * nc + j) * C + c] = c * kh * kw + (r.t0 + i) * kw + c.t0 + j. With
// dml's own float GEMM the forward reads the block's weight through these
// offsets, straight from w, instead of transposing w first.
inline void block_weight_offsets(const Conv2dGeom& g, const ConvBlock& blk, std::int64_t* offsets) {
  const std::int64_t nc = blk.c.taps(), kk = g.kh * g.kw;
  for (std::int64_t i = 0; i < blk.r.taps(); ++i)
    for (std::int64_t j = 0; j < nc; ++j)
      for (std::int64_t c = 0; c < g.c; ++c)
        offsets[(i * nc + j) * g.c + c] = c * kk + (blk.r.t0 + i) * g.kw + blk.c.t0 + j;
}

// Whether the blocks read at least kh * kw taps in all, so that transposing the
// whole weight once pays (a 3x3 conv on 1x1 maps reads only the centre tap:
// then each block gathers its taps from w directly).
inline bool transpose_weight_once(const Conv2dGeom& g, const std::vector<ConvBlock>& blocks) {
  std::int64_t taps = 0;
  for (const ConvBlock& b : blocks) taps += b.taps();
  return taps >= g.kh * g.kw;
}

// Rows of the block, channels-last: dst[b, p, :] = rows[(b, p), :] (scatter)
// or rows[(b, p), :] = src[b, p, :] (gather), for rows of `width` elements.
template <class T>
void move_block_rows(const Conv2dGeom& g, const ConvBlock& blk, std::int64_t nb, std::int64_t width, T* rows,
                     T* channels_last, bool to_rows) {
  const std::int64_t hr = blk.r.size(), wr = blk.c.size(), P = blk.positions();
  const std::size_t run = static_cast<std::size_t>(wr * width) * sizeof(T);
  parallel_for(
      nb * hr,
      [&](std::int64_t task) {
        std::int64_t b = task / hr, q = task % hr;
        T* r = rows + (b * P + q * wr) * width;
        T* c = channels_last + ((b * g.ho + blk.r.lo + q) * g.wo + blk.c.lo) * width;
        if (to_rows)
          std::memcpy(r, c, run);
        else
          std::memcpy(c, r, run);
      },
      wr * width);
}

// Whether a block's lowered matrix is the channels-last input itself: one tap
// reading pixel (oh, ow) for output (oh, ow) (a 1x1 conv, or a 3x3 conv on a
// 1x1 map whose only live tap is the centre).
inline bool rows_are_input(const Conv2dGeom& g, const ConvBlock& blk, bool whole) {
  return whole && blk.taps() == 1 && g.ho == g.h && g.wo == g.w && g.sh == 1 && g.sw == 1 && blk.r.t0 == g.ph &&
         blk.c.t0 == g.pw;
}

// The channel lowering of Conv::conv2d_forward: overwrites y.
template <class T>
void channels_forward(const Conv2dGeom& g, const T* x, const T* w, const T* bias, T* y) {
  const std::int64_t hw = g.h * g.w, howo = g.ho * g.wo, in_img = g.c * hw, out_img = g.o * howo;
  const auto blocks = conv_blocks(g);
  const bool whole = blocks.size() == 1;
  const std::int64_t chunk = conv_chunk(g, false);
  // dml's float GEMM reads the weight in place (block_weight_offsets); Eigen's
  // needs the block's weight as a matrix of its own.
  const bool in_place = std::is_same_v<T, float> && gemm_kernel::active();
  T* wt = nullptr;  // the weight, taps-major, when transposed once
  if (!in_place && transpose_weight_once(g, blocks)) {
    wt = scratch<T>(7, g.o * g.c * g.kh * g.kw);
    weight_to_taps_major(g, w, wt);
  }
  for (std::int64_t b0 = 0; b0 < g.n; b0 += chunk) {
    const std::int64_t nb = std::min(chunk, g.n - b0);
    const T* xt = x + b0 * in_img;
    if (hw > 1) {
      T* t = scratch<T>(4, nb * in_img);
      to_channels_last(x + b0 * in_img, t, nb, g.c, hw);
      xt = t;
    }
    T* yb = y + b0 * out_img;
    T* yt = howo == 1 ? yb : scratch<T>(3, nb * out_img);  // channels-last output
    for (const ConvBlock& blk : blocks) {
      const std::int64_t K = blk.taps() * g.c, M = nb * blk.positions();
      T* rows_out = whole ? yt : scratch<T>(2, M * g.o);
      if (K == 0) {
        std::fill(rows_out, rows_out + M * g.o, T(0));
      } else {
        const T* a = xt;
        if (!rows_are_input(g, blk, whole)) {
          T* t = scratch<T>(1, M * K);
          gather_rows_block(g, blk, xt, nb, t);
          a = t;
        }
        if constexpr (std::is_same_v<T, float>) {
          if (in_place) {
            std::int64_t* offsets = scratch<std::int64_t>(0, K);
            block_weight_offsets(g, blk, offsets);
            const gemm_kernel::Operand wb{w, g.c * g.kh * g.kw, true, offsets};  // op(B) = w_block^T
            gemm_kernel::run(M, g.o, K, 1.f, {a, K, false}, wb, 0.f, rows_out, g.o);
            if (!whole) move_block_rows(g, blk, nb, g.o, rows_out, yt, false);
            continue;
          }
        }
        const T* wc = nullptr;
        if (wt) {
          wc = block_weight(g, blk, static_cast<const T*>(wt), scratch<T>(0, g.o * K));
        } else {
          T* t = scratch<T>(0, g.o * K);
          gather_block_weight(g, blk, w, t);
          wc = t;
        }
        Gemm::gemm(false, true, M, g.o, K, T(1), a, K, wc, K, T(0), rows_out, g.o);
      }
      if (!whole) move_block_rows(g, blk, nb, g.o, rows_out, yt, false);
    }
    if (howo == 1) {
      if (bias)
        parallel_for(
            nb,
            [&](std::int64_t b) {
              for (std::int64_t o = 0; o < g.o; ++o) yb[b * g.o + o] += bias[o];
            },
            g.o);
    } else {
      to_channels_first(static_cast<const T*>(yt), yb, nb, g.o, howo, bias);
    }
  }
}

// The channel lowering of Conv::conv2d_backward: overwrites gw and gx (either
// may be null).
template <class T>
void channels_backward(const Conv2dGeom& g, const T* gy, const T* x, const T* w, T* gx, T* gw) {
  const std::int64_t hw = g.h * g.w, howo = g.ho * g.wo, in_img = g.c * hw, out_img = g.o * howo;
  const auto blocks = conv_blocks(g);
  const bool whole = blocks.size() == 1;
  const std::int64_t chunk = conv_chunk(g, false), wsize = g.o * g.c * g.kh * g.kw;
  const bool transposed = transpose_weight_once(g, blocks);
  T* wt = nullptr;   // the weight, taps-major (for gx), when transposed
  T* gwt = nullptr;  // its gradient, taps-major (for gw), when transposed
  if (gx && transposed) {
    wt = scratch<T>(7, wsize);
    weight_to_taps_major(g, w, wt);
  }
  if (gw && transposed) {
    gwt = scratch<T>(8, wsize);
    Memory<Cpu>::zero(gwt, sizeof(T) * static_cast<std::size_t>(wsize));
  } else if (gw) {  // the blocks add into gw itself
    Memory<Cpu>::zero(gw, sizeof(T) * static_cast<std::size_t>(wsize));
  }
  // gx: with pixels, the channels-last gradient gxt (zeroed below) is
  // transposed into gx at the end; 1x1 maps add into gx itself.
  if (gx && hw == 1) Memory<Cpu>::zero(gx, sizeof(T) * static_cast<std::size_t>(g.n * in_img));
  for (std::int64_t b0 = 0; b0 < g.n; b0 += chunk) {
    const std::int64_t nb = std::min(chunk, g.n - b0);
    const T* xt = x + b0 * in_img;
    if (gw && hw > 1) {
      T* t = scratch<T>(4, nb * in_img);
      to_channels_last(x + b0 * in_img, t, nb, g.c, hw);
      xt = t;
    }
    const T* gyt = gy + b0 * out_img;
    if (howo > 1) {
      T* t = scratch<T>(3, nb * out_img);
      to_channels_last(gy + b0 * out_img, t, nb, g.o, howo);
      gyt = t;
    }
    T* gxb = gx ? gx + b0 * in_img : nullptr;
    T* gxt = gxb;  // channels-last input gradient, zeroed
    if (gx && hw > 1) {
      gxt = scratch<T>(5, nb * in_img);
      Memory<Cpu>::zero(gxt, sizeof(T) * static_cast<std::size_t>(nb * in_img));
    }
    for (const ConvBlock& blk : blocks) {
      const std::int64_t K = blk.taps() * g.c, M = nb * blk.positions();
      if (K == 0) continue;
      const T* rows_gy = gyt;
      if (!whole) {
        T* t = scratch<T>(2, M * g.o);
        move_block_rows(g, blk, nb, g.o, t, const_cast<T*>(gyt), true);
        rows_gy = t;
      }
      const bool direct = rows_are_input(g, blk, whole);
      if (gw) {
        const T* a = xt;
        if (!direct) {
          T* t = scratch<T>(1, M * K);
          gather_rows_block(g, blk, xt, nb, t);
          a = t;
        }
        if (gwt && blk.taps() == g.kh * g.kw) {
          Gemm::gemm(true, false, g.o, K, M, T(1), rows_gy, g.o, a, K, T(1), gwt, K);
        } else {
          T* dwc = scratch<T>(6, g.o * K);
          Gemm::gemm(true, false, g.o, K, M, T(1), rows_gy, g.o, a, K, T(0), dwc, K);
          if (gwt) block_weight_add(g, blk, static_cast<const T*>(dwc), gwt);
          else scatter_add_block_weight(g, blk, static_cast<const T*>(dwc), gw);
        }
      }
      if (gx) {
        const T* wc = nullptr;
        if (wt) {
          wc = block_weight(g, blk, static_cast<const T*>(wt), scratch<T>(0, g.o * K));
        } else {
          T* t = scratch<T>(0, g.o * K);
          gather_block_weight(g, blk, w, t);
          wc = t;
        }
        if (direct) {  // the only block: its rows are the input pixels themselves
          Gemm::gemm(false, false, M, K, g.o, T(1), rows_gy, g.o, wc, K, T(0), gxt, K);
        } else {
          T* da = scratch<T>(1, M * K);
          Gemm::gemm(false, false, M, K, g.o, T(1), rows_gy, g.o, wc, K, T(0), da, K);
          scatter_rows_add_block(g, blk, static_cast<const T*>(da), nb, gxt);
        }
      }
    }
    if (gx && hw > 1) to_channels_first(static_cast<const T*>(gxt), gxb, nb, g.c, hw, static_cast<const T*>(nullptr));
  }
  if (gwt) taps_major_to_weight(g, static_cast<const T*>(gwt), gw);
}

}  // namespace dml::cpu::conv_detail
