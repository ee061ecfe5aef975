import BlockTestSupport
import Codegen
import Foundation
import Interpreter
import XCTest

/// The TF32 option (`--tf32`, Docs/CUDA.md, "TF32"): the emulated `mma.sync.m16n8k8 … .tf32` against a scalar
/// reference on random fragments of every lane, the fragments built by the PTX ISA's layouts written here
/// independently of the emulator and the operands rounded by a rounding written here (`ldexp`/`round`, not the
/// runtime's integer arithmetic); broken layouts and a truncating rounding in the emulator are caught; the runtime's
/// `blk_gemm_mma_tf32_RxC` at odd shapes; the f32 examples with `--tf32` on the emulator against the interpreter;
/// and ptxas compiling them without spills.
extension CudaTests {
    /// The test program: `main mma` runs one TF32 mma per warp (two warps, different matrices) and compares it with
    /// `D = C + tf32(A)·tf32(B)` summed in double; `main gemm` runs the block products. Exit status 0 and "ok", else
    /// 1 and the first mismatch.
    static let tf32Program = #"""
        #include <cuda_runtime.h>
        #include <math.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        """# + "\n" + CRuntime.cuda + #"""

            /* The PTX ISA's m16n8k8 .tf32 fragments, g = lane / 4, t = lane % 4: A (16x8, row-major) a_i (i < 4) at
               row g + 8 * (i % 2), column t + 4 * (i / 2); B (8x8, column-major) b_i (i < 2) at row (k) t + 4 * i,
               column g; C's and D's c_i at row g + 8 * (i / 2), column 2t + (i % 2). The operands are raw f32 values:
               the kernel rounds them with the runtime's blk_tf32_bits. */
            extern "C" __global__ void mma_test(const float *A, const float *B, const float *C, float *D) {
                const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
                const float *a32 = A + w * 128, *b32 = B + w * 64;
                uint32_t a[4], b[2];
                float d[4];
                for (int i = 0; i < 4; i++) a[i] = blk_tf32_bits(a32[(g + 8 * (i % 2)) * 8 + t + 4 * (i / 2)]);
                for (int i = 0; i < 2; i++) b[i] = blk_tf32_bits(b32[(t + 4 * i) * 8 + g]);
                for (int i = 0; i < 4; i++) d[i] = C[w * 128 + (g + 8 * (i / 2)) * 8 + 2 * t + (i % 2)];
                blk_mma_tf32_m16n8k8(d, a, b);
                for (int i = 0; i < 4; i++) D[w * 128 + (g + 8 * (i / 2)) * 8 + 2 * t + (i % 2)] = d[i];
            }

