import Codegen
import Foundation
import XCTest

/// The C runtime's row reductions that combine 16 rows at a time: `blk_sum_rows`/`blk_max_rows`
/// and the lanes a row pass leaves (`blk_*_lanes`, then `blk_*_of_lanes`), in a C harness with
/// AVX-512 and without it.
final class RuntimeReductionTests: XCTestCase {
    /// Every row count 1 ... 40 (whole groups of 16 and remainders) and row lengths 1 ... 70
    /// (whole vectors and masked tails), rows `ld` apart with padding that holds NaN (never read);
    /// some rows carry a NaN (max must give NaN there, the sum too), -inf or a single large
    /// element at a random column. Each result must equal a scalar reference: the maximum exactly,
    /// the sum within 1e-5 relative of a double-precision sum.
    func testRowsAndLanesAgainstScalarReference() throws {
        let harness = """
            #include <math.h>
            #include <stdint.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            \(CRuntime.basics)
            \(CRuntime.math)
            \(CRuntime.reductions)
            static float X[40 * 80];
            static float lanes[40 * 16] __attribute__((aligned(64)));
            int main(void) {
                float out[40], out2[40];
                long bad = 0, cases = 0;
                srand(5);
                for (long rows = 1; rows <= 40; rows++)
                    for (long n = 1; n <= 70; n += 1 + (n > 20) * 6) {
                        long ld = n + rand() % 10;
                        for (long x = 0; x < 40 * 80; x++) X[x] = NAN;
                        for (long r = 0; r < rows; r++) {
                            for (long c = 0; c < n; c++) X[r * ld + c] = (float)(rand() % 2001 - 1000) / 64.0f;
                            int kind = rand() % 6;
                            long at = rand() % n;
                            if (kind == 0) X[r * ld + at] = NAN;
                            if (kind == 1) X[r * ld + at] = -INFINITY;
                            if (kind == 2) X[r * ld + at] = 1.0e6f;
                        }
                        for (int op = 0; op < 2; op++) {
                            if (op == 0) blk_sum_rows(X, ld, rows, n, out); else blk_max_rows(X, ld, rows, n, out);
                            for (long r = 0; r < rows; r++) {
                                if (op == 0) blk_sum_lanes(X + r * ld, n, lanes + 16 * r);
                                else blk_max_lanes(X + r * ld, n, lanes + 16 * r);
                            }
                            if (op == 0) blk_sum_of_lanes(lanes, rows, out2); else blk_max_of_lanes(lanes, rows, out2);
                            for (long r = 0; r < rows; r++) {
                                double s = 0.0, a = 0.0;
                                float m = -INFINITY;
                                int nan = 0;
                                for (long c = 0; c < n; c++) {
                                    float v = X[r * ld + c];
                                    nan |= v != v;
                                    s += v;
                                    a += fabs((double)v);
                                    if (v > m) m = v;
                                }
                                for (int w = 0; w < 2; w++) {
                                    float got = w == 0 ? out[r] : out2[r];
                                    if (nan) bad += got == got;
                                    else if (op == 1) bad += got != m;
                                    else if (isinf(s)) bad += got != (float)s;
                                    else bad += fabs((double)got - s) > 1e-5 * a + 1e-6;
                                }
                            }
                            cases++;
                        }
                    }
                printf("%ld cases, %ld bad\\n", cases, bad);
                return bad != 0;
            }
            """
        let dir = CodegenHarness.scratch("runtime-reductions")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for flags in [[], ["-mno-avx512f"]] {
            let exe = try CCompiler.buildProgram(
                source: harness, name: "reductions", directory: dir, flags: CCompiler.baseFlags + flags)
            let run = try CCompiler.run(exe, [])
            XCTAssertEqual(run.status, 0, "\(flags): \(run.stdout) \(run.stderr)")
            XCTAssertEqual(
                run.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "2240 cases, 0 bad", "\(flags)")
        }
    }
}
