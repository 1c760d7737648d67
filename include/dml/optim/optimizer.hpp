// dml/optim/optimizer.hpp: what every optimiser shares: parameter groups, the
// default weight-decay grouping of a module, per-group hyper-parameters,
// zero_grad, and the export/import of the per-parameter state.
//
// An update rule's options (optim::SGD, optim::Adam, optim::AdamW) are plain
// aggregates: `optim::AdamW{.lr = 1e-3}` is a value that holds no state and can
// be copied around (the Learner takes one). Binding options to parameters,
//   auto opt = optim::make(optim::SGD{.lr = 0.1, .momentum = 0.9}, model);
// gives a BoundOptimizer<Options, T, D>, which derives from the type-erased
// Optimizer<T, D> and owns the state (allocated at each parameter's first
// update, then updated in place by one fused kernel per parameter).
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../core/tensor.hpp"
#include "../nn/module.hpp"

namespace dml::optim {

// A parameter and the name that keys its state in state_dict().
template <class T = float, class D = Cpu>
using NamedParam = std::pair<std::string, Tensor<T, D>>;

// Parameters that share hyper-parameters. An unset lr / weight_decay takes
// the options' value. A parameter with an empty name is named by its index
// in the optimiser's flat parameter list ("0", "1", ...).
template <class T = float, class D = Cpu>
struct ParamGroup {
  std::vector<NamedParam<T, D>> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;
};

// One parameter's optimiser state: the rule's buffers (undefined until the
// parameter's first update) and its update count (rules that keep one).
template <class T, class D>
struct ParamState {
  std::vector<Tensor<T, D>> buffers;
  std::int64_t step = 0;
};

// What BoundOptimizer needs from an options aggregate. Besides these, the
// rule has `template <class T, class D> void update(Tensor<T, D>& p,
// const Tensor<T, D>& g, ParamState<T, D>& s) const`, which updates p and s
// in place from the gradient g using the options' (the group's) values.
template <class O>
concept Options = std::copyable<O> && requires(O o, const O& co, double x) {
  { O::kName } -> std::convertible_to<const char*>;
  { O::kStateNames.size() } -> std::convertible_to<std::size_t>;
  { O::kPerParamStep } -> std::convertible_to<bool>;
  requires std::same_as<decltype(o.lr), double>;
  requires std::same_as<decltype(o.weight_decay), double>;
  co.validate();                                               // throws dml::Error on bad values
  { co.has_momentum() } -> std::convertible_to<bool>;          // whether momentum cycling applies
  { co.cycled_momentum() } -> std::convertible_to<double>;     // SGD momentum / Adam beta1
  o.set_cycled_momentum(x);
};

namespace detail {
inline void check_rate(double x, const char* what, const char* who) {
  DML_CHECK(std::isfinite(x) && x >= 0, who, ": ", what, " must be finite and >= 0, got ", x);
}
inline void check_unit(double x, const char* what, const char* who) {
  DML_CHECK(x >= 0 && x < 1, who, ": ", what, " must lie in [0, 1), got ", x);
}
}  // namespace detail

// The parameters of `m` with `prefix` prepended to each name (for example
// "head." when body and head are optimised together).
template <class T, class D>
std::vector<NamedParam<T, D>> named_params(const nn::Module<T, D>& m, const std::string& prefix = "") {
  std::vector<NamedParam<T, D>> out = m.named_parameters();
  for (auto& entry : out) entry.first = prefix + entry.first;
  return out;
}

// Splits `params` by the default weight-decay rule: parameters of rank >= 2
// (conv and linear weights) take the optimiser's weight decay; parameters of
// rank <= 1 (biases, BatchNorm weights and biases, scalars) take 0. Both
// groups take `lr` (unset: the options' lr). Returns the decayed group first;
// empty groups are left out.
template <class T, class D>
std::vector<ParamGroup<T, D>> decay_groups(std::vector<NamedParam<T, D>> params,
                                           std::optional<double> lr = std::nullopt) {
  ParamGroup<T, D> decay{.params = {}, .lr = lr, .weight_decay = std::nullopt};
  ParamGroup<T, D> no_decay{.params = {}, .lr = lr, .weight_decay = 0.0};
  for (auto& entry : params) {
    DML_CHECK(entry.second.defined(), "decay_groups: parameter '", entry.first, "' is an undefined tensor");
    (entry.second.rank() >= 2 ? decay : no_decay).params.push_back(std::move(entry));
  }
  std::vector<ParamGroup<T, D>> out;
  if (!decay.params.empty()) out.push_back(std::move(decay));
  if (!no_decay.params.empty()) out.push_back(std::move(no_decay));
  return out;
}

// decay_groups over a module's parameters (names prefixed with `prefix`).
template <class T, class D>
std::vector<ParamGroup<T, D>> default_groups(const nn::Module<T, D>& m, const std::string& prefix = "",
                                             std::optional<double> lr = std::nullopt) {
  return decay_groups(named_params(m, prefix), lr);
}

// The type-erased optimiser: what a training loop drives. Not copyable (a copy
// would share the parameters and the state); movable.
template <class T = float, class D = Cpu>
class Optimizer {
 public:
  using TensorT = Tensor<T, D>;

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) = default;
  Optimizer& operator=(Optimizer&&) = default;

