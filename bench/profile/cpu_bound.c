/* Fixed CPU-bound work for the overhead bench: argv[1] rounds of a hash loop
 * (frame pointers, like a well-built service). Prints the checksum so the
 * work cannot be optimised away. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) uint64_t sonde_bench_mix(uint64_t x, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 29;
  }
  return x;
}

int main(int argc, char** argv) {
  unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
  uint64_t x = 1;
  for (unsigned long r = 0; r < rounds; ++r) x = sonde_bench_mix(x + r, 1000000);
  printf("%llu\n", (unsigned long long)x);
  return 0;
}
