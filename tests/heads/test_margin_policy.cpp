// Tests for dml/heads/margin_policy.hpp: the policies against finite
// differences and against PyTorch reference values, their numerics at the
// edges, the SphereFace lambda schedule, and the MarginPolicy concept.
#include <dml/heads/margin_policy.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <numbers>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#ifndef DML_TEST_DATA_DIR
#error "compile with -DDML_TEST_DATA_DIR=\"<repo>/tests/fixtures\""
#endif

namespace {

using namespace dml::heads;

// The margin policies (Softmax and L2Constrained have no apply: their kinds of head put no margin).
using AnyPolicy = std::variant<Arc, Cos, Sphere, Combined>;

// The policies and settings the numeric tests sweep.
std::vector<AnyPolicy> sample_policies() {
  return {Arc{},
          Arc{.m = 0.5, .easy_margin = true},
          Arc{.m = 0.2},
          Arc{.m = 0.8},
          Arc{.m = 0},
          Cos{},
          Cos{.m = -0.1},
          Sphere{},
          Sphere{.lambda = 5},
          Sphere{.lambda = 0},
          Sphere{.m = 1, .lambda = 0},
          Sphere{.m = 2, .lambda = 0},
          Sphere{.m = 3, .lambda = 5},
          Sphere{.m = 5, .lambda = 0},
          Combined{},
          Combined{.m1 = 1, .m2 = 0, .m3 = 0.35},
          Combined{.m1 = 1, .m2 = 0.3, .m3 = 0.2},
          Combined{.m1 = 0.9, .m2 = 0.4, .m3 = 0.15},
          Combined{.m1 = 1.35, .m2 = 0, .m3 = 0},
          Combined{.m1 = 1.2, .m2 = 0.5, .m3 = 0.1}};
}

std::string describe(const AnyPolicy& any) {
  return std::visit(
      [](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        std::ostringstream os;
        if constexpr (std::is_same_v<P, Arc>)
          os << "Arc{m=" << p.m << ", easy=" << p.easy_margin << "}";
        if constexpr (std::is_same_v<P, Cos>) os << "Cos{m=" << p.m << "}";
        if constexpr (std::is_same_v<P, Sphere>)
          os << "Sphere{m=" << p.m << ", lambda=" << p.lambda << "}";
        if constexpr (std::is_same_v<P, Combined>)
          os << "Combined{m1=" << p.m1 << ", m2=" << p.m2 << ", m3=" << p.m3 << "}";
        return os.str();
      },
      any);
}

// Points where apply is discontinuous: Arc's threshold (0 with easy_margin).
std::vector<double> jumps(const AnyPolicy& any) {
  if (const auto* arc = std::get_if<Arc>(&any)) {
    return {arc->easy_margin ? 0.0 : arc->threshold<double>()};
  }
  return {};
}

// Branch boundaries: the jumps, and where a C^1 policy's second derivative
// jumps (Sphere at c = cos(j pi / m), Combined where m1 theta + m2 = k pi).
std::vector<double> kinks(const AnyPolicy& any) {
  std::vector<double> b = jumps(any);
  if (const auto* sp = std::get_if<Sphere>(&any)) {
    for (int j = 1; j < sp->m; ++j) b.push_back(std::cos(j * std::numbers::pi / sp->m));
  }
  if (const auto* co = std::get_if<Combined>(&any)) {
    for (int k = 1; k <= 3; ++k) {
      const double theta = (k * std::numbers::pi - co->m2) / co->m1;
      if (theta > 0 && theta < std::numbers::pi) b.push_back(std::cos(theta));
    }
  }
  return b;
}

// Every kink and points on both sides of it.
std::vector<double> around_kinks(const AnyPolicy& any) {
  std::vector<double> pts;
  for (double x : kinks(any)) {
    for (double d : {-1e-2, -1e-4, -1e-6, 0.0, 1e-6, 1e-4, 1e-2}) pts.push_back(x + d);
  }
  return pts;
}

double distance_to(const std::vector<double>& points, double c) {
  double d = std::numeric_limits<double>::infinity();
  for (double x : points) d = std::min(d, std::abs(c - x));
  return d;
}

// Counts failed checks and keeps the first message, so that sweeps over tens
// of thousands of points stay fast and report one readable line.
struct Failures {
  int count = 0;
  std::string first;
  template <class... Parts>
  void check(bool ok, const Parts&... parts) {
    if (ok || count++) return;
    std::ostringstream os;
    (os << ... << parts);
    first = os.str();
  }
};

template <class T>
T apply_of(const AnyPolicy& any, T c) {
  return std::visit([c](const auto& p) { return p.apply(c); }, any);
}
template <class T>
T dapply_of(const AnyPolicy& any, T c) {
  return std::visit([c](const auto& p) { return p.dapply(c); }, any);
}

// |got - want| <= tol (1 + |want|): absolute near 0, relative for large slopes.
bool close(double got, double want, double tol) {
  return std::abs(got - want) <= tol * (1 + std::abs(want));
}

}  // namespace

