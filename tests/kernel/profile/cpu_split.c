/* On-CPU workload: after a byte on stdin, burns CPU for argv[1] seconds, 3/4
 * of it in sonde_hot_75 and 1/4 in sonde_cold_25 (same loop, 3:1 iterations).
 * Built with frame pointers. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SPIN(n)                                          \
  do {                                                   \
    for (volatile unsigned long i = 0; i < (n); ++i) {   \
    }                                                    \
  } while (0)

__attribute__((noinline)) void sonde_hot_75(unsigned long n) { SPIN(3 * n); }
__attribute__((noinline)) void sonde_cold_25(unsigned long n) { SPIN(n); }

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  char go;
  if (read(0, &go, 1) != 1) return 1;
  double end = Now() + seconds;
  while (Now() < end) {
    sonde_hot_75(100000);
    sonde_cold_25(100000);
  }
  return 0;
}
