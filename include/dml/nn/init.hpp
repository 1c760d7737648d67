// dml/nn/init.hpp: in-place parameter initialisers, as torch.nn.init.
//
// Values are drawn on the host from a dml::Generator in row-major order and
// copied to the tensor's device, so a seed gives the same weights on both.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace dml::nn::init {

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field, as
// torch.nn.init._calculate_fan_in_and_fan_out. Throws for rank < 2.
struct Fans {
  std::int64_t in = 0, out = 0;
};
inline Fans fans(const Shape& s) {
  DML_CHECK(s.rank() >= 2, "init: fan in and fan out need a tensor of rank >= 2, got shape ", s.str());
  std::int64_t receptive = 1;
  for (int d = 2; d < s.rank(); ++d) receptive *= s[d];
  return {s[1] * receptive, s[0] * receptive};
}

enum class FanMode { In, Out };

namespace detail {
template <class T, class D, class F>
void fill_host(Tensor<T, D>& t, F&& draw) {
  std::vector<T> v(static_cast<std::size_t>(t.numel()));
  for (auto& x : v) x = static_cast<T>(draw());
  NoGrad no_grad;
  t.copy_(Tensor<T, D>::from_vector(v, t.shape()));
}
inline double fan(const Shape& s, FanMode mode) {
  Fans f = fans(s);
  std::int64_t n = mode == FanMode::In ? f.in : f.out;
  DML_CHECK(n > 0, "init: zero fan for shape ", s.str());
  return static_cast<double>(n);
}
}  // namespace detail

template <class T, class D>
void constant_(Tensor<T, D>& t, double value) {
  detail::fill_host(t, [&] { return value; });
}
// Uniform on [lo, hi).
template <class T, class D>
void uniform_(Tensor<T, D>& t, Generator& gen, double lo, double hi) {
  detail::fill_host(t, [&] { return lo + (hi - lo) * gen.uniform(); });
}
template <class T, class D>
void normal_(Tensor<T, D>& t, Generator& gen, double mean, double stddev) {
  detail::fill_host(t, [&] { return mean + stddev * gen.normal(); });
}
// Normal(0, gain / sqrt(fan)) with gain = sqrt(2 / (1 + a^2)) (leaky ReLU slope
// a; a = 0 is ReLU), as torch.nn.init.kaiming_normal_.
template <class T, class D>
void kaiming_normal_(Tensor<T, D>& t, Generator& gen, FanMode mode = FanMode::In, double a = 0) {
  double stddev = std::sqrt(2.0 / (1.0 + a * a)) / std::sqrt(detail::fan(t.shape(), mode));
  normal_(t, gen, 0.0, stddev);
}
// Uniform(-b, b) with b = sqrt(3) gain / sqrt(fan), as kaiming_uniform_. With
// a = sqrt(5) this is PyTorch's default Linear / Conv2d weight init, b = 1 / sqrt(fan_in).
template <class T, class D>
void kaiming_uniform_(Tensor<T, D>& t, Generator& gen, FanMode mode = FanMode::In, double a = 0) {
  double bound = std::sqrt(3.0) * std::sqrt(2.0 / (1.0 + a * a)) / std::sqrt(detail::fan(t.shape(), mode));
  uniform_(t, gen, -bound, bound);
}

}  // namespace dml::nn::init
