// dml/viz/palette.hpp: matplotlib's qualitative colour maps and the per-class
// style (colour + marker) used by the SVG plots.
#pragma once

#include <array>
#include <cstdint>

namespace dml::viz {

// matplotlib "tab10" (the default colour cycle), exact hex values.
inline constexpr std::array<const char*, 10> kTab10 = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// matplotlib "tab20": each tab10 colour followed by its light variant.
inline constexpr std::array<const char*, 20> kTab20 = {
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
    "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"};

enum class Marker { Circle, Square, Triangle, Diamond };

struct ClassStyle {
  const char* color;
  Marker marker;
};

// Style of the slot-th class (classes sorted by label): colour tab10[slot % 10];
// marker circle for slots 0-9, square for 10-19, triangle for 20-29, diamond
// for 30-39, then the cycle repeats (so 40+ classes reuse combinations).
inline ClassStyle class_style(std::int64_t slot) {
  constexpr Marker kCycle[4] = {Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond};
  const std::int64_t s = slot < 0 ? -slot : slot;
  return {kTab10[static_cast<std::size_t>(s % 10)], kCycle[(s / 10) % 4]};
}

}  // namespace dml::viz
