import BlockIR
import BlockParser
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Schedule
import XCTest

/// Products that skip the tiles an index mask removes (`MaskedProduct`): which products of the
/// masked attention examples take the bound, that their C still matches the interpreter where the
/// bound cuts blocks (diagonal blocks, partial blocks, row-restricted iterations), what the rule
/// leaves alone, and the two runtime calls against a plain product.
final class MaskedProductTests: XCTestCase {
    /// The masked products of every kernel of a program scheduled for a target, by value.
    private func products(_ p: Program, target: TargetDescription = .cpu) -> [MaskedProduct] {
        Scheduler.scheduleKeepingBlocks(p, target: target).kernels.flatMap { $0.maskedProducts.values }
            .sorted { $0.dot.number < $1.dot.number }
    }

    /// Causal attention at 128-, 64- and 32-row query blocks over 64-column key blocks (N = 150:
    /// partial blocks, and at 128 rows the row-restricted iterations), sliding window, chunked and
    /// RoPE attention: `S = Q·Kᵀ` computes only the kept columns and `P·V` reduces only over them.
    /// ALiBi (its bias is added to S before the mask) and stick-breaking (weights masked to 0
    /// after a scan) only reduce less. Full attention has no bound and GPU targets keep every
    /// product. Each program's C at 1 and 3 threads matches the interpreter.
    func testMaskedAttentionSkipsTheMaskedTiles() throws {
        let dims = ["BH": 2, "N": 150, "d": 40]
        let heads = ["B": 1, "H": 2, "N": 150, "d": 40]
        let cases: [(String, [String: Int], Int, [MaskedProduct.Limit])] = [
            ("attention_causal.graph", dims, 128, [.columns, .reduction]),
            ("attention_causal.graph", dims, 64, [.columns, .reduction]),
            ("attention_causal.graph", dims, 32, [.columns, .reduction]),
            ("attention_sliding_window.graph", dims.merging(["W": 50]) { $1 }, 64, [.columns, .reduction]),
            ("attention_chunked.graph", dims.merging(["C": 70]) { $1 }, 64, [.columns, .reduction]),
            ("attention_rope.graph", heads, 64, [.columns, .reduction]),
            ("attention_alibi.graph", heads, 64, [.reduction]),
            ("stick_breaking_attention.graph", dims, 64, [.reduction]),
            ("attention.graph", dims, 64, []),
        ]
        for (file, dims, rows, limits) in cases {
            let program = try FusedCodegenTests.fused(file, dims: dims, i: rows, j: 64, k: 64)
            let planned = products(program)
            XCTAssertEqual(planned.map(\.limit), limits, "\(file) at \(rows) rows")
            // Causal masks bound row i's columns by j <= i (stick-breaking's by j <= i - 1).
            for p in planned { XCTAssertEqual(p.slope, 1, file) }
            // The bounded calls are in the C, each beside the plain call it replaces where the
            // bound cuts the block.
            let source = CEmitter.emit(Scheduler.scheduleKeepingBlocks(program, target: .cpu)).source
            let calls = source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            XCTAssertEqual(
                calls.filter { $0.hasPrefix("blk_gemm_cl(") }.count, limits.filter { $0 == .columns }.count, file)
            XCTAssertEqual(
                calls.filter { $0.hasPrefix("blk_gemm_kl(") }.count, limits.filter { $0 == .reduction }.count, file)
            for threads in [1, 3] { _ = try CodegenHarness.check(program, seed: 5, threads: threads) }
            XCTAssertEqual(products(program, target: .sm90), [], file)
        }
    }

