// dml/nn/module.hpp: Module, the base of every layer: named parameters,
// buffers and children, train/eval mode, and state dicts.
//
// Names follow PyTorch: a child registered as "layer1" contributes its own
// names under "layer1." (so `layer1.0.conv1.weight`). A module holds handles
// to its tensors; the registry holds the same handles. Modules never rebind a
// registered tensor: loading and optimisers write into its storage, so a
// handle taken from parameters() stays valid for the module's lifetime.
//
// Modules are neither copyable nor movable: parameters are shared handles (a
// copy would alias the original's weights) and the registry points at member
// sub-modules. Build them in place (guaranteed copy elision makes
// `auto m = make_module();` work), hold them by unique_ptr, or use clone-by-
// state: `b.load_state_dict(a.state_dict())`.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "../config.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace dml::nn {

// A parameter or buffer as a state dict holds it: a tensor of the module's
// element type, or an int64 counter (BatchNorm's num_batches_tracked).
template <class T, class D>
using StateTensor = std::variant<Tensor<T, D>, Tensor<std::int64_t, D>>;

namespace detail {
template <class T, class D>
const Shape& state_shape(const StateTensor<T, D>& t) {
  return std::visit([](const auto& x) -> const Shape& { return x.shape(); }, t);
}
template <class T, class D>
const char* state_type(const StateTensor<T, D>& t) {
  return std::holds_alternative<Tensor<T, D>>(t) ? (std::is_same_v<T, float> ? "float32" : "float64") : "int64";
}
inline std::string join(const std::vector<std::string>& names, std::size_t limit = 20) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > limit) s += ", ... (" + std::to_string(names.size() - limit) + " more)";
  return s;
}
}  // namespace detail

// Named tensors in insertion order (the module's registration order, as
// PyTorch's OrderedDict) with lookup by name.
template <class T, class D>
class StateDict {
 public:
  using Entry = StateTensor<T, D>;
  using Item = std::pair<std::string, Entry>;

  // Adds an entry; throws dml::Error when the name is already present.
  void insert(std::string name, Entry value) {
    DML_CHECK(!index_.contains(name), "StateDict: duplicate name '", name, "'");
    index_.emplace(name, items_.size());
    items_.emplace_back(std::move(name), std::move(value));
  }
  // Replaces or adds an entry.
  void set(const std::string& name, Entry value) {
    if (auto it = index_.find(name); it != index_.end())
      items_[it->second].second = std::move(value);
    else
      insert(name, std::move(value));
  }
  // Removes an entry if present; returns whether it was.
  bool erase(const std::string& name) {
    auto it = index_.find(name);
    if (it == index_.end()) return false;
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(it->second));
    index_.clear();
    for (std::size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first, i);
    return true;
  }
  // The entry of that name, or null.
  const Entry* find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &items_[it->second].second;
  }
  bool contains(const std::string& name) const { return index_.contains(name); }
  // The entry of that name; throws dml::Error naming it when absent.
  const Entry& at(const std::string& name) const {
    const Entry* e = find(name);
    DML_CHECK(e != nullptr, "StateDict: no entry named '", name, "'");
    return *e;
  }
  // The floating tensor of that name; throws when absent or an int64 buffer.
  const Tensor<T, D>& tensor(const std::string& name) const {
    const Entry& e = at(name);
    DML_CHECK((std::holds_alternative<Tensor<T, D>>(e)), "StateDict: '", name, "' is an int64 buffer");
    return std::get<Tensor<T, D>>(e);
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    k.reserve(items_.size());
    for (const auto& it : items_) k.push_back(it.first);
    return k;
  }
  std::size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }
  auto begin() const noexcept { return items_.begin(); }
  auto end() const noexcept { return items_.end(); }

 private:
  std::vector<Item> items_;
  std::unordered_map<std::string, std::size_t> index_;
};

// What load_state_dict ignored (non-strict) or would have rejected (strict).
struct LoadResult {
  std::vector<std::string> missing;     // in the module, not in the state dict
  std::vector<std::string> unexpected;  // in the state dict, not in the module
};

template <class T = float, class D = Cpu>
class Module {
  static_assert(Real<T>, "nn::Module<T, D>: T must be float or double");

