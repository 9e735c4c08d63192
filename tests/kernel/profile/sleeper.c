/* Off-CPU workload: after a byte on stdin, sleeps argv[1] times for argv[2] ms
 * in nanosleep called from sonde_sleepy_function, then prints the measured
 * total sleep time in microseconds. Built with frame pointers. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long NowUs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* One frame between the named function and libc: libc's nanosleep has no
 * frame pointer, so the frame-pointer walk skips its direct caller. */
__attribute__((noinline)) void sonde_sleep_call(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail jump */
}

__attribute__((noinline)) long long sonde_sleepy_function(int count, long ms) {
  long long total = 0;
  for (int i = 0; i < count; ++i) {
    long long t0 = NowUs();
    sonde_sleep_call(ms);
    total += NowUs() - t0;
  }
  return total;
}

int main(int argc, char** argv) {
  int count = argc > 1 ? atoi(argv[1]) : 100;
  long ms = argc > 2 ? atol(argv[2]) : 20;
  char go;
  if (read(0, &go, 1) != 1) return 1;
  long long total = sonde_sleepy_function(count, ms);
  printf("%lld\n", total);
  fflush(stdout);
  /* Stay until stdin closes so the test drains while the process is alive
   * or not, as it chooses. */
  while (read(0, &go, 1) > 0) {
  }
  return 0;
}
