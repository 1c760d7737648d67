// tests/gradcheck.hpp: finite-difference gradient checks for dml ops.
//
// gradcheck(f, inputs) compares the autograd gradient of L = <f(inputs), R>,
// with R a fixed random projection of the output (as dlib does), against
// central differences, element by element, in double.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <dml/dml.hpp>

namespace dml::testing {

using TensorD = Tensor<double, Cpu>;

struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-6;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-5;
  std::uint64_t seed = 1234;
};

struct GradcheckReport {
  double max_abs_error = 0;
  std::int64_t checked = 0;
  std::int64_t failures = 0;
};

namespace detail {
inline double project(const TensorD& out, const std::vector<double>& r) {
  std::vector<double> v = out.to_vector();
  double acc = 0;
  for (std::size_t i = 0; i < v.size(); ++i) acc += v[i] * r[i];
  return acc;
}
}  // namespace detail

// Checks every input that requires grad. `f` must build its graph from the
// inputs on every call. Each mismatch is a doctest failure naming the input
// and element; the report says how many elements were checked.
inline GradcheckReport gradcheck(const std::function<TensorD(std::vector<TensorD>&)>& f, std::vector<TensorD> inputs,
                                 GradcheckOptions opt = {}) {
  GradcheckReport rep;
  for (auto& x : inputs) x.zero_grad();
  TensorD out = f(inputs);
  Generator gen(opt.seed);
  TensorD r = TensorD::randn(out.shape(), gen);
  std::vector<double> rv = r.to_vector();
  out.backward(r);

  NoGrad no_grad;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    TensorD& x = inputs[k];
    if (!x.requires_grad()) continue;
    TensorD g = x.grad();
    REQUIRE_MESSAGE(g.defined(), "input ", k, " received no gradient");
    std::vector<double> analytic = g.to_vector();
    double* p = x.data();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      double saved = p[i];
      p[i] = saved + opt.eps;
      double plus = detail::project(f(inputs), rv);
      p[i] = saved - opt.eps;
      double minus = detail::project(f(inputs), rv);
      p[i] = saved;
      double numeric = (plus - minus) / (2 * opt.eps);
      double err = std::abs(analytic[static_cast<std::size_t>(i)] - numeric);
      rep.max_abs_error = std::max(rep.max_abs_error, err);
      ++rep.checked;
      if (!(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        ++rep.failures;
        if (rep.failures <= 5)
          FAIL_CHECK("gradient mismatch: input ", k, " element ", i, ": analytic ",
                     analytic[static_cast<std::size_t>(i)], " vs numeric ", numeric);
      }
    }
  }
  CHECK_MESSAGE(rep.checked > 0, "gradcheck checked no element: no input requires grad");
  return rep;
}

// A double tensor of the given shape with values drawn uniformly from [lo, hi)
// that requires grad.
inline TensorD param(const Shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  TensorD t = TensorD::uniform(s, g, lo, hi);
  t.requires_grad_();
  return t;
}

// Elementwise closeness of two host vectors.
template <class T>
void check_close(const std::vector<T>& got, const std::vector<T>& want, double tol, const char* what = "") {
  REQUIRE_MESSAGE(got.size() == want.size(), what, ": size ", got.size(), " vs ", want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    CHECK_MESSAGE(std::abs(double(got[i]) - double(want[i])) <= tol * (1 + std::abs(double(want[i]))), what,
                  " element ", i, ": got ", got[i], ", want ", want[i]);
}

}  // namespace dml::testing
