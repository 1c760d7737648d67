// Tests for dml/viz/svg.hpp: documents are well-formed XML with the expected marks.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <dml/viz/svg.hpp>

namespace {

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':' || c == '-' || c == '.';
}

// "" when `s` is well-formed XML (prolog, comments, one root, balanced tags,
// quoted unique attributes, only predefined or numeric entities, no raw '<'
// in text or attribute values); otherwise the first problem found.
std::string xml_problem(const std::string& s) {
  std::size_t i = 0;
  std::vector<std::string> open;
  bool root_done = false;
  auto entity_ok = [&](std::size_t at) {
    const std::size_t end = s.find(';', at);
    if (end == std::string::npos || end - at > 10) return false;
    const std::string e = s.substr(at + 1, end - at - 1);
    if (e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos") return true;
    return e.size() > 1 && e[0] == '#';
  };
  if (s.rfind("<?xml", 0) == 0) {
    i = s.find("?>");
    if (i == std::string::npos) return "unterminated prolog";
    i += 2;
  }
  while (i < s.size()) {
    if (s[i] != '<') {
      if (s[i] == '&' && !entity_ok(i)) return "bad entity at " + std::to_string(i);
      if (open.empty() && !std::isspace(static_cast<unsigned char>(s[i]))) return "text outside the root";
      ++i;
      continue;
    }
    if (s.compare(i, 4, "<!--") == 0) {
      const std::size_t end = s.find("-->", i);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    if (s.compare(i, 2, "</") == 0) {
      const std::size_t end = s.find('>', i);
      if (end == std::string::npos) return "unterminated end tag";
      const std::string name = s.substr(i + 2, end - i - 2);
      if (open.empty() || open.back() != name) return "mismatched </" + name + ">";
      open.pop_back();
      if (open.empty()) root_done = true;
      i = end + 1;
      continue;
    }
    ++i;
    std::size_t start = i;
    while (i < s.size() && name_char(s[i])) ++i;
    const std::string name = s.substr(start, i - start);
    if (name.empty()) return "empty tag name at " + std::to_string(start);
    if (open.empty() && root_done) return "second root element <" + name + ">";
    std::set<std::string> attrs;
    for (;;) {
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) return "unterminated tag <" + name + ">";
      if (s.compare(i, 2, "/>") == 0) {
        i += 2;
        if (open.empty()) root_done = true;
        break;
      }
      if (s[i] == '>') {
        open.push_back(name);
        ++i;
        break;
      }
      start = i;
      while (i < s.size() && name_char(s[i])) ++i;
      const std::string attr = s.substr(start, i - start);
      if (attr.empty() || i >= s.size() || s[i] != '=') return "bad attribute in <" + name + ">";
      if (!attrs.insert(attr).second) return "duplicate attribute " + attr;
      ++i;
      if (i >= s.size() || (s[i] != '"' && s[i] != '\'')) return "unquoted attribute " + attr;
      const char quote = s[i++];
      const std::size_t end = s.find(quote, i);
      if (end == std::string::npos) return "unterminated attribute " + attr;
      for (std::size_t j = i; j < end; ++j) {
        if (s[j] == '<') return "raw '<' in attribute " + attr;
        if (s[j] == '&' && !entity_ok(j)) return "bad entity in attribute " + attr;
      }
      i = end + 1;
    }
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  if (!root_done) return "no root element";
  return "";
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

// The text between the opening of <g id="name"> and the next <g id=...> or the end.
std::string section(const std::string& s, const std::string& id) {
  const std::size_t a = s.find("<g id=\"" + id + "\"");
  REQUIRE(a != std::string::npos);
  std::size_t b = s.find("<g id=\"", a + 1);
  return s.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

}  // namespace

TEST_CASE("the XML checker itself accepts good and rejects bad documents") {
  CHECK(xml_problem("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/>t &amp; u</a>\n") == "");
  CHECK(xml_problem("<a><b></a></b>") != "");
  CHECK(xml_problem("<a x=1/>") != "");
  CHECK(xml_problem("<a>x & y</a>") != "");
  CHECK(xml_problem("<a/><b/>") != "");
  CHECK(xml_problem("<a x=\"1\" x=\"2\"/>") != "");
  CHECK(xml_problem("<a>") != "");
}

TEST_CASE("scatter SVG is well-formed with one circle per point, tab10 colours and a legend") {
  const int n = 57;
  std::vector<float> xs, ys;
  std::vector<std::int64_t> labels;
  for (int i = 0; i < n; ++i) {
    xs.push_back(static_cast<float>(std::cos(i * 0.7) * (1 + i % 3)));
    ys.push_back(static_cast<float>(std::sin(i * 0.7) * 3 - 1));
    labels.push_back(i % 4 == 3 ? 9 : i % 4);  // classes 0, 1, 2, 9
  }
  dml::viz::ScatterOptions opt;
  opt.title = "ArcFace <test> & \"quotes\"";
  opt.class_names = {"zero", "one", "t<w>o"};  // label 9 falls back to "9"
  const std::string svg = dml::viz::render_scatter_svg(xs, ys, labels, opt);
  CHECK(xml_problem(svg) == "");
  CHECK(svg.find("xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(svg.find("viewBox=\"0 0 760 600\"") != std::string::npos);
  CHECK(svg.find("ArcFace &lt;test&gt; &amp; &quot;quotes&quot;") != std::string::npos);
  CHECK(svg.find("<test>") == std::string::npos);
  const std::string points = section(svg, "points");
  CHECK(count(points, "<circle") == static_cast<std::size_t>(n));
  for (const char* c : {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"}) CHECK(count(points, c) == 1);
  const std::string legend = section(svg, "legend");
  CHECK(count(legend, "<circle") == 4);
  CHECK(legend.find(">zero<") != std::string::npos);
  CHECK(legend.find(">t&lt;w&gt;o<") != std::string::npos);
  CHECK(legend.find(">9<") != std::string::npos);
  // Interleaved (x, y) overload draws the same picture.
  std::vector<float> xy;
  for (int i = 0; i < n; ++i) xy.push_back(xs[i]), xy.push_back(ys[i]);
  CHECK(dml::viz::render_scatter_svg(xy.data(), n, labels, opt) == svg);
}

TEST_CASE("scatter with more than 10 classes switches marker per colour cycle") {
  std::vector<float> xs, ys;
  std::vector<std::int64_t> labels;
  for (int c = 0; c < 23; ++c)
    for (int i = 0; i < 2; ++i) xs.push_back(static_cast<float>(c)), ys.push_back(static_cast<float>(i)), labels.push_back(c);
  const std::string svg = dml::viz::render_scatter_svg(xs, ys, labels);
  CHECK(xml_problem(svg) == "");
  const std::string points = section(svg, "points");
  CHECK(count(points, "<circle") == 20);  // classes 0-9
  CHECK(count(points, "<rect") == 20);    // classes 10-19: squares
  CHECK(count(points, "<path") == 6);     // classes 20-22: triangles
  CHECK(dml::viz::class_style(12).color == std::string("#2ca02c"));
  CHECK(dml::viz::class_style(12).marker == dml::viz::Marker::Square);
}

TEST_CASE("scatter rejects mismatched lengths, NaN coordinates and empty input") {
  std::vector<float> xs = {0, 1, 2}, ys = {0, 1, 2};
  std::vector<std::int64_t> labels = {0, 1};
  CHECK_THROWS_AS(dml::viz::render_scatter_svg(xs, ys, labels), dml::Error);
  labels.push_back(1);
  ys[2] = NAN;
  CHECK_THROWS_WITH_AS(dml::viz::render_scatter_svg(xs, ys, labels), doctest::Contains("point 2"), dml::Error);
  CHECK_THROWS_AS(dml::viz::render_scatter_svg(std::vector<float>{}, std::vector<float>{}, std::vector<std::int64_t>{}),
                  dml::Error);
}

TEST_CASE("box statistics follow numpy percentiles and 1.5 IQR whiskers") {
  auto s = dml::viz::box_stats({4, 1, 3, 2});
  CHECK(s.q1 == doctest::Approx(1.75));
  CHECK(s.median == doctest::Approx(2.5));
  CHECK(s.q3 == doctest::Approx(3.25));
  CHECK(s.whisker_low == 1);
  CHECK(s.whisker_high == 4);
  CHECK(s.outliers.empty());
  auto t = dml::viz::box_stats({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30, -20});
  // q1 = 2.75, q3 = 8.25, IQR 5.5: fences -5.5 and 16.5.
  CHECK(t.q1 == doctest::Approx(2.75));
  CHECK(t.q3 == doctest::Approx(8.25));
  CHECK(t.whisker_low == 1);
  CHECK(t.whisker_high == 10);
  CHECK(t.outliers.size() == 2);
}

TEST_CASE("box plot SVG has one box per method, escaped labels and outliers") {
  std::vector<std::pair<std::string, std::vector<double>>> groups = {
      {"softmax", {0.81, 0.83, 0.85, 0.86, 0.84}},
      {"arc & cos", {0.90, 0.91, 0.93, 0.92, 0.60}},  // 0.60 is an outlier
      {"center<loss>", {0.88}},
  };
  dml::viz::BoxOptions opt{.title = "Anomaly AUC", .y_label = "ROC-AUC"};
  const std::string svg = dml::viz::render_box_svg(groups, opt);
  CHECK(xml_problem(svg) == "");
  CHECK(count(svg, "class=\"box\"") == 3);
  CHECK(count(svg, "class=\"median\"") == 3);
  CHECK(count(svg, "class=\"outlier\"") == 1);
  CHECK(svg.find(">arc &amp; cos<") != std::string::npos);
  CHECK(svg.find(">center&lt;loss&gt;<") != std::string::npos);
  CHECK(svg.find(">ROC-AUC<") != std::string::npos);
  CHECK_THROWS_AS(dml::viz::render_box_svg({}), dml::Error);
  CHECK_THROWS_AS(dml::viz::render_box_svg({{"empty", {}}}), dml::Error);
  CHECK_THROWS_AS(dml::viz::render_box_svg({{"nan", {0.5, NAN}}}), dml::Error);
}

TEST_CASE("line chart SVG draws one polyline per series with a legend") {
  std::vector<dml::viz::LineSeries> series = {
      {"train loss", {1, 2, 3, 4, 5}, {2.3, 1.1, 0.7, 0.5, 0.42}},
      {"test \"acc\"", {1, 2, 3, 4, 5}, {0.8, 0.9, 0.95, 0.97, 0.975}},
  };
  dml::viz::LineOptions opt{.title = "Training", .x_label = "epoch", .y_label = "value", .markers = true};
  const std::string svg = dml::viz::render_line_svg(series, opt);
  CHECK(xml_problem(svg) == "");
  CHECK(count(svg, "<polyline") == 2);
  CHECK(count(section(svg, "series"), "<circle") == 10);
  CHECK(svg.find(">test &quot;acc&quot;<") != std::string::npos);
  CHECK(svg.find(">epoch<") != std::string::npos);
  series[1].y.pop_back();
  CHECK_THROWS_WITH_AS(dml::viz::render_line_svg(series), doctest::Contains("test \"acc\""), dml::Error);
  series[1].y.push_back(INFINITY);
  CHECK_THROWS_AS(dml::viz::render_line_svg(series), dml::Error);
  CHECK_THROWS_AS(dml::viz::render_line_svg({}), dml::Error);
}

TEST_CASE("nice ticks are round numbers covering the range") {
  auto t = dml::viz::nice_ticks(0.0, 1.0);
  REQUIRE(t.size() == 6);
  CHECK(t.front() == 0.0);
  CHECK(t.back() == doctest::Approx(1.0));
  CHECK(t[1] == doctest::Approx(0.2));
  auto u = dml::viz::nice_ticks(-3.7, 12.1);
  CHECK(u.front() <= -3.7);
  CHECK(u.back() >= 12.1);
  CHECK(u[1] - u[0] == doctest::Approx(5.0));
  auto v = dml::viz::nice_ticks(0.5, 0.5);  // degenerate range is widened
  CHECK(v.front() < 0.5);
  CHECK(v.back() > 0.5);
}

TEST_CASE("save_*_svg writes the rendered text atomically and names the path on failure") {
  const auto dir = std::filesystem::temp_directory_path() / "dml_test_svg";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "scatter.svg").string();
  std::vector<float> xs = {0, 1}, ys = {1, 0};
  std::vector<std::int64_t> labels = {0, 1};
  dml::viz::save_scatter_svg(path, xs, ys, labels);
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  CHECK(buf.str() == dml::viz::render_scatter_svg(xs, ys, labels));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  const std::string line_path = (dir / "curve.svg").string();
  dml::viz::save_line_svg(line_path, {{"a", {0, 1}, {0, 1}}});
  CHECK(std::filesystem::file_size(line_path) > 100);
  const std::string box_path = (dir / "box.svg").string();
  dml::viz::save_box_svg(box_path, {{"a", {0.1, 0.2}}});
  CHECK(std::filesystem::exists(box_path));
  const std::string bad = (dir / "no_such_dir" / "x.svg").string();
  CHECK_THROWS_WITH_AS(dml::viz::save_scatter_svg(bad, xs, ys, labels), doctest::Contains(bad.c_str()), dml::Error);
  std::filesystem::remove_all(dir);
}
