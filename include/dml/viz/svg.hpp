// dml/viz/svg.hpp: dependency-free SVG 1.1 plots: class-coloured scatter
// (t-SNE maps), box plots (anomaly AUCs per method) and line charts
// (training curves).
//
// Every render_* returns a standalone SVG document (XML prolog, xmlns,
// width/height/viewBox, all text escaped); every save_* writes that document
// to `path` through a temporary file and a rename, and throws dml::Error
// naming the path when it cannot. Bad input (length mismatch, NaN/Inf
// coordinates, nothing to plot) throws dml::Error before anything is written.
#pragma once

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "palette.hpp"

namespace dml::viz {

struct ScatterOptions {
  std::string title;
  std::vector<std::string> class_names;  // class_names[label] names that label; others show the number
  std::string x_label, y_label;
  int width = 760, height = 600;
  double point_radius = 2.2;
  double opacity = 0.75;
  bool legend = true;
};

struct BoxOptions {
  std::string title, y_label;
  int width = 640, height = 420;
};

struct LineSeries {
  std::string name;
  std::vector<double> x, y;
};

struct LineOptions {
  std::string title, x_label, y_label;
  int width = 640, height = 420;
  bool markers = false;  // a small circle on every data point
};

// Five-number summary with matplotlib's default whiskers: quartiles by linear
// interpolation (numpy's default percentile), whiskers at the most extreme
// values within 1.5 IQR of the box, everything beyond is an outlier.
struct BoxStats {
  double q1 = 0, median = 0, q3 = 0, whisker_low = 0, whisker_high = 0;
  std::vector<double> outliers;
};

// Escapes & < > " ' for XML text and attributes; control characters other
// than tab/newline become spaces (they are not allowed in XML 1.0).
inline std::string escape_xml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        out += (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n') ? ' ' : ch;
    }
  }
  return out;
}

// Round tick values (steps of 1, 2 or 5 x 10^e) covering [lo, hi], about
// `target` of them. A degenerate range is widened around its value.
inline std::vector<double> nice_ticks(double lo, double hi, int target = 6) {
  DML_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "nice_ticks: bad range [", lo, ", ", hi, "]");
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(lo))) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double step = (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double v = first; v < hi + step * (1 - 1e-9); v += step) ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

inline BoxStats box_stats(std::vector<double> v) {
  DML_CHECK(!v.empty(), "box_stats: no values");
  for (double x : v) DML_CHECK(std::isfinite(x), "box_stats: value ", x, " is not finite");
  std::sort(v.begin(), v.end());
  auto q = [&](double p) {
    const double h = (static_cast<double>(v.size()) - 1) * p;
    const std::size_t i = static_cast<std::size_t>(std::floor(h));
    const std::size_t j = std::min(i + 1, v.size() - 1);
    return v[i] + (h - static_cast<double>(i)) * (v[j] - v[i]);
  };
  BoxStats s;
  s.q1 = q(0.25);
  s.median = q(0.5);
  s.q3 = q(0.75);
  const double lo = s.q1 - 1.5 * (s.q3 - s.q1), hi = s.q3 + 1.5 * (s.q3 - s.q1);
  s.whisker_low = s.q1;
  s.whisker_high = s.q3;
  for (double x : v) {
    if (x < lo || x > hi) s.outliers.push_back(x);
    else s.whisker_low = std::min(s.whisker_low, x), s.whisker_high = std::max(s.whisker_high, x);
  }
  return s;
}

namespace detail {

inline std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s(buf);
  if (s == "-0" || s == "-0.0" || s == "-0.00") s = s.substr(1);
  return s;
}

// Decimals needed to print ticks spaced `step` apart.
inline int tick_decimals(const std::vector<double>& ticks) {
  if (ticks.size() < 2) return 2;
  const double step = std::abs(ticks[1] - ticks[0]);
  return std::clamp(static_cast<int>(std::ceil(-std::log10(step) - 1e-9)), 0, 10);
}

// Maps data to pixels inside a plot rectangle and draws frame, ticks, labels.
struct Frame {
  double left, top, right, bottom;  // pixel box
  std::vector<double> xt, yt;       // ticks; their ends are the data range
  double px(double x) const { return left + (x - xt.front()) / (xt.back() - xt.front()) * (right - left); }
  double py(double y) const { return bottom - (y - yt.front()) / (yt.back() - yt.front()) * (bottom - top); }

