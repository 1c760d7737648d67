// Placeholder demo: proves the build works until the reproduction demo lands.
#include <dml/config.hpp>

#include <cstdio>

int main() {
  std::printf("dml %s: build OK\n", DML_VERSION_STRING);
  std::printf("The seed reproduction demo comes with a later issue.\n");
}