    /// A hand-written loop of online softmax over 48-column key blocks of 32-row query blocks, its
    /// mask `i − j ≥ 0` (the diagonal crosses the blocks at varying offsets). Variants:
    /// - the plain loop: both products bounded;
    /// - `S` also stored: it must be computed whole (the reduction is still bounded);
    /// - the mask's fill 0: `P = exp(0 − m)` is not 0 where the mask removes, so `P·V` reduces
    ///   over everything (the scores are still computed only where kept);
    /// - the running maximum not clamped by a finite constant: `-inf − m` may be NaN, not `-inf`;
    /// - a mask `j − i ≥ 0` (a lower bound on the columns): nothing bounded.
    /// Each variant's C matches the interpreter.
    func testWhatIsLeftAlone() throws {
        func program(
            mask: String = "i - j >= 0", fill: String = "-inf", clamp: String = "%18 = max %17, %5",
            extra: String = "", stores: String = ""
        ) throws -> Program {
            try BlockParser.parse(
                """
                program p

                tensor Q: f32[96,16] @global input
                tensor K: f32[96,16] @global input
                tensor V: f32[96,16] @global input
                tensor O: f32[96,16] @global output
                tensor T: f32[96,96] @global output

                kernel k grid(i < 3) {
                  %0 = fill 0.0 : f32[32,16] @local
                  %1 = load Q[i * 32 +: 32, 0 +: 16] : f32[32,16] @local
                  %3 = fill -inf : f32[32] @local
                  %4 = fill 0.0 : f32[32] @local
                  %5 = fill -3.4028235e+38 : f32[] @reg
                  %6, %7, %8 = for k2 in 0 ..< 2 iter(%9 = %3, %10 = %4, %11 = %0) : f32[32] @local, f32[32] @local, f32[32,16] @local {
                    %12 = load K[k2 * 48 +: 48, 0 +: 16] : f32[48,16] @local
                    %13 = dot %1, %12 transpose_b : f32[32,48] @local
                    %15 = mask %13 at (i * 32, k2 * 48) if \(mask) else \(fill) : f32[32,48] @local
                    %16 = reduce_max %15 axis 1 : f32[32] @local
                    %17 = max %9, %16 : f32[32] @local
                    \(clamp) : f32[32] @local
                    %19 = sub %9, %18 : f32[32] @local
                    %20 = exp %19 : f32[32] @local
                    %21 = broadcast %18 axis 1 : f32[32,48] @local
                    %22 = mul %10, %20 : f32[32] @local
                    %23 = sub %15, %21 : f32[32,48] @local
                    %24 = exp %23 : f32[32,48] @local
                    %25 = reduce_sum %24 axis 1 : f32[32] @local
                    %26 = add %22, %25 : f32[32] @local
                    %27 = broadcast %20 axis 1 : f32[32,16] @local
                    %28 = mul %11, %27 : f32[32,16] @local
                    %29 = load V[k2 * 48 +: 48, 0 +: 16] : f32[48,16] @local
                    %30 = dot %24, %29 : f32[32,16] @local
                    %31 = add %28, %30 : f32[32,16] @local
                \(extra)
                    yield %17, %26, %31
                  }
                  %32 = broadcast %7 axis 1 : f32[32,16] @local
                  %33 = div %8, %32 : f32[32,16] @local
                  store %33 -> O[i * 32 +: 32, 0 +: 16]
                \(stores)
                }

                """)
        }
        let zeros = "  %40 = fill 0.0 : f32[32,96] @local\n  store %40 -> T[i * 32 +: 32, 0 +: 96]"
        let storedScores = "    store %13 -> T[i * 32 +: 32, k2 * 48 +: 48]"
        for (name, p, expected) in [
            ("plain", try program(stores: zeros), [MaskedProduct.Limit.columns, .reduction]),
            ("scores stored", try program(extra: storedScores), [.reduction]),
            ("fill 0", try program(fill: "0.0", stores: zeros), [.columns]),
            ("unclamped maximum", try program(clamp: "%18 = max %17, %17", stores: zeros), [.columns]),
            ("lower bound", try program(mask: "j - i >= 0", stores: zeros), []),
        ] {
            XCTAssertEqual(products(p).map(\.limit), expected, name)
            _ = try CodegenHarness.check(p, seed: 11, threads: 2)
        }
    }

