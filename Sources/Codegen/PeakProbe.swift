import Foundation

/// This host's fp32 FMA peak, measured by a small C program built with the flags the generated C
/// uses (`-march=native`): the widest FMA the compiler targets (AVX-512 zmm when `__AVX512F__` is
/// defined, else AVX2 ymm with FMA, else scalar C, which says so), each thread running independent
/// accumulator chains `a = a·b + c`: enough to cover the FMA latency times the FMA ports, few
/// enough to stay in registers. `blockc peak` prints its lines; `blockc bench` reports a percentage
/// of it unless `--peak` is given; `Benchmarks/bench.py` runs `blockc peak` at the start and end of
/// a run.
///
/// The program prints, for 1 thread and then for `OMP_NUM_THREADS` threads, one line
/// `peak_fma isa=avx2_ymm_fma threads=2 accumulators=12 max 123.4 median 120.1 GFLOP/s (7 reps)`;
/// the best rep is the closest to what the hardware can do (noise only ever lowers a rep). Where the
/// compiler's target has AVX512_BF16 it then measures the bf16 dot peak the same way, `vdpbf16ps`
/// chains (64 FLOPs each, a dot's `2·m·n·k`): `peak_dpbf16 isa=avx512_zmm_dpbf16 threads=2 …`
/// (`parse(_:kind:)` with `kind` `peak_dpbf16`).
public enum PeakProbe {
    /// One line of the probe's output.
    public struct Measurement: Sendable, Equatable {
        /// The instruction set the chains used (`avx512_zmm_fma`, `avx2_ymm_fma`, `scalar_no_simd_fma`).
        public var isa: String
        /// Threads that ran chains at once.
        public var threads: Int
        /// The best and the median rep, GFLOP/s.
        public var best: Double
        public var median: Double

        /// A measurement.
        public init(isa: String, threads: Int, best: Double, median: Double) {
            self.isa = isa
            self.threads = threads
            self.best = best
            self.median = median
        }
    }