TEST_CASE("dapply matches central differences of apply in double, up to 2e-7 from +-1") {
  std::vector<double> grid;
  for (int i = -999; i <= 999; ++i) grid.push_back(i / 1000.0);
  // Just outside the kCosEps band, where dapply is still the exact derivative.
  for (double e : {1e-3, 1e-5, 1e-6, 5e-7, 2e-7}) {
    grid.push_back(1 - e);
    grid.push_back(-1 + e);
  }
  int checked = 0;
  Failures bad;
  for (const AnyPolicy& p : sample_policies()) {
    std::vector<double> pts = grid;
    for (double x : around_kinks(p)) pts.push_back(x);
    for (double c : pts) {
      // Central differences straddle no kink: the step shrinks towards +-1
      // (where apply ~ sqrt(1 - c^2)) and towards kinks; exact kinks are skipped.
      const double to_kink = distance_to(kinks(p), c);
      if (!(std::abs(c) < 1 - 1.5 * kCosEps<double>) || to_kink < 1e-7) continue;
      const double h = std::min({1e-6, 1e-3 * (1 - std::abs(c)), 0.25 * to_kink});
      const double fd = (apply_of(p, c + h) - apply_of(p, c - h)) / (2 * h);
      const double d = dapply_of(p, c);
      bad.check(close(d, fd, 1e-6), describe(p), " c = ", c, " h = ", h, " fd = ", fd,
                " dapply = ", d);
      ++checked;
    }
  }
  CHECK_MESSAGE(bad.count == 0, bad.count, " failures, first: ", bad.first);
  CHECK(checked > 40000);
}

TEST_CASE("apply and dapply are finite at +-1, 0, thresholds and out-of-range cosines") {
  auto check_type = [](auto zero) {
    using T = decltype(zero);
    std::vector<T> pts = {T(-1), T(1), T(0), -T(0), std::nextafter(T(1), T(2)),
                          std::nextafter(T(-1), T(-2)), std::nextafter(T(1), T(0)),
                          std::nextafter(T(-1), T(0)), T(1) - kCosEps<T>, T(-1) + kCosEps<T>,
                          T(1) - kCosEps<T> / 2, T(1.001), T(-1.001)};
    for (int i = -2000; i <= 2000; ++i) pts.push_back(T(i) / T(2000));
    Failures bad;
    for (const AnyPolicy& p : sample_policies()) {
      std::vector<T> all = pts;
      for (double x : around_kinks(p)) all.push_back(T(x));
      for (T c : all) {
        const T v = apply_of(p, c), d = dapply_of(p, c);
        bad.check(std::isfinite(v) && std::isfinite(d), describe(p), " c = ", c, " apply = ", v,
                  " dapply = ", d);
      }
    }
    CHECK_MESSAGE(bad.count == 0, bad.count, " failures, first: ", bad.first);
  };
  SUBCASE("double") { check_type(0.0); }
  SUBCASE("float") { check_type(0.0f); }
}

TEST_CASE("dapply is bounded by 1/sqrt(2 kCosEps) near +-1") {
  const Combined p{.m1 = 1, .m2 = 0.5, .m3 = 0};
  CHECK(std::abs(p.dapply(1.0)) <= 1 / std::sqrt(2 * kCosEps<double>));
  CHECK(std::abs(p.dapply(1.0f)) <= 1 / std::sqrt(2 * kCosEps<float>));
  CHECK(Arc{}.dapply(1.0) == doctest::Approx(Arc{}.dapply(1 - kCosEps<double>)));
}