 public:
  using TensorT = Tensor<T, D>;
  using IndexTensor = Tensor<std::int64_t, D>;

  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  // The layer's computation. Containers without a single-input forward throw.
  virtual TensorT forward(const TensorT& x) {
    (void)x;
    throw Error(::dml::detail::concat(type_name(), ": this module has no forward(x)"));
  }
  TensorT operator()(const TensorT& x) { return forward(x); }
  // A short name for messages ("Conv2d", "ResNet18", ...).
  virtual std::string type_name() const { return "Module"; }

  // Training mode (batch statistics, active dropout) for this module and all
  // its descendants; eval() is train(false).
  virtual void train(bool on = true) {
    training_ = on;
    for (auto& [name, child] : children_) child->train(on);
  }
  void eval() { train(false); }
  bool is_training() const noexcept { return training_; }

  // Every parameter, depth first in registration order (the optimiser's view).
  std::vector<TensorT> parameters() const {
    std::vector<TensorT> out;
    for (auto& [name, t] : named_parameters()) out.push_back(t);
    return out;
  }
  std::vector<std::pair<std::string, TensorT>> named_parameters() const {
    std::vector<std::pair<std::string, TensorT>> out;
    visit("", [&](const std::string& prefix, const Module& m) {
      for (const auto& [name, t] : m.params_) out.emplace_back(prefix + name, t);
    });
    return out;
  }
  std::vector<std::pair<std::string, StateTensor<T, D>>> named_buffers() const {
    std::vector<std::pair<std::string, StateTensor<T, D>>> out;
    visit("", [&](const std::string& prefix, const Module& m) {
      for (const auto& [name, t] : m.buffers_) out.emplace_back(prefix + name, t);
    });
    return out;
  }
  // Each module's random generators (dropout masks), for checkpoints.
  std::vector<std::pair<std::string, Generator*>> named_generators() {
    std::vector<std::pair<std::string, Generator*>> out;
    visit("", [&](const std::string& prefix, const Module& m) {
      for (const auto& [name, g] : m.generators_) out.emplace_back(prefix + name, g);
    });
    return out;
  }
  // Direct children, in registration order.
  std::vector<std::pair<std::string, Module*>> named_children() const { return children_; }
  // This module ("") and every descendant, depth first, each with its dotted
  // prefix ("layer1.0.bn1." for layer1.0.bn1).
  std::vector<std::pair<std::string, const Module*>> named_modules() const {
    std::vector<std::pair<std::string, const Module*>> out;
    visit("", [&](const std::string& prefix, const Module& m) { out.emplace_back(prefix, &m); });
    return out;
  }

  // Parameters and buffers by dotted name, in PyTorch's order: per module its
  // own parameters, then its own buffers, then each child. The entries are
  // live handles: writing into them writes into the module.
  StateDict<T, D> state_dict() const {
    StateDict<T, D> sd;
    visit("", [&](const std::string& prefix, const Module& m) {
      for (const auto& [name, t] : m.params_) sd.insert(prefix + name, t);
      for (const auto& [name, t] : m.buffers_) sd.insert(prefix + name, t);
    });
    return sd;
  }

