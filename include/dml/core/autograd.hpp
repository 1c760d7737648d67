// dml/core/autograd.hpp: the define-by-run graph: nodes, grad mode, recording.
//
// Every differentiable op computes its output, then calls detail::record with
// its inputs and one backward closure. The closure receives the gradient of the
// output and which inputs need a gradient, and returns one gradient per input
// (an undefined tensor where none is needed). Saved tensors are the only state
// a closure keeps. Tensor::backward (tensor.hpp) walks the graph.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../config.hpp"
#include "device.hpp"

namespace dml {

template <class T, class D>
class Tensor;

// Whether ops record a graph. Thread-local; NoGrad switches it off in a scope.
class GradMode {
 public:
  static bool enabled() noexcept { return flag(); }
  static void set_enabled(bool on) noexcept { flag() = on; }

 private:
  static bool& flag() noexcept {
    thread_local bool on = true;
    return on;
  }
};

// RAII guard for inference: no graph is recorded while it lives.
class NoGrad {
 public:
  NoGrad() noexcept : prev_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGrad() { GradMode::set_enabled(prev_); }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool prev_;
};

// Whether ops check what they compute for NaN and Inf. Thread-local, off by
// default; DetectAnomaly switches it on in a scope.
class AnomalyMode {
 public:
  static bool enabled() noexcept { return flag(); }
  static void set_enabled(bool on) noexcept { flag() = on; }

 private:
  static bool& flag() noexcept {
    thread_local bool on = false;
    return on;
  }
};

// RAII guard for hunting a NaN: while it lives, every op checks its forward
// output and every gradient its backward produces, and the first NaN or Inf
// throws dml::Error naming the op, its input shapes, the first non-finite
// index and whether the op's inputs (or incoming gradient) were finite. It
// costs a read of every value written (docs/tensor.md), so it is for
// debugging, not for training runs.
class DetectAnomaly {
 public:
  DetectAnomaly() noexcept : prev_(AnomalyMode::enabled()) { AnomalyMode::set_enabled(true); }
  ~DetectAnomaly() { AnomalyMode::set_enabled(prev_); }
  DetectAnomaly(const DetectAnomaly&) = delete;
  DetectAnomaly& operator=(const DetectAnomaly&) = delete;

 private:
  bool prev_;
};

// RAII: while it lives, Tensor<T, D>::backward on this thread calls f(leaf)
// once for every leaf tensor it propagates to, as soon as the pass is done
// with that leaf (its last consumer in the graph has run): from then on this
// backward pass no longer changes the leaf's gradient (undefined if no
// gradient reached it). train::GradientAverager starts all-reducing a bucket
// of gradients from here while the rest of the pass runs. Guards nest (the
// innermost is called); f must not call backward.
template <class T, class D>
class OnLeafGradient {
 public:
  using Fn = std::function<void(const Tensor<T, D>& leaf)>;
  explicit OnLeafGradient(Fn f) : f_(std::move(f)), prev_(slot()) { slot() = &f_; }
  ~OnLeafGradient() { slot() = prev_; }
  OnLeafGradient(const OnLeafGradient&) = delete;
  OnLeafGradient& operator=(const OnLeafGradient&) = delete;
  // The innermost guard's function on this thread, or null.
  static const Fn* current() noexcept { return slot(); }

 private:
  static const Fn*& slot() noexcept {
    thread_local const Fn* p = nullptr;
    return p;
  }
  Fn f_;
  const Fn* prev_;
};

// Which inputs of a node want a gradient.
class Needs {
 public:
  void set(std::size_t i) noexcept { bits_ |= (1u << i); }
  bool operator[](std::size_t i) const noexcept { return (bits_ >> i) & 1u; }
  bool any() const noexcept { return bits_ != 0; }

 private:
  std::uint32_t bits_ = 0;
};

namespace detail {

template <class T, class D>
struct TensorImpl;

template <class T, class D>
struct Node;

// Where the gradient of one input goes: the node that produced it, or the leaf
// tensor itself. Both empty when that input needs no gradient.
template <class T, class D>
struct Edge {
  std::shared_ptr<Node<T, D>> node;
  std::shared_ptr<TensorImpl<T, D>> leaf;
};

template <class T, class D>
struct Node {
  using Grads = std::vector<Tensor<T, D>>;
  using Backward = std::function<Grads(const Tensor<T, D>& grad_out, Needs needs)>;

  const char* name = "";
  std::string input_shapes;  // "[2, 3], [3]"; recorded only under DetectAnomaly
  std::vector<Edge<T, D>> edges;
  Needs needs;
  Backward backward;
  bool released = false;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Tears a long chain down iteratively: a recursive cascade of shared_ptr
  // destructors would overflow the stack for deep graphs never backpropagated.
  ~Node() {
    std::vector<std::shared_ptr<Node>> pending;
    for (auto& e : edges)
      if (e.node) pending.push_back(std::move(e.node));
    while (!pending.empty()) {
      std::shared_ptr<Node> n = std::move(pending.back());
      pending.pop_back();
      if (n.use_count() == 1)
        for (auto& e : n->edges)
          if (e.node) pending.push_back(std::move(e.node));
    }
  }

  // Drops the closure (and so the saved tensors) and the edges.
  void release() {
    backward = nullptr;
    edges.clear();
    edges.shrink_to_fit();
    released = true;
  }
};

}  // namespace detail
}  // namespace dml
