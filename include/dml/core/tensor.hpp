// dml/core/tensor.hpp: Tensor<T, D>, a shared handle to a contiguous,
// device-tagged array that may carry a gradient and a place in the graph.
//
// Copying a Tensor copies the handle, not the data (as in PyTorch). reshape and
// detach return views that share storage; clone copies.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <memory>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "../config.hpp"
#include "autograd.hpp"
#include "device.hpp"
#include "random.hpp"
#include "shape.hpp"
#include "storage.hpp"

namespace dml {

template <class T, class D>
class Tensor;

namespace detail {
template <class T, class D, class F>
void record(Tensor<T, D>& out, const char* name, std::initializer_list<const Tensor<T, D>*> inputs, F&& backward);

// Resolves one -1 extent so the shape holds `numel` elements.
inline Shape infer_shape(std::initializer_list<std::int64_t> dims, std::int64_t numel) {
  std::vector<std::int64_t> d(dims);
  int free_axis = -1;
  std::int64_t known = 1;
  for (int i = 0; i < static_cast<int>(d.size()); ++i) {
    if (d[i] == -1) {
      DML_CHECK(free_axis < 0, "reshape: more than one -1 extent");
      free_axis = i;
    } else {
      known *= d[i];
    }
  }
  if (free_axis >= 0) {
    DML_CHECK(known > 0 && numel % known == 0, "reshape: cannot infer the -1 extent for ", numel, " elements");
    d[free_axis] = numel / known;
  }
  return Shape(std::span<const std::int64_t>(d.data(), d.size()));
}

template <class T, class D>
struct TensorImpl {
  Shape shape;
  std::shared_ptr<Storage<T, D>> storage;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;       // accumulated gradient of a leaf
  std::shared_ptr<Node<T, D>> grad_fn;    // the op that produced this tensor
};
}  // namespace detail

template <class T = float, class D = Cpu>
class Tensor {
  static_assert(Element<T>, "Tensor<T, D>: T must be float, double, int64_t, int32_t or uint8_t");
  static_assert(Device<D>, "Tensor<T, D>: D must be dml::Cpu or dml::Cuda");
  using Impl = detail::TensorImpl<T, D>;

 public:
  using value_type = T;
  using device_type = D;

  // An undefined tensor: defined() is false, most calls throw.
  Tensor() = default;

