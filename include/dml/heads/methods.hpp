// dml/heads/methods.hpp: the six methods of the reference experiment and the
// further heads (sub-centre ArcFace, AdaCos) by name, for programs that pick one at run time (a command-line flag) while the head
// type stays a compile-time choice:
//
//   heads::with_method("arc", [&](auto policy, double center_weight) {
//     heads::MarginHead<decltype(policy)> head(512, 10, policy);
//     ...                                   // center_weight > 0: add Center Loss
//   });
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "../config.hpp"
#include "margin_policy.hpp"

namespace dml::heads {

struct MethodInfo {
  std::string_view key;    // what a flag takes: softmax, l2, arc, cos, sphere, center, subcenter, adacos
  std::string_view alias;  // the longer name also accepted (and used for result folders)
  std::string_view title;  // for tables and plots
};

// In the reference experiment's order.
inline constexpr std::array<MethodInfo, 6> kMethods{{
    {"softmax", "softmax", "Softmax"},
    {"l2", "l2softmax", "L2-constrained softmax"},
    {"arc", "arcface", "ArcFace"},
    {"cos", "cosface", "CosFace"},
    {"sphere", "sphereface", "SphereFace"},
    {"center", "centerloss", "Center Loss"},
}};

// Heads beyond the reference experiment: accepted by name, not part of its default set.
inline constexpr std::array<MethodInfo, 2> kMoreMethods{{
    {"subcenter", "subcenterarcface", "Sub-center ArcFace"},
    {"adacos", "adacos", "AdaCos"},
}};

// The reference experiment's Center Loss weight.
inline constexpr double kCenterLossWeight = 1.0 / 8;

// The head method named `name` (its key or its alias); nullptr when there is none.
inline const MethodInfo* find_method(std::string_view name) {
  for (std::span<const MethodInfo> list : {std::span<const MethodInfo>(kMethods), std::span<const MethodInfo>(kMoreMethods)})
    for (const MethodInfo& m : list)
      if (name == m.key || name == m.alias) return &m;
  return nullptr;
}

// The method named `name` (its key or its alias). Throws dml::Error listing
// the valid names.
inline const MethodInfo& method_info(std::string_view name) {
  if (const MethodInfo* m = find_method(name)) return *m;
  std::string valid;
  for (const MethodInfo& m : kMethods) valid += (valid.empty() ? "" : ", ") + std::string(m.key);
  for (const MethodInfo& m : kMoreMethods) valid += ", " + std::string(m.key);
  throw Error(::dml::detail::concat("unknown method '", name, "' (expected one of ", valid, ")"));
}

// Calls f(policy, center_weight) with the method's margin policy configured as
// in the reference experiment (L2-constrained alpha 16, ArcFace s 30 m 0.5,
// CosFace s 30 m 0.4, SphereFace m 4; Center Loss is the softmax head plus
// Center Loss of weight 1/8, the others pass 0), or one of kMoreMethods
// (sub-centre ArcFace: ArcFace's s 30 m 0.5 with the paper's K = 3; dynamic
// AdaCos, s from the class count). Returns what f returns.
// Throws dml::Error for an unknown name.
template <class F>
decltype(auto) with_method(std::string_view name, F&& f) {
  const std::string_view key = method_info(name).key;
  if (key == "l2") return std::forward<F>(f)(L2Constrained{.alpha = 16}, 0.0);
  if (key == "arc") return std::forward<F>(f)(Arc{.s = 30, .m = 0.5}, 0.0);
  if (key == "cos") return std::forward<F>(f)(Cos{.s = 30, .m = 0.4}, 0.0);
  if (key == "sphere") return std::forward<F>(f)(Sphere{.m = 4}, 0.0);
  if (key == "center") return std::forward<F>(f)(Softmax{}, kCenterLossWeight);
  if (key == "subcenter") return std::forward<F>(f)(SubCenter<Arc>{.margin = {.s = 30, .m = 0.5}, .k = 3}, 0.0);
  if (key == "adacos") return std::forward<F>(f)(AdaCos{}, 0.0);
  return std::forward<F>(f)(Softmax{}, 0.0);
}

}  // namespace dml::heads