    /// `blk_gemm_cl` and `blk_gemm_kl` against a plain product, in a C harness, with AVX-512 and
    /// without it (`-mno-avx512f`): row i needs its first `lim + a·i` columns (terms); shapes with
    /// partial tiles and strips (m = 1 ... 13, n = 5 ... 130), bounds below 0, inside the block and
    /// beyond it, slopes 0 ... 2, and every kind of accumulation (none, onto C, rows rescaled).
    /// The columns each row needs must equal the plain product's; the ones it does not need must
    /// keep their sentinel in `blk_gemm_cl` (the product leaves them alone). `blk_gemm_kl` must
    /// equal the plain product of A with its terms past the bound zeroed.
    func testRuntimeBoundedProducts() throws {
        let harness = """
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
            int main(void) {
                static float A[13 * 70], B[70 * 130], C[13 * 130], R[13 * 130], Z[13 * 70], rs[13];
                srand(3);
                long bad = 0, cases = 0;
                for (int t = 0; t < 400; t++) {
                    long m = 1 + rand() % 13, n = 5 + rand() % 126, kk = 1 + rand() % 70, a = rand() % 3;
                    long lim = -3 + rand() % (n + 8);
                    for (long x = 0; x < 13 * 70; x++) A[x] = (float)(rand() % 17 - 8) / 8.0f;
                    for (long x = 0; x < 70 * 130; x++) B[x] = (float)(rand() % 17 - 8) / 8.0f;
                    for (long x = 0; x < 13; x++) rs[x] = (float)(rand() % 9) / 4.0f;
                    /* columns */
                    for (long x = 0; x < 13 * 130; x++) C[x] = 1234.5f;
                    blk_gemm_cl(m, n, kk, A, kk, 1, B, n, C, n, lim, a);
                    for (long i = 0; i < m; i++)
                        for (long j = 0; j < n; j++) {
                            float s = 0.0f;
                            for (long k = 0; k < kk; k++) s += A[i * kk + k] * B[k * n + j];
                            int needed = j < lim + a * i;
                            if (needed && fabsf(C[i * n + j] - s) > 1e-3f) bad++;
                            if (!needed && C[i * n + j] != 1234.5f && C[i * n + j] != s) bad++;
                        }
                    /* reduction, each kind of accumulation: A's terms past the bound are 0 in Z */
                    long kn = n < 70 ? n : 70;
                    long lk = -3 + rand() % (kn + 8);
                    for (long i = 0; i < m; i++)
                        for (long k = 0; k < kn; k++) Z[i * kn + k] = k < lk + a * i ? A[i * kn + k] : 0.0f;
                    for (int kind = 0; kind < 3; kind++) {
                        for (long x = 0; x < 13 * 130; x++) C[x] = R[x] = (float)(x % 7) - 3.0f;
                        blk_gemm_kl(m, n, kn, Z, kn, 1, B, n, C, n, kind > 0, kind == 2 ? rs : NULL, lk, a);
                        for (long i = 0; i < m; i++)
                            for (long j = 0; j < n; j++) {
                                float s = kind == 0 ? 0.0f : (kind == 2 ? rs[i] : 1.0f) * R[i * n + j];
                                for (long k = 0; k < kn; k++) s += Z[i * kn + k] * B[k * n + j];
                                if (fabsf(C[i * n + j] - s) > 1e-3f) bad++;
                            }
                    }
                    cases++;
                }
                printf("%ld cases, %ld bad\\n", cases, bad);
                return bad != 0;
            }
            """
        let dir = CodegenHarness.scratch("masked-products")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for flags in [[], ["-mno-avx512f"], ["-mno-avx"]] {
            let exe = try CCompiler.buildProgram(
                source: harness, name: "bounded", directory: dir, flags: CCompiler.baseFlags + flags)
            let run = try CCompiler.run(exe, [])
            XCTAssertEqual(run.status, 0, "\(flags): \(run.stdout) \(run.stderr)")
            XCTAssertEqual(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "400 cases, 0 bad", "\(flags)")
        }
    }
}