            extern "C" __global__ void gemm_test(int tile, long m, long n, long kk, const float *A, long ars, long aks,
                                                 const float *B, long ldb, float *C, long ldc, int accumulate) {
                switch (tile) {
                case 0: blk_gemm_mma_tf32_16x8(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                case 1: blk_gemm_mma_tf32_16x16(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                case 2: blk_gemm_mma_tf32_32x16(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                default: blk_gemm_mma_tf32_32x32(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate); break;
                }
            }

            static uint64_t state = 88172645463325252ull;
            static double uniform() { /* xorshift64, in [0, 1) */
                state ^= state << 13, state ^= state >> 7, state ^= state << 17;
                return (double)(state >> 11) / 9007199254740992.0;
            }
            /* Values over several binades; every eighth a tie of TF32's rounding (a 1 just below the kept bits). */
            static int drawn = 0;
            static float value() {
                float x = (float)((uniform() * 2 - 1) * ldexp(1.0, (int)(uniform() * 6) - 2));
                if (++drawn % 8 == 0) {
                    int e;
                    double f = frexp((double)x, &e);                 /* |f| in [0.5, 1): 11 bits kept */
                    x = (float)ldexp(trunc(ldexp(f, 11)) + (f < 0 ? -0.5 : 0.5), e - 11);
                }
                return x;
            }
            /* x rounded to 11 significant bits, to nearest, ties away from zero (round()), as cvt.rna.tf32.f32. */
            static double tf32(float x) {
                if (x == 0 || !isfinite(x)) return x;
                int e;
                double f = frexp((double)x, &e);
                return ldexp(round(ldexp(f, 11)), e - 11);
            }
            template <class T> static T *device(const T *host, size_t n) {
                T *d = NULL;
                cudaMalloc((void **)&d, n * sizeof(T));
                cudaMemcpy(d, host, n * sizeof(T), cudaMemcpyHostToDevice);
                return d;
            }

            static int mma(void) {
                float A[256], B[128], C[256], D[256];
                for (int x = 0; x < 256; x++) A[x] = value(), C[x] = value();
                for (int x = 0; x < 128; x++) B[x] = value();
                float *dA = device(A, 256), *dB = device(B, 128), *dC = device(C, 256), *dD = device(D, 256);
                mma_test<<<1, 64, 0>>>(dA, dB, dC, dD);
                if (cudaGetLastError() != cudaSuccess) return printf("launch failed\n"), 1;
                cudaMemcpy(D, dD, sizeof D, cudaMemcpyDeviceToHost);
                for (int w = 0; w < 2; w++)
                    for (int i = 0; i < 16; i++)
                        for (int j = 0; j < 8; j++) {
                            double s = C[w * 128 + i * 8 + j], size = fabs(s);
                            for (int k = 0; k < 8; k++) {
                                double p = tf32(A[w * 128 + i * 8 + k]) * tf32(B[w * 64 + k * 8 + j]);
                                s += p, size += fabs(p);
                            }
                            double got = D[w * 128 + i * 8 + j];
                            if (!(fabs(got - s) <= 1e-6 * size))
                                return printf("warp %d D[%d][%d] = %.9g, expected %.9g\n", w, i, j, got, s), 1;
                        }
                return printf("ok\n"), 0;
            }

            static int gemm(void) {
                const long shapes[][3] = {{37, 29, 45}, {16, 8, 8}, {5, 70, 3}, {64, 64, 64}, {70, 13, 1}, {20, 17, 9}};
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
                                                    double p = tf32(A[i * ars + k * aks]) * tf32(B[k * ldb + j]);
                                                    want += p, size += fabs(p);
                                                }
                                            }
                                            double got = R[i * ldc + j];
                                            /* one f32 rounding per mma of 8 products: within 2^-23 of the sum of
                                               magnitudes per step, a few steps */
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
                return mma();
            }

            """#

    /// Builds `tf32Program` against the emulator header `header` in `dir`; the executable's path, or a failure.
    static func buildTF32Program(header: String, dir: String, compiler: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir + "/emulator", withIntermediateDirectories: true)
        try header.write(toFile: dir + "/emulator/blockc_cuda_emu.h", atomically: true, encoding: .utf8)
        try CUDAEmulator.runtimeShim.write(toFile: dir + "/emulator/cuda_runtime.h", atomically: true, encoding: .utf8)
        let source = dir + "/tf32.cpp"
        try CUDAEmulator.rewriteLaunches(tf32Program).write(toFile: source, atomically: true, encoding: .utf8)
        let exe = dir + "/tf32"
        let built = CLI.run(
            compiler, ["-std=c++17", "-O1", "-I", dir + "/emulator", "-DBLOCKC_EMU_ARCH=80", "-o", exe, source])
        guard built.status == 0 else { throw EmulatorFailure("g++ failed:\n\(built.stdout + built.stderr)") }
        return exe
    }

    /// The emulated TF32 mma matches `D = C + tf32(A)·tf32(B)` on random fragments of every lane of two warps
    /// (values over several binades, ties of the rounding among them); with the emulator's layout of A or B broken,
    /// or the runtime's rounding truncating (or rounding ties to even), it does not.
    func testEmulatedTF32MMAFollowsThePTXLayouts() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-tf32")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let exe = try Self.buildTF32Program(header: CUDAEmulator.header, dir: root + "/good", compiler: compiler)
        let run = CLI.run(exe, ["mma"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual(run.stdout, "ok\n", run.stderr)
        let mutations: [(label: String, from: String, to: String)] = [
            (
                "A's rows g and g + 8 swapped", "A[(i & 1) ? g + 8 : g][t + (i >= 2 ? 4 : 0)]",
                "A[(i & 1) ? g : g + 8][t + (i >= 2 ? 4 : 0)]"
            ),
            (
                "A's k halves swapped", "A[(i & 1) ? g + 8 : g][t + (i >= 2 ? 4 : 0)]",
                "A[(i & 1) ? g + 8 : g][t + (i >= 2 ? 0 : 4)]"
            ),
            ("B's k halves swapped", "B[t + 4 * i][g] = tf32_to_f32", "B[t + 4 * (1 - i)][g] = tf32_to_f32"),
            (
                "C's rows g and g + 8 swapped", "C[(i >> 1) ? g + 8 : g][2 * t + (i & 1)] = m.c[lane][i];",
                "C[(i >> 1) ? g : g + 8][2 * t + (i & 1)] = m.c[lane][i];"
            ),
        ]
        for (k, mutation) in mutations.enumerated() {
            guard CUDAEmulator.header.contains(mutation.from) else {
                XCTFail("\(mutation.label): the emulator no longer has '\(mutation.from)'")
                continue
            }
            let header = CUDAEmulator.header.replacingOccurrences(of: mutation.from, with: mutation.to)
            let broken = try Self.buildTF32Program(header: header, dir: "\(root)/\(k)", compiler: compiler)
            let result = CLI.run(broken, ["mma"])
            XCTAssertEqual(result.status, 1, "\(mutation.label): not caught: \(result.stdout) \(result.stderr)")
            XCTAssertTrue(result.stdout.contains("expected"), "\(mutation.label): \(result.stdout) \(result.stderr)")
        }
        // The rounding is the runtime's (compiled into the test program): truncation, or ties to even, is caught.
        let roundings: [(label: String, to: String)] = [
            ("truncating", "return u & 0xFFFFE000u;"),
            ("ties to even", "return (u + 0xFFFu + ((u >> 13) & 1u)) & 0xFFFFE000u;"),
        ]
        let rounding = "return (u + 0x1000u) & 0xFFFFE000u;"
        XCTAssertTrue(CRuntime.cuda.contains(rounding), "the runtime's emulated TF32 rounding moved")
        for (k, r) in roundings.enumerated() {
            let dir = "\(root)/rounding\(k)"
            try FileManager.default.createDirectory(atPath: dir + "/emulator", withIntermediateDirectories: true)
            try CUDAEmulator.header.write(
                toFile: dir + "/emulator/blockc_cuda_emu.h", atomically: true, encoding: .utf8)
            try CUDAEmulator.runtimeShim.write(
                toFile: dir + "/emulator/cuda_runtime.h", atomically: true, encoding: .utf8)
            let source = dir + "/tf32.cpp"
            try CUDAEmulator.rewriteLaunches(Self.tf32Program.replacingOccurrences(of: rounding, with: r.to)).write(
                toFile: source, atomically: true, encoding: .utf8)
            let built = CLI.run(
                compiler,
                ["-std=c++17", "-O1", "-I", dir + "/emulator", "-DBLOCKC_EMU_ARCH=80", "-o", dir + "/tf32", source])
            XCTAssertEqual(built.status, 0, built.stdout + built.stderr)
            let result = CLI.run(dir + "/tf32", ["mma"])
            XCTAssertEqual(result.status, 1, "\(r.label) rounding: not caught: \(result.stdout) \(result.stderr)")
        }
    }

    /// The TF32 block products (`blk_gemm_mma_tf32_RxC`, every warp tile) on the emulator: odd shapes (edges along
    /// m, n and k, k below 8), 32, 96 and 256 threads, accumulating or not, A row- or column-major: each output
    /// within 1e-6 of the sum of its magnitudes of the TF32-rounded product summed in double, and the columns past n
    /// untouched.
    func testTF32ProductsOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-tf32-gemm")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let exe = try Self.buildTF32Program(header: CUDAEmulator.header, dir: root, compiler: compiler)
        let run = CLI.run(exe, ["gemm"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual(run.stdout, "ok\n", run.stderr)
    }

    /// The tolerance of an f32 output computed with TF32 products, against the interpreter's exact f32:
    /// `2^-8 · max(1, max|ref|)`. Each operand rounded to TF32 (11 significant bits, to nearest) is within 2^-11 of
    /// itself relatively, so each product within about 2^-10; the outputs of one or two products (with a
    /// normalization or a softmax of moderate scores between them) stay below a tenth of this at these sizes
    /// (measured: 2e-4 to 5e-4 of the largest output; Docs/CUDA.md, "TF32").
    static let tf32Relative: Float = 0x1p-8

    /// The f32 examples with `--tf32` on the emulator at small and odd shapes, sm_80 and sm_90: the products run on
    /// the tensor cores as TF32, the outputs match the interpreter within `tf32Relative · max(1, max|ref|)` in every
    /// block order, and they are not exact f32 results (the option changes the arithmetic: some output differs by
    /// more than 1e-6 of the largest). The transformer layer is allowed `2^-5`: with the bundle's standard-normal
    /// weights (not scaled by `1/√D`) its attention scores reach about 80 in magnitude, and the softmax turns the
    /// scores' TF32 errors (about 0.1) into weights off by up to 10 % where two scores are close (measured: 1.4e-2 of
    /// the largest output).
    func testTF32ExamplesOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-tf32")
        defer { try? FileManager.default.removeItem(atPath: root) }
        var jobs: [(example: String, dims: String, arch: Int, relative: Float)] = []
        for arch in [80, 90] {
            for dims in ["M=70,K=90,N=50", "M=17,K=33,N=9"] {
                jobs.append(("layernorm_matmul", dims, arch, Self.tf32Relative))
            }
            for dims in ["BH=1,N=200,d=40", "BH=2,N=37,d=24"] {
                jobs.append(("attention_causal", dims, arch, Self.tf32Relative))
            }
            jobs.append(("rmsnorm_swiglu", "M=100,d=200,h=300", arch, Self.tf32Relative))
            jobs.append(("rmsnorm_swiglu", "M=17,d=40,h=24", arch, Self.tf32Relative))
            jobs.append(("transformer_layer", "S=100,H=2,dh=40,F=200", arch, 0x1p-5))
            // RMSNorm+SwiGLU at 16-row blocks (G on chip: one fused kernel and its split's merge), at a size the
            // emulator runs.
            jobs.append(("rmsnorm_swiglu", "M=40,d=1024,h=72 --block i=16", arch, Self.tf32Relative))
        }
        let all = jobs
        let failures = LockedStrings()
        let errors = LockedStrings()
        DispatchQueue.concurrentPerform(iterations: all.count) { k in
            let job = all[k]
            let dir = "\(root)/\(k)"
            let label = "\(job.example) [\(job.dims)] sm_\(job.arch)"
            let dims = job.dims.split(separator: " ").map(String.init)
            let problems = Self.emulate(
                [Examples.path(job.example), "--dim"] + dims + ["--tf32"], arch: job.arch, dir: dir,
                compiler: compiler, f32Tolerance: { job.relative * Swift.max(1, $0) })
            for p in problems { failures.append("\(label): \(p)") }
            let source = Self.bundleSource(dir).flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
            let calls = source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            if !calls.contains(where: { $0.hasPrefix("blk_gemm_mma_tf32_") }) {
                failures.append("\(label): no TF32 product in the generated CUDA")
            }
            let (worst, scale) = Self.largestError(dir, out: "\(dir)/out-forward")
            errors.append("\(label): max abs error \(Double(worst)) at max |ref| \(Double(scale))")
            if !(worst > 1e-6 * Swift.max(1, scale)) {
                failures.append("\(label): the outputs are exact f32 results (error \(worst)): TF32 did not run")
            }
        }
        for f in failures.values { XCTFail(f) }
        if ProcessInfo.processInfo.environment["BLOCKC_CUDA_REPORT"] == "1" {
            for e in errors.values.sorted() { print("tf32 \(e)") }
        }
    }

    /// The largest absolute error of the f32 outputs in `out` against the bundle's expected ones, and the largest
    /// expected magnitude.
    static func largestError(_ dir: String, out: String) -> (error: Float, scale: Float) {
        var worst: Float = 0
        var scale: Float = 0
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/expected")) ?? []).sorted()
        for name in names {
            guard let want = try? NPY.readFile("\(dir)/expected/\(name)"),
                let got = try? NPY.readFile("\(out)/\(name)"),
                got.data.count == want.data.count
            else { continue }
            for (x, y) in zip(got.data, want.data) where x.isFinite && y.isFinite {
                worst = Swift.max(worst, Swift.abs(x - y))
                scale = Swift.max(scale, Swift.abs(y))
            }
        }
        return (worst, scale)
    }

    /// Every example's CUDA with `--tf32` at its default size compiles for sm_80 and sm_90 without spills; the
    /// examples with f32 products hold TF32 products.
    func testTF32CompilesWithoutSpills() throws {
        let nvcc = try Self.nvcc()
        var jobs: [(example: String, arch: String)] = []
        for example in Examples.names {
            for t in Self.targets { jobs.append((example, t.arch)) }
        }
        let allJobs = jobs
        let dir = CLI.temporaryDirectory("cuda-ptxas-tf32")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let failures = LockedStrings()
        let withTF32 = LockedStrings()
        DispatchQueue.concurrentPerform(iterations: allJobs.count) { k in
            let job = allJobs[k]
            let label = "\(job.example) --tf32 \(job.arch)"
            let stem = "\(dir)/\(job.example)_\(k)"
            let emitted = CLI.blockc([
                "emit-cuda", "Examples/\(job.example).graph", "--target", job.arch, "--tf32", "-o", stem + ".cu",
            ])
            guard emitted.status == 0 else { return failures.append("\(label): emit-cuda failed: \(emitted.stderr)") }
            let source = (try? String(contentsOfFile: stem + ".cu", encoding: .utf8)) ?? ""
            if source.contains("        blk_gemm_mma_tf32_") { withTF32.append(job.example) }
            let compiled = CLI.run(
                nvcc, ["-arch=\(job.arch)", "-cubin", "-Xptxas", "-v", "-o", stem + ".cubin", stem + ".cu"])
            let log = compiled.stdout + compiled.stderr
            guard compiled.status == 0 else { return failures.append("\(label): nvcc failed:\n\(log)") }
            let dynamic = Self.dynamicShared((try? String(contentsOfFile: stem + ".h", encoding: .utf8)) ?? "")
            let usages = Self.parsePtxas(log)
            if usages.isEmpty { failures.append("\(label): no kernels in the ptxas output:\n\(log)") }
            for u in usages {
                if u.spillStores != 0 || u.spillLoads != 0 {
                    failures.append("\(label): kernel \(u.name) spills (\(u.spillStores) bytes stored)")
                }
                if ProcessInfo.processInfo.environment["BLOCKC_CUDA_REPORT"] == "1" {
                    print(
                        "ptxas \(label) \(u.name): \(u.registers) registers, \(u.staticShared) + "
                            + "\(dynamic[u.name] ?? 0) bytes shared")
                }
            }
        }
        for f in failures.values { XCTFail(f) }
        for example in ["attention", "attention_causal", "layernorm_matmul", "rmsnorm_swiglu", "transformer_layer"] {
            XCTAssertTrue(withTF32.values.contains(example), "\(example): no TF32 product with --tf32")
        }
    }

    /// `--tf32`: documented in `--help`, a clear error for a CPU target, the schedule's dot lines on a GPU (f32
    /// products on the tensor cores as TF32, none without the option), and emit-cuda's default sm_90 takes it.
    func testTF32Option() throws {
        let help = CLI.blockc(["emit-cuda", "--help"])
        XCTAssertTrue(help.stdout.contains("--tf32"), help.stdout)
        for args in [["--tf32"], ["--target", "cpu", "--tf32"]] {
            let r = CLI.blockc(["schedule", "Examples/layernorm_matmul.graph"] + args)
            XCTAssertNotEqual(r.status, 0, r.stdout)
            XCTAssertTrue(r.stderr.contains("--tf32 applies to GPU targets"), r.stderr)
        }
        let on = CLI.blockc(["schedule", "Examples/layernorm_matmul.graph", "--target", "sm_80", "--tf32"])
        XCTAssertEqual(on.status, 0, on.stderr)
        XCTAssertTrue(on.stdout.contains("tensor cores (mma.sync m16n8k8 tf32, 32x16 outputs per warp)"), on.stdout)
        let off = CLI.blockc(["schedule", "Examples/layernorm_matmul.graph", "--target", "sm_80"])
        XCTAssertEqual(off.status, 0, off.stderr)
        XCTAssertFalse(off.stdout.contains("tensor cores"), off.stdout)
        let cuda = CLI.blockc(["emit-cuda", "Examples/layernorm_matmul.graph", "--tf32"])
        XCTAssertEqual(cuda.status, 0, cuda.stderr)
        XCTAssertTrue(cuda.stdout.contains("        blk_gemm_mma_tf32_32x16("), cuda.stdout)
        // A TF32 bundle's run.sh compares with 2^-8 (rounded up) by default, an exact one with 1e-3.
        let dir = CLI.temporaryDirectory("cuda-tf32-bundle")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (flags, tolerance) in [(["--tf32"], "0.0039"), ([], "1e-3")] {
            let b = CLI.blockc(
                ["emit-cuda", "Examples/layernorm_matmul.graph", "--dim", "M=17,K=33,N=9", "--bundle", dir] + flags)
            XCTAssertEqual(b.status, 0, b.stderr)
            let script = (try? String(contentsOfFile: dir + "/run.sh", encoding: .utf8)) ?? ""
            XCTAssertTrue(script.contains("python3 compare.py \"${TOL:-\(tolerance)}\""), script)
        }
    }
}
