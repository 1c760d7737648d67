// The README's first program: a scaled-cosine head on random embeddings.
#include <dml/dml.hpp>
#include <cstdio>
using namespace dml;

int main() {
  Generator gen(42);                                          // seeded counter-based RNG
  auto x = Tensor<float>::randn({8, 16}, gen);                // a batch of 8 embeddings
  auto w = Tensor<float>::randn({10, 16}, gen).requires_grad_();
  auto labels = Tensor<std::int64_t>::from_vector({0, 1, 2, 3, 4, 5, 6, 7});
  auto cos = ops::matmul(ops::l2_normalize(x), ops::l2_normalize(w), false, true);  // 8 x 10 cosines
  auto loss = ops::cross_entropy(cos * 30.0f, labels);        // a scaled-cosine head
  loss.backward();                                            // w.grad() now holds dloss/dw
  std::printf("loss %.4f, |grad| %.4f\n", loss.item(), ops::sum(ops::square(w.grad())).item());
}
