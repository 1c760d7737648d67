// Tests for the CUDA skeleton's plumbing: error checks, the no-device path, the
// caching allocator, Memory<Cuda> round trips, and the device-only op structs
// run on the host. The error, allocator-arithmetic and host-run tests
// need no GPU; the others skip without one (fail under DML_REQUIRE_GPU=1).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_test.cuh"

using namespace dml;
using namespace dml_test;

namespace {

// ---- errors (run without a GPU) --------------------------------------------------------------

TEST_CASE("cuda errors: DML_CUDA_CHECK throws dml::Error naming the call, the error, file and line") {
  int line = 0;
  try {
    line = __LINE__; DML_CUDA_CHECK(cudaSetDevice(-1));
    FAIL("DML_CUDA_CHECK did not throw for cudaSetDevice(-1)");
  } catch (const Error& e) {
    std::string what = e.what();
    INFO(what);
    CHECK(contains(what, "CUDA error "));
    CHECK(contains(what, "in cudaSetDevice(-1)"));
    CHECK(!contains(what, "[at "));  // the location is for where(), not for the user's message
    CHECK(contains(e.where(), "test_cuda_core.cu:" + std::to_string(line)));
    CHECK(e.line() == static_cast<std::uint_least32_t>(line));
  }
  // The error is not sticky: the next query works as before.
  CHECK((cudaGetLastError() == cudaSuccess || !cuda::device_available()));
}

TEST_CASE("cuda errors: DML_CUBLAS_CHECK names the cuBLAS status") {
  try {
    DML_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE);
    FAIL("DML_CUBLAS_CHECK did not throw");
  } catch (const Error& e) {
    std::string what = e.what();
    INFO(what);
    CHECK(contains(what, "cuBLAS error 7 CUBLAS_STATUS_INVALID_VALUE"));
    CHECK(contains(e.where(), "test_cuda_core.cu:"));
  }
  CHECK_NOTHROW(DML_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS));
  CHECK_NOTHROW(DML_CUDA_CHECK(cudaSuccess));
}

TEST_CASE("cuda errors: without a device every entry point throws one clear dml::Error") {
  if (cuda::device_available()) {
    CHECK_NOTHROW(cuda::require_device());
    CHECK(cuda::device_status().empty());
    MESSAGE("device: ", cuda::context().name, " (sm_", cuda::context().compute_capability, ", ",
            cuda::context().sm_count, " SMs)");
    return;
  }
  std::string why = cuda::device_status();
  MESSAGE("no device here: ", why);
  CHECK(contains(why, "cudaGetDeviceCount"));
  auto expect_no_device = [](const std::function<void()>& f, const char* what) {
    try {
      f();
      FAIL_CHECK(what, " did not throw without a device");
    } catch (const Error& e) {
      INFO(what, ": ", e.what());
      CHECK(contains(e.what(), "no CUDA device: cudaGetDeviceCount"));
    }
  };
  expect_no_device([] { cuda::require_device(); }, "require_device");
  expect_no_device([] { cuda::context(); }, "context");
  expect_no_device([] { (void)Tensor<float, Cuda>::zeros(Shape{4}); }, "Tensor<float, Cuda>::zeros");
  expect_no_device([] { (void)Tensor<float>::ones(Shape{2}).to<Cuda>(); }, "to<Cuda>");
  // Empty tensors need no memory and so no device.
  CHECK_NOTHROW((void)Tensor<float, Cuda>::empty(Shape{0, 3}));
}

// ---- allocator ---------------------------------------------------------------------------------

TEST_CASE("cuda allocator: sizes round up to 512 B, then to four buckets per power of two") {
  using A = cuda::CachingAllocator;
  static_assert(A::round_size(1) == 512);
  CHECK(A::round_size(0) == 512);
  CHECK(A::round_size(512) == 512);
  CHECK(A::round_size(513) == 1024);
  CHECK(A::round_size(1000) == 1024);
  CHECK(A::round_size(std::size_t(1) << 20) == std::size_t(1) << 20);
  CHECK(A::round_size((std::size_t(1) << 20) + 1) == (std::size_t(5) << 18));     // 1.25 MiB
  CHECK(A::round_size(std::size_t(3) << 20) == std::size_t(3) << 20);            // 3 MiB: 2 MiB + 2 * 512 KiB
  CHECK(A::round_size((std::size_t(3) << 20) + 1) == (std::size_t(7) << 19));   // 3.5 MiB
  CHECK(A::round_size((std::size_t(1) << 30) - 1) == std::size_t(1) << 30);
  for (std::size_t b : {std::size_t(1) << 21, std::size_t(123456789), std::size_t(5) << 28}) {
    std::size_t r = A::round_size(b);
    CHECK(r >= b);
    CHECK(r - b <= b / 4);
    CHECK(A::round_size(r) == r);
  }
}

