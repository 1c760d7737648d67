// dml/eval/host_matrix.hpp: the bridge from tensors to the raw-pointer
// evaluation and plotting functions, which work on host row-major float rows
// and int64 labels.
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "../config.hpp"
#include "../core/tensor.hpp"

namespace dml::eval {

// A tensor seen as n x dim host float rows. A Cpu float tensor is shared, not
// copied; any other element type or device is copied (and converted) once.
struct HostMatrix {
  Tensor<float, Cpu> values;  // [n, dim]
  std::int64_t rows = 0, cols = 0;
  const float* data() const { return values.data(); }
};

// x as a host matrix: rank 2 as it is, rank 1 as one column, higher ranks
// flattened to [dim(0), rest]. Throws dml::Error naming `who` for an
// undefined or rank-0 tensor.
template <class T, class D>
HostMatrix host_matrix(const Tensor<T, D>& x, const char* who) {
  static_assert(std::is_floating_point_v<T>, "host_matrix: embeddings must be float or double");
  DML_CHECK(x.defined(), who, ": the embedding tensor is undefined");
  DML_CHECK(x.rank() >= 1, who, ": expected an [N, dim] tensor, got a scalar");
  HostMatrix m;
  m.rows = x.dim(0);
  m.cols = x.rank() == 1 ? 1 : (m.rows == 0 ? 0 : x.numel() / m.rows);
  if constexpr (std::is_same_v<T, float> && std::is_same_v<D, Cpu>) {
    m.values = x.detach();
  } else {
    const std::vector<T> host = x.to_vector();
    std::vector<float> f(host.begin(), host.end());
    m.values = Tensor<float, Cpu>::from_vector(f);
  }
  return m;
}

// Labels from a tensor (any device, int64) or a vector, as a host vector.
template <class D>
std::vector<std::int64_t> host_labels(const Tensor<std::int64_t, D>& labels, const char* who) {
  DML_CHECK(labels.defined(), who, ": the label tensor is undefined");
  DML_CHECK(labels.rank() == 1, who, ": labels must be a 1-D tensor, got shape ", labels.shape().str());
  return labels.to_vector();
}

}  // namespace dml::eval
