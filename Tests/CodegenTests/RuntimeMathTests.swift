import Codegen
import Foundation
import XCTest

/// The C runtime's branch-free math (`blk_expf`, `blk_logf`, `blk_log1pf`, `blk_sinf`, `blk_cosf`,
/// `blk_tanhf`, `blk_erff`): against libm in double precision on random arguments over each function's range,
/// at the special values (±0, ±inf, NaN, subnormals, the domain edges), and vectorised by gcc in a
/// `#pragma omp simd` loop (the reason they exist: libm's are calls gcc does not vectorise).
final class RuntimeMathTests: XCTestCase {
    static let program = """
        #include <math.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        \(CRuntime.basics)
        \(CRuntime.math)
        static uint64_t state = 88172645463325252ull;
        static double uniform(void) {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            return (double)(state >> 11) / 9007199254740992.0;
        }
        /* Largest absolute error of f against g over n random x in [lo, hi), and largest error
           relative to max(|g|, floor). */
        #define SWEEP(name, f, g, lo, hi, floor_) do { \\
            double abs_ = 0, rel_ = 0; \\
            for (int i_ = 0; i_ < 200000; i_++) { \\
                float x_ = (float)((lo) + ((hi) - (lo)) * uniform()); \\
                double want_ = g((double)x_), got_ = (double)f(x_); \\
                double e_ = fabs(got_ - want_); \\
                if (!(e_ <= abs_)) abs_ = e_; \\
                double r_ = e_ / fmax(fabs(want_), (floor_)); \\
                if (!(r_ <= rel_)) rel_ = r_; \\
            } \\
            printf("%s %g %g %.3g %.3g\\n", name, (double)(lo), (double)(hi), abs_, rel_); \\
        } while (0)
        static double sinh_tanh(double x) { return tanh(x); }
        int main(void) {
            SWEEP("exp", blk_expf, exp, -80.0, 80.0, 1e-30);
            SWEEP("log", blk_logf, log, 1e-30, 1e-20, 1.0);
            SWEEP("log", blk_logf, log, 0.5, 2.0, 1e-3);
            SWEEP("log", blk_logf, log, 1.0, 1e30, 1.0);
            SWEEP("log1p", blk_log1pf, log1p, -0.999, 3.0, 1e-30);
            SWEEP("log1p", blk_log1pf, log1p, -1e-6, 1e-6, 1e-30);
            SWEEP("sin", blk_sinf, sin, -3.2, 3.2, 1.0);
            SWEEP("sin", blk_sinf, sin, -1e4, 1e4, 1.0);
            SWEEP("sin", blk_sinf, sin, 1e6, 1e15, 1.0);
            SWEEP("cos", blk_cosf, cos, -3.2, 3.2, 1.0);
            SWEEP("cos", blk_cosf, cos, -1e4, 1e4, 1.0);
            SWEEP("cos", blk_cosf, cos, 1e6, 1e15, 1.0);
            SWEEP("tanh", blk_tanhf, sinh_tanh, -20.0, 20.0, 1.0);
            SWEEP("erf", blk_erff, erf, -1.0, 1.0, 1e-30);
            SWEEP("erf", blk_erff, erf, -6.0, 6.0, 1e-30);
            SWEEP("erf", blk_erff, erf, -1e-6, 1e-6, 1e-30);
            const float special[] = {0.0f, -0.0f, -1.0f, -2.0f, INFINITY, -INFINITY, NAN, 1e-40f, 1.0f, 3e38f};
            for (int i = 0; i < 10; i++) {
                float x = special[i];
                printf("erf %a %a\\n", (double)x, (double)blk_erff(x));
                printf("special %a %a %a %a %a %a\\n", (double)x, (double)blk_logf(x), (double)blk_log1pf(x),
                       (double)blk_sinf(x), (double)blk_cosf(x), (double)blk_expf(x));
            }
            float big = 1e30f;
            printf("bounded %d\\n", fabsf(blk_sinf(big)) <= 1.0f && fabsf(blk_cosf(big)) <= 1.0f);
            /* blk_exp_row (16 lanes with AVX-512, an odd length for the masked tail) against blk_expf:
               random rows over [-120, 100] and the edges (the clamps, n = -126, overflow, specials). */
            static float xs[4099], ys[4099];
            const float edge[] = {-INFINITY, INFINITY, NAN, -NAN, -87.0f, -86.99f, -86.6f, -104.0f, 88.72f, 88.8f,
                                  89.0f, 0.0f, -0.0f, 1e-40f, -1e-40f, 0.5f, -0.34657359f, 0.34657359f};
            long diff = 0, ulps = 0, nans = 0;
            for (int round = 0; round < 40; round++) {
                long n = 4099;
                for (long i = 0; i < n; i++) xs[i] = i < 18 && round == 0 ? edge[i] : (float)(-120.0 + 220.0 * uniform());
                blk_exp_row(xs, ys, n);
                for (long i = 0; i < n; i++) {
                    float want = blk_expf(xs[i]);
                    if (want != want || ys[i] != ys[i]) { if (!(want != want && ys[i] != ys[i])) nans++; continue; }
                    int32_t a, b;
                    memcpy(&a, &want, 4);
                    memcpy(&b, &ys[i], 4);
                    long d = labs((long)a - (long)b);
                    if (d > ulps) ulps = d;
                    if (d != 0) diff++;
                }
            }
            blk_exp_row(xs, xs, 4099); /* in place: the same values */
            long inplace = 0;
            for (long i = 0; i < 4099; i++) if (memcmp(&xs[i], &ys[i], 4) != 0) inplace++;
            printf("exprow %ld %ld %ld %ld\\n", diff, ulps, inplace, nans);
            return 0;
        }
        void blk_vector_probe(const float *restrict a, float *restrict b, long n) {
        #pragma omp simd
            for (long i = 0; i < n; i++) b[i] = blk_sinf(a[i]) + blk_cosf(a[i]) + blk_log1pf(a[i]) + blk_logf(a[i]) + blk_erff(a[i]);
        }
        """