TEST_CASE("cuda allocator: a freed block is reused without a new cudaMalloc") {
  DML_GPU_OR_SKIP();
  auto& alloc = cuda::allocator();
  if (!alloc.caching()) {
    MESSAGE("DML_CUDA_NO_CACHE=1: caching is off, nothing to check");
    return;
  }
  void* p = alloc.allocate(1000);
  auto s1 = alloc.stats();
  alloc.release(p);
  auto s2 = alloc.stats();
  CHECK(s2.bytes_in_use + 1024 == s1.bytes_in_use);
  CHECK(s2.bytes_cached >= 1024);
  void* q = alloc.allocate(1000);
  auto s3 = alloc.stats();
  CHECK(q == p);
  CHECK(s3.cuda_malloc_count == s1.cuda_malloc_count);
  CHECK(s3.cache_hits == s2.cache_hits + 1);
  alloc.release(q);

  // Tensors go through the same allocator.
  auto before = alloc.stats();
  {
    auto t = Tensor<float, Cuda>::empty(Shape{1000});
    auto u = Tensor<float, Cuda>::empty(Shape{1000});
    CHECK(alloc.stats().bytes_in_use == before.bytes_in_use + 2 * 4096);
  }
  CHECK(alloc.stats().bytes_in_use == before.bytes_in_use);
  auto settled = alloc.stats();
  {
    auto t = Tensor<float, Cuda>::empty(Shape{1000});
    auto u = Tensor<float, Cuda>::empty(Shape{1000});
    CHECK(alloc.stats().cuda_malloc_count == settled.cuda_malloc_count);
  }

  cuda::empty_cache();
  auto s4 = alloc.stats();
  CHECK(s4.bytes_cached == 0);
  CHECK(s4.blocks_cached == 0);
  CHECK(s4.cuda_free_count > settled.cuda_free_count);
}

TEST_CASE("cuda allocator: a repeated training step reaches a steady state without cudaMalloc") {
  DML_GPU_OR_SKIP();
  if (!cuda::allocator().caching()) return;
  Generator gen(7);
  auto x = Tensor<float, Cuda>::randn(Shape{64, 32}, gen).requires_grad_();
  auto w = Tensor<float, Cuda>::randn(Shape{10, 32}, gen).requires_grad_();
  auto labels = Tensor<i64, Cuda>::from_vector(random_labels(64, 10, 3));
  auto step = [&] {
    x.zero_grad();
    w.zero_grad();
    auto logits = ops::matmul(ops::l2_normalize(x), ops::l2_normalize(w), false, true) * 16.f;
    auto loss = ops::cross_entropy(logits, labels, 0.1);
    loss.backward();
    return loss.item();
  };
  float first = step();
  step();
  auto before = cuda::memory_stats();
  float third = step();
  auto after = cuda::memory_stats();
  CHECK(after.cuda_malloc_count == before.cuda_malloc_count);
  CHECK(after.cache_hits > before.cache_hits);
  CHECK(first == third);  // deterministic kernels: the same step gives the same bits
}

// ---- the device-only ops, run on the host (no GPU needed) ------------------------------------------
//
// The device's own algorithms (split column sums, the warp argmax, GEMM's k == 0 scaling) are
// DML_HD op structs, so the host runs them in a loop against the CPU backend; the warp argmax's
// combine step is emulated over 32 lanes with the xor butterfly of warp_argmax. (Kernels that
// run a functor of backend/kernels/ need no such check: the CPU tests execute the same lines.)

template <class Op>
void host_for_each(i64 n, const Op& op) {
  for (i64 i = 0; i < n; ++i) op(i);
}

template <class T>
std::pair<T, i64> host_warp_argmax(const T* x, i64 len) {
  T v[32], ov[32];
  i64 idx[32], oi[32];
  for (int lane = 0; lane < 32; ++lane) {
    v[lane] = T(0);
    idx[lane] = -1;
    for (i64 l = lane; l < len; l += 32) kernels::argmax_push(v[lane], idx[lane], x[l], l);
  }
  for (int m = 16; m > 0; m >>= 1) {
    std::copy(v, v + 32, ov);
    std::copy(idx, idx + 32, oi);
    for (int lane = 0; lane < 32; ++lane) kernels::argmax_push(v[lane], idx[lane], ov[lane ^ m], oi[lane ^ m]);
  }
  for (int lane = 1; lane < 32; ++lane) {
    CHECK(idx[lane] == idx[0]);  // every lane ends with the same pair
  }
  return {v[0], idx[0]};
}