  // "SGD", "Adam", "AdamW".
  virtual const char* name() const = 0;
  // Updates, in place, every parameter whose gradient is defined (others and
  // their state are left alone), then counts one step.
  virtual void step() = 0;
  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad() {
    for (auto& entry : params_) entry.second.zero_grad();
  }

  std::size_t num_groups() const noexcept { return groups_.size(); }
  // The parameters of group g; throws for a bad index.
  std::span<const NamedParam<T, D>> group_params(std::size_t g) const {
    const Group& grp = group(g);
    return std::span<const NamedParam<T, D>>(params_.data() + grp.begin, grp.end - grp.begin);
  }
  // Every parameter, group after group (the index state_dict keys unnamed ones by).
  const std::vector<NamedParam<T, D>>& params() const noexcept { return params_; }
  // The names of the rule's per-parameter buffers in state_dict()
  // ("momentum_buffer"; "exp_avg", "exp_avg_sq"), and whether it also keeps a
  // per-parameter "step".
  const std::vector<std::string>& state_names() const noexcept { return state_names_; }
  bool per_param_step() const noexcept { return per_param_step_; }
  // The state of parameter i in params() (buffers undefined before its first update).
  const ParamState<T, D>& param_state(std::size_t i) const {
    DML_CHECK(i < state_.size(), name(), ": parameter index ", i, " out of range (", state_.size(), " parameters)");
    return state_[i];
  }
  // How many times step() has run (restored by load_state_dict).
  std::int64_t steps() const noexcept { return steps_; }

  // The current learning rate of group g.
  double lr(std::size_t g = 0) const { return group(g).lr; }
  // The learning rate group g was created with (what schedules scale).
  double base_lr(std::size_t g = 0) const { return group(g).base_lr; }
  double weight_decay(std::size_t g = 0) const { return group(g).weight_decay; }
  // Sets the learning rate of every group / of group g. Throws for lr < 0 or non-finite.
  void set_lr(double lr) {
    for (std::size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
  }
  void set_lr(std::size_t g, double lr) {
    detail::check_rate(lr, "lr", name());
    group(g).lr = lr;
  }
  // Whether momentum cycling applies: SGD built with momentum > 0, Adam, AdamW.
  virtual bool has_momentum() const = 0;
  // The cycled momentum of group g: SGD's momentum, Adam's beta1.
  double momentum(std::size_t g = 0) const { return group(g).momentum; }
  // Sets it for every group / for group g. Throws dml::Error for a value the
  // rule rejects (outside [0, 1), or 0 for Nesterov SGD).
  void set_momentum(double m) {
    for (std::size_t g = 0; g < groups_.size(); ++g) set_momentum(g, m);
  }
  void set_momentum(std::size_t g, double m) {
    check_momentum(m);
    group(g).momentum = m;
  }

  // The optimiser state as named tensors (copies): "steps" (int64 scalar),
  // and per parameter with state "<name>.<buffer>" (SGD: momentum_buffer;
  // Adam/AdamW: exp_avg, exp_avg_sq) plus "<name>.step" (int64 scalar) for
  // rules that count per parameter. Hyper-parameters are not included.
  nn::StateDict<T, D> state_dict() const {
    nn::StateDict<T, D> sd;
    sd.insert("steps", Tensor<std::int64_t, D>::scalar(steps_));
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const ParamState<T, D>& s = state_[i];
      for (std::size_t b = 0; b < s.buffers.size(); ++b)
        if (s.buffers[b].defined()) sd.insert(params_[i].first + "." + state_names_[b], s.buffers[b].clone());
      if (per_param_step_ && s.step > 0)
        sd.insert(params_[i].first + ".step", Tensor<std::int64_t, D>::scalar(s.step));
    }
    return sd;
  }