TEST_CASE("margin policies are non-decreasing in the cosine (all but easy_margin)") {
  Failures bad;
  for (const AnyPolicy& p : sample_policies()) {
    if (const auto* arc = std::get_if<Arc>(&p); arc && arc->easy_margin) continue;
    double prev = apply_of(p, -1.0);
    for (int i = -9999; i <= 10000; ++i) {
      const double c = i / 10000.0, v = apply_of(p, c), d = dapply_of(p, c);
      bad.check(v >= prev - 1e-12 && d >= -1e-12, describe(p), " c = ", c, " apply = ", v,
                " previous = ", prev, " dapply = ", d);
      prev = v;
    }
  }
  CHECK_MESSAGE(bad.count == 0, bad.count, " failures, first: ", bad.first);
}

TEST_CASE("Arc switches to c - m sin m below th = cos(pi - m), as insightface does") {
  const Arc p{.s = 30, .m = 0.5};
  const double th = std::cos(std::numbers::pi - 0.5);
  CHECK(p.threshold<double>() == doctest::Approx(th).epsilon(1e-15));
  CHECK(p.apply(th) == doctest::Approx(th - 0.5 * std::sin(0.5)));
  CHECK(p.apply(th + 1e-9) == doctest::Approx(-1).epsilon(1e-6));  // cos(pi)
  CHECK(p.dapply(th - 1e-9) == 1);
  CHECK(p.dapply(th + 1e-9) == doctest::Approx(0).epsilon(1e-3).scale(1));
  CHECK(p.apply(0.6) == doctest::Approx(std::cos(std::acos(0.6) + 0.5)));
  const Arc easy{.m = 0.5, .easy_margin = true};
  CHECK(easy.apply(-0.3) == -0.3);
  CHECK(easy.dapply(-0.3) == 1);
  CHECK(easy.apply(0.3) == doctest::Approx(std::cos(std::acos(0.3) + 0.5)));
}

TEST_CASE("Combined reduces to Cos (m2 = 0) and to Arc above its threshold (m3 = 0)") {
  const Combined as_cos{.m1 = 1, .m2 = 0, .m3 = 0.35};
  const Combined as_arc{.m1 = 1, .m2 = 0.5, .m3 = 0};
  const Cos cosface{.m = 0.35};
  const Arc arcface{.m = 0.5};
  for (int i = -1000; i <= 1000; ++i) {
    const double c = i / 1000.0;
    INFO("c = ", c);
    CHECK(as_cos.apply(c) == doctest::Approx(cosface.apply(c)).epsilon(1e-12));
    if (c > arcface.threshold<double>()) {
      CHECK(as_arc.apply(c) == doctest::Approx(arcface.apply(c)).epsilon(1e-12));
      if (std::abs(c) < 1) {
        CHECK(as_arc.dapply(c) == doctest::Approx(arcface.dapply(c)).epsilon(1e-9));
      }
    }
  }
  // Past t = pi the value keeps falling (insightface's cos(t) would rise again).
  CHECK(as_arc.apply(-1.0) == doctest::Approx(-2 - std::cos(std::numbers::pi + 0.5)));
}

TEST_CASE("Sphere is psi(theta) = (-1)^k cos(m theta) - 2k blended with lambda") {
  for (int m = 1; m <= 5; ++m) {
    const Sphere p{.m = m, .lambda = 0};
    for (int i = 0; i <= 1000; ++i) {
      const double theta = i * std::numbers::pi / 1000, c = std::cos(theta);
      const int k = std::min(m - 1, int(std::floor(m * theta / std::numbers::pi)));
      const double psi = (k % 2 ? -1 : 1) * std::cos(m * theta) - 2 * k;
      INFO("m = ", m, " theta = ", theta);
      CHECK(p.apply(c) == doctest::Approx(psi).epsilon(1e-9).scale(1));
    }
    CHECK(p.apply(-1.0) == doctest::Approx(1 - 2 * m));  // psi(pi)
  }
  // m = 4, c = 0.3 lies between cos(pi/2) and cos(pi/4), so k = 1:
  // psi = -T4(0.3) - 2 = -(8 c^4 - 8 c^2 + 1) - 2 = -2.3448, apply = (5 c + psi) / 6,
  // dapply = (5 - T4'(0.3)) / 6 = (5 - (32 c^3 - 16 c)) / 6 = (5 + 3.936) / 6.
  const Sphere p{.lambda = 5};
  CHECK(p.apply(0.3) == doctest::Approx((1.5 - 2.3448) / 6).epsilon(1e-12));
  CHECK(p.dapply(0.3) == doctest::Approx(8.936 / 6).epsilon(1e-12));
}

