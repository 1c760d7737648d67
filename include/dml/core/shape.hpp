// dml/core/shape.hpp: a small fixed-capacity tensor shape.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>

#include "../config.hpp"

namespace dml {

// Shape holds up to kMaxRank non-negative extents. Rank 0 is a scalar.
class Shape {
 public:
  static constexpr int kMaxRank = 6;

  Shape() = default;
  // Throws dml::Error for a negative extent or a rank above kMaxRank.
  Shape(std::initializer_list<std::int64_t> dims) : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}
  explicit Shape(std::span<const std::int64_t> dims) {
    DML_CHECK(dims.size() <= static_cast<std::size_t>(kMaxRank), "shape of rank ", dims.size(),
              " exceeds the maximum rank ", kMaxRank);
    rank_ = static_cast<int>(dims.size());
    for (int i = 0; i < rank_; ++i) {
      DML_CHECK(dims[i] >= 0, "negative extent ", dims[i], " in dimension ", i, " of a shape");
      dims_[i] = dims[i];
    }
  }

  int rank() const noexcept { return rank_; }
  // Extent of dimension i; negative i counts from the back. Throws when out of range.
  std::int64_t operator[](int i) const { return dims_[index(i)]; }
  std::int64_t& operator[](int i) { return dims_[index(i)]; }

  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }

  // Normalises a possibly negative axis; throws naming the axis and shape.
  int index(int axis) const {
    int a = axis < 0 ? axis + rank_ : axis;
    DML_CHECK(a >= 0 && a < rank_, "axis ", axis, " is out of range for shape ", str());
    return a;
  }

  const std::int64_t* begin() const noexcept { return dims_.data(); }
  const std::int64_t* end() const noexcept { return dims_.data() + rank_; }
  std::span<const std::int64_t> dims() const noexcept { return {dims_.data(), static_cast<std::size_t>(rank_)}; }

  friend bool operator==(const Shape& a, const Shape& b) noexcept {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

  // "[2, 3]"; a scalar prints as "[]".
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

// Row-major strides of a shape, in elements.
inline std::array<std::int64_t, Shape::kMaxRank> contiguous_strides(const Shape& s) {
  std::array<std::int64_t, Shape::kMaxRank> st{};
  std::int64_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// NumPy broadcasting of two shapes; throws naming both shapes and the op.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  int r = a.rank() > b.rank() ? a.rank() : b.rank();
  std::array<std::int64_t, Shape::kMaxRank> out{};
  for (int i = 0; i < r; ++i) {
    int ia = a.rank() - r + i, ib = b.rank() - r + i;
    std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    DML_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a.str(), " and ", b.str(),
              " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return Shape(std::span<const std::int64_t>(out.data(), static_cast<std::size_t>(r)));
}

}  // namespace dml