  void draw(std::string& o, const std::string& x_label, const std::string& y_label, bool x_ticks = true) const {
    o += "<g id=\"axes\" stroke=\"#444444\" stroke-width=\"1\" fill=\"none\">\n";
    o += "<rect x=\"" + fmt(left) + "\" y=\"" + fmt(top) + "\" width=\"" + fmt(right - left) + "\" height=\"" +
         fmt(bottom - top) + "\"/>\n";
    for (double t : yt)
      o += "<line x1=\"" + fmt(left - 5) + "\" y1=\"" + fmt(py(t)) + "\" x2=\"" + fmt(left) + "\" y2=\"" +
           fmt(py(t)) + "\"/>\n";
    if (x_ticks)
      for (double t : xt)
        o += "<line x1=\"" + fmt(px(t)) + "\" y1=\"" + fmt(bottom) + "\" x2=\"" + fmt(px(t)) + "\" y2=\"" +
             fmt(bottom + 5) + "\"/>\n";
    o += "</g>\n<g id=\"tick-labels\" fill=\"#222222\">\n";
    const int yd = tick_decimals(yt), xd = tick_decimals(xt);
    for (double t : yt)
      o += "<text x=\"" + fmt(left - 8) + "\" y=\"" + fmt(py(t) + 4) + "\" text-anchor=\"end\">" + fmt(t, yd) +
           "</text>\n";
    if (x_ticks)
      for (double t : xt)
        o += "<text x=\"" + fmt(px(t)) + "\" y=\"" + fmt(bottom + 19) + "\" text-anchor=\"middle\">" + fmt(t, xd) +
             "</text>\n";
    if (!x_label.empty())
      o += "<text x=\"" + fmt((left + right) / 2) + "\" y=\"" + fmt(bottom + 38) + "\" text-anchor=\"middle\">" +
           escape_xml(x_label) + "</text>\n";
    if (!y_label.empty())
      o += "<text transform=\"translate(" + fmt(left - 48) + "," + fmt((top + bottom) / 2) +
           ") rotate(-90)\" text-anchor=\"middle\">" + escape_xml(y_label) + "</text>\n";
    o += "</g>\n";
  }
};

inline std::string open_svg(int width, int height, const std::string& title) {
  DML_CHECK(width >= 120 && height >= 120, "svg: width and height must be >= 120, got ", width, " x ", height);
  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + std::to_string(width) +
       "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " +
       std::to_string(height) + "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n";
  o += "<rect x=\"0\" y=\"0\" width=\"" + std::to_string(width) + "\" height=\"" + std::to_string(height) +
       "\" fill=\"#ffffff\"/>\n";
  if (!title.empty())
    o += "<text id=\"title\" x=\"" + fmt(width / 2.0) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">" +
         escape_xml(title) + "</text>\n";
  return o;
}

// One marker centred at (x, y) with half-size r; fill comes from the group.
inline void marker(std::string& o, Marker m, double x, double y, double r) {
  switch (m) {
    case Marker::Circle:
      o += "<circle cx=\"" + fmt(x) + "\" cy=\"" + fmt(y) + "\" r=\"" + fmt(r, 2) + "\"/>\n";
      break;
    case Marker::Square:
      o += "<rect x=\"" + fmt(x - r) + "\" y=\"" + fmt(y - r) + "\" width=\"" + fmt(2 * r, 2) + "\" height=\"" +
           fmt(2 * r, 2) + "\"/>\n";
      break;
    case Marker::Triangle:
      o += "<path d=\"M" + fmt(x) + " " + fmt(y - 1.2 * r) + "L" + fmt(x + 1.1 * r) + " " + fmt(y + 0.8 * r) + "L" +
           fmt(x - 1.1 * r) + " " + fmt(y + 0.8 * r) + "Z\"/>\n";
      break;
    case Marker::Diamond:
      o += "<path d=\"M" + fmt(x) + " " + fmt(y - 1.3 * r) + "L" + fmt(x + 1.1 * r) + " " + fmt(y) + "L" + fmt(x) +
           " " + fmt(y + 1.3 * r) + "L" + fmt(x - 1.1 * r) + " " + fmt(y) + "Z\"/>\n";
      break;
  }
}

// Legend box at the top-right corner (x0 = its left edge): one row per entry.
template <class DrawKey>
void legend(std::string& o, double x0, double y0, const std::vector<std::string>& names, DrawKey&& key) {
  o += "<g id=\"legend\">\n";
  for (std::size_t i = 0; i < names.size(); ++i) {
    const double y = y0 + 18.0 * static_cast<double>(i);
    key(i, x0 + 8, y);
    o += "<text x=\"" + fmt(x0 + 20) + "\" y=\"" + fmt(y + 4) + "\" fill=\"#222222\">" + escape_xml(names[i]) +
         "</text>\n";
  }
  o += "</g>\n";
}