TEST_CASE("Sphere lambda = max(lambda_min, base (1 + gamma iter)^-power), SphereFace's schedule") {
  const Sphere p{};  // base 1000, gamma 0.12, power 1, lambda_min 5
  CHECK(p.lambda_at(0) == doctest::Approx(1000));                    // 1000 / 1
  CHECK(p.lambda_at(100) == doctest::Approx(76.92307692307692));     // 1000 / 13
  CHECK(p.lambda_at(1000) == doctest::Approx(8.264462809917356));    // 1000 / 121
  CHECK(p.lambda_at(2000) == 5);                                     // 1000 / 241 = 4.15 < 5
  const Sphere torch_port{.base = 1500, .gamma = 0.1, .lambda_min = 5};
  CHECK(torch_port.lambda_at(100) == doctest::Approx(136.36363636363637));  // 1500 / 11
  const Sphere squared{.power = 2};
  CHECK(squared.lambda_at(10) == doctest::Approx(206.61157024793388));  // 1000 / 2.2^2
  const Sphere stepped = p.at_iteration(100);
  CHECK(stepped.lambda == doctest::Approx(76.92307692307692));
  CHECK(stepped.m == p.m);
  CHECK(p.lambda == 1000);  // at_iteration returns a copy
}

TEST_CASE("policies match the PyTorch reference values in tests/fixtures/heads/policies.txt") {
  const std::string path = std::string(DML_TEST_DATA_DIR) + "/heads/policies.txt";
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.is_open(), "cannot open ", path, " (run tests/fixtures/gen_heads.py)");
  std::string line, name;
  AnyPolicy policy;
  bool identity = false;
  int cases = 0, rows = 0, float_rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    if (line.rfind("case ", 0) == 0) {
      std::string word;
      is >> word >> name;
      std::map<std::string, double> kv;
      while (is >> word) {
        const auto eq = word.find('=');
        kv[word.substr(0, eq)] = std::stod(word.substr(eq + 1));
      }
      if (name == "arc") policy = Arc{.m = kv.at("m"), .easy_margin = kv.at("easy_margin") != 0};
      else if (name == "cos") policy = Cos{.m = kv.at("m")};
      else if (name == "sphere") policy = Sphere{.m = int(kv.at("m")), .lambda = kv.at("lambda")};
      else if (name == "combined")
        policy = Combined{.m1 = kv.at("m1"), .m2 = kv.at("m2"), .m3 = kv.at("m3")};
      else if (name != "softmax" && name != "l2constrained") FAIL("unknown policy '", name, "' in ", path);
      identity = name == "softmax" || name == "l2constrained";
      ++cases;
      continue;
    }
    double c, value, d_double, d_float;
    REQUIRE_MESSAGE(bool(is >> c >> value >> d_double >> d_float), "bad line in ", path, ": ",
                    line);
    if (identity) {  // the reference puts no margin on these heads, and neither do their kinds
      static_assert(!PolicyTraits<Softmax>::kMargin && !PolicyTraits<L2Constrained>::kMargin);
      INFO(name, " c = ", c);
      CHECK(value == c);
      CHECK(d_double == 1);
      CHECK(d_float == 1);
      ++rows;
      continue;
    }
    INFO(describe(policy), " c = ", c);
    CHECK(close(apply_of(policy, c), value, 1e-5));
    CHECK(close(dapply_of(policy, c), d_double, 1e-5));
    ++rows;
    // float: at the cosines float holds exactly, away from Arc's jump where
    // float's threshold may sit an ulp from double's.
    if (double(float(c)) != c || distance_to(jumps(policy), c) < 1e-4) continue;
    // Near theta = pi, float holds t = m1 theta + m2 only to ulp(pi) / 2, so
    // Combined's slope -m1 psi'(t) / sin(theta) may be off by ~1.2e-7 m1 / sin(theta).
    const double sin_theta = std::sqrt(std::max(2e-6, (1 - c) * (1 + c)));
    const float got = dapply_of(policy, float(c));
    CHECK(close(apply_of(policy, float(c)), value, 2e-6));
    CHECK((close(got, d_float, 2e-5) || std::abs(got - d_float) < 2e-7 / sin_theta));
    ++float_rows;
  }
  CHECK(cases == 24);
  CHECK(rows > 1500);
  CHECK(float_rows > 900);
}

