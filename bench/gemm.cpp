// bench/gemm: validates dml's matmul against a naive loop, then times it on the
// im2col GEMM shapes of ResNet18 at 28x28, batch 128 (M = out channels,
// N = batch * output pixels, K = in channels * 3 * 3).
// Prints `name: value unit` lines.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include <dml/dml.hpp>

using namespace dml;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Max relative error of op(a) @ op(b) against a double-precision naive loop.
double validate(std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb, Generator& g) {
  auto a = Tensor<float>::randn(ta ? Shape{k, m} : Shape{m, k}, g);
  auto b = Tensor<float>::randn(tb ? Shape{n, k} : Shape{k, n}, g);
  auto c = ops::matmul(a, b, ta, tb).to_vector();
  auto av = a.to_vector(), bv = b.to_vector();
  double worst = 0;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (std::int64_t p = 0; p < k; ++p) {
        double x = ta ? av[p * m + i] : av[i * k + p];
        double y = tb ? bv[j * k + p] : bv[p * n + j];
        ref += x * y;
        mag += std::abs(x * y);
      }
      worst = std::max(worst, std::abs(c[i * n + j] - ref) / (mag + 1e-30));
    }
  return worst;
}

}  // namespace

int main() {
  Generator g(1);
  double worst = 0;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) worst = std::max(worst, validate(67, 45, 131, ta, tb, g));
  std::printf("gemm_validation_max_rel_error: %.3g\n", worst);
  if (worst > 1e-5) {
    std::printf("gemm: validation FAILED\n");
    return 1;
  }
  std::printf("threads: %d\n", cpu::max_threads());

  struct Case {
    const char* name;
    std::int64_t m, n, k;
  };
  const Case cases[] = {{"layer1_64x6272x576", 64, 6272, 576},
                        {"layer2_128x2048x1152", 128, 2048, 1152},
                        {"layer3_256x512x2304", 256, 512, 2304},
                        {"layer4_512x128x4608", 512, 128, 4608}};
  for (const Case& c : cases) {
    auto a = Tensor<float>::randn({c.m, c.k}, g);
    auto b = Tensor<float>::randn({c.k, c.n}, g);
    auto out = Tensor<float>::empty({c.m, c.n});
    double flop = 2.0 * double(c.m) * double(c.n) * double(c.k);
    std::vector<double> times;
    for (int rep = 0; rep < 12; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      Backend<Cpu>::gemm(false, false, c.m, c.n, c.k, 1.0f, a.data(), c.k, b.data(), c.n, 0.0f, out.data(), c.n);
      times.push_back(seconds_since(t0));
    }
    std::sort(times.begin(), times.end());
    double med = times[times.size() / 2];
    std::printf("gemm_%s: %.1f GFLOP/s (median of %zu, %.3f ms)\n", c.name, flop / med * 1e-9, times.size(),
                med * 1e3);
  }
  return 0;
}