  // ---- factories ---------------------------------------------------------
  // Uninitialised memory of the given shape.
  static Tensor empty(const Shape& shape) {
    Tensor t;
    t.impl_ = std::make_shared<Impl>();
    t.impl_->shape = shape;
    t.impl_->storage = std::make_shared<Storage<T, D>>(static_cast<std::size_t>(shape.numel()));
    return t;
  }
  static Tensor zeros(const Shape& shape) {
    Tensor t = empty(shape);
    Memory<D>::zero(t.data(), t.bytes());
    return t;
  }
  static Tensor ones(const Shape& shape) { return full(shape, T(1)); }
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    Backend<D>::fill(t.data(), t.numel(), value);
    return t;
  }
  // Copies `values` (numel must match the shape; throws otherwise).
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    DML_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
              " values do not fill shape ", shape.str(), " (", shape.numel(), " elements)");
    Tensor t = empty(shape);
    Memory<D>::from_host(t.data(), values.data(), t.bytes());
    return t;
  }
  // A 1-D tensor holding `values`.
  static Tensor from_vector(const std::vector<T>& values) {
    return from_vector(values, Shape{static_cast<std::int64_t>(values.size())});
  }
  static Tensor scalar(T value) { return from_vector({value}, Shape{}); }
  // Normal(mean, stddev) samples drawn from `gen` (on the host, then copied).
  static Tensor randn(const Shape& shape, Generator& gen, double mean = 0, double stddev = 1)
    requires Real<T>
  {
    std::vector<T> v(static_cast<std::size_t>(shape.numel()));
    for (auto& x : v) x = static_cast<T>(mean + stddev * gen.normal());
    return from_vector(v, shape);
  }
  // Uniform [lo, hi) samples drawn from `gen`.
  static Tensor uniform(const Shape& shape, Generator& gen, double lo = 0, double hi = 1)
    requires Real<T>
  {
    std::vector<T> v(static_cast<std::size_t>(shape.numel()));
    for (auto& x : v) x = static_cast<T>(lo + (hi - lo) * gen.uniform());
    return from_vector(v, shape);
  }

  // ---- inspection --------------------------------------------------------
  bool defined() const noexcept { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  int rank() const { return shape().rank(); }
  // Extent of dimension i (negative counts from the back).
  std::int64_t dim(int i) const { return shape()[i]; }
  std::int64_t numel() const { return shape().numel(); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }

  // Raw pointer to the first element (a device pointer for Cuda).
  T* data() { return checked().storage->data(); }
  const T* data() const { return checked().storage->data(); }

  // A host copy of all elements in row-major order.
  std::vector<T> to_vector() const {
    std::vector<T> v(static_cast<std::size_t>(numel()));
    Memory<D>::to_host(v.data(), data(), bytes());
    return v;
  }
  // The element at a multi-index; throws on a wrong count or an out-of-range index.
  template <class... I>
  T at(I... index) const {
    const std::int64_t idx[] = {static_cast<std::int64_t>(index)..., 0};
    const Shape& s = shape();
    DML_CHECK(static_cast<int>(sizeof...(I)) == s.rank(), "at: ", sizeof...(I), " indices for a tensor of shape ",
              s.str());
    std::int64_t off = 0;
    for (int i = 0; i < s.rank(); ++i) {
      DML_CHECK(idx[i] >= 0 && idx[i] < s[i], "at: index ", idx[i], " is out of range in dimension ", i,
                " of shape ", s.str());
      off = off * s[i] + idx[i];
    }
    T v;
    Memory<D>::to_host(&v, data() + off, sizeof(T));
    return v;
  }
  // The value of a one-element tensor.
  T item() const {
    DML_CHECK(numel() == 1, "item: tensor of shape ", shape().str(), " has ", numel(), " elements, not 1");
    T v;
    Memory<D>::to_host(&v, data(), sizeof(T));
    return v;
  }

  // ---- views and copies --------------------------------------------------
  // Same storage, same graph position, no gradient tracking.
  Tensor detach() const {
    Tensor t;
    t.impl_ = std::make_shared<Impl>();
    t.impl_->shape = shape();
    t.impl_->storage = impl_->storage;
    return t;
  }
  // A deep copy that does not track gradients.
  Tensor clone() const {
    Tensor t = empty(shape());
    Memory<D>::copy(t.data(), data(), bytes());
    return t;
  }
  // Copies `src` (same shape) into this tensor's storage, outside the graph.
  void copy_(const Tensor& src) {
    DML_CHECK(src.shape() == shape(), "copy_: source shape ", src.shape().str(), " differs from destination ",
              shape().str());
    Memory<D>::copy(data(), src.data(), bytes());
  }
  // The same tensor on device D2 (a copy when the device differs).
  template <class D2>
  Tensor<T, D2> to() const {
    if constexpr (std::is_same_v<D, D2>) {
      return *this;
    } else {
      Tensor<T, D2> t = Tensor<T, D2>::empty(shape());
      if constexpr (std::is_same_v<D, Cpu>) Memory<D2>::from_host(t.data(), data(), bytes());
      else Memory<D>::to_host(t.data(), data(), bytes());
      return t;
    }
  }

  // Shares storage under a new shape (one extent may be -1). Differentiable.
  Tensor reshape(std::initializer_list<std::int64_t> dims) const {
    return reshape(detail::infer_shape(dims, numel()));
  }
  Tensor reshape(const Shape& new_shape) const;
  Tensor view(const Shape& new_shape) const { return reshape(new_shape); }

  // ---- autograd ----------------------------------------------------------
  bool requires_grad() const { return checked().requires_grad; }
  // Marks a leaf as wanting a gradient. Throws for a non-leaf or a non-real type.
  Tensor& requires_grad_(bool on = true) {
    static_assert(Real<T>, "only float and double tensors can require gradients");
    DML_CHECK(!checked().grad_fn, "requires_grad_: only leaf tensors can change requires_grad");
    impl_->requires_grad = on;
    return *this;
  }
  bool is_leaf() const { return !checked().grad_fn; }
  // The accumulated gradient of a leaf; undefined before the first backward.
  Tensor grad() const {
    Tensor g;
    g.impl_ = checked().grad;
    return g;
  }
  // Drops the accumulated gradient.
  void zero_grad() { checked().grad.reset(); }
  // Replaces the accumulated gradient (used by optimisers and checkpoints).
  void set_grad(const Tensor& g) {
    DML_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient shape ", g.shape().str(),
              " differs from tensor shape ", shape().str());
    checked().grad = g.impl_;
  }

  // Backpropagates from a one-element tensor (seed gradient 1).
  void backward() const {
    DML_CHECK(numel() == 1, "backward: called on a tensor of shape ", shape().str(),
              "; pass a gradient for a non-scalar output");
    backward(Tensor::ones(shape()));
  }
  // Backpropagates with the given gradient of this tensor (same shape).
  void backward(const Tensor& grad_output) const;

  // The producing node (for the engine and tests); null for leaves.
  const std::shared_ptr<detail::Node<T, D>>& grad_fn() const { return checked().grad_fn; }
  std::shared_ptr<Impl> impl() const { return impl_; }
  // Two handles to the same tensor.
  bool same(const Tensor& o) const noexcept { return impl_ == o.impl_; }
  bool shares_storage(const Tensor& o) const { return checked().storage == o.checked().storage; }

 private:
  template <class, class>
  friend class Tensor;
  template <class U, class E, class F>
  friend void detail::record(Tensor<U, E>&, const char*, std::initializer_list<const Tensor<U, E>*>, F&&);

  Impl& checked() const {
    DML_CHECK(impl_ != nullptr, "operation on an undefined tensor");
    return *impl_;
  }

  std::shared_ptr<Impl> impl_;
};