TEST_CASE("validate rejects bad hyper-parameters with dml::Error") {
  CHECK_NOTHROW(validate_policy(Arc{}));
  CHECK_NOTHROW(validate_policy(Sphere{}));
  CHECK_NOTHROW(validate_policy(Softmax{}));
  CHECK_THROWS_AS(validate_policy(Arc{.s = 0}), dml::Error);
  CHECK_THROWS_AS(validate_policy(Arc{.m = 3.5}), dml::Error);
  CHECK_THROWS_AS(validate_policy(Arc{.m = -0.1}), dml::Error);
  CHECK_THROWS_AS(validate_policy(Cos{.m = std::numeric_limits<double>::quiet_NaN()}), dml::Error);
  CHECK_THROWS_AS(validate_policy(Sphere{.m = 0}), dml::Error);
  CHECK_THROWS_AS(validate_policy(Sphere{.lambda = -1}), dml::Error);
  CHECK_THROWS_AS(validate_policy(Combined{.m1 = 0}), dml::Error);
  CHECK_THROWS_AS(validate_policy(L2Constrained{.alpha = -16}), dml::Error);
  std::string message;
  try {
    validate_policy(Arc{.m = 4});
  } catch (const dml::Error& e) {
    message = e.message();
  }
  CHECK(message == "heads::Arc: m must lie in [0, pi), got m = 4");
}

// --- the concept -----------------------------------------------------------

namespace {

struct NoDapply {
  double scale() const { return 1; }
  template <class T> T apply(T c) const { return c; }
};

struct NotTriviallyCopyable {
  NotTriviallyCopyable() = default;
  NotTriviallyCopyable(const NotTriviallyCopyable&) {}
  double scale() const { return 1; }
  template <class T> T apply(T c) const { return c; }
  template <class T> T dapply(T) const { return 1; }
};

struct DoubleOnly {  // apply(float) returns double
  double scale() const { return 1; }
  double apply(double c) const { return c; }
  double dapply(double) const { return 1; }
};

struct NoKind {  // names no Kind: a cosine head
  double scale() const { return 1; }
  template <class T> T apply(T c) const { return c; }
  template <class T> T dapply(T) const { return 1; }
};

struct Minimal {  // the least a user policy needs
  double s = 10;
  double scale() const { return s; }
  template <class T> T apply(T c) const { return c - T(0.1); }
  template <class T> T dapply(T) const { return 1; }
};

static_assert(check_margin_policy<Arc>());
static_assert(check_margin_policy<Cos>());
static_assert(check_margin_policy<Sphere>());
static_assert(check_margin_policy<Combined>());
static_assert(check_margin_policy<Minimal>());
static_assert(check_head_policy<Arc>() && check_head_policy<Sphere>() && check_head_policy<Minimal>());
static_assert(check_head_policy<Softmax>() && check_head_policy<L2Constrained>());
static_assert(std::is_trivially_copyable_v<Arc> && std::is_trivially_copyable_v<Cos> &&
              std::is_trivially_copyable_v<Sphere> && std::is_trivially_copyable_v<Combined> &&
              std::is_trivially_copyable_v<Softmax> && std::is_trivially_copyable_v<L2Constrained>);
static_assert(std::is_aggregate_v<Arc> && std::is_aggregate_v<Cos> && std::is_aggregate_v<Sphere> &&
              std::is_aggregate_v<Combined> && std::is_aggregate_v<Softmax> &&
              std::is_aggregate_v<L2Constrained>);

}  // namespace

TEST_CASE("the MarginPolicy concept rejects policies that lack a requirement") {
  CHECK(is_margin_policy_v<Arc>);
  CHECK(is_margin_policy_v<Minimal>);
  CHECK(!is_margin_policy_v<NoDapply>);
  CHECK(!is_margin_policy_v<NotTriviallyCopyable>);
  CHECK(!is_margin_policy_v<DoubleOnly>);
  CHECK(is_margin_policy_v<NoKind>);
  CHECK(!is_margin_policy_v<Softmax>);
  CHECK(!is_margin_policy_v<L2Constrained>);
  CHECK(!is_margin_policy_v<int>);
}