inline void check_finite(double v, const char* who, const char* what, std::size_t i) {
  DML_CHECK(std::isfinite(v), who, ": ", what, " ", i, " is not finite (", v, ")");
}

}  // namespace detail

// Scatter plot of n points (xs[i], ys[i]) coloured by class: classes sorted by
// label get tab10 colours, and past 10 classes the marker changes (see
// class_style). Classes draw in ascending label order; the legend names each
// class by options.class_names[label] when present, else by its number.
// Throws on length mismatch, n = 0, or a NaN/Inf coordinate.
inline std::string render_scatter_svg(std::span<const float> xs, std::span<const float> ys,
                                      std::span<const std::int64_t> labels, const ScatterOptions& opt = {}) {
  DML_CHECK(xs.size() == ys.size() && xs.size() == labels.size(), "scatter: ", xs.size(), " x values, ", ys.size(),
            " y values and ", labels.size(), " labels");
  DML_CHECK(!xs.empty(), "scatter: no points to plot");
  double x0 = xs[0], x1 = xs[0], y0 = ys[0], y1 = ys[0];
  std::map<std::int64_t, std::vector<std::size_t>> by_class;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    detail::check_finite(xs[i], "scatter", "x of point", i);
    detail::check_finite(ys[i], "scatter", "y of point", i);
    x0 = std::min<double>(x0, xs[i]), x1 = std::max<double>(x1, xs[i]);
    y0 = std::min<double>(y0, ys[i]), y1 = std::max<double>(y1, ys[i]);
    by_class[labels[i]].push_back(i);
  }
  std::vector<std::string> names;
  for (const auto& kv : by_class) {
    const std::int64_t l = kv.first;
    names.push_back(l >= 0 && l < static_cast<std::int64_t>(opt.class_names.size()) ? opt.class_names[l]
                                                                                     : std::to_string(l));
  }
  std::size_t longest = 0;
  for (const auto& s : names) longest = std::max(longest, s.size());
  const double legend_w = opt.legend ? 36.0 + 7.0 * static_cast<double>(std::min<std::size_t>(longest, 24)) : 0.0;
  detail::Frame f{64, opt.title.empty() ? 20.0 : 40.0, opt.width - 16.0 - legend_w,
                  opt.height - (opt.x_label.empty() ? 34.0 : 50.0), nice_ticks(x0, x1), nice_ticks(y0, y1)};
  DML_CHECK(f.right - f.left >= 40 && f.bottom - f.top >= 40, "scatter: ", opt.width, " x ", opt.height,
            " leaves no room for the plot");
  std::string o = detail::open_svg(opt.width, opt.height, opt.title);
  f.draw(o, opt.x_label, opt.y_label);
  o += "<g id=\"points\" fill-opacity=\"" + detail::fmt(opt.opacity, 2) + "\" stroke=\"none\">\n";
  std::int64_t slot = 0;
  for (const auto& [label, rows] : by_class) {
    const ClassStyle st = class_style(slot++);
    o += "<g fill=\"" + std::string(st.color) + "\">\n";
    for (std::size_t i : rows) detail::marker(o, st.marker, f.px(xs[i]), f.py(ys[i]), opt.point_radius);
    o += "</g>\n";
  }
  o += "</g>\n";
  if (opt.legend)
    detail::legend(o, f.right + 8, f.top + 8, names, [&](std::size_t i, double x, double y) {
      const ClassStyle st = class_style(static_cast<std::int64_t>(i));
      o += "<g fill=\"" + std::string(st.color) + "\">";
      detail::marker(o, st.marker, x, y, 4.0);
      o += "</g>\n";
    });
  return o + "</svg>\n";
}

// Same, from n interleaved (x, y) pairs: xy = [x0, y0, x1, y1, ...].
inline std::string render_scatter_svg(const float* xy, std::int64_t n, std::span<const std::int64_t> labels,
                                      const ScatterOptions& opt = {}) {
  DML_CHECK(n >= 0 && (n == 0 || xy != nullptr), "scatter: bad point array (n = ", n, ")");
  std::vector<float> xs(static_cast<std::size_t>(n)), ys(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) xs[i] = xy[2 * i], ys[i] = xy[2 * i + 1];
  return render_scatter_svg(xs, ys, labels, opt);
}