// ---- recording ops ---------------------------------------------------------
namespace detail {

// ---- anomaly mode (DetectAnomaly) ----
// The flat index of the first NaN or Inf of t, or -1; "nan"/"inf"/"-inf" into `what`.
template <class T, class D>
std::int64_t first_non_finite(const Tensor<T, D>& t, std::string* what = nullptr) {
  if constexpr (!std::is_floating_point_v<T>) {
    return -1;
  } else {
    if (!t.defined() || t.numel() == 0) return -1;
    std::vector<T> host;
    const T* p = nullptr;
    if constexpr (std::is_same_v<D, Cpu>) {
      p = t.data();
    } else {
      host = t.to_vector();
      p = host.data();
    }
    const std::int64_t n = t.numel();
    for (std::int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) {
        if (what) *what = std::isnan(p[i]) ? "nan" : (p[i] > 0 ? "inf" : "-inf");
        return i;
      }
    return -1;
  }
}
// "index 5 = [1, 2] of [2, 3]".
inline std::string index_in(std::int64_t flat, const Shape& s) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(s.rank()));
  std::int64_t r = flat;
  for (int i = s.rank() - 1; i >= 0; --i) {
    idx[static_cast<std::size_t>(i)] = s[i] ? r % s[i] : 0;
    r = s[i] ? r / s[i] : 0;
  }
  std::string m = "[";
  for (std::size_t i = 0; i < idx.size(); ++i) m += (i ? ", " : "") + std::to_string(idx[i]);
  return concat("index ", flat, " = ", m, "] of ", s.str());
}
template <class T, class D>
std::string shapes_of(std::initializer_list<const Tensor<T, D>*> inputs) {
  std::string s;
  for (const Tensor<T, D>* in : inputs) {
    if (!s.empty()) s += ", ";
    s += in && in->defined() ? in->shape().str() : std::string("none");
  }
  return s;
}
// Throws naming the op when its forward output holds a NaN or Inf, and says
// which input (if any) already held one.
template <class T, class D>
void check_forward(const Tensor<T, D>& out, const char* name, std::initializer_list<const Tensor<T, D>*> inputs) {
  std::string what;
  const std::int64_t at = first_non_finite(out, &what);
  if (at < 0) return;
  std::string source = "its inputs were finite";
  std::size_t i = 0;
  for (const Tensor<T, D>* in : inputs) {
    std::string w;
    if (in) {
      if (std::int64_t j = first_non_finite(*in, &w); j >= 0) {
        source = concat("input ", i, " already held ", w, " at ", index_in(j, in->shape()));
        break;
      }
    }
    ++i;
  }
  throw Error(concat("DetectAnomaly: op '", name, "' (inputs ", shapes_of(inputs), ") produced ", what, " at ",
                     index_in(at, out.shape()), " of its output; ", source));
}