    /// Parses the probe's lines of one kind (`peak_fma`, the default, or `peak_dpbf16`); others are ignored.
    public static func parse(_ output: String, kind: String = "peak_fma") -> [Measurement] {
        output.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ").map(String.init)
            guard words.first == kind, words.count >= 9,
                let isa = words.first(where: { $0.hasPrefix("isa=") })?.dropFirst(4),
                let threads = words.first(where: { $0.hasPrefix("threads=") }).flatMap({ Int($0.dropFirst(8)) }),
                let m = words.firstIndex(of: "max"), m + 3 < words.count, let best = Double(words[m + 1]),
                words[m + 2] == "median", let median = Double(words[m + 3])
            else { return nil }
            return Measurement(isa: String(isa), threads: threads, best: best, median: median)
        }
    }

    /// Builds the probe in `directory` and runs it: `seconds` per rep, `reps` reps per thread
    /// count. Returns its measurements (1 thread, then `OMP_NUM_THREADS`) and its output.
    public static func measure(directory: String, seconds: Double = 0.1, reps: Int = 5) throws(CCompiler.Failure)
        -> (measurements: [Measurement], output: String)
    {
        let exe = try CCompiler.buildProgram(source: source, name: "peak_fma", directory: directory, flags: ["-O2"])
        let result = try CCompiler.run(exe, [String(seconds), String(reps)])
        let lines = parse(result.stdout)
        guard result.status == 0, !lines.isEmpty else {
            throw CCompiler.Failure(
                "the FMA peak probe failed (status \(result.status)): "
                    + String((result.stderr.isEmpty ? result.stdout : result.stderr).prefix(300)))
        }
        return (lines, result.stdout)
    }

    /// The probe's C source.
    public static let source = #"""
        // blockc peak: this host's fp32 FMA peak (see PeakProbe.swift).
        #include <omp.h>
        #include <stdio.h>
        #include <stdlib.h>

        #if defined(__AVX512F__)
        #include <immintrin.h>
        #define ISA "avx512_zmm_fma"
        #define LANES 16
        #define NACC 24
        typedef __m512 vec;
        #define SET1(x) _mm512_set1_ps(x)
        #define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
        #define ADD(a, b) _mm512_add_ps(a, b)
        static float first_lane(vec v) { return _mm512_cvtss_f32(v); }
        #elif defined(__FMA__) && defined(__AVX2__)
        #include <immintrin.h>
        #define ISA "avx2_ymm_fma"
        #define LANES 8
        #define NACC 12
        typedef __m256 vec;
        #define SET1(x) _mm256_set1_ps(x)
        #define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
        #define ADD(a, b) _mm256_add_ps(a, b)
        static float first_lane(vec v) { return _mm256_cvtss_f32(v); }
        #else
        #define ISA "scalar_no_simd_fma"
        #define LANES 1
        #define NACC 12
        typedef float vec;
        #define SET1(x) (x)
        #define FMA(a, b, c) ((a) * (b) + (c))
        #define ADD(a, b) ((a) + (b))
        static float first_lane(vec v) { return v; }
        #endif

        // One thread's work: iters rounds of NACC independent FMAs. Returns a value that depends on every
        // accumulator so that nothing is optimized away.
        static float chains(long iters, float seed) {
          vec b = SET1(0.999999f), c = SET1(1e-7f);
          vec a0 = SET1(seed + 0.01f), a1 = SET1(seed + 0.02f), a2 = SET1(seed + 0.03f), a3 = SET1(seed + 0.04f);
          vec a4 = SET1(seed + 0.05f), a5 = SET1(seed + 0.06f), a6 = SET1(seed + 0.07f), a7 = SET1(seed + 0.08f);
          vec a8 = SET1(seed + 0.09f), a9 = SET1(seed + 0.10f), a10 = SET1(seed + 0.11f), a11 = SET1(seed + 0.12f);
        #if NACC > 12
          vec a12 = SET1(seed + 0.13f), a13 = SET1(seed + 0.14f), a14 = SET1(seed + 0.15f), a15 = SET1(seed + 0.16f);
          vec a16 = SET1(seed + 0.17f), a17 = SET1(seed + 0.18f), a18 = SET1(seed + 0.19f), a19 = SET1(seed + 0.20f);
          vec a20 = SET1(seed + 0.21f), a21 = SET1(seed + 0.22f), a22 = SET1(seed + 0.23f), a23 = SET1(seed + 0.24f);
        #endif
          for (long it = 0; it < iters; it++) {
            a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c); a3 = FMA(a3, b, c);
            a4 = FMA(a4, b, c); a5 = FMA(a5, b, c); a6 = FMA(a6, b, c); a7 = FMA(a7, b, c);
            a8 = FMA(a8, b, c); a9 = FMA(a9, b, c); a10 = FMA(a10, b, c); a11 = FMA(a11, b, c);
        #if NACC > 12
            a12 = FMA(a12, b, c); a13 = FMA(a13, b, c); a14 = FMA(a14, b, c); a15 = FMA(a15, b, c);
            a16 = FMA(a16, b, c); a17 = FMA(a17, b, c); a18 = FMA(a18, b, c); a19 = FMA(a19, b, c);
            a20 = FMA(a20, b, c); a21 = FMA(a21, b, c); a22 = FMA(a22, b, c); a23 = FMA(a23, b, c);
        #endif
        #if defined(__GNUC__) && defined(__x86_64__)
            // keeps the compiler from folding iterations together or vectorizing the scalar fallback
            __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));
        #endif
          }
          vec s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));
          s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));
        #if NACC > 12
          s = ADD(s, ADD(ADD(ADD(a12, a13), ADD(a14, a15)), ADD(ADD(a16, a17), ADD(a18, a19))));
          s = ADD(s, ADD(ADD(a20, a21), ADD(a22, a23)));
        #endif
          return first_lane(s);
        }

        static volatile float sink;

        #if defined(__AVX512BF16__)
        // The bf16 dot peak: NACC independent chains of vdpbf16ps (32 bf16 products summed in pairs into 16 f32
        // lanes: 64 FLOPs, counted as a dot's 2·m·n·k counts them).
        static float bf16_chains(long iters, float seed) {
          const __m512bh b = (__m512bh)_mm512_set1_epi32(0x3F7F3F7F), c = (__m512bh)_mm512_set1_epi32(0x33D633D6);
        #define BF16_INIT(q) __m512 d##q = _mm512_set1_ps(seed + 0.01f * (q + 1));
        #define BF16_STEP(q) d##q = _mm512_dpbf16_ps(d##q, b, c);
        #define BF16_ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
                            X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
          BF16_ALL(BF16_INIT)
          for (long it = 0; it < iters; it++) {
            BF16_ALL(BF16_STEP)
            __asm__ volatile("" : "+v"(d0), "+v"(d1), "+v"(d2), "+v"(d3));
          }
        #define BF16_SUM(q) s = _mm512_add_ps(s, d##q);
          __m512 s = _mm512_setzero_ps();
          BF16_ALL(BF16_SUM)
          return _mm512_cvtss_f32(s);
        }

        #endif

        // GFLOP/s of `threads` threads each running `iters` rounds of `f` (`flops` per round).
        static double timed(float (*f)(long, float), double flops, int threads, long iters) {
          double t0 = 0, t1 = 0;
          float total = 0;
        #pragma omp parallel num_threads(threads) reduction(+ : total)
          {
        #pragma omp barrier
        #pragma omp master
            t0 = omp_get_wtime();
            total += f(iters, (float)omp_get_thread_num());
        #pragma omp barrier
        #pragma omp master
            t1 = omp_get_wtime();
          }
          sink = total;
          return (double)threads * iters * flops / (t1 - t0) / 1e9;
        }
        static double measure(int threads, long iters) { return timed(chains, NACC * LANES * 2, threads, iters); }
        #if defined(__AVX512BF16__)
        static double measure_bf16(int threads, long iters) { return timed(bf16_chains, 24 * 64, threads, iters); }
        #endif

        static int cmp(const void *x, const void *y) {
          double a = *(const double *)x, b = *(const double *)y;
          return (a > b) - (a < b);
        }

        int main(int argc, char **argv) {
          double seconds = argc > 1 ? atof(argv[1]) : 0.25;
          int reps = argc > 2 ? atoi(argv[2]) : 7;
          if (reps < 1) reps = 1;
          if (reps > 64) reps = 64;
          int maxt = omp_get_max_threads();
          // calibrate: iterations for about `seconds` on one thread
          long iters = 1000000;
          double g = measure(1, iters);
          iters = (long)(seconds * g * 1e9 / (NACC * LANES * 2));
          if (iters < 1000) iters = 1000;
          int counts[2] = {1, maxt};
          for (int k = 0; k < (maxt > 1 ? 2 : 1); k++) {
            int th = counts[k];
            double all[64];
            measure(th, iters / 8);  // warm-up (clocks, thread pool)
            for (int r = 0; r < reps; r++) all[r] = measure(th, iters);
            qsort(all, reps, sizeof(double), cmp);
            printf("peak_fma isa=%s threads=%d accumulators=%d max %.1f median %.1f GFLOP/s (%d reps)\n", ISA, th, NACC,
                   all[reps - 1], all[reps / 2], reps);
            fflush(stdout);
          }
        #if defined(__AVX512BF16__)
          long bf16_iters = 1000000;
          double gb = measure_bf16(1, bf16_iters);
          bf16_iters = (long)(seconds * gb * 1e9 / (24 * 64));
          if (bf16_iters < 1000) bf16_iters = 1000;
          for (int k = 0; k < (maxt > 1 ? 2 : 1); k++) {
            int th = counts[k];
            double all[64];
            measure_bf16(th, bf16_iters / 8);
            for (int r = 0; r < reps; r++) all[r] = measure_bf16(th, bf16_iters);
            qsort(all, reps, sizeof(double), cmp);
            printf("peak_dpbf16 isa=avx512_zmm_dpbf16 threads=%d accumulators=24 max %.1f median %.1f GFLOP/s (%d reps)\n",
                   th, all[reps - 1], all[reps / 2], reps);
            fflush(stdout);
          }
        #endif
          return 0;
        }
        """#
}
