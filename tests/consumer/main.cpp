// Uses dml as an outside project would; exits 0 when dml behaves.
#include <dml/config.hpp>

#include <cstdio>
#include <string>

int main() {
  int rows = 3;
  try {
    DML_CHECK(rows == 4, "expected 4 rows, got ", rows);
  } catch (const dml::Error& e) {
    if (e.message() != "expected 4 rows, got 3") {
      std::printf("consumer: unexpected message '%s'\n", e.message().c_str());
      return 1;
    }
#ifdef DML_WITH_CUDA
    std::printf("consumer: OK (dml::Error caught: %s; with dml::cuda)\n", e.what());
#else
    std::printf("consumer: OK (dml::Error caught: %s)\n", e.what());
#endif
    return 0;
  }
  std::printf("consumer: DML_CHECK did not throw\n");
  return 1;
}