// Hooks `out` into the graph when grad mode is on and any input requires a
// gradient. `backward(grad_out, needs)` returns one gradient per input.
// Under DetectAnomaly, first checks `out` (see check_forward).
template <class T, class D, class F>
void record(Tensor<T, D>& out, const char* name, std::initializer_list<const Tensor<T, D>*> inputs, F&& backward) {
  if (AnomalyMode::enabled()) check_forward(out, name, inputs);
  if (!GradMode::enabled()) return;
  auto node = std::make_shared<Node<T, D>>();
  std::size_t i = 0;
  for (const Tensor<T, D>* in : inputs) {
    Edge<T, D> e;
    if (in && in->defined()) {
      auto& impl = *in->impl_;
      if (impl.grad_fn) {
        e.node = impl.grad_fn;
        node->needs.set(i);
      } else if (impl.requires_grad) {
        e.leaf = in->impl_;
        node->needs.set(i);
      }
    }
    node->edges.push_back(std::move(e));
    ++i;
  }
  if (!node->needs.any()) return;
  node->name = name;
  if (AnomalyMode::enabled()) node->input_shapes = shapes_of(inputs);
  node->backward = std::forward<F>(backward);
  out.impl_->grad_fn = std::move(node);
  out.impl_->requires_grad = true;
}

// a + b into a new tensor (no graph); both have the same shape.
template <class T, class D>
Tensor<T, D> add_raw(const Tensor<T, D>& a, const Tensor<T, D>& b) {
  Tensor<T, D> out = Tensor<T, D>::empty(a.shape());
  Backend<D>::add(a.data(), b.data(), out.data(), a.numel());
  return out;
}

}  // namespace detail

template <class T, class D>
Tensor<T, D> Tensor<T, D>::reshape(const Shape& new_shape) const {
  DML_CHECK(new_shape.numel() == numel(), "reshape: cannot view shape ", shape().str(), " (", numel(),
            " elements) as ", new_shape.str());
  Tensor out;
  out.impl_ = std::make_shared<Impl>();
  out.impl_->shape = new_shape;
  out.impl_->storage = impl_->storage;
  Shape old = shape();
  detail::record(out, "reshape", {this}, [old](const Tensor& g, Needs) {
    return std::vector<Tensor>{g.reshape(old)};
  });
  return out;
}