  // Replaces the whole state with `sd` (as state_dict() writes it): the step
  // count and every parameter's buffers; a parameter without entries starts
  // fresh. Values are copied into existing buffers. Throws dml::Error, changing
  // nothing, listing every unknown name, wrong shape or type, and incomplete
  // parameter state.
  void load_state_dict(const nn::StateDict<T, D>& sd) {
    using IntT = Tensor<std::int64_t, D>;
    std::vector<std::string> bad;
    const std::size_t nb = state_names_.size();
    // Per parameter: the entry of each buffer, then of the step count.
    std::vector<std::vector<const nn::StateTensor<T, D>*>> found(params_.size());
    const nn::StateTensor<T, D>* steps = nullptr;
    auto int_scalar = [](const nn::StateTensor<T, D>& e, std::int64_t min) {
      if (!std::holds_alternative<IntT>(e)) return false;
      const IntT& t = std::get<IntT>(e);
      return t.numel() == 1 && t.item() >= min;
    };
    for (const auto& [key, entry] : sd) {
      if (key == "steps") {
        if (!int_scalar(entry, 0)) bad.push_back("steps: not a non-negative int64 scalar");
        steps = &entry;
        continue;
      }
      const std::size_t dot = key.rfind('.');
      const std::string pname = dot == std::string::npos ? key : key.substr(0, dot);
      const std::string field = dot == std::string::npos ? std::string() : key.substr(dot + 1);
      auto it = index_.find(pname);
      std::size_t slot = nb + 1;
      for (std::size_t b = 0; b < nb; ++b)
        if (field == state_names_[b]) slot = b;
      if (per_param_step_ && field == "step") slot = nb;
      if (it == index_.end() || slot > nb) {
        bad.push_back(key + ": unknown name");
        continue;
      }
      const TensorT& p = params_[it->second].second;
      if (slot == nb) {
        if (!int_scalar(entry, 1)) bad.push_back(key + ": not an int64 scalar >= 1");
      } else if (!std::holds_alternative<TensorT>(entry) || !(std::get<TensorT>(entry).shape() == p.shape())) {
        bad.push_back(key + ": expected shape " + p.shape().str() + " of the parameter's element type");
      }
      auto& f = found[it->second];
      f.resize(nb + 1, nullptr);
      f[slot] = &entry;
    }
    if (!steps) bad.push_back("steps: missing");
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (found[i].empty() || !per_param_step_) continue;
      for (std::size_t b = 0; b <= nb; ++b)
        if (!found[i][b])
          bad.push_back(params_[i].first + "." + (b < nb ? state_names_[b] : std::string("step")) + ": missing");
    }
    DML_CHECK(bad.empty(), name(), ": load_state_dict: ", nn::detail::join(bad));

    steps_ = std::get<IntT>(*steps).item();
    for (std::size_t i = 0; i < params_.size(); ++i) {
      ParamState<T, D>& s = state_[i];
      s.step = 0;
      for (std::size_t b = 0; b < nb; ++b) {
        const nn::StateTensor<T, D>* e = found[i].empty() ? nullptr : found[i][b];
        if (!e) {
          s.buffers[b] = TensorT();
          continue;
        }
        const TensorT& src = std::get<TensorT>(*e);
        if (s.buffers[b].defined()) s.buffers[b].copy_(src);
        else s.buffers[b] = src.clone();
      }
      if (!found[i].empty() && found[i][nb]) s.step = std::get<IntT>(*found[i][nb]).item();
    }
  }

 protected:
  struct Group {
    std::size_t begin = 0, end = 0;  // range in params_
    double lr = 0, base_lr = 0, weight_decay = 0, momentum = 0;
  };

  // Flattens `groups`; unset group values take lr / weight_decay. Throws for
  // no parameters, an undefined tensor, a parameter listed twice, a repeated
  // name, or a bad group lr / weight decay.
  Optimizer(std::vector<ParamGroup<T, D>> groups, const char* who, double lr, double weight_decay, double momentum,
            std::span<const char* const> state_names, bool per_param_step)
      : state_names_(state_names.begin(), state_names.end()), per_param_step_(per_param_step) {
    std::unordered_set<const void*> seen;
    for (auto& pg : groups) {
      Group grp;
      grp.begin = params_.size();
      grp.lr = grp.base_lr = pg.lr.value_or(lr);
      grp.weight_decay = pg.weight_decay.value_or(weight_decay);
      grp.momentum = momentum;
      detail::check_rate(grp.lr, "group lr", who);
      detail::check_rate(grp.weight_decay, "group weight_decay", who);
      for (auto& [pname, p] : pg.params) {
        DML_CHECK(p.defined(), who, ": parameter '", pname, "' is an undefined tensor");
        DML_CHECK(seen.insert(p.impl().get()).second, who, ": parameter '", pname,
                  "' appears twice in the parameter groups");
        std::string key = pname.empty() ? std::to_string(params_.size()) : std::move(pname);
        DML_CHECK(!index_.contains(key), who, ": two parameters are named '", key,
                  "' (give the groups distinct prefixes, e.g. named_params(head, \"head.\"))");
        index_.emplace(key, params_.size());
        params_.emplace_back(std::move(key), p);
      }
      grp.end = params_.size();
      groups_.push_back(grp);
    }
    DML_CHECK(!params_.empty(), who, ": got an empty parameter list");
    state_.resize(params_.size());
    for (auto& s : state_) s.buffers.resize(state_names_.size());
  }

  // Throws dml::Error when the rule rejects momentum m.
  virtual void check_momentum(double m) const = 0;

  Group& group(std::size_t g) {
    DML_CHECK(g < groups_.size(), name(), ": group index ", g, " out of range (", groups_.size(), " groups)");
    return groups_[g];
  }
  const Group& group(std::size_t g) const { return const_cast<Optimizer*>(this)->group(g); }

  std::vector<NamedParam<T, D>> params_;
  std::vector<ParamState<T, D>> state_;
  std::vector<Group> groups_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::string> state_names_;
  bool per_param_step_ = false;
  std::int64_t steps_ = 0;
};