TEST_CASE("PolicyTraits tells MarginHead how to build each head") {
  static_assert(std::is_same_v<head_kind_t<Softmax>, LinearHead>);
  static_assert(std::is_same_v<head_kind_t<L2Constrained>, ScaledLinearHead>);
  static_assert(std::is_same_v<head_kind_t<Arc>, CosineHead> && std::is_same_v<head_kind_t<Cos>, CosineHead> &&
                std::is_same_v<head_kind_t<Sphere>, CosineHead> && std::is_same_v<head_kind_t<Combined>, CosineHead>);
  static_assert(std::is_same_v<head_kind_t<NoKind>, CosineHead>);  // the default
  using L = PolicyTraits<Softmax>;
  static_assert(L::kBias && !L::kMargin && !L::kUsesFeatureNorm && !L::kScheduled);
  using S = PolicyTraits<L2Constrained>;
  static_assert(S::kBias && !S::kMargin);
  using A = PolicyTraits<Arc>;
  static_assert(!A::kBias && A::kMargin && !A::kUsesFeatureNorm && !A::kScheduled);
  static_assert(PolicyTraits<Sphere>::kUsesFeatureNorm && PolicyTraits<Sphere>::kScheduled);
  static_assert(!PolicyTraits<Minimal>::kUsesFeatureNorm);
  CHECK(Arc{.s = 30, .m = 0.5}.scale() == 30);
  CHECK(Combined{}.scale() == 64);
  CHECK(Sphere{}.scale() == 1);
  CHECK(L2Constrained{.alpha = 16}.scale() == 16);
}

static_assert(check_head_policy<SubCenter<Arc>>() && check_head_policy<SubCenter<Combined>>());
static_assert(check_margin_policy<AdaCos>() && check_head_policy<AdaCos>());
static_assert(std::is_trivially_copyable_v<SubCenter<Arc>> && std::is_aggregate_v<SubCenter<Arc>> &&
              std::is_trivially_copyable_v<AdaCos> && std::is_aggregate_v<AdaCos>);

TEST_CASE("SubCenter wraps a margin policy with k sub-centres per class") {
  static_assert(std::is_same_v<head_kind_t<SubCenter<Arc>>, SubCenterHead>);
  using T = PolicyTraits<SubCenter<Cos>>;
  static_assert(!T::kBias && T::kMargin && !T::kUsesFeatureNorm && !T::kScheduled);
  const SubCenter<Arc> p{.margin = {.s = 64, .m = 0.5}, .k = 5};
  CHECK(p.scale() == 64);
  CHECK(p.centers_per_class() == 5);
  CHECK(dml::heads::detail::centers_per_class(p) == 5);
  CHECK(dml::heads::detail::centers_per_class(Arc{}) == 1);
  CHECK(SubCenter<Arc>{}.k == 3);
  CHECK_THROWS_WITH_AS(SubCenter<Arc>{.k = 0}.validate(), doctest::Contains("k (sub-centres per class) must be >= 1"),
                       dml::Error);
  CHECK_THROWS_WITH_AS((SubCenter<Arc>{.margin = {.s = -2}}.validate()), doctest::Contains("heads::Arc: s must be positive"),
                       dml::Error);
}

TEST_CASE("AdaCos: no margin, s = sqrt(2) log(C - 1) for C classes, and the dynamic update") {
  const AdaCos p = AdaCos{}.for_classes(10);
  CHECK(p.s == doctest::Approx(std::sqrt(2.0) * std::log(9.0)).epsilon(1e-15));
  CHECK(AdaCos::fixed_scale(10) == p.s);
  CHECK(AdaCos{.s = 7}.for_classes(10).s == 7);   // an explicit s stays
  CHECK(AdaCos{.s = 7}.for_classes(2).s == 7);
  CHECK_THROWS_WITH_AS(AdaCos{}.for_classes(2), doctest::Contains("needs C >= 3 classes, got C = 2"), dml::Error);
  for (double c : {-1.0, -0.3, 0.0, 0.7, 1.0}) {
    CHECK(p.apply(c) == c);
    CHECK(p.dapply(c) == 1);
    CHECK(p.apply(float(c)) == float(c));
  }
  // s = log(B_avg) / cos(min(pi/4, theta_med))
  CHECK(p.updated(20, 1.2).s == doctest::Approx(std::log(20.0) / std::cos(std::numbers::pi / 4)));
  CHECK(p.updated(20, 0.3).s == doctest::Approx(std::log(20.0) / std::cos(0.3)));
  CHECK(AdaCos{.s = 3, .dynamic = false}.updated(20, 0.3).s == 3);
  CHECK(p.updated(0.5, 0.3).s == p.s);  // log(B_avg) < 0: a scale <= 0 is refused
  CHECK(p.updated(0, 0.3).s == p.s);    // no non-target class
  CHECK_THROWS_WITH_AS(AdaCos{.s = -1}.validate(), doctest::Contains("heads::AdaCos: s must be >= 0 and finite"),
                       dml::Error);
  CHECK_NOTHROW(AdaCos{}.validate());
}