TEST_CASE("cuda kernels: the device-only op structs, run on the host, match the CPU backend") {
  namespace cd = cuda::detail;
  std::uint64_t seed = 900;
  // Column sums: direct and split into chunks (the device's own split).
  for (auto [outer, len, inner] : std::vector<std::tuple<i64, i64, i64>>{{4, 37, 9}, {2, 3000, 3}, {1, 100000, 2},
                                                                          {3, 1, 4}, {2, 515, 1}}) {
    std::string shape = " [" + std::to_string(outer) + ", " + std::to_string(len) + ", " + std::to_string(inner) + "]";
    auto x = random_vec<double>(static_cast<std::size_t>(outer * len * inner), ++seed);
    i64 outputs = outer * inner;
    std::vector<double> want(outputs), got(outputs);
    CpuB::sum_axis(x.data(), want.data(), outer, len, inner, 0.25);
    host_for_each(outputs, cd::SumColsOp<double>{x.data(), got.data(), len, inner, 0.25});
    all_close(got, want, 1e-13, 1e-13, "SumColsOp" + shape);
    auto [chunk, chunks] = cd::column_split(outputs, len);
    CHECK(chunk * chunks >= len);
    CHECK((chunks - 1) * chunk < len);
    CHECK((chunks == 1 || chunks * outputs <= 65536));
    std::vector<double> partial(static_cast<std::size_t>(chunks * outputs));
    host_for_each(chunks * outputs, cd::SumColsChunkOp<double>{x.data(), partial.data(), len, inner, outputs, chunk});
    host_for_each(outputs, cd::SumChunksOp<double>{partial.data(), got.data(), outputs, chunks, 0.25});
    all_close(got, want, 1e-12, 1e-12, "SumColsChunkOp + SumChunksOp" + shape);
  }
  // The warp argmax against the CPU scan: ties, NaN first (wins), NaN later (ignored), short rows.
  for (i64 len : {i64(1), i64(5), i64(32), i64(33), i64(100), i64(1000)}) {
    for (int variant = 0; variant < 4; ++variant) {
      auto x = random_vec<float>(static_cast<std::size_t>(len), ++seed, 0, 6);
      for (auto& v : x) v = std::floor(v);
      if (variant == 1) x[0] = std::nanf("");
      if (variant == 2 && len > 3) x[3] = std::nanf("");
      if (variant == 3) std::fill(x.begin(), x.end(), std::nanf(""));
      if (variant == 3 && len > 40) x[40] = 1.f;
      float want;
      i64 want_arg;
      CpuB::max_axis(x.data(), &want, &want_arg, 1, len, 1);
      auto [got, got_arg] = host_warp_argmax(x.data(), len);
      INFO("len ", len, " variant ", variant);
      CHECK(got_arg == want_arg);
      CHECK(((std::isnan(got) && std::isnan(want)) || got == want));
    }
  }
  // GEMM's k == 0 scaling.
  const i64 rows = 6, cols = 7;
  auto x = random_vec<float>(static_cast<std::size_t>(rows * cols), ++seed);
  std::vector<float> c = x;
  host_for_each(2 * 3, cd::ScaleMatrixOp<float>{c.data(), 3, cols, 0.5f});
  for (i64 i = 0; i < rows * cols; ++i) {
    bool in_block = i / cols < 2 && i % cols < 3;
    CHECK(c[i] == (in_block ? 0.5f * x[i] : x[i]));
  }
}

// ---- Memory<Cuda> and Tensor<T, Cuda> -------------------------------------------------------------

template <class T>
void check_round_trip() {
  std::vector<T> v(1031);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>((i * 37) % 101);
  auto d = Tensor<T, Cuda>::from_vector(v, Shape{1031});
  CHECK(d.to_vector() == v);
  auto h = Tensor<T>::from_vector(v).template to<Cuda>().template to<Cpu>();
  CHECK(h.to_vector() == v);
  auto c = d.clone();
  CHECK(!c.shares_storage(d));
  CHECK(c.to_vector() == v);
  auto z = Tensor<T, Cuda>::zeros(Shape{3, 5});
  CHECK(z.to_vector() == std::vector<T>(15, T(0)));
  z.copy_(Tensor<T, Cuda>::full(Shape{3, 5}, T(9)));
  CHECK(z.to_vector() == std::vector<T>(15, T(9)));
  CHECK(z.at(2, 4) == T(9));
  CHECK(Tensor<T, Cuda>::scalar(T(4)).item() == T(4));
  CHECK(d.at(1030) == v[1030]);
}

TEST_CASE("cuda memory: host <-> device round trips for every element type") {
  DML_GPU_OR_SKIP();
  check_round_trip<float>();
  check_round_trip<double>();
  check_round_trip<std::int64_t>();
  check_round_trip<std::int32_t>();
  check_round_trip<std::uint8_t>();
  Generator a(11), b(11);
  CHECK(Tensor<float, Cuda>::randn(Shape{4, 4}, a).to_vector() == Tensor<float>::randn(Shape{4, 4}, b).to_vector());
  auto t = Tensor<float, Cuda>::ones(Shape{2, 6});
  auto r = t.reshape({3, -1});
  CHECK(r.shares_storage(t));
  CHECK(r.shape() == Shape{3, 4});
  CHECK(Tensor<float, Cuda>::empty(Shape{0}).to_vector().empty());
}

}  // namespace
