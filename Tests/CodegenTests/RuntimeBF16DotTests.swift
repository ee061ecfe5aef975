import Codegen
import Foundation
import XCTest

/// The C runtime's bf16 block product `blk_gemm_bf16`: against a double-precision reference over many
/// shapes (including ones no tile divides, odd `kk` and `kk = 1`), both `accumulate` modes, `B` with unit
/// stride along `j`, along `k` (transposed) and neither, `A` with unit stride along `k` and along `i`, each
/// operand given as floats or as bf16 bits (all four combinations), with guard values after each row of
/// `C`, after `C` and after `W` to catch stores past the valid extent. Operands end either at guard bytes
/// (bf16 ones sometimes 2 bytes off 4-byte alignment), checked for stores, or at an inaccessible page, so
/// that a read past an operand's last element crashes the program. Float operands that are not bf16
/// numbers are rounded to nearest even on both paths. Built twice: with the base flags (the `vdpbf16ps`
/// path where the machine has AVX512_BF16) and with `-mno-avx512bf16` (the f32 fallback).
final class RuntimeBF16DotTests: XCTestCase {
    static let program = """
        #include <math.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
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
        /* an operand's memory: bytes at p, followed by 64 guard bytes (fence == 0; p is base + shift) or, with
           fence, ending where an inaccessible page begins, so that a read past the end faults */
        typedef struct { unsigned char *base, *p; size_t bytes, total; int fence; } operand;
        static operand place(size_t bytes, int fence, size_t shift) {
            operand o = {0, 0, bytes, 0, fence};
            if (fence) {
                size_t page = (size_t)sysconf(_SC_PAGESIZE), body = (bytes + page - 1) / page * page;
                o.total = body + page;
                o.base = mmap(NULL, o.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (o.base == MAP_FAILED || mprotect(o.base + body, page, PROT_NONE)) abort();
                o.p = o.base + body - bytes;
            } else {
                o.base = malloc(bytes + shift + 64);
                o.p = o.base + shift;
                memset(o.p + bytes, 0xA5, 64);
            }
            return o;
        }
        /* whether the guard bytes after the operand are intact (always, with a fence) */
        static int intact(operand o) {
            if (o.fence) return 1;
            for (int i = 0; i < 64; i++)
                if (o.p[o.bytes + i] != 0xA5) return 0;
            return 1;
        }
        static void release(operand o) {
            if (o.fence) munmap(o.base, o.total);
            else free(o.base);
        }
        /* element i of an operand as the reference reads it: bf16 bits widened, or the float (rounded when round) */
        static double value(const operand *o, int x16, long i, int round) {
            if (x16) {
                uint32_t u = (uint32_t)((const uint16_t *)o->p)[i] << 16;
                float f;
                memcpy(&f, &u, sizeof f);
                return (double)f;
            }
            return round ? rne(((const float *)o->p)[i]) : (double)((const float *)o->p)[i];
        }
        /* One product: B layout 0 (js == 1), 1 (ks == 1), 2 (both strided); A layout 0 (aks == 1), 1 (ars == 1);
           a16/b16: the operand is bf16 bits, else floats (not bf16 numbers when raw, then rounded by the
           reference when round). The operands end at a fence page when accumulating, else at guard bytes (a
           bf16 operand 2 bytes past an aligned address when m + n + kk is odd). */
        static void check(long m, long n, long kk, int blay, int alay, int accumulate, int raw, int round, int a16,
                          int b16) {
            long ars = alay == 0 ? kk + (m % 3) : 1, aks = alay == 0 ? 1 : m + (kk % 2);
            long ks, js;
            if (blay == 0) ks = n + (kk % 3) * 5, js = 1;
            else if (blay == 1) ks = 1, js = kk + (n % 2) * 7;
            else ks = 2 * n + 3, js = 2;
            long asize = (m - 1) * ars + (kk - 1) * aks + 1, bsize = (kk - 1) * ks + (n - 1) * js + 1;
            long ldc = n + 3 + (m % 2) * 16;
            int fence = accumulate;
            size_t shift = (m + n + kk) % 2 ? 2 : 0;
            operand A = place((a16 ? 2 : 4) * asize, fence, a16 ? shift : 0);
            operand B = place((b16 ? 2 : 4) * bsize, fence, b16 ? shift : 0);
            float *C = malloc(sizeof(float) * (m * ldc + 64)), *C0 = malloc(sizeof(float) * m * ldc);
            float *W = blk_alloc(sizeof(float) * (kk * n + 64));
            for (long i = 0; i < asize; i++) {
                float x = sample(raw);
                if (a16) {
                    uint32_t u;
                    memcpy(&u, &x, sizeof u);
                    ((uint16_t *)A.p)[i] = (uint16_t)(u >> 16);
                } else ((float *)A.p)[i] = x;
            }
            for (long i = 0; i < bsize; i++) {
                float x = sample(raw);
                if (b16) {
                    uint32_t u;
                    memcpy(&u, &x, sizeof u);
                    ((uint16_t *)B.p)[i] = (uint16_t)(u >> 16);
                } else ((float *)B.p)[i] = x;
            }
            for (long i = 0; i < m * ldc + 64; i++) C[i] = sentinel;
            for (long i = 0; i < m; i++)
                for (long j = 0; j < n; j++) C[i * ldc + j] = (float)(uniform() - 0.5);
            memcpy(C0, C, sizeof(float) * m * ldc);
            for (long i = kk * n; i < kk * n + 64; i++) W[i] = sentinel;
            blk_gemm_bf16(m, n, kk, A.p, a16, ars, aks, B.p, b16, ks, js, C, ldc, accumulate, W);
            long bad = 0;
            for (long i = 0; i < m; i++)
                for (long j = 0; j < n; j++) {
                    double ref = accumulate ? (double)C0[i * ldc + j] : 0.0, mag = fabs(ref);
                    for (long k = 0; k < kk; k++) {
                        double a = value(&A, a16, i * ars + k * aks, round), b = value(&B, b16, k * ks + j * js, round);
                        ref += a * b;
                        mag += fabs(a * b);
                    }
                    double got = C[i * ldc + j];
                    if (!(fabs(got - ref) <= 1e-5 * mag + 1e-30)) {
                        if (bad++ < 3)
                            printf("mismatch m=%ld n=%ld kk=%ld B%d A%d acc=%d raw=%d a16=%d b16=%d at (%ld,%ld): "
                                   "got %.9g want %.9g\\n", m, n, kk, blay, alay, accumulate, raw, a16, b16, i, j,
                                   got, ref);
                    }
                }
            for (long i = 0; i < m; i++)
                for (long j = n; j < ldc; j++)
                    if (memcmp(&C[i * ldc + j], &sentinel, sizeof sentinel) && bad++ < 3)
                        printf("C written past column %ld: m=%ld n=%ld kk=%ld B%d A%d at (%ld,%ld)\\n", n, m, n, kk,
                               blay, alay, i, j);
            for (long i = m * ldc; i < m * ldc + 64; i++)
                if (memcmp(&C[i], &sentinel, sizeof sentinel) && bad++ < 3)
                    printf("C written past its end: m=%ld n=%ld kk=%ld B%d A%d\\n", m, n, kk, blay, alay);
            for (long i = kk * n; i < kk * n + 64; i++)
                if (memcmp(&W[i], &sentinel, sizeof sentinel) && bad++ < 3)
                    printf("W written past kk*n: m=%ld n=%ld kk=%ld B%d A%d\\n", m, n, kk, blay, alay);
            if ((!intact(A) || !intact(B)) && bad++ < 3)
                printf("an operand written past its end: m=%ld n=%ld kk=%ld B%d A%d a16=%d b16=%d\\n", m, n, kk, blay,
                       alay, a16, b16);
            checked++;
            if (bad) failures++;
            release(A), release(B), free(C), free(C0), free(W);
        }
        int main(void) {
        #ifdef __AVX512BF16__
            printf("path vdpbf16ps\\n");
        #else
            printf("path f32\\n");
        #endif
            const long ms[] = {1, 5, 6, 7, 13, 64}, ns[] = {1, 15, 16, 17, 33, 63, 64, 65, 100};
            const long kks[] = {1, 2, 3, 31, 64, 65, 200, 600};
            /* operand kinds (a16, b16): floats, then bf16 bits for B, for both, for A */
            const int kinds[4][2] = {{0, 0}, {0, 1}, {1, 1}, {1, 0}};
            for (int kind = 0; kind < 4; kind++)
                for (int a = 0; a < 6; a++)
                    for (int b = 0; b < 9; b++)
                        for (int c = 0; c < 8; c++)
                            for (int blay = 0; blay < 3; blay++)
                                for (int alay = 0; alay < 2; alay++)
                                    for (int acc = 0; acc < 2; acc++)
                                        check(ms[a], ns[b], kks[c], blay, alay, acc, 0, 0, kinds[kind][0],
                                              kinds[kind][1]);
            /* float operands that are not bf16 numbers: rounded to nearest even on both paths (bf16 bits exact) */
            for (int kind = 0; kind < 4; kind++)
                for (int blay = 0; blay < 3; blay++)
                    for (int alay = 0; alay < 2; alay++)
                        check(13, 33, 65, blay, alay, 1, 1, 1, kinds[kind][0], kinds[kind][1]);
            printf("checked %ld\\nfailures %ld\\n", checked, failures);
            return failures != 0;
        }
        """

