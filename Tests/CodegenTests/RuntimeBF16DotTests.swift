import Codegen
import Foundation
import XCTest

/// The C runtime's bf16 block product `blk_gemm_bf16`: against a double-precision reference over many
/// shapes (including ones no tile divides), both `accumulate` modes, `B` with unit stride along `j`, along
/// `k` (transposed) and neither, `A` with unit stride along `k` and along `i`, with guard values after each
/// row of `C`, after `C` and after `W` to catch stores past the valid extent; operands that are not bf16
/// numbers are rounded to nearest even on both paths. Built twice: with the base flags (the
/// `vdpbf16ps` path where the machine has AVX512_BF16) and with `-mno-avx512bf16` (the f32 fallback).
final class RuntimeBF16DotTests: XCTestCase {
    static let program = """
        #include <math.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        \(CRuntime.basics)
        \(CRuntime.math)
        \(CRuntime.reductions)
        \(CRuntime.dot)
        \(CRuntime.dotBF16)
        static uint64_t state = 88172645463325252ull;
        static double uniform(void) {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            return (double)(state >> 11) / 9007199254740992.0;
        }
        /* a random float in [-2, 2), one in 8 exactly zero; bf16-exact unless raw */
        static float sample(int raw) {
            if (uniform() < 0.125) return 0.0f;
            float x = (float)(4.0 * uniform() - 2.0);
            if (raw) return x;
            uint32_t u;
            memcpy(&u, &x, sizeof u);
            u &= 0xFFFF0000u;
            memcpy(&x, &u, sizeof u);
            return x;
        }
        /* x rounded to the nearest bf16, ties to even */
        static double rne(float x) {
            uint32_t u;
            memcpy(&u, &x, sizeof u);
            u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
            memcpy(&x, &u, sizeof u);
            return (double)x;
        }
        static const float sentinel = 12345.5f;
        static long checked = 0, failures = 0;
        /* One product: B layout 0 (js == 1), 1 (ks == 1), 2 (both strided); A layout 0 (aks == 1), 1 (ars == 1). */
        static void check(long m, long n, long kk, int blay, int alay, int accumulate, int raw, int round) {
            long ars = alay == 0 ? kk + (m % 3) : 1, aks = alay == 0 ? 1 : m + (kk % 2);
            long ks, js;
            if (blay == 0) ks = n + (kk % 3) * 5, js = 1;
            else if (blay == 1) ks = 1, js = kk + (n % 2) * 7;
            else ks = 2 * n + 3, js = 2;
            long asize = (m - 1) * ars + (kk - 1) * aks + 1, bsize = (kk - 1) * ks + (n - 1) * js + 1;
            long ldc = n + 3 + (m % 2) * 16;
            float *A = malloc(sizeof(float) * asize), *B = malloc(sizeof(float) * bsize);
            float *C = malloc(sizeof(float) * (m * ldc + 64)), *C0 = malloc(sizeof(float) * m * ldc);
            float *W = blk_alloc(sizeof(float) * (kk * n + 64));
            for (long i = 0; i < asize; i++) A[i] = sample(raw);
            for (long i = 0; i < bsize; i++) B[i] = sample(raw);
            for (long i = 0; i < m * ldc + 64; i++) C[i] = sentinel;
            for (long i = 0; i < m; i++)
                for (long j = 0; j < n; j++) C[i * ldc + j] = (float)(uniform() - 0.5);
            memcpy(C0, C, sizeof(float) * m * ldc);
            for (long i = kk * n; i < kk * n + 64; i++) W[i] = sentinel;
            blk_gemm_bf16(m, n, kk, A, ars, aks, B, ks, js, C, ldc, accumulate, W);
            long bad = 0;
            for (long i = 0; i < m; i++)
                for (long j = 0; j < n; j++) {
                    double ref = accumulate ? (double)C0[i * ldc + j] : 0.0, mag = fabs(ref);
                    for (long k = 0; k < kk; k++) {
                        double a = A[i * ars + k * aks], b = B[k * ks + j * js];
                        if (round) a = rne(A[i * ars + k * aks]), b = rne(B[k * ks + j * js]);
                        ref += a * b;
                        mag += fabs(a * b);
                    }
                    double got = C[i * ldc + j];
                    if (!(fabs(got - ref) <= 1e-5 * mag + 1e-30)) {
                        if (bad++ < 3)
                            printf("mismatch m=%ld n=%ld kk=%ld B%d A%d acc=%d raw=%d at (%ld,%ld): got %.9g want %.9g\\n", m, n,
                                   kk, blay, alay, accumulate, raw, i, j, got, ref);
                    }
                }
            for (long i = 0; i < m; i++)
                for (long j = n; j < ldc; j++)
                    if (memcmp(&C[i * ldc + j], &sentinel, sizeof sentinel) && bad++ < 3)
                        printf("C written past column %ld: m=%ld n=%ld kk=%ld B%d A%d at (%ld,%ld)\\n", n, m, n, kk, blay, alay,
                               i, j);
            for (long i = m * ldc; i < m * ldc + 64; i++)
                if (memcmp(&C[i], &sentinel, sizeof sentinel) && bad++ < 3)
                    printf("C written past its end: m=%ld n=%ld kk=%ld B%d A%d\\n", m, n, kk, blay, alay);
            for (long i = kk * n; i < kk * n + 64; i++)
                if (memcmp(&W[i], &sentinel, sizeof sentinel) && bad++ < 3)
                    printf("W written past kk*n: m=%ld n=%ld kk=%ld B%d A%d\\n", m, n, kk, blay, alay);
            checked++;
            if (bad) failures++;
            free(A), free(B), free(C), free(C0), free(W);
        }
        int main(void) {
        #ifdef __AVX512BF16__
            printf("path vdpbf16ps\\n");
        #else
            printf("path f32\\n");
        #endif
            const long ms[] = {1, 5, 6, 7, 13, 64}, ns[] = {1, 15, 16, 17, 33, 63, 64, 65, 100};
            const long kks[] = {1, 2, 3, 31, 64, 65, 200, 600};
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 9; b++)
                    for (int c = 0; c < 8; c++)
                        for (int blay = 0; blay < 3; blay++)
                            for (int alay = 0; alay < 2; alay++)
                                for (int acc = 0; acc < 2; acc++) check(ms[a], ns[b], kks[c], blay, alay, acc, 0, 0);
            /* operands that are not bf16 numbers: rounded to nearest even on both paths */
            for (int blay = 0; blay < 3; blay++)
                for (int alay = 0; alay < 2; alay++) check(13, 33, 65, blay, alay, 1, 1, 1);
            printf("checked %ld\\nfailures %ld\\n", checked, failures);
            return failures != 0;
        }
        """

