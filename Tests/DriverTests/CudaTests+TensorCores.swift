import BlockTestSupport
import Codegen
import Foundation
import XCTest

/// The tensor-core product (Docs/CUDA.md, "Tensor cores"): the emulated `mma.sync.m16n8k16` against a scalar
/// reference on random fragments of every lane, with the PTX ISA's fragment layouts written here independently of
/// the emulator (and each of four broken layouts in the emulator caught); the runtime's `blk_gemm_mma_RxC` at odd
/// shapes, for 1, 3 and 8 warps, accumulating or not, with A transposed or not, against the bf16-rounded product.
extension CudaTests {
    /// The test program: `main mma` runs one mma per warp (two warps, different matrices) and compares it with
    /// `D = C + A·B` summed in double; `main gemm` runs the block products. Exit status 0 and "ok", else 1 and the
    /// first mismatch.
    static let tensorCoreProgram = #"""
        #include <cuda_runtime.h>
        #include <math.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        """# + "\n" + CRuntime.cuda + #"""

            /* The PTX ISA's m16n8k16 fragments, g = lane / 4, t = lane % 4: A's a_i (i < 8, register i / 2, the
               higher half for odd i) at row g + 8 * ((i >> 1) & 1), column 2t + (i & 1) + 8 * (i >> 2); B's b_i (i < 4)
               at row 2t + (i & 1) + 8 * (i >> 1), column g; C's and D's c_i at row g + 8 * (i >> 1), column 2t + (i & 1). */
            extern "C" __global__ void mma_test(const uint16_t *A, const uint16_t *B, const float *C, float *D) {
                const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
                const uint16_t *a16 = A + w * 256, *b16 = B + w * 128;
                uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
                float d[4];
                for (int i = 0; i < 8; i++)
                    a[i / 2] |= (uint32_t)a16[(g + 8 * ((i >> 1) & 1)) * 16 + 2 * t + (i & 1) + 8 * (i >> 2)] << (16 * (i & 1));
                for (int i = 0; i < 4; i++) b[i / 2] |= (uint32_t)b16[(2 * t + (i & 1) + 8 * (i >> 1)) * 8 + g] << (16 * (i & 1));
                for (int i = 0; i < 4; i++) d[i] = C[w * 128 + (g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
                blk_mma_bf16_m16n8k16(d, a, b);
                for (int i = 0; i < 4; i++) D[w * 128 + (g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = d[i];
            }

            /* Lane 0 at an mma while the others shuffle: divergence, which the emulator reports. */
            extern "C" __global__ void diverges(float *D) {
                uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
                float d[4] = {0, 0, 0, 0};
                if (threadIdx.x == 0) blk_mma_bf16_m16n8k16(d, a, b);
                else d[0] = __shfl_xor_sync(0xffffffffu, d[0], 1);
                D[threadIdx.x] = d[0];
            }
            /* An mma in a block of 48 threads: its second warp is not whole. */
            extern "C" __global__ void partial_warp(float *D) {
                uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
                float d[4] = {0, 0, 0, 0};
                blk_mma_bf16_m16n8k16(d, a, b);
                D[threadIdx.x] = d[0];
            }

            extern "C" __global__ void gemm_test(int tile, long m, long n, long kk, const float *A, long ars, long aks,
                                                 const float *B, long ldb, float *C, long ldc, int accumulate) {
                switch (tile) {
                case 0: blk_gemm_mma_16x8(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                case 1: blk_gemm_mma_16x16(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                case 2: blk_gemm_mma_32x16(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                default: blk_gemm_mma_32x32(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                }
            }

            static uint64_t state = 88172645463325252ull;
            static double uniform() { /* xorshift64, in [0, 1) */
                state ^= state << 13, state ^= state >> 7, state ^= state << 17;
                return (double)(state >> 11) / 9007199254740992.0;
            }
            /* Values over several binades, so that a misplaced element changes sums visibly. */
            static float value() { return (float)((uniform() * 2 - 1) * ldexp(1.0, (int)(uniform() * 6) - 2)); }
            static uint16_t to_bf16(float x) { /* round to nearest even, as blk_bf16_bits */
                uint32_t u;
                memcpy(&u, &x, 4);
                return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
            }
            static float from_bf16(uint16_t h) {
                uint32_t u = (uint32_t)h << 16;
                float x;
                memcpy(&x, &u, 4);
                return x;
            }
            template <class T> static T *device(const T *host, size_t n) {
                T *d = NULL;
                cudaMalloc((void **)&d, n * sizeof(T));
                cudaMemcpy(d, host, n * sizeof(T), cudaMemcpyHostToDevice);
                return d;
            }

            static int mma(void) {
                uint16_t A[512], B[256];
                float C[256], D[256];
                for (int x = 0; x < 512; x++) A[x] = to_bf16(value());
                for (int x = 0; x < 256; x++) B[x] = to_bf16(value()), C[x] = value();
                uint16_t *dA = device(A, 512), *dB = device(B, 256);
                float *dC = device(C, 256), *dD = device(D, 256);
                mma_test<<<1, 64, 0>>>(dA, dB, dC, dD);
                if (cudaGetLastError() != cudaSuccess) return printf("launch failed\n"), 1;
                cudaMemcpy(D, dD, sizeof D, cudaMemcpyDeviceToHost);
                for (int w = 0; w < 2; w++)
                    for (int i = 0; i < 16; i++)
                        for (int j = 0; j < 8; j++) {
                            double s = C[w * 128 + i * 8 + j], size = fabs(s);
                            for (int k = 0; k < 16; k++) {
                                double p = (double)from_bf16(A[w * 256 + i * 16 + k]) * from_bf16(B[w * 128 + k * 8 + j]);
                                s += p, size += fabs(p);
                            }
                            double got = D[w * 128 + i * 8 + j];
                            if (!(fabs(got - s) <= 1e-6 * size))
                                return printf("warp %d D[%d][%d] = %.9g, expected %.9g\n", w, i, j, got, s), 1;
                        }
                return printf("ok\n"), 0;
            }

            static int gemm(void) {
                const long shapes[][3] = {{37, 29, 45}, {16, 8, 16}, {5, 70, 3}, {64, 64, 64}, {70, 13, 1}};
                const int threads[] = {32, 96, 256};
                for (const long *s : shapes)
                    for (int th : threads)
                        for (int tile = 0; tile < 4; tile++)
                            for (int accumulate = 0; accumulate < 2; accumulate++)
                                for (int transposed = 0; transposed < 2; transposed++) {
                                    const long m = s[0], n = s[1], kk = s[2], ldb = n + 3, ldc = n + 5;
                                    const long ars = transposed ? 1 : kk + 1, aks = transposed ? m + 2 : 1;
                                    const long an = transposed ? kk * aks : m * ars;
                                    float *A = (float *)malloc(an * 4), *B = (float *)malloc(kk * ldb * 4);
                                    float *C = (float *)malloc(m * ldc * 4), *R = (float *)malloc(m * ldc * 4);
                                    for (long x = 0; x < an; x++) A[x] = value();
                                    for (long x = 0; x < kk * ldb; x++) B[x] = value();
                                    for (long x = 0; x < m * ldc; x++) C[x] = x % ldc < n ? value() : 12345.0f;
                                    float *dA = device(A, an), *dB = device(B, kk * ldb), *dC = device(C, m * ldc);
                                    gemm_test<<<1, th, 0>>>(tile, m, n, kk, dA, ars, aks, dB, ldb, dC, ldc, accumulate);
                                    if (cudaGetLastError() != cudaSuccess) return printf("launch failed\n"), 1;
                                    cudaMemcpy(R, dC, m * ldc * 4, cudaMemcpyDeviceToHost);
                                    for (long i = 0; i < m; i++)
                                        for (long j = 0; j < ldc; j++) {
                                            double want = C[i * ldc + j], size = j < n ? fabs(want) : 0;
                                            if (j < n) {
                                                if (!accumulate) want = 0, size = 0;
                                                for (long k = 0; k < kk; k++) {
                                                    double p = (double)from_bf16(to_bf16(A[i * ars + k * aks])) *
                                                               from_bf16(to_bf16(B[k * ldb + j]));
                                                    want += p, size += fabs(p);
                                                }
                                            }
                                            double got = R[i * ldc + j];
                                            if (!(fabs(got - want) <= 1e-6 * size))
                                                return printf("m=%ld n=%ld k=%ld threads=%d tile=%d accumulate=%d "
                                                              "transposed=%d: C[%ld][%ld] = %.9g, expected %.9g\n",
                                                              m, n, kk, th, tile, accumulate, transposed, i, j, got, want),
                                                       1;
                                        }
                                    cudaFree(dA), cudaFree(dB), cudaFree(dC);
                                    free(A), free(B), free(C), free(R);
                                }
                return printf("ok\n"), 0;
            }

            int main(int argc, char **argv) {
                if (argc > 1 && strcmp(argv[1], "gemm") == 0) return gemm();
                if (argc > 1 && (strcmp(argv[1], "diverges") == 0 || strcmp(argv[1], "partial") == 0)) {
                    float *d = NULL;
                    cudaMalloc((void **)&d, 64 * sizeof(float));
                    if (strcmp(argv[1], "diverges") == 0) diverges<<<1, 32, 0>>>(d);
                    else partial_warp<<<1, 48, 0>>>(d);
                    return 0;
                }
                return mma();
            }

            """#

    /// The bf16 examples, whose dots the schedule gives to the tensor cores, on the emulator at small and odd
    /// shapes for sm_80 and sm_90: every product is a `blk_gemm_mma_RxC` call, and the outputs match the
    /// interpreter within `blockc verify`'s tolerance (bf16 outputs: 2^-7 · max(1, max|ref|)) in every block order.
    func testBF16ExamplesRunOnTensorCoresOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-bf16")
        defer { try? FileManager.default.removeItem(atPath: root) }
        var jobs: [(example: String, dims: String, arch: Int)] = []
        for arch in [80, 90] {
            for dims in ["BH=1,N=200,d=40", "BH=2,N=37,d=24", "BH=1,N=64,d=64"] {
                jobs.append(("attention_bf16", dims, arch))
            }
            for dims in ["M=100,d=200,h=300", "M=17,d=40,h=24", "M=64,d=64,h=128"] {
                jobs.append(("rmsnorm_swiglu_bf16", dims, arch))
            }
        }
        let all = jobs
        let failures = LockedStrings()
        DispatchQueue.concurrentPerform(iterations: all.count) { k in
            let job = all[k]
            let dir = "\(root)/\(k)"
            let label = "\(job.example) [\(job.dims)] sm_\(job.arch)"
            let problems = Self.emulate(
                [Examples.path(job.example), "--dim", job.dims], arch: job.arch, dir: dir, compiler: compiler)
            for p in problems { failures.append("\(label): \(p)") }
            let source = Self.bundleSource(dir).flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
            let calls = source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            if !calls.contains(where: { $0.hasPrefix("blk_gemm_mma_") }) {
                failures.append("\(label): no tensor-core product in the generated CUDA")
            }
            if calls.contains(where: { $0.hasPrefix("blk_gemm_bf16(") || $0.hasPrefix("blk_gemm(") }) {
                failures.append("\(label): a product off the tensor cores")
            }
        }
        for f in failures.values { XCTFail(f) }
    }

    /// A bf16 bundle's `compare.py` compares the values its outputs' bit patterns hold (attention_bf16 on the
    /// tensor cores differs from the interpreter in a few elements by one bf16 unit, about 1e-3: as integers the
    /// patterns would differ by at least 1) and allows one bf16 unit.
    func testBF16BundleComparesValues() throws {
        let compiler = try Self.hostCompiler()
        let dir = CLI.temporaryDirectory("cuda-bundle-bf16")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let emitted = CLI.blockc([
            "emit-cuda", "Examples/attention_bf16.graph", "--dim", "BH=1,N=200,d=40", "--bundle", dir, "--seed", "5",
            "--target", "sm_80",
        ])
        XCTAssertEqual(emitted.status, 0, emitted.stderr)
        let run = CLI.run("/usr/bin/env", ["CXX=\(compiler)", "EMU_ARCH=80", "sh", "\(dir)/run.sh", "--emulate"])
        let log = run.stdout + run.stderr
        XCTAssertEqual(Self.mismatches(dir, out: dir + "/out"), [], log)
        // compare.py needs NumPy; where it is missing, only the build and the run are checked.
        guard run.status == 0 || !log.contains("No module named") else { return }
        XCTAssertEqual(run.status, 0, log)
        guard let line = log.split(separator: "\n").first(where: { $0.hasPrefix("O: max_abs_err ") }),
            let err = Double(line.split(separator: " ")[2])
        else { return XCTFail(log) }
        XCTAssertLessThan(err, 0.01, log)
        XCTAssertTrue(line.hasSuffix(" ok"), log)
    }

    /// Builds the test program against the emulator header `header` in `dir`; the executable's path, or a failure.
    static func buildTensorCoreProgram(header: String, dir: String, compiler: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir + "/emulator", withIntermediateDirectories: true)
        try header.write(toFile: dir + "/emulator/blockc_cuda_emu.h", atomically: true, encoding: .utf8)
        try CUDAEmulator.runtimeShim.write(toFile: dir + "/emulator/cuda_runtime.h", atomically: true, encoding: .utf8)
        let source = dir + "/tc.cpp"
        try CUDAEmulator.rewriteLaunches(tensorCoreProgram).write(toFile: source, atomically: true, encoding: .utf8)
        let exe = dir + "/tc"
        let built = CLI.run(
            compiler, ["-std=c++17", "-O1", "-I", dir + "/emulator", "-DBLOCKC_EMU_ARCH=80", "-o", exe, source])
        guard built.status == 0 else { throw EmulatorFailure("g++ failed:\n\(built.stdout + built.stderr)") }
        return exe
    }

    /// The emulated mma matches `D = C + A·B` on random fragments of every lane of two warps; with the emulator's
    /// layout of A, B or C broken (rows swapped, halves of a register swapped, k halves swapped) it does not.
    func testEmulatedMMAFollowsThePTXLayouts() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-mma")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let exe = try Self.buildTensorCoreProgram(header: CUDAEmulator.header, dir: root + "/good", compiler: compiler)
        let run = CLI.run(exe, ["mma"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual(run.stdout, "ok\n", run.stderr)
        let mutations: [(label: String, from: String, to: String)] = [
            (
                "A's rows g and g + 8 swapped", "int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;",
                "int row = (i < 2 || (i >= 4 && i < 6)) ? g + 8 : g;"
            ),
            (
                "the halves of A's registers swapped", "A[row][col] = bf16_to_f32(m.a[lane][i / 2] >> (16 * (i % 2)));",
                "A[row][col] = bf16_to_f32(m.a[lane][i / 2] >> (16 * (1 - i % 2)));"
            ),
            (
                "B's k halves swapped", "int row = t * 2 + (i & 1) + (i >= 2 ? 8 : 0);",
                "int row = t * 2 + (i & 1) + (i >= 2 ? 0 : 8);"
            ),
            (
                "C's rows g and g + 8 swapped", "C[i < 2 ? g : g + 8][t * 2 + (i & 1)] = m.c[lane][i];",
                "C[i < 2 ? g + 8 : g][t * 2 + (i & 1)] = m.c[lane][i];"
            ),
        ]
        // The mma is a collective of the whole warp: a lane elsewhere, or a warp that is not whole, is an error.
        let diverges = CLI.run(exe, ["diverges"])
        XCTAssertEqual(diverges.status, 4, diverges.stderr)
        XCTAssertTrue(
            diverges.stderr.contains(
                "kernel diverges: warp 0: lane 0 waits at mma.sync while lane 1 waits at "
                    + "__shfl_xor_sync: divergence"), diverges.stderr)
        let partial = CLI.run(exe, ["partial"])
        XCTAssertEqual(partial.status, 4, partial.stderr)
        XCTAssertTrue(
            partial.stderr.contains("kernel partial_warp: warp 1: __shfl_xor_sync mask 0xffffffff names lane 16"),
            partial.stderr)
        for (k, mutation) in mutations.enumerated() {
            guard CUDAEmulator.header.contains(mutation.from) else {
                XCTFail("\(mutation.label): the emulator no longer has '\(mutation.from)'")
                continue
            }
            let header = CUDAEmulator.header.replacingOccurrences(of: mutation.from, with: mutation.to)
            let broken = try Self.buildTensorCoreProgram(header: header, dir: "\(root)/\(k)", compiler: compiler)
            let result = CLI.run(broken, ["mma"])
            XCTAssertEqual(result.status, 1, "\(mutation.label): not caught: \(result.stdout) \(result.stderr)")
            XCTAssertTrue(result.stdout.contains("expected"), "\(mutation.label): \(result.stdout) \(result.stderr)")
        }
    }

    /// The tensor-core block products (`blk_gemm_mma_RxC`, every warp tile) on the emulator: odd shapes (edges along
    /// m, n and k, k below 16, m below 16), 32, 96 and 256 threads, accumulating or not, A row- or column-major:
    /// each output within 1e-6 of the sum of its magnitudes of the bf16-rounded product summed in double, and the
    /// columns past n untouched.
    func testTensorCoreProductsOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-mma-gemm")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let exe = try Self.buildTensorCoreProgram(header: CUDAEmulator.header, dir: root, compiler: compiler)
        let run = CLI.run(exe, ["gemm"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual(run.stdout, "ok\n", run.stderr)
    }
}
