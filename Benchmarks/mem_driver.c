/* Memory driver for Benchmarks/run.sh: calls a blockc-generated attention entry point once on
 * BH x N x d inputs and reports the process's peak resident set size.
 *
 * Build (bench.py does this):
 *   blockc emit-c Examples/attention.graph --dim BH=8,N=32768,d=64 -o DIR/attention.c
 *   gcc -O3 -march=native -fopenmp -fno-math-errno -fno-trapping-math -std=gnu11 -I DIR \
 *       -DENTRY=blk_u_attention -DENTRY_HEADER='"attention.h"' -DBH=8 -DN=32768 -DD=64 \
 *       DIR/attention.c mem_driver.c -o DIR/mem_attention -lm
 * Run:   OMP_NUM_THREADS=2 /usr/bin/time -v DIR/mem_attention
 * Prints: io_bytes B rss_before_io_kib A rss_with_io_kib X peak_rss_kib Y seconds S checksum C
 * (Q, K, V and O are allocated and written before the call, so "rss_with_io" already holds
 * them; peak - rss_with_io is what the entry point itself added.)
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include ENTRY_HEADER

static long maxrss_kib(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss; /* KiB on Linux */
}

static float *alloc_filled(size_t n, unsigned seed) {
  float *p = (float *)aligned_alloc(64, n * sizeof(float));
  if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = ((seed >> 8) * (1.0f / 16777216.0f)) * 2.f - 1.f;
  }
  return p;
}

int main(void) {
  const size_t n = (size_t)BH * (size_t)N * (size_t)D;
  long before = maxrss_kib();
  float *Q = alloc_filled(n, 1), *K = alloc_filled(n, 2), *V = alloc_filled(n, 3);
  float *O = alloc_filled(n, 4); /* written so its pages are resident before the call */
  long with_io = maxrss_kib();
  double t0 = omp_get_wtime();
  ENTRY(Q, K, V, O);
  double t = omp_get_wtime() - t0;
  long peak = maxrss_kib();
  double sum = 0;
  for (size_t i = 0; i < n; i += 4097) sum += O[i];
  printf("io_bytes %zu rss_before_io_kib %ld rss_with_io_kib %ld peak_rss_kib %ld seconds %.3f checksum %.6g\n",
         4 * n * sizeof(float), before, with_io, peak, t, sum);
  free(Q); free(K); free(V); free(O);
  return 0;
}