    /// 6 m × 9 n × 8 kk × 3 B layouts × 2 A layouts × 2 accumulate modes, and 6 inexact operand cases.
    static let expectedCases = 6 * 9 * 8 * 3 * 2 * 2 + 6

    /// Whether gcc defines `__AVX512BF16__` under `flags` (plus `-march=native`, as `buildProgram` adds).
    func compilerHasBF16(_ flags: [String]) throws -> Bool {
        let probe = try CCompiler.run(
            CCompiler.compiler, flags + ["-march=native", "-dM", "-E", "-x", "c", "/dev/null"])
        XCTAssertEqual(probe.status, 0, probe.stderr)
        return probe.stdout.contains("__AVX512BF16__")
    }

    func testAgainstDoubleReferenceOnBothPaths() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blockc-bf16dot-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, flags) in [("native", CCompiler.baseFlags), ("fallback", CCompiler.baseFlags + ["-mno-avx512bf16"])]
        {
            let hasBF16 = try compilerHasBF16(flags)
            let exe = try CCompiler.buildProgram(
                source: Self.program, name: "bf16dot_" + name, directory: dir, flags: flags)
            let run = try CCompiler.run(exe, [])
            XCTAssertEqual(run.status, 0, "\(name): \(run.stdout)\n\(run.stderr)")
            let lines = run.stdout.split(separator: "\n").map(String.init)
            let path = hasBF16 ? "path vdpbf16ps" : "path f32"
            XCTAssertEqual(lines.first, path, "\(name) build (compiler defines __AVX512BF16__: \(hasBF16))")
            XCTAssertTrue(lines.contains("checked \(Self.expectedCases)"), "\(name) (\(path)):\n\(run.stdout)")
            XCTAssertTrue(lines.contains("failures 0"), "\(name) (\(path)):\n\(run.stdout)")
            if name == "fallback" { XCTAssertFalse(hasBF16, "-mno-avx512bf16 left __AVX512BF16__ defined") }
        }
    }
}