template <class T, class D>
void Tensor<T, D>::backward(const Tensor& grad_output) const {
  using NodeT = detail::Node<T, D>;
  DML_CHECK(grad_output.shape() == shape(), "backward: gradient shape ", grad_output.shape().str(),
            " differs from output shape ", shape().str());
  NoGrad no_grad;  // backward closures build no graph of their own
  const Impl& root = checked();
  if (!root.grad_fn) {
    DML_CHECK(root.requires_grad, "backward: tensor does not require grad and has no graph");
    Tensor self = *this;
    if (!root.grad) self.impl_->grad = grad_output.clone().impl_;
    else Backend<D>::add(root.grad->storage->data(), grad_output.data(), root.grad->storage->data(), numel());
    if (const auto* hook = OnLeafGradient<T, D>::current()) (*hook)(self);
    return;
  }

  // Iterative post-order DFS: order holds every node after all its consumers' inputs.
  std::vector<std::shared_ptr<NodeT>> order;
  std::unordered_map<NodeT*, bool> visited;
  std::vector<std::pair<std::shared_ptr<NodeT>, std::size_t>> stack;
  stack.emplace_back(root.grad_fn, 0);
  visited[root.grad_fn.get()] = true;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    DML_CHECK(!node->released, "backward: the graph through '", node->name,
              "' was already freed by an earlier backward(); recompute the forward pass");
    if (next < node->edges.size()) {
      auto child = node->edges[next++].node;
      if (child && !visited[child.get()]) {
        visited[child.get()] = true;
        stack.emplace_back(std::move(child), 0);
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // With an OnLeafGradient hook: the step (index into the reversed order) of each leaf's last
  // consumer, after which the hook gets the leaf.
  const auto* hook = OnLeafGradient<T, D>::current();
  std::unordered_map<Impl*, std::size_t> last_use;
  if (hook)
    for (std::size_t k = 0; k < order.size(); ++k)
      for (const auto& e : order[order.size() - 1 - k]->edges)
        if (e.leaf) last_use[e.leaf.get()] = k;
  const auto leaves_done = [&](const NodeT& node, std::size_t k) {
    for (std::size_t i = 0; i < node.edges.size(); ++i) {
      const auto& leaf = node.edges[i].leaf;
      if (!leaf || last_use[leaf.get()] != k) continue;
      bool repeated = false;  // the same leaf twice among this node's inputs: once
      for (std::size_t j = 0; j < i; ++j) repeated |= node.edges[j].leaf == leaf;
      if (repeated) continue;
      Tensor t;
      t.impl_ = leaf;
      (*hook)(t);
    }
  };

  std::unordered_map<NodeT*, Tensor> grads;
  grads[root.grad_fn.get()] = grad_output;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    NodeT& node = **it;
    const auto step = static_cast<std::size_t>(it - order.rbegin());
    auto found = grads.find(&node);
    if (found == grads.end()) {
      if (hook) leaves_done(node, step);
      node.release();
      continue;
    }
    Tensor g = std::move(found->second);
    grads.erase(found);
    std::vector<Tensor> in_grads = node.backward(g, node.needs);
    if (AnomalyMode::enabled())
      for (std::size_t i = 0; i < in_grads.size(); ++i) {
        std::string what, w;
        const std::int64_t at = detail::first_non_finite(in_grads[i], &what);
        if (at < 0) continue;
        const std::int64_t j = detail::first_non_finite(g, &w);
        throw Error(::dml::detail::concat(
            "DetectAnomaly: the backward of op '", node.name, "' (inputs ",
            node.input_shapes.empty() ? std::string("not recorded") : node.input_shapes, ") produced ", what,
            " at ", detail::index_in(at, in_grads[i].shape()), " of the gradient for input ", i, "; ",
            j < 0 ? std::string("the incoming gradient was finite")
                  : ::dml::detail::concat("the incoming gradient already held ", w, " at ",
                                          detail::index_in(j, g.shape()))));
      }
    for (std::size_t i = 0; i < node.edges.size() && i < in_grads.size(); ++i) {
      const auto& edge = node.edges[i];
      Tensor& gi = in_grads[i];
      if (!gi.defined() || (!edge.node && !edge.leaf)) continue;
      if (edge.node) {
        auto [slot, fresh] = grads.try_emplace(edge.node.get(), gi);
        // A second contribution: add out of place, since gi may alias another gradient.
        if (!fresh) slot->second = detail::add_raw(slot->second, gi);
      } else {
        Impl& leaf = *edge.leaf;
        DML_CHECK(gi.shape() == leaf.shape, "backward: op '", node.name, "' produced a gradient of shape ",
                  gi.shape().str(), " for an input of shape ", leaf.shape.str());
        // The first contribution: kept as it is when nothing else holds it or its
        // storage (a fresh gradient, the usual case), else copied.
        if (!leaf.grad) leaf.grad = gi.impl_.use_count() == 1 && gi.impl_->storage.use_count() == 1 && !gi.impl_->grad_fn
                                        ? std::move(gi.impl_)
                                        : gi.clone().impl_;
        else Backend<D>::add(leaf.grad->storage->data(), gi.data(), leaf.grad->storage->data(), gi.numel());
      }
    }
    if (hook) leaves_done(node, step);
    node.release();
  }
}

}  // namespace dml
