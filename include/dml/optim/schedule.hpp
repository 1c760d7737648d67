// dml/optim/schedule.hpp: learning-rate (and momentum) schedules as pure
// functions of (step, total, base lr), so a resumed run recomputes exactly
// the values it would have used.
//
// `step` is the 0-based index of the update about to run, `total` the number
// of updates in the run (epochs * batches per epoch), `base` a group's base
// learning rate (Optimizer::base_lr). Every schedule has
//   double lr(step, total, base) const
//   std::optional<double> momentum(step, total) const    (nullopt: leave it)
// and throws dml::Error for total < 1, step outside [0, total] or a bad
// hyper-parameter. optim::apply sets an optimiser's values for one step.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <variant>

#include "../config.hpp"
#include "optimizer.hpp"

namespace dml::optim {
namespace detail {

inline void check_step(std::int64_t step, std::int64_t total, const char* who) {
  DML_CHECK(total >= 1, who, ": total steps must be >= 1, got ", total);
  DML_CHECK(step >= 0 && step <= total, who, ": step ", step, " is outside [0, ", total, "]");
}

// fastai's sched_cos: cosine from `start` (pos 0) to `end` (pos 1).
inline double sched_cos(double start, double end, double pos) {
  return start + (1 + std::cos(std::numbers::pi * (1 - pos))) * (end - start) / 2;
}

// fastai's combined_cos(pct, start, middle, end) at pos in [0, 1]:
// sched_cos(start, middle) over [0, pct), sched_cos(middle, end) over [pct, 1].
inline double combined_cos(double pct, double start, double middle, double end, double pos) {
  if (pos < pct) return sched_cos(start, middle, pos / pct);
  return sched_cos(middle, end, (pos - pct) / (1 - pct));
}

}  // namespace detail

// lr = base.
struct Constant {
  double lr(std::int64_t step, std::int64_t total, double base) const {
    detail::check_step(step, total, "Constant");
    return base;
  }
  std::optional<double> momentum(std::int64_t, std::int64_t) const { return std::nullopt; }
};

// PyTorch's StepLR: lr = base * gamma^floor(step / step_size).
struct StepDecay {
  std::int64_t step_size = 1;  // >= 1
  double gamma = 0.1;          // > 0

  double lr(std::int64_t step, std::int64_t total, double base) const {
    detail::check_step(step, total, "StepDecay");
    DML_CHECK(step_size >= 1, "StepDecay: step_size must be >= 1, got ", step_size);
    DML_CHECK(std::isfinite(gamma) && gamma > 0, "StepDecay: gamma must be finite and > 0, got ", gamma);
    return base * std::pow(gamma, static_cast<double>(step / step_size));
  }
  std::optional<double> momentum(std::int64_t, std::int64_t) const { return std::nullopt; }
};

// PyTorch's CosineAnnealingLR with T_max = total (closed form):
// lr = eta_min + (base - eta_min) * (1 + cos(pi * step / total)) / 2,
// from base at step 0 to eta_min at step total.
struct Cosine {
  double eta_min = 0;  // >= 0

  double lr(std::int64_t step, std::int64_t total, double base) const {
    detail::check_step(step, total, "Cosine");
    DML_CHECK(std::isfinite(eta_min) && eta_min >= 0, "Cosine: eta_min must be finite and >= 0, got ", eta_min);
    const double pos = static_cast<double>(step) / static_cast<double>(total);
    return eta_min + (base - eta_min) * (1 + std::cos(std::numbers::pi * pos)) / 2;
  }
  std::optional<double> momentum(std::int64_t, std::int64_t) const { return std::nullopt; }
};

// fastai's fit_one_cycle (fastai 2, callback/schedule.py), with the base lr as
// lr_max and pos = step / total (fastai's pct_train):
//   lr  = combined_cos(pct_start, base / div, base, base / div_final)(pos)
//   mom = combined_cos(pct_start, moms[0], moms[1], moms[2])(pos)
// where combined_cos cosine-anneals start -> middle over [0, pct_start) and
// middle -> end over [pct_start, 1], each piece by fastai's sched_cos
// start + (1 + cos(pi * (1 - x))) * (end - start) / 2 at its local position x.
// mom drives SGD momentum / Adam beta1 (only for optimisers with momentum).
struct OneCycle {
  double pct_start = 0.25;                     // warm-up fraction, [0, 1)
  double div = 25;                             // start lr = base / div, > 0
  double div_final = 1e5;                      // final lr = base / div_final, > 0
  std::array<double, 3> moms{0.95, 0.85, 0.95};  // start, middle, end; each in [0, 1)
  bool cycle_momentum = true;                  // false: momentum() is nullopt

  double lr(std::int64_t step, std::int64_t total, double base) const {
    detail::check_step(step, total, "OneCycle");
    validate();
    return detail::combined_cos(pct_start, base / div, base, base / div_final, pos(step, total));
  }
  std::optional<double> momentum(std::int64_t step, std::int64_t total) const {
    detail::check_step(step, total, "OneCycle");
    validate();
    if (!cycle_momentum) return std::nullopt;
    return detail::combined_cos(pct_start, moms[0], moms[1], moms[2], pos(step, total));
  }

 private:
  static double pos(std::int64_t step, std::int64_t total) {
    return static_cast<double>(step) / static_cast<double>(total);
  }
  void validate() const {
    DML_CHECK(pct_start >= 0 && pct_start < 1, "OneCycle: pct_start must lie in [0, 1), got ", pct_start);
    DML_CHECK(std::isfinite(div) && div > 0, "OneCycle: div must be finite and > 0, got ", div);
    DML_CHECK(std::isfinite(div_final) && div_final > 0, "OneCycle: div_final must be finite and > 0, got ",
              div_final);
    for (double m : moms) DML_CHECK(m >= 0 && m < 1, "OneCycle: moms must lie in [0, 1), got ", m);
  }
};

// Any of the schedules, as a value (what a training loop stores).
using Schedule = std::variant<Constant, StepDecay, Cosine, OneCycle>;

// The lr / momentum of whichever schedule `s` holds.
inline double lr_at(const Schedule& s, std::int64_t step, std::int64_t total, double base) {
  return std::visit([&](const auto& x) { return x.lr(step, total, base); }, s);
}
inline std::optional<double> momentum_at(const Schedule& s, std::int64_t step, std::int64_t total) {
  return std::visit([&](const auto& x) { return x.momentum(step, total); }, s);
}

template <class S>
concept ScheduleLike = requires(const S& s, std::int64_t i, double b) {
  { s.lr(i, i, b) } -> std::convertible_to<double>;
  { s.momentum(i, i) } -> std::convertible_to<std::optional<double>>;
};

// Sets every group's lr to schedule.lr(step, total, base_lr(g)) and, when the
// schedule gives a momentum and the optimiser has momentum, every group's
// momentum (SGD momentum / Adam beta1). Throws dml::Error as the schedule does.
template <ScheduleLike S, class T, class D>
void apply(const S& schedule, Optimizer<T, D>& opt, std::int64_t step, std::int64_t total) {
  for (std::size_t g = 0; g < opt.num_groups(); ++g) opt.set_lr(g, schedule.lr(step, total, opt.base_lr(g)));
  if (auto m = schedule.momentum(step, total); m && opt.has_momentum()) opt.set_momentum(*m);
}
template <class T, class D>
void apply(const Schedule& schedule, Optimizer<T, D>& opt, std::int64_t step, std::int64_t total) {
  std::visit([&](const auto& s) { apply(s, opt, step, total); }, schedule);
}

}  // namespace dml::optim