// Box plot, one box per (name, values) group, left to right: box from Q1 to
// Q3, median line, whiskers to the last value within 1.5 IQR, outliers as
// circles. Throws if there are no groups, a group is empty, or a value is NaN/Inf.
inline std::string render_box_svg(const std::vector<std::pair<std::string, std::vector<double>>>& groups,
                                  const BoxOptions& opt = {}) {
  DML_CHECK(!groups.empty(), "box plot: no groups to plot");
  std::vector<BoxStats> stats;
  double lo = 0, hi = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    DML_CHECK(!groups[g].second.empty(), "box plot: group '", groups[g].first, "' has no values");
    for (std::size_t i = 0; i < groups[g].second.size(); ++i)
      detail::check_finite(groups[g].second[i], "box plot", "value", i);
    const auto [mn, mx] = std::minmax_element(groups[g].second.begin(), groups[g].second.end());
    lo = g == 0 ? *mn : std::min(lo, *mn);
    hi = g == 0 ? *mx : std::max(hi, *mx);
    stats.push_back(box_stats(groups[g].second));
  }
  const double pad = 0.03 * (hi - lo);  // keeps extreme outliers off the frame
  detail::Frame f{70, opt.title.empty() ? 20.0 : 40.0, opt.width - 20.0, opt.height - 50.0, {0.0, 1.0},
                  nice_ticks(lo - pad, hi + pad)};
  DML_CHECK(f.right - f.left >= 20.0 * static_cast<double>(groups.size()) && f.bottom - f.top >= 40, "box plot: ",
            opt.width, " x ", opt.height, " leaves no room for ", groups.size(), " boxes");
  std::string o = detail::open_svg(opt.width, opt.height, opt.title);
  f.draw(o, "", opt.y_label, false);
  const double slot = (f.right - f.left) / static_cast<double>(groups.size());
  const double half = std::min(40.0, slot * 0.3);
  o += "<g id=\"boxes\" stroke=\"#333333\" stroke-width=\"1.2\">\n";
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const BoxStats& s = stats[g];
    const double cx = f.left + slot * (static_cast<double>(g) + 0.5);
    const std::string color = kTab10[g % 10];
    auto line = [&](double xa, double ya, double xb, double yb, const char* cls) {
      o += "<line class=\"" + std::string(cls) + "\" x1=\"" + detail::fmt(xa) + "\" y1=\"" + detail::fmt(ya) +
           "\" x2=\"" + detail::fmt(xb) + "\" y2=\"" + detail::fmt(yb) + "\"/>\n";
    };
    line(cx, f.py(s.whisker_low), cx, f.py(s.q1), "whisker");
    line(cx, f.py(s.q3), cx, f.py(s.whisker_high), "whisker");
    line(cx - half / 2, f.py(s.whisker_low), cx + half / 2, f.py(s.whisker_low), "cap");
    line(cx - half / 2, f.py(s.whisker_high), cx + half / 2, f.py(s.whisker_high), "cap");
    o += "<rect class=\"box\" x=\"" + detail::fmt(cx - half) + "\" y=\"" + detail::fmt(f.py(s.q3)) +
         "\" width=\"" + detail::fmt(2 * half) + "\" height=\"" + detail::fmt(f.py(s.q1) - f.py(s.q3)) +
         "\" fill=\"" + color + "\" fill-opacity=\"0.55\"/>\n";
    line(cx - half, f.py(s.median), cx + half, f.py(s.median), "median");
    for (double v : s.outliers)
      o += "<circle class=\"outlier\" cx=\"" + detail::fmt(cx) + "\" cy=\"" + detail::fmt(f.py(v)) +
           "\" r=\"3\" fill=\"none\"/>\n";
    o += "<text class=\"box-label\" x=\"" + detail::fmt(cx) + "\" y=\"" + detail::fmt(f.bottom + 19) +
         "\" text-anchor=\"middle\" stroke=\"none\" fill=\"#222222\">" + escape_xml(groups[g].first) + "</text>\n";
  }
  return o + "</g>\n</svg>\n";
}