// Options O bound to parameters: the optimiser that steps. Each group runs
// O's update with the group's lr, weight decay and momentum.
template <Options O, class T = float, class D = Cpu>
class BoundOptimizer final : public Optimizer<T, D> {
 public:
  // Validates `options` and binds them to `groups`; throws dml::Error.
  BoundOptimizer(const O& options, std::vector<ParamGroup<T, D>> groups)
      : Optimizer<T, D>(std::move(groups), O::kName, checked(options).lr, options.weight_decay,
                        options.cycled_momentum(), O::kStateNames, O::kPerParamStep),
        options_(options) {}

  const char* name() const override { return O::kName; }
  bool has_momentum() const override { return options_.has_momentum(); }
  // The options the optimiser was created with (groups may override lr,
  // weight decay and momentum).
  const O& options() const noexcept { return options_; }

  void step() override {
    for (const auto& grp : this->groups_) {
      O o = options_;
      o.lr = grp.lr;
      o.weight_decay = grp.weight_decay;
      o.set_cycled_momentum(grp.momentum);
      for (std::size_t i = grp.begin; i < grp.end; ++i) {
        Tensor<T, D>& p = this->params_[i].second;
        const Tensor<T, D> g = p.grad();
        if (!g.defined()) continue;
        o.update(p, g, this->state_[i]);
      }
    }
    ++this->steps_;
  }

 private:
  static const O& checked(const O& o) {
    o.validate();
    return o;
  }
  void check_momentum(double m) const override {
    O o = options_;
    o.set_cycled_momentum(m);
    o.validate();
  }

  O options_;
};

namespace detail {
template <class T, class D>
std::vector<ParamGroup<T, D>> one_group(const std::vector<Tensor<T, D>>& params) {
  ParamGroup<T, D> g;
  for (const auto& p : params) g.params.emplace_back(std::string(), p);
  std::vector<ParamGroup<T, D>> out;
  out.push_back(std::move(g));
  return out;
}
}  // namespace detail

// Binds options to a module's default_groups (no weight decay on rank <= 1).
template <Options O, class T, class D>
BoundOptimizer<O, T, D> make(const O& options, const nn::Module<T, D>& module) {
  return BoundOptimizer<O, T, D>(options, default_groups(module));
}
// Binds options to explicit groups.
template <Options O, class T, class D>
BoundOptimizer<O, T, D> make(const O& options, std::vector<ParamGroup<T, D>> groups) {
  return BoundOptimizer<O, T, D>(options, std::move(groups));
}
// Binds options to one group of unnamed tensors (named "0", "1", ...), all
// with the options' weight decay.
template <Options O, class T, class D>
BoundOptimizer<O, T, D> make(const O& options, const std::vector<Tensor<T, D>>& params) {
  return BoundOptimizer<O, T, D>(options, detail::one_group(params));
}

// The same three, behind the type-erased interface (what a Learner stores).
template <Options O, class T, class D>
std::unique_ptr<Optimizer<T, D>> make_unique(const O& options, const nn::Module<T, D>& module) {
  return std::make_unique<BoundOptimizer<O, T, D>>(options, default_groups(module));
}
template <Options O, class T, class D>
std::unique_ptr<Optimizer<T, D>> make_unique(const O& options, std::vector<ParamGroup<T, D>> groups) {
  return std::make_unique<BoundOptimizer<O, T, D>>(options, std::move(groups));
}
template <Options O, class T, class D>
std::unique_ptr<Optimizer<T, D>> make_unique(const O& options, const std::vector<Tensor<T, D>>& params) {
  return std::make_unique<BoundOptimizer<O, T, D>>(options, detail::one_group(params));
}

}  // namespace dml::optim