    func testAccuracySpecialValuesAndVectorisation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blockc-math-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try CCompiler.buildProgram(
            source: Self.program, name: "math", directory: dir,
            flags: CCompiler.baseFlags + ["-fopt-info-vec-optimized=" + dir + "/vec.txt"])
        let run = try CCompiler.run(exe, [])
        XCTAssertEqual(run.status, 0, run.stderr)
        // Bounds: absolute for sin/cos/tanh (|f| ≤ 1), relative elsewhere.
        let bounds: [String: (abs: Double?, rel: Double?)] = [
            "exp": (nil, 3e-7), "log": (nil, 3e-7), "log1p": (nil, 4e-7), "sin": (3e-7, nil), "cos": (3e-7, nil),
            "tanh": (3e-7, nil), "erf": (nil, 3e-7),
        ]
        var swept = 0
        for line in run.stdout.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            guard let bound = bounds[f[0]], f.count == 5, let abs = Double(f[3]), let rel = Double(f[4]) else {
                continue
            }
            swept += 1
            if let b = bound.abs { XCTAssertLessThanOrEqual(abs, b, String(line)) }
            if let b = bound.rel { XCTAssertLessThanOrEqual(rel, b, String(line)) }
        }
        XCTAssertEqual(swept, 16, run.stdout)
        // ±0, −1, −2, ±inf, NaN, a subnormal, 1, 3e38: log, log1p, sin, cos, exp (hex floats).
        let special = run.stdout.split(separator: "\n").filter { $0.hasPrefix("special ") }.map {
            Array($0.split(separator: " ").dropFirst().map(String.init))
        }
        XCTAssertEqual(special.count, 10)
        func value(_ s: String) -> Double { s.contains("nan") ? .nan : Double(s) ?? .nan }
        let expected: [[Double]] = [
            [0, -.infinity, 0, 0, 1, 1], [-0.0, -.infinity, -0.0, 0, 1, 1],
            [-1, .nan, -.infinity, sin(-1), cos(-1), exp(-1)], [-2, .nan, .nan, sin(-2), cos(-2), exp(-2)],
            [.infinity, .infinity, .infinity, .nan, .nan, .infinity], [-.infinity, .nan, .nan, .nan, .nan, 0],
        ]
        for (row, want) in zip(special, expected) {
            for (k, w) in want.enumerated().dropFirst() {
                let got = value(row[k])
                if w.isNaN {
                    XCTAssertTrue(got.isNaN, "\(row): column \(k)")
                } else if w.isInfinite || w == 0 {
                    XCTAssertEqual(got, w, "\(row): column \(k)")
                } else {
                    XCTAssertEqual(got, w, accuracy: 3e-7 * Swift.max(1, Swift.abs(w)), "\(row): column \(k)")
                }
            }
        }
        XCTAssertTrue(special[6].dropFirst().allSatisfy { value($0).isNaN }, "NaN in, NaN out: \(special[6])")
        XCTAssertEqual(value(special[7][1]), log(Double(Float(1e-40))), accuracy: 1e-4, "subnormal log")
        XCTAssertTrue(run.stdout.contains("bounded 1"), run.stdout)
        // The row helper (AVX-512 lanes where -march=native has them): at most one unit in the
        // last place from blk_expf (bit-identical here, 164k values; a compiler that does not
        // contract the scalar's x·log2e + shifter into an fma could round n differently), NaN
        // exactly where it gives NaN, and in place the same values.
        let row = try XCTUnwrap(run.stdout.split(separator: "\n").first { $0.hasPrefix("exprow ") }, run.stdout)
            .split(separator: " ").compactMap { Int($0) }
        XCTAssertEqual(row.count, 4, run.stdout)
        XCTAssertLessThanOrEqual(row[1], 1, "largest difference in units in the last place: \(row)")
        XCTAssertEqual(row[2], 0, "in place: \(row)")
        XCTAssertEqual(row[3], 0, "NaN exactly where blk_expf gives NaN: \(row)")
        // erf at ±0, −1, −2, ±inf, NaN, a subnormal (2x/√π), 1, 3e38.
        let erfs = run.stdout.split(separator: "\n").filter { $0.hasPrefix("erf ") }.map {
            $0.split(separator: " ").map(String.init)
        }.filter { $0.count == 3 }
        XCTAssertEqual(erfs.count, 10, run.stdout)
        for row in erfs {
            let x = value(row[1])
            let got = value(row[2])
            if x.isNaN {
                XCTAssertTrue(got.isNaN, "erf(NaN): \(row)")
            } else if x.isInfinite || Swift.abs(x) > 6 {
                XCTAssertEqual(got, x > 0 ? 1 : -1, "erf(\(x))")
            } else {
                XCTAssertEqual(
                    got, erf(x), accuracy: Swift.max(3e-7 * Swift.abs(erf(x)), 1e-44),
                    "erf(\(x)) (a subnormal result within a few units)")
                XCTAssertEqual(got.sign, x.sign, "erf(\(x)) keeps the sign")
            }
        }
        let vec = try String(contentsOfFile: dir + "/vec.txt", encoding: .utf8)
        XCTAssertTrue(vec.contains("loop vectorized"), "gcc did not vectorise the probe loop:\n\(vec)")
    }
}
