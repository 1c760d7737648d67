// bench/gemm: validates every float GEMM kernel this host runs (dml's AVX-512
// and AVX2 micro-kernels, Eigen) against a double-precision loop, then times
// each on the GEMMs of ResNet18's channel-lowered 3x3 convolutions at 28x28,
// batch 128, in the three forms a training step runs:
//   forward  out[M, o]  = cols[M, K] @ w[o, K]^T       (M = batch * output pixels)
//   grad_w   gw[o, K]  += gy[M, o]^T @ cols[M, K]
//   grad_x   dcols[M, K] = gy[M, o] @ w[o, K]
// Prints `name: value unit` lines: gemm_<kernel>_<layer>_<form>: GFLOP/s, and
// the host's kernel (gemm_host_kernel) that Backend<Cpu>::gemm uses.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include <dml/dml.hpp>

using namespace dml;
namespace gk = cpu::gemm_kernel;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Max relative error of alpha * op(a) @ op(b) + beta * c against a double loop.
double validate(std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb, float beta, Generator& g) {
  auto a = Tensor<float>::randn(ta ? Shape{k, m} : Shape{m, k}, g);
  auto b = Tensor<float>::randn(tb ? Shape{n, k} : Shape{k, n}, g);
  auto c0 = Tensor<float>::randn({m, n}, g).to_vector();
  auto c = c0;
  const float alpha = 0.75f;
  Backend<Cpu>::gemm(ta, tb, m, n, k, alpha, a.data(), ta ? m : k, b.data(), tb ? k : n, beta, c.data(), n);
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
      ref = alpha * ref + beta * c0[i * n + j];
      mag = alpha * mag + std::abs(beta * c0[i * n + j]);
      worst = std::max(worst, std::abs(c[i * n + j] - ref) / (mag + 1e-30));
    }
  return worst;
}

}  // namespace

int main() {
  Generator g(1);
  std::vector<gk::Isa> kernels;
  for (gk::Isa isa : {gk::Isa::avx512, gk::Isa::avx2, gk::Isa::eigen})
    if (isa == gk::Isa::eigen || int(isa) <= int(gk::host_isa())) kernels.push_back(isa);

  for (gk::Isa isa : kernels) {
    gk::use_isa(isa);
    double worst = 0;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.f, 1.f}) worst = std::max(worst, validate(67, 45, 131, ta, tb, beta, g));
    std::printf("gemm_%s_validation_max_rel_error: %.3g\n", gk::isa_name(isa), worst);
    if (worst > 1e-5) {
      std::printf("gemm: validation of %s FAILED\n", gk::isa_name(isa));
      return 1;
    }
  }
  std::printf("# threads: %d\n", cpu::max_threads());
  std::printf("gemm_host_kernel: %d (%s)\n", int(gk::host_isa()), gk::isa_name(gk::host_isa()));

  struct Layer {
    const char* name;
    std::int64_t m, o, k;  // positions (batch * pixels), output channels, taps * input channels
  };
  const Layer layers[] = {{"layer1", 128 * 49, 64, 576},
                          {"layer2", 128 * 16, 128, 1152},
                          {"layer3", 128 * 4, 256, 2304},
                          {"layer4", 128 * 1, 512, 4608}};
  for (const Layer& l : layers) {
    auto cols = Tensor<float>::randn({l.m, l.k}, g);
    auto w = Tensor<float>::randn({l.o, l.k}, g);
    auto gy = Tensor<float>::randn({l.m, l.o}, g);
    auto out = Tensor<float>::empty({l.m, l.o});
    auto gw = Tensor<float>::zeros({l.o, l.k});
    auto dcols = Tensor<float>::empty({l.m, l.k});
    const double flop = 2.0 * double(l.m) * double(l.o) * double(l.k);
    for (gk::Isa isa : kernels) {
      gk::use_isa(isa);
      for (int form = 0; form < 3; ++form) {
        std::vector<double> times;
        for (int rep = 0; rep < 12; ++rep) {
          auto t0 = std::chrono::steady_clock::now();
          if (form == 0)
            Backend<Cpu>::gemm(false, true, l.m, l.o, l.k, 1.f, cols.data(), l.k, w.data(), l.k, 0.f, out.data(),
                               l.o);
          else if (form == 1)
            Backend<Cpu>::gemm(true, false, l.o, l.k, l.m, 1.f, gy.data(), l.o, cols.data(), l.k, 1.f, gw.data(),
                               l.k);
          else
            Backend<Cpu>::gemm(false, false, l.m, l.k, l.o, 1.f, gy.data(), l.o, w.data(), l.k, 0.f, dcols.data(),
                               l.k);
          times.push_back(seconds_since(t0));
        }
        std::sort(times.begin(), times.end());
        const double med = times[times.size() / 2];
        static const char* forms[] = {"forward", "grad_w", "grad_x"};
        std::printf("gemm_%s_%s_%s: %.1f GFLOP/s (median of %zu, %.3f ms)\n", gk::isa_name(isa), l.name,
                    forms[form], flop / med * 1e-9, times.size(), med * 1e3);
      }
    }
  }
  gk::use_isa(gk::host_isa());
  return 0;
}