// Line chart of named series (x[i], y[i]) with tab10 colours, nice ticks on
// both axes and a legend. Throws if there are no series, a series is empty or
// its x and y lengths differ, or a value is NaN/Inf.
inline std::string render_line_svg(const std::vector<LineSeries>& series, const LineOptions& opt = {}) {
  DML_CHECK(!series.empty(), "line chart: no series to plot");
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  bool first = true;
  std::vector<std::string> names;
  for (const LineSeries& s : series) {
    DML_CHECK(s.x.size() == s.y.size(), "line chart: series '", s.name, "' has ", s.x.size(), " x values and ",
              s.y.size(), " y values");
    DML_CHECK(!s.x.empty(), "line chart: series '", s.name, "' is empty");
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      detail::check_finite(s.x[i], "line chart", "x of point", i);
      detail::check_finite(s.y[i], "line chart", "y of point", i);
      if (first) x0 = x1 = s.x[i], y0 = y1 = s.y[i], first = false;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
    names.push_back(s.name);
  }
  std::size_t longest = 0;
  for (const auto& s : names) longest = std::max(longest, s.size());
  const double legend_w = 36.0 + 7.0 * static_cast<double>(std::min<std::size_t>(longest, 28));
  detail::Frame f{70, opt.title.empty() ? 20.0 : 40.0, opt.width - 16.0 - legend_w,
                  opt.height - (opt.x_label.empty() ? 34.0 : 50.0), nice_ticks(x0, x1), nice_ticks(y0, y1)};
  DML_CHECK(f.right - f.left >= 40 && f.bottom - f.top >= 40, "line chart: ", opt.width, " x ", opt.height,
            " leaves no room for the plot");
  std::string o = detail::open_svg(opt.width, opt.height, opt.title);
  f.draw(o, opt.x_label, opt.y_label);
  o += "<g id=\"series\" fill=\"none\" stroke-width=\"1.8\">\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    const LineSeries& s = series[k];
    const std::string color = kTab10[k % 10];
    o += "<polyline class=\"series\" stroke=\"" + color + "\" points=\"";
    for (std::size_t i = 0; i < s.x.size(); ++i)
      o += (i ? " " : "") + detail::fmt(f.px(s.x[i])) + "," + detail::fmt(f.py(s.y[i]));
    o += "\"/>\n";
    if (opt.markers) {
      o += "<g fill=\"" + color + "\" stroke=\"none\">\n";
      for (std::size_t i = 0; i < s.x.size(); ++i) detail::marker(o, Marker::Circle, f.px(s.x[i]), f.py(s.y[i]), 2.5);
      o += "</g>\n";
    }
  }
  o += "</g>\n";
  detail::legend(o, f.right + 8, f.top + 8, names, [&](std::size_t i, double x, double y) {
    o += "<line x1=\"" + detail::fmt(x - 6) + "\" y1=\"" + detail::fmt(y) + "\" x2=\"" + detail::fmt(x + 6) +
         "\" y2=\"" + detail::fmt(y) + "\" stroke=\"" + kTab10[i % 10] + "\" stroke-width=\"2.5\"/>\n";
  });
  return o + "</svg>\n";
}

// Writes text to path via path + ".tmp" and a rename, so a reader never sees
// a half-written file. Throws dml::Error naming the path on any failure.
inline void write_text_file(const std::string& path, const std::string& text) {
  DML_CHECK(!path.empty(), "save svg: empty path");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DML_CHECK(out.good(), "save svg: cannot open '", tmp, "' for writing: ", std::strerror(errno));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(tmp.c_str());
      throw Error(::dml::detail::concat("save svg: writing '", tmp, "' failed"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error(::dml::detail::concat("save svg: cannot rename '", tmp, "' to '", path, "': ", ec.message()));
  }
}

// render_scatter_svg written to path (see write_text_file for failure).
inline void save_scatter_svg(const std::string& path, std::span<const float> xs, std::span<const float> ys,
                             std::span<const std::int64_t> labels, const ScatterOptions& opt = {}) {
  write_text_file(path, render_scatter_svg(xs, ys, labels, opt));
}
inline void save_scatter_svg(const std::string& path, const float* xy, std::int64_t n,
                             std::span<const std::int64_t> labels, const ScatterOptions& opt = {}) {
  write_text_file(path, render_scatter_svg(xy, n, labels, opt));
}

// render_box_svg written to path.
inline void save_box_svg(const std::string& path,
                         const std::vector<std::pair<std::string, std::vector<double>>>& groups,
                         const BoxOptions& opt = {}) {
  write_text_file(path, render_box_svg(groups, opt));
}

// render_line_svg written to path.
inline void save_line_svg(const std::string& path, const std::vector<LineSeries>& series,
                          const LineOptions& opt = {}) {
  write_text_file(path, render_line_svg(series, opt));
}

}  // namespace dml::viz