    /// 4 operand kinds × (6 m × 9 n × 8 kk × 3 B layouts × 2 A layouts × 2 accumulate modes, and 6 inexact
    /// operand cases).
    static let expectedCases = 4 * (6 * 9 * 8 * 3 * 2 * 2 + 6)

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
    /// `blk_bf16_prepack` then `blk_gemm_bf16p` (B packed once, as the schedule's `Prepack` does): a random
    /// bf16 matrix of odd sizes packed in both orientations, in tiles 48 wide along `j` (the last partial), then
    /// every 64 × 48 block (the last ones partial, `k` starts even) multiplied by float and bf16 `A` rows,
    /// against a double reference, on both paths.
    static let prepackProgram = """
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
        static uint64_t state = 1234567ull;
        static double uniform(void) {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            return (double)(state >> 11) / 9007199254740992.0;
        }
        static double bf(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
        static uint16_t rnd16(void) { float x = (float)(4.0 * uniform() - 2.0); uint32_t u; memcpy(&u, &x, 4); return (uint16_t)(u >> 16); }
        int main(void) {
            const long R = 131, C = 77, m = 13;
            long checked = 0, failures = 0;
            uint16_t *T = malloc(R * C * 2), *A16 = malloc(m * 200 * 2);
            float *A = malloc(m * 200 * 4), *Cm = malloc(m * 64 * 4), *W = blk_alloc(64 * 64 * 4);
            for (long i = 0; i < R * C; i++) T[i] = rnd16();
            for (long i = 0; i < m * 200; i++) { A16[i] = rnd16(); A[i] = (float)bf(A16[i]); }
            for (int rows = 1; rows >= 0; rows--) {
                long kdim = rows ? R : C, jdim = rows ? C : R, np = (kdim + 1) / 2;
                /* tiles of 48 along j, each np pair rows of 48 words */
                long tiles = (jdim + 47) / 48;
                uint32_t *P = malloc(tiles * np * 48 * 4);
                for (long t = 0; t < tiles; t++)
                    blk_bf16_prepack(T, R, C, rows, 48 * t, jdim - 48 * t < 48 ? jdim - 48 * t : 48, P + t * np * 48, 48);
                for (long k0 = 0; k0 < kdim; k0 += 64)
                    for (long j0 = 0; j0 < jdim; j0 += 48)
                        for (int a16 = 0; a16 < 2; a16++) {
                            long kk = kdim - k0 < 64 ? kdim - k0 : 64, n = jdim - j0 < 48 ? jdim - j0 : 48;
                            const void *Ap = a16 ? (const void *)(A16 + k0) : (const void *)(A + k0);
                            blk_gemm_bf16p(m, n, kk, Ap, a16, 200, 1, P + (j0 / 48) * np * 48 + (k0 / 2) * 48, 48, Cm, 64,
                                           0, W);
                            for (long i = 0; i < m; i++)
                                for (long j = 0; j < n; j++) {
                                    double ref = 0, size = 0;
                                    for (long k = 0; k < kk; k++) {
                                        long kg = k0 + k, jg = j0 + j;
                                        double b = bf(rows ? T[kg * C + jg] : T[jg * C + kg]);
                                        ref += bf(A16[i * 200 + kg]) * b;
                                        size += fabs(bf(A16[i * 200 + kg]) * b);
                                    }
                                    checked++;
                                    if (!(fabs(Cm[i * 64 + j] - ref) <= 1e-5 * size + 1e-30)) failures++;
                                }
                        }
                free(P);
            }
            printf("checked %ld\\nfailures %ld\\n", checked, failures);
            return failures != 0;
        }
        """

    func testPrepackedProductOnBothPaths() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blockc-bf16pre-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Each output element of each block: 13 rows × the block's columns, float and bf16 A, both
        // orientations (k along 131 rows and j along 77 columns, then the reverse).
        var expected = 0
        for (kdim, jdim) in [(131, 77), (77, 131)] {
            let blocks = (kdim + 63) / 64
            for j0 in stride(from: 0, to: jdim, by: 48) { expected += 2 * 13 * blocks * Swift.min(48, jdim - j0) }
        }
        for (name, flags) in [("native", CCompiler.baseFlags), ("fallback", CCompiler.baseFlags + ["-mno-avx512bf16"])]
        {
            let exe = try CCompiler.buildProgram(
                source: Self.prepackProgram, name: "bf16pre_" + name, directory: dir, flags: flags)
            let run = try CCompiler.run(exe, [])
            XCTAssertEqual(run.status, 0, "\(name): \(run.stdout)\n\(run.stderr)")
            XCTAssertTrue(run.stdout.contains("checked \(expected)\n"), "\(name): \(run.stdout)")
            XCTAssertTrue(run.stdout.contains("failures 0\n"), "\(name): \(run.stdout)")
        }
    }
}
