// Uses dml as an outside project would: one gradient through the public API,
// one error with its message. Exits 0 when dml behaves.
#include <dml/dml.hpp>
#ifdef DML_WITH_IMAGE
#include <dml/data/image.hpp>
#endif
#ifdef DML_WITH_DISTRIBUTED
#include <dml/distributed/distributed.hpp>
#endif

#include <cmath>
#include <cstdio>

int main() {
  using namespace dml;
  auto x = Tensor<double>::from_vector({1, 2, 3}).requires_grad_();
  ops::sum(ops::square(x)).backward();  // d/dx sum(x^2) = 2x
  auto g = x.grad().to_vector();
  if (g != std::vector<double>{2, 4, 6}) {
    std::printf("consumer: wrong gradient\n");
    return 1;
  }
#ifdef DML_WITH_IMAGE
  data::DecodedImage img{2, 1, 3, {10, 20, 30, 40, 50, 60}};
  if (data::decode_image(data::encode_png(img), "consumer.png").pixels != img.pixels) {
    std::printf("consumer: PNG round trip through dml::image changed the pixels\n");
    return 1;
  }
  std::printf("consumer: dml::image PNG round trip OK\n");
#endif
#ifdef DML_WITH_DISTRIBUTED
  // Links against MPI; MPI_Initialized is callable before MPI_Init, without mpirun.
  int mpi_on = 1;
  MPI_Initialized(&mpi_on);
  if (mpi_on != 0 || Shard{1, 2}.begin(10) != 5) {
    std::printf("consumer: dml::distributed misbehaves\n");
    return 1;
  }
  std::printf("consumer: dml::distributed linked (MPI not started)\n");
#endif
  try {
    ops::matmul(Tensor<float>::zeros({2, 3}), Tensor<float>::zeros({2, 3}));
  } catch (const Error& e) {
#ifdef DML_WITH_CUDA
    std::printf("consumer: OK (gradient 2x; error: %s; with dml::cuda)\n", e.message().c_str());
#else
    std::printf("consumer: OK (gradient 2x; error: %s)\n", e.message().c_str());
#endif
    return 0;
  }
  std::printf("consumer: matmul did not reject mismatched shapes\n");
  return 1;
}
