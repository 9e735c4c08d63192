/* Test ELF for the symbolisation tests: prints the run-time addresses of its
 * functions, then waits for stdin to close so the test controls its life. */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) int sonde_target_alpha(int x) { return x * 3 + 1; }
__attribute__((noinline)) int sonde_target_beta(int x) { return x * 5 + sonde_target_alpha(x); }
__attribute__((noinline)) static int sonde_target_local(int x) { return x - sonde_target_beta(x); }

int main(void) {
  volatile int sink = sonde_target_local(2);
  (void)sink;
  printf("%p %p %p\n", (void*)sonde_target_alpha, (void*)sonde_target_beta,
         (void*)sonde_target_local);
  fflush(stdout);
  char buf[16];
  while (read(0, buf, sizeof(buf)) > 0) {
  }
  return 0;
}