  // Copies the entries of `sd` into this module's parameters and buffers.
  // Throws dml::Error, changing nothing, when an entry has the wrong shape or
  // element type, and (strict) when names are missing or unexpected; the
  // message "load_state_dict into <Module>: 'key': expected float32 [2, 4],
  // found float32 [2, 3]; missing keys: ..." lists every offending name. Non-strict loading skips those names
  // and reports them.
  LoadResult load_state_dict(const StateDict<T, D>& sd, bool strict = true) {
    StateDict<T, D> own = state_dict();
    LoadResult res;
    std::vector<std::string> mismatched;
    for (const auto& [name, dst] : own) {
      const StateTensor<T, D>* src = sd.find(name);
      if (!src) {
        res.missing.push_back(name);
        continue;
      }
      if (src->index() != dst.index() || !(detail::state_shape<T, D>(*src) == detail::state_shape<T, D>(dst)))
        mismatched.push_back("'" + name + "': expected " + detail::state_type<T, D>(dst) + " " +
                             detail::state_shape<T, D>(dst).str() + ", found " + detail::state_type<T, D>(*src) +
                             " " + detail::state_shape<T, D>(*src).str());
    }
    for (const auto& [name, src] : sd)
      if (!own.contains(name)) res.unexpected.push_back(name);
    std::string msg;
    for (const std::string& m : mismatched) msg += "; " + m;
    if (strict && !res.missing.empty()) msg += "; missing keys: " + detail::join(res.missing);
    if (strict && !res.unexpected.empty()) msg += "; unexpected keys: " + detail::join(res.unexpected);
    DML_CHECK(msg.empty(), "load_state_dict into ", type_name(), ":", msg.substr(1));
    NoGrad no_grad;
    for (const auto& [name, dst] : own) {
      const StateTensor<T, D>* src = sd.find(name);
      if (!src) continue;
      std::visit(
          [&](const auto& d) {
            using Tn = std::decay_t<decltype(d)>;
            Tn target = d;
            const Tn& from = std::get<Tn>(*src);
            if (!target.same(from) && !target.shares_storage(from)) target.copy_(from);
          },
          dst);
    }
    notify_state_loaded();
    return res;
  }

  // Total element count of the parameters (buffers excluded).
  std::int64_t num_parameters() const {
    std::int64_t n = 0;
    for (const auto& [name, t] : named_parameters()) n += t.numel();
    return n;
  }
  // Drops every parameter's accumulated gradient.
  void zero_grad() {
    for (auto& t : parameters()) t.zero_grad();
  }

 protected:
  // Called on this module and every descendant after load_state_dict wrote new values into
  // parameters and buffers: a module that keeps host copies of small buffers (so that reading
  // them needs no device round trip) refreshes them here.
  virtual void on_state_loaded() {}

  // Registers a parameter (marked requires_grad) and returns its handle.
  // Names must be unique within the module and contain no '.'.
  TensorT register_parameter(const std::string& name, TensorT t) {
    check_name(name);
    DML_CHECK(t.defined(), type_name(), ": parameter '", name, "' is an undefined tensor");
    t.requires_grad_(true);
    params_.emplace_back(name, t);
    return t;
  }
  TensorT register_buffer(const std::string& name, TensorT t) {
    check_name(name);
    buffers_.emplace_back(name, StateTensor<T, D>(t));
    return t;
  }
  IndexTensor register_buffer(const std::string& name, IndexTensor t) {
    check_name(name);
    buffers_.emplace_back(name, StateTensor<T, D>(t));
    return t;
  }
  // Registers a member sub-module (not owned). Returns it.
  template <class M>
  M& register_module(const std::string& name, M& child) {
    static_assert(std::is_base_of_v<Module, M>, "register_module: not a Module<T, D>");
    check_name(name);
    child.train(training_);
    children_.emplace_back(name, &child);
    return child;
  }
  // Registers and owns a heap-allocated sub-module. Returns it.
  template <class M>
  M& register_module(const std::string& name, std::unique_ptr<M> child) {
    DML_CHECK(child != nullptr, type_name(), ": sub-module '", name, "' is null");
    M& ref = register_module(name, *child);
    owned_.push_back(std::move(child));
    return ref;
  }
  // Registers a random generator the module draws from, for checkpoints.
  void register_generator(const std::string& name, Generator& g) {
    check_name(name);
    generators_.emplace_back(name, &g);
  }

 private:
  void notify_state_loaded() {
    on_state_loaded();
    for (auto& [name, child] : children_) child->notify_state_loaded();
  }
  void check_name(const std::string& name) const {
    DML_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name(), ": invalid name '", name,
              "' (empty or containing '.')");
    auto taken = [&](const auto& list) {
      return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
    };
    DML_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_) && !taken(generators_), type_name(), ": name '",
              name, "' is already registered");
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) const {
    f(prefix, *this);
    for (const auto& [name, child] : children_) child->visit(prefix + name + ".", f);
  }

  bool training_ = true;
  std::vector<std::pair<std::string, TensorT>> params_;
  std::vector<std::pair<std::string, StateTensor<T, D>>> buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  std::vector<std::pair<std::string, Generator*>> generators_;
  std::vector<std::unique_ptr<Module>> owned_;
};

}  // namespace dml::nn
