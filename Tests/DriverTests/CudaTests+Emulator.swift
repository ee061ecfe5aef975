import BlockIR
import BlockTestSupport
import Codegen
import Foundation
import Graph
import Interpreter
import XCTest

/// The CUDA emulator (`CUDAEmulator`, Docs/CUDA.md): every example's CUDA, and random programs', built
/// with g++ against it for sm_80 and sm_90 and run with the blocks in forward, reverse and random order
/// (identical bits), matching the interpreter within `blockc verify`'s tolerance; mutations of the
/// generated source (a barrier removed, a broken warp reduction, an edge store without its extent) are
/// caught; the emulator's own checks; `run.sh --emulate`.
///
/// The host compiler is `$CXX` or g++; without one the tests skip locally and fail in CI (`CI=true`).
extension CudaTests {
    /// The block orders every emulated program runs in (`BLOCKC_EMU_ORDER`).
    static let emulatorOrders = ["forward", "reverse", "random:12345"]

    /// A C++17 compiler for the emulator, or a skip (a failure in CI).
    static func hostCompiler() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let name = env["CXX"] ?? "g++"
        if name.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: name) { return name }
        for dir in (env["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        let message = "no C++ compiler '\(name)' for the CUDA emulator: install g++ or set CXX"
        if env["CI"] == "true" {
            XCTFail(message)
            throw XCTSkip(message + " (failed: CI)")
        }
        throw XCTSkip(message)
    }

    /// An emitted bundle's harness built against the emulator.
    struct EmulatedBuild {
        var dir: String
        var executable: String
    }

    /// The `.cu` of a bundle (its one `.cu` besides `harness.cu`).
    static func bundleSource(_ dir: String) -> String? {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return files.sorted().first { $0.hasSuffix(".cu") && $0 != "harness.cu" }.map { "\(dir)/\($0)" }
    }

    /// Emits a bundle (`emit-cuda ARGS --bundle DIR --target sm_ARCH`) and builds its harness against the
    /// emulator, the generated source first passed through `mutate`; a failure message otherwise.
    static func buildEmulated(
        _ args: [String], arch: Int, dir: String, compiler: String, mutate: (String) -> String = { $0 }
    ) -> Result<EmulatedBuild, EmulatorFailure> {
        let emitted = CLI.blockc(["emit-cuda"] + args + ["--target", "sm_\(arch)", "--bundle", dir, "--seed", "5"])
        guard emitted.status == 0 else { return .failure(EmulatorFailure("emit-cuda failed: \(emitted.stderr)")) }
        guard let cu = bundleSource(dir), let source = try? String(contentsOfFile: cu, encoding: .utf8) else {
            return .failure(EmulatorFailure("the bundle has no .cu"))
        }
        let rewritten = dir + "/emulator/program.emu.cpp"
        do {
            try CUDAEmulator.rewriteLaunches(mutate(source)).write(toFile: rewritten, atomically: true, encoding: .utf8)
        } catch {
            return .failure(EmulatorFailure("cannot write \(rewritten): \(error)"))
        }
        let exe = dir + "/harness-emu"
        let object = dir + "/emulator/program.emu.o"
        let includes = ["-std=c++17", "-O1", "-I", dir + "/emulator", "-I", dir, "-DBLOCKC_EMU_ARCH=\(arch)"]
        let compiled = CLI.run(compiler, includes + CUDAEmulator.raceCheckFlags + ["-c", "-o", object, rewritten])
        guard compiled.status == 0 else {
            return .failure(EmulatorFailure("g++ failed against the emulator:\n\(compiled.stdout + compiled.stderr)"))
        }
        let built = CLI.run(compiler, includes + ["-o", exe, object, "-x", "c++", dir + "/harness.cu"])
        guard built.status == 0 else {
            return .failure(EmulatorFailure("linking the emulated harness failed:\n\(built.stdout + built.stderr)"))
        }
        return .success(EmulatedBuild(dir: dir, executable: exe))
    }

    /// Runs an emulated harness with the blocks in `order`, writing `DIR/out-ORDER/*.npy`.
    static func runEmulated(_ build: EmulatedBuild, order: String) -> (out: String, result: CommandResult) {
        let out = "\(build.dir)/out-\(order.replacingOccurrences(of: ":", with: "-"))"
        try? FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let result = CLI.run(
            build.executable, [build.dir + "/inputs", out, "0"], environment: ["BLOCKC_EMU_ORDER": order])
        return (out, result)
    }

    /// The allowed absolute error of an output, as `blockc verify` allows (`OutputErrors.tolerance`).
    static func tolerance(_ type: ElementType, referenceMax: Float) -> Float {
        let scale = Swift.max(1, referenceMax)
        switch type {
        case .f32: return 1e-4 * scale
        case .f16: return 0x1p-10 * scale
        case .bf16: return 0x1p-7 * scale
        case .i32: return Swift.max(1, 1e-4 * scale)
        case .bool: return 0
        }
    }

    /// Where `out/*.npy` differs from the bundle's `expected/*.npy` (the interpreter's) beyond tolerance.
    /// `f32Tolerance` replaces the tolerance of f32 outputs (a function of the largest reference magnitude).
    static func mismatches(_ dir: String, out: String, f32Tolerance: ((Float) -> Float)? = nil) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/expected")) ?? []).sorted()
        if names.isEmpty { return ["no expected outputs in \(dir)"] }
        var found: [String] = []
        for name in names {
            guard let want = try? NPY.readFile("\(dir)/expected/\(name)") else {
                found.append("\(name): unreadable expected output")
                continue
            }
            guard let got = try? NPY.readFile("\(out)/\(name)") else {
                found.append("\(name): no output")
                continue
            }
            guard got.shape == want.shape, got.data.count == want.data.count else {
                found.append("\(name): shape \(got.shape), expected \(want.shape)")
                continue
            }
            var referenceMax: Float = 0
            for y in want.data where y.isFinite { referenceMax = Swift.max(referenceMax, Swift.abs(y)) }
            var worst: Float = 0
            for (x, y) in zip(got.data, want.data) {
                if x.isNaN || y.isNaN || x.isInfinite || y.isInfinite {
                    if !(x.isNaN && y.isNaN) && x != y { worst = .infinity }
                    continue
                }
                worst = Swift.max(worst, Swift.abs(x - y))
            }
            let allowed =
                want.elementType == .f32 && f32Tolerance != nil
                ? f32Tolerance!(referenceMax) : tolerance(want.elementType, referenceMax: referenceMax)
            if !(worst <= allowed) { found.append("\(name): max abs error \(worst) > \(allowed)") }
        }
        return found
    }

    /// Builds once, runs in every order, and returns what went wrong: an emulator error, a mismatch with the
    /// interpreter, or outputs whose bits depend on the order.
    static func emulate(
        _ args: [String], arch: Int, dir: String, compiler: String, f32Tolerance: ((Float) -> Float)? = nil
    ) -> [String] {
        let build: EmulatedBuild
        switch buildEmulated(args, arch: arch, dir: dir, compiler: compiler) {
        case .success(let b): build = b
        case .failure(let f): return [f.message]
        }
        var problems: [String] = []
        var first: [String: Data]?
        for order in emulatorOrders {
            let (out, result) = runEmulated(build, order: order)
            guard result.status == 0 else {
                problems.append("\(order): the emulated harness failed (\(result.status)): \(result.stderr)")
                continue
            }
            if order == emulatorOrders[0] {
                problems += mismatches(dir, out: out, f32Tolerance: f32Tolerance).map { "\(order): \($0)" }
            }
            var bits: [String: Data] = [:]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? [] {
                bits[name] = FileManager.default.contents(atPath: "\(out)/\(name)")
            }
            if let first, first != bits { problems.append("\(order): outputs differ from the forward order's") }
            if first == nil { first = bits }
        }
        return problems
    }

    func testEveryExampleRunsOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        var jobs: [(example: String, arch: Int)] = []
        for example in Examples.names {
            for arch in [80, 90] { jobs.append((example, arch)) }
        }
        let allJobs = jobs
        let root = CLI.temporaryDirectory("cuda-emulator")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let failures = LockedStrings()
        DispatchQueue.concurrentPerform(iterations: allJobs.count) { k in
            let job = allJobs[k]
            var args = [Examples.path(job.example)]
            if let dims = Self.reduced[job.example] { args += ["--dim", dims] }
            let problems = Self.emulate(args, arch: job.arch, dir: "\(root)/\(k)", compiler: compiler)
            let label = "\(job.example) [\(Self.reduced[job.example] ?? "default size")] sm_\(job.arch)"
            for p in problems { failures.append("\(label): \(p)") }
        }
        for f in failures.values { XCTFail(f) }
    }

    /// The 4x1 register tiles of f32 products whose outputs give fewer 4x4 tiles than threads
    /// (`KernelSchedule.registerTile`): RMSNorm+SwiGLU at 16-row blocks (its `[16, 64]` products) and
    /// at odd sizes (edge tiles, the scalar path), both architectures, every block order; the CUDA calls
    /// `blk_gemm_4x1`.
    func testNarrowRegisterTilesOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-narrow")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for arch in [80, 90] {
            for dims in ["M=40,d=200,h=72", "M=19,d=37,h=9"] {
                let dir = "\(root)/\(arch)-\(dims)"
                let args = [Examples.path("rmsnorm_swiglu"), "--dim", dims, "--block", "i=16"]
                XCTAssertEqual(Self.emulate(args, arch: arch, dir: dir, compiler: compiler), [], "\(dims) sm_\(arch)")
                let source = Self.bundleSource(dir).flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
                XCTAssertTrue(source.contains("blk_gemm_4x1("), "\(dims) sm_\(arch): no 4x1 product")
            }
        }
    }

    /// Jagged batches on structured offsets (`NumPyTests.jaggedOffsets`: one sequence of max_len
    /// and many short ones, empty sequences, given to the bundle as `--weights-dir DIR` holding
    /// `offsets.npy`), both architectures, every block order.
    func testJaggedOnStructuredOffsetsRunsOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-jagged")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let made = CLI.run("/usr/bin/env", ["python3", "-c", NumPyTests.jaggedOffsetsScript, root])
        XCTAssertEqual(made.status, 0, made.stderr)
        for (name, segments) in NumPyTests.jaggedOffsets where name == "long-short" || name == "empty" {
            let weights = "\(root)/\(name)-offsets"
            try FileManager.default.createDirectory(atPath: weights, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(root)/\(name).npy", toPath: "\(weights)/offsets.npy")
            for arch in [80, 90] {
                let args = [
                    Examples.path("attention_jagged"), "--dim", "H=2,T=300,d=40,B=\(segments),max_len=100",
                    "--weights-dir", weights,
                ]
                let problems = Self.emulate(args, arch: arch, dir: "\(root)/\(name)\(arch)", compiler: compiler)
                XCTAssertEqual(problems, [], "\(name) sm_\(arch)")
            }
        }
    }

    /// The guarded key loops of Examples/attention_block_mask.graph, attention_packed.graph and
    /// attention_block_mask_blocks.graph (R16: `if (M_any[…] == 0) continue;` read by every thread of a
    /// block, the links followed in sparse rows) and their summary kernels, on both architectures
    /// in every block order (also run by `testEveryExampleRunsOnTheEmulator`; this one alone is quick).
    func testBlockMaskRunsOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-mask")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for example in ["attention_block_mask", "attention_packed", "attention_jagged", "attention_block_mask_blocks"] {
            for arch in [80, 90] {
                let args = [Examples.path(example), "--dim", Self.reduced[example]!]
                let problems = Self.emulate(args, arch: arch, dir: "\(root)/\(example)\(arch)", compiler: compiler)
                XCTAssertEqual(problems, [], "\(example) sm_\(arch)")
            }
        }
    }

    /// Examples/attention_block_mask.graph at an odd shape (N = 300: five 64-row blocks, the last
    /// partial) on a structured element mask, given to the bundle as `--weights-dir DIR` holding
    /// `M.npy`: row block 0 keeps part of one key block, row block 1 every key, row block 2 none
    /// (NaN rows, every stage), row block 3 random key blocks with the diagonal, row block 4 a
    /// band. R16's one summary kernel computes the bits, ranges and links that the attention
    /// kernel reads; both architectures, every block order.
    func testStructuredElementMaskRunsOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-element-mask")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let n = 300
        var generator = SplitMix64(seed: 99)
        let kept = (0..<5).map { _ in generator.next() % 2 == 0 }
        var data: [Float] = []
        for i in 0..<n {
            for j in 0..<n {
                let keep: Bool
                switch i / 64 {
                case 0: keep = j / 64 == 2 && (i + j) % 3 != 0
                case 1: keep = true
                case 2: keep = false
                case 3: keep = i == j || kept[j / 64]
                default: keep = abs(i - j) < 30
                }
                data.append(keep ? 1 : 0)
            }
        }
        let weights = root + "/mask"
        try FileManager.default.createDirectory(atPath: weights, withIntermediateDirectories: true)
        try NPY.writeFile(NDArray(shape: [1, n, n], data: data, elementType: .bool), to: weights + "/M.npy")
        for arch in [80, 90] {
            let args = [
                Examples.path("attention_block_mask"), "--dim", "BH=2,N=\(n),d=40", "--weights-dir", weights,
            ]
            let problems = Self.emulate(args, arch: arch, dir: "\(root)/sm\(arch)", compiler: compiler)
            XCTAssertEqual(problems, [], "sm_\(arch)")
            // The reference took the given mask: exactly the rows of row block 2 are NaN.
            let expected = try NPY.readFile("\(root)/sm\(arch)/expected/O.npy")
            for row in 0..<(2 * n) {
                let values = expected.data[row * 40..<(row + 1) * 40]
                XCTAssertEqual(values.allSatisfy(\.isNaN), (128..<192).contains(row % n), "sm_\(arch), row \(row)")
            }
        }
    }

    /// A block mask computed in the program (0, the diagonal and the last block kept: every row
    /// keeps at most 3 blocks of a range of all of them, so every row follows the links): 64-blocks
    /// of the mask at the GPU's 64-blocks (B read directly), and 40-blocks (not aligned: B's
    /// elements expanded in the kernels, the bits from them), on both architectures in every block
    /// order.
    func testBlockMaskLinksRunOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-links")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for bs in [64, 40] {
            let text = """
                graph block_mask_links
                dim BH = 2
                dim N = 640
                dim d = 40
                dim bs = \(bs)
                input Q: [BH, N, d]
                input K: [BH, N, d]
                input V: [BH, N, d]
                I = pos([1, N / bs, N / bs], axis=-2)
                J = pos([1, N / bs, N / bs], axis=-1)
                B = logical_or(logical_or(J == 0, I == J), J == N / bs - 1)
                S = matmul(Q, K, transpose_b=true) * rsqrt(d)
                P = softmax(where(block_broadcast(B, [bs, bs]), S, -inf), axis=-1)
                O = matmul(P, V)
                output O

                """
            let path = root + "/links\(bs).graph"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let explained = CLI.blockc(["explain", path, "--target", "sm_90"])
            let expected = bs == 64 ? "whose element of B is set" : "whose block of B is not all false"
            XCTAssertTrue(explained.stdout.contains(expected), explained.stdout + explained.stderr)
            for arch in [80, 90] {
                let problems = Self.emulate([path], arch: arch, dir: "\(root)/\(bs)_\(arch)", compiler: compiler)
                XCTAssertEqual(problems, [], "bs \(bs), sm_\(arch)")
            }
        }
    }

    /// Random programs of the differential tests, at their small blocks (partial blocks at the edges), and
    /// the casts between every element type (f16 through the emulator's conversions instead of PTX).
    func testRandomProgramsRunOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-random")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let casts = """
            graph casts
            dim N = 50
            input A: i32[N, 24]
            input M: bool[N, 24]
            input X: bf16[N, 24]
            input H: f16[N, 24]
            Y = cast(A, f32) * cast(M, f32) + cast(X, f32) - cast(H, f32)
            Z = cast(Y * 0.5, i32)
            B = cast(Y, bool)
            Xb = cast(Y, bf16)
            Hh = cast(Y, f16)
            output Z, B, Xb, Hh, Y

            """
        var graphs: [(label: String, text: String, arch: Int)] = [("casts", casts, 90)]
        for seed in 0..<6 as Range<UInt64> {
            graphs.append(
                ("random graph \(seed)", GraphPrinter.print(RandomGraphs.make(seed: seed)), seed < 3 ? 80 : 90))
        }
        let all = graphs
        let failures = LockedStrings()
        DispatchQueue.concurrentPerform(iterations: all.count) { k in
            let dir = "\(root)/\(k)"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let path = "\(root)/g\(k).graph"
            try? all[k].text.write(toFile: path, atomically: true, encoding: .utf8)
            let problems = Self.emulate(
                [path, "--block", "i=8,j=16,k=8"], arch: all[k].arch, dir: dir, compiler: compiler)
            for p in problems { failures.append("\(all[k].label) sm_\(all[k].arch): \(p)\n\(all[k].text)") }
        }
        for f in failures.values { XCTFail(f) }
    }

    /// Builds `args` for sm_90 with each `__syncthreads();` of the generated source made skippable at run time
    /// (`BLK_SKIP=k` skips the k-th) and runs it once unskipped and once per barrier skipped: the number of barriers
    /// and, per barrier, whether skipping it was reported as a race on shared memory (failures reported).
    static func skipEachBarrier(_ args: [String], compiler: String) -> (count: Int, races: [Bool], statuses: [String]) {
        let dir = CLI.temporaryDirectory("cuda-emulator-barriers")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let barrier = "__syncthreads();"
        var count = 0
        let built = Self.buildEmulated(args, arch: 90, dir: dir, compiler: compiler) { source in
            var lines: [String] = []
            for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
                guard line.trimmingCharacters(in: .whitespaces) == barrier else {
                    lines.append(String(line))
                    continue
                }
                lines.append(line.replacingOccurrences(of: barrier, with: "if (blk_skip != \(count)) " + barrier))
                count += 1
            }
            let skip = "static const int blk_skip = getenv(\"BLK_SKIP\") ? atoi(getenv(\"BLK_SKIP\")) : -1;"
            return "#include <stdlib.h>\n" + skip + "\n" + lines.joined(separator: "\n")
        }
        guard case .success(let build) = built else {
            if case .failure(let f) = built { XCTFail(f.message) }
            return (0, [], [])
        }
        try? FileManager.default.createDirectory(atPath: build.dir + "/out", withIntermediateDirectories: true)
        let unskipped = CLI.run(build.executable, [build.dir + "/inputs", build.dir + "/out", "0"])
        XCTAssertEqual(unskipped.status, 0, unskipped.stderr)
        XCTAssertEqual(Self.mismatches(build.dir, out: build.dir + "/out"), [])
        var races: [Bool] = []
        var statuses: [String] = []
        for k in 0..<count {
            let run = CLI.run(
                build.executable, [build.dir + "/inputs", build.dir + "/out", "0"], environment: ["BLK_SKIP": "\(k)"])
            races.append(run.status == 4 && run.stderr.contains("a race on shared memory"))
            statuses.append("status \(run.status) \(run.stderr)")
        }
        return (count, races, statuses)
    }

    /// The barriers the emitter keeps in the causal attention kernel (at an odd size) are needed: with any one of
    /// them skipped (one build, the barrier to skip chosen at run time), the emulator reports a race on shared
    /// memory, except the few that `BarrierPlan` keeps only because it cannot prove them unneeded (listed, so a
    /// change of the analysis shows here).
    func testEveryKeptBarrierIsNeeded() throws {
        let compiler = try Self.hostCompiler()
        let (count, races, statuses) = Self.skipEachBarrier(
            ["Examples/attention_causal.graph", "--dim", "BH=1,N=200,d=40"], compiler: compiler)
        // Kept without a race when skipped: 8 (the end of an iteration) separates the yield's copy of row maxima from
        // the next iteration's packing of K, which lands on the same threads for the first 64 elements; 9 (after the
        // loop) is needed only when the loop runs zero times, which it does not here.
        let conservative: Set<Int> = [8, 9]
        XCTAssertEqual(count, 10)
        for k in 0..<count {
            if conservative.contains(k) {
                XCTAssertTrue(statuses[k].hasPrefix("status 0 "), "barrier \(k) of \(count) skipped: \(statuses[k])")
            } else {
                XCTAssertTrue(races[k], "barrier \(k) of \(count) skipped: not a race (\(statuses[k]))")
            }
        }
    }

    /// The same for bf16 attention, whose products run on the tensor cores (`blk_gemm_mma_RxC`, each warp its own
    /// output tiles): skipping any barrier kept before or after a product is a race. Kept without a race when
    /// skipped, as the analysis cannot prove them unneeded: 8 separates the reads of the row sums (`v24[r_]`) from
    /// the load of V into their buffer (`v28[r_ * 40 + c_]`, `r_ = f_ / 40`), 9 that load from the packing of V, both
    /// the same element on the same thread by arithmetic the analysis does not do; 11 ends an iteration (the yield's
    /// copy against the next iteration's first accesses); 12 (after the loop) is needed only when the loop runs zero
    /// times.
    func testEveryKeptBarrierIsNeededOnTensorCores() throws {
        let compiler = try Self.hostCompiler()
        let (count, races, statuses) = Self.skipEachBarrier(
            ["Examples/attention_bf16.graph", "--dim", "BH=1,N=200,d=40"], compiler: compiler)
        let conservative: Set<Int> = [8, 9, 11, 12]
        XCTAssertEqual(count, 13)
        for k in 0..<count {
            if conservative.contains(k) {
                XCTAssertTrue(statuses[k].hasPrefix("status 0 "), "barrier \(k) of \(count) skipped: \(statuses[k])")
            } else {
                XCTAssertTrue(races[k], "barrier \(k) of \(count) skipped: not a race (\(statuses[k]))")
            }
        }
    }

    /// Mutations of the generated source that the emulator must catch, each as an error or a mismatch; a removed
    /// barrier must be reported as a race on shared memory. Two break the tensor cores' fragment layouts (bf16
    /// attention and RMSNorm+SwiGLU, whose dots the schedule gives to the tensor cores).
    func testEmulatorCatchesMutations() throws {
        let compiler = try Self.hostCompiler()
        let root = CLI.temporaryDirectory("cuda-emulator-mutations")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let attention = ["Examples/attention_causal.graph", "--dim", "BH=1,N=200,d=40"]
        let barrier = "__syncthreads();"
        let pack = "        blk_pack("  // a call in a kernel, not the runtime's definition
        let sum = "for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);"
        let store = "blk_imin(e62_0, blk_extent(70, i * 64, 64)) * 50"
        let yield = "        // yield "
        // The fragments of the tensor-core product in the runtime every .cu carries (Dialect+CUDA.swift).
        let attentionBF16 = ["Examples/attention_bf16.graph", "--dim", "BH=1,N=200,d=40"]
        let rmsnormBF16 = ["Examples/rmsnorm_swiglu_bf16.graph", "--dim", "M=100,d=200,h=300"]
        let fragmentA = "g + 8 * (r & 1), k = k0 + t2 + 8 * (r >> 1);"
        let fragmentB = "k = k0 + t2 + 8 * r;"
        /// Removes the first barrier after `marker`, or the last before it.
        @Sendable func removeBarrier(after marker: String, _ s: String) -> String {
            guard let at = s.range(of: marker), let sync = s.range(of: barrier, range: at.upperBound..<s.endIndex)
            else { return s }
            return s.replacingCharacters(in: sync, with: "")
        }
        @Sendable func removeBarrier(before marker: String, _ s: String) -> String {
            guard let at = s.range(of: marker),
                let sync = s.range(of: barrier, options: .backwards, range: s.startIndex..<at.lowerBound)
            else { return s }
            return s.replacingCharacters(in: sync, with: "")
        }
        let mutations: [(label: String, args: [String], pattern: String, mutate: @Sendable (String) -> String)] = [
            ("the barrier after packing K removed", attention, pack, { removeBarrier(after: pack, $0) }),
            ("the barrier before the loop's yield removed", attention, yield, { removeBarrier(before: yield, $0) }),
            (
                "the warp sum starting at offset 8", attention, sum,
                { $0.replacingOccurrences(of: sum, with: sum.replacingOccurrences(of: "o = 16", with: "o = 8")) }
            ),
            (
                "the warp sum over half a warp", attention, sum,
                {
                    $0.replacingOccurrences(
                        of: sum, with: sum.replacingOccurrences(of: "0xffffffffu", with: "0x0000ffffu"))
                }
            ),
            (
                "the edge store without its extent", ["Examples/layernorm_matmul.graph", "--dim", "M=70,K=90,N=50"],
                store, { $0.replacingOccurrences(of: store, with: "64 * 50") }
            ),
            (
                "the tensor cores' A fragment with rows and k halves swapped", attentionBF16, fragmentA,
                { $0.replacingOccurrences(of: fragmentA, with: "g + 8 * (r >> 1), k = k0 + t2 + 8 * (r & 1);") }
            ),
            (
                "the tensor cores' B fragment with its k halves swapped", rmsnormBF16, fragmentB,
                { $0.replacingOccurrences(of: fragmentB, with: "k = k0 + t2 + 8 * (1 - r);") }
            ),
        ]
        let failures = LockedStrings()
        DispatchQueue.concurrentPerform(iterations: mutations.count) { k in
            let m = mutations[k]
            var found = true
            let built = Self.buildEmulated(m.args, arch: 90, dir: "\(root)/\(k)", compiler: compiler) { source in
                found = source.contains(m.pattern)
                return m.mutate(source)
            }
            guard found else { return failures.append("\(m.label): the generated CUDA no longer has '\(m.pattern)'") }
            guard case .success(let build) = built else {
                if case .failure(let f) = built { failures.append("\(m.label): \(f.message)") }
                return
            }
            let (out, result) = Self.runEmulated(build, order: "forward")
            let race = result.stderr.contains("a race on shared memory")
            let caught =
                (result.status == 4 && result.stderr.contains("cuda-emulator: error"))
                || (result.status == 0 && !Self.mismatches(build.dir, out: out).isEmpty)
            if !caught { failures.append("\(m.label): not caught (status \(result.status)) \(result.stderr)") }
            if m.label.contains("barrier") && !race {
                failures.append("\(m.label): not reported as a race (status \(result.status)) \(result.stderr)")
            }
        }
        for f in failures.values { XCTFail(f) }
    }

    /// The emulator's own checks, on a small hand-written CUDA program: each case must stop with its message.
    func testEmulatorChecks() throws {
        let compiler = try Self.hostCompiler()
        let dir = CLI.temporaryDirectory("cuda-emulator-checks")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/emulator", withIntermediateDirectories: true)
        try CUDAEmulator.header.write(toFile: dir + "/emulator/blockc_cuda_emu.h", atomically: true, encoding: .utf8)
        try CUDAEmulator.runtimeShim.write(toFile: dir + "/emulator/cuda_runtime.h", atomically: true, encoding: .utf8)
        let source = """
            #include <cuda_runtime.h>
            #include <stdio.h>
            #include <stdlib.h>
            extern "C" __global__ void exits_early(float *x) {
                if (threadIdx.x == 3) return;
                __syncthreads();
                x[threadIdx.x] = 1.0f;
            }
            extern "C" __global__ void two_barriers(float *x) {
                if (threadIdx.x < 32) {
                    __syncthreads();
                } else {
                    __syncthreads();
                }
                x[threadIdx.x] = 1.0f;
            }
            extern "C" __global__ void shuffle_and_barrier(float *x) {
                float v = 1.0f;
                if (threadIdx.x == 5) __syncthreads(); else v = __shfl_xor_sync(0xffffffffu, v, 1);
                x[threadIdx.x] = v;
            }
            extern "C" __global__ void writes_past(float *x) { x[blockDim.x + threadIdx.x] = 1.0f; }
            extern "C" __global__ void shared_past(float *x) {
                extern __shared__ __align__(16) float blk_smem[];
                blk_smem[threadIdx.x + 64] = 1.0f;
                x[threadIdx.x] = 0.0f;
            }
            extern "C" __global__ void reads_shared(float *x) {
                extern __shared__ __align__(16) float blk_smem[];
                x[threadIdx.x] = blk_smem[threadIdx.x];
            }
            extern "C" __global__ void copies(const float *a, float *b) { b[threadIdx.x] = a[threadIdx.x]; }
            extern "C" __global__ void shifts(float *x, int barrier) {
                extern __shared__ __align__(16) float blk_smem[];
                blk_smem[threadIdx.x] = (float)threadIdx.x;
                if (barrier) __syncthreads();
                x[threadIdx.x] = blk_smem[(threadIdx.x + 1) % blockDim.x];
            }
            extern "C" __global__ void overwrites(float *x, int barrier) {
                extern __shared__ __align__(16) float blk_smem[];
                blk_smem[threadIdx.x] = (float)threadIdx.x;
                __syncthreads();
                float v = blk_smem[(threadIdx.x + 1) % blockDim.x];
                if (barrier) __syncthreads();
                blk_smem[threadIdx.x] = 2.0f * v;
                __syncthreads();
                x[threadIdx.x] = blk_smem[threadIdx.x];
            }
            extern "C" __global__ void all_write(float *x) {
                extern __shared__ __align__(16) float blk_smem[];
                if (threadIdx.x >= 60) blk_smem[1] = 1.0f;
                x[threadIdx.x] = 0.0f;
            }
            int main(int argc, char **argv) {
                int c = atoi(argv[1]);
                float *d = NULL, host[64];
                cudaMalloc((void **)&d, 64 * sizeof(float));
                switch (c) {
                case 0: exits_early<<<1, 64, 0>>>(d); break;
                case 1: two_barriers<<<1, 64, 0>>>(d); break;
                case 2: shuffle_and_barrier<<<1, 32, 0>>>(d); break;
                case 3: writes_past<<<1, 64, 0>>>(d); break;
                case 4: shared_past<<<1, 64, 256>>>(d); break;
                case 5: copies<<<1, 64, 0>>>(d, host); break;
                case 6: cudaMemcpy(host, d, sizeof host, cudaMemcpyHostToDevice); break;
                case 7: copies<<<1, 32, 0>>>(d, d + 32); break;
                case 9: shifts<<<1, 64, 256>>>(d, 0); break;
                case 10: overwrites<<<1, 64, 256>>>(d, 0); break;
                case 11: all_write<<<1, 64, 256>>>(d); break;
                case 12:
                    shifts<<<1, 64, 256>>>(d, 1);
                    overwrites<<<1, 64, 256>>>(d, 1);
                    cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost);
                    printf("%g %g\\n", host[0], host[63]);
                    break;
                case 8: {
                    printf("%d %d\\n", (int)cudaFuncSetAttribute(reads_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                                 166913),
                           (int)cudaFuncSetAttribute(reads_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 166912));
                    cudaGetLastError();
                    reads_shared<<<1, 64, 166912>>>(d);
                    printf("%d\\n", (int)cudaGetLastError());
                    reads_shared<<<1, 64, 166913>>>(d);
                    printf("%d\\n", (int)cudaGetLastError());
                    cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost);
                    printf("%s\\n", host[0] != host[0] ? "nan" : "number");
                    break;
                }
                }
                cudaDeviceSynchronize();
                return cudaFree(d);
            }

            """
        let rewritten = dir + "/checks.cpp"
        try CUDAEmulator.rewriteLaunches(source).write(toFile: rewritten, atomically: true, encoding: .utf8)
        let exe = dir + "/checks"
        let flags = ["-std=c++17", "-O1", "-I", dir + "/emulator", "-DBLOCKC_EMU_ARCH=80"]
        let compiled = CLI.run(compiler, flags + CUDAEmulator.raceCheckFlags + ["-c", "-o", exe + ".o", rewritten])
        XCTAssertEqual(compiled.status, 0, compiled.stderr)
        let built = CLI.run(compiler, flags + ["-o", exe, exe + ".o"])
        XCTAssertEqual(built.status, 0, built.stderr)
        let expected = [
            "kernel exits_early: block 0: thread 3 exited while 63 thread(s) wait at __syncthreads",
            "kernel two_barriers: block 0: thread 0 waits at __syncthreads on line",
            "kernel shuffle_and_barrier: block 0: lane 0 of warp 0 waits at __shfl_xor_sync while lane 5 waits",
            "kernel writes_past: after the launch: a write at byte 0 past the end of a device allocation of 256",
            "kernel shared_past: block 0 wrote at byte 0 past the end of its 256 bytes of dynamic shared memory",
            "kernel copies: pointer argument 2",
            "cudaMemcpy(cudaMemcpyHostToDevice, 256 bytes): the destination",
            "kernel copies: pointer arguments 1 and 2 point into one allocation",
            "",  // case 8, below
            "kernel shifts: block 0: a race on shared memory: thread 1 writes byte 4 (at checks.cpp:",
            "kernel overwrites: block 0: a race on shared memory: thread 1 writes byte 4 (at checks.cpp:",
            "kernel all_write: block 0: a race on shared memory: thread 61 writes byte 4 (at checks.cpp:",
        ]
        for (c, message) in expected.enumerated() where !message.isEmpty {
            let run = CLI.run(exe, ["\(c)"])
            XCTAssertEqual(run.status, 4, "case \(c): \(run.stdout) \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("cuda-emulator: error: " + message), "case \(c): \(run.stderr)")
        }
        // sm_80's opt-in limit: 166,912 bytes are allowed (and arrive as NaN), one more is refused.
        let limit = CLI.run(exe, ["8"])
        XCTAssertEqual(limit.status, 0, limit.stderr)
        XCTAssertEqual(limit.stdout, "1 0\n0\n1\nnan\n", limit.stderr)
        // The same kernels with their barriers: no race, and the values a GPU computes.
        let synchronized = CLI.run(exe, ["12"])
        XCTAssertEqual(synchronized.status, 0, synchronized.stderr)
        XCTAssertEqual(synchronized.stdout, "2 0\n", synchronized.stderr)
    }

    /// A bundle's `compare.py` matches a NaN only with a NaN, as `blockc verify`: attention under a block mask
    /// whose query blocks keep no key block has NaN rows in every stage (Docs/Fusion.md, "Fully masked rows"),
    /// and these rows made it report a mismatch on a GPU. A NaN where a number is expected, or a number where
    /// a NaN is, is still a mismatch.
    func testBundleMatchesNaNOnlyWithNaN() throws {
        let compiler = try Self.hostCompiler()
        let dir = CLI.temporaryDirectory("cuda-bundle-nan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let emitted = CLI.blockc([
            "emit-cuda", "Examples/attention_block_mask_blocks.graph", "--dim", "BH=2,N=320,d=40,bs=64", "--bundle",
            dir,
        ])
        XCTAssertEqual(emitted.status, 0, emitted.stderr)
        let want = try NPY.readFile(dir + "/expected/O.npy")
        let nans = want.data.filter { $0.isNaN }.count
        XCTAssertGreaterThan(nans, 0, "the bundle's block mask leaves no query block fully masked: the test needs one")
        XCTAssertLessThan(nans, want.data.count)
        let run = CLI.run("/usr/bin/env", ["CXX=\(compiler)", "EMU_ARCH=90", "sh", "\(dir)/run.sh", "--emulate"])
        let log = run.stdout + run.stderr
        XCTAssertEqual(Self.mismatches(dir, out: dir + "/out"), [], log)
        // compare.py needs NumPy; where it is missing, only the build and the run are checked.
        guard run.status == 0 || !log.contains("No module named") else { return }
        XCTAssertEqual(run.status, 0, log)
        XCTAssertTrue(log.contains("O: max_abs_err "), log)
        XCTAssertTrue(log.contains(" non-finite \(nans) (0 unmatched) ok"), log)
        // One expected NaN replaced by a number, then one expected number replaced by a NaN: each a mismatch.
        for (label, edit) in [
            ("a number for a NaN", "k = np.flatnonzero(np.isnan(o))[0]; o.flat[k] = 0.0"),
            ("a NaN for a number", "k = np.flatnonzero(~np.isnan(o))[0]; o.flat[k] = np.nan"),
        ] {
            let script = """
                import numpy as np
                o = np.load("expected/O.npy")
                \(edit)
                np.save("out/O.npy", o)
                """
            let poked = CLI.run("/usr/bin/env", ["sh", "-c", "cd '\(dir)' && python3 -c '\(script)'"])
            XCTAssertEqual(poked.status, 0, label + ": " + poked.stderr)
            let compared = CLI.run("/usr/bin/env", ["sh", "-c", "cd '\(dir)' && python3 compare.py"])
            XCTAssertEqual(compared.status, 1, label + ": " + compared.stdout)
            XCTAssertTrue(compared.stdout.contains("(1 unmatched) MISMATCH"), label + ": " + compared.stdout)
        }
    }

    /// `run.sh --emulate` builds the bundle's harness against the emulator it carries and runs it.
    func testBundleRunsOnTheEmulator() throws {
        let compiler = try Self.hostCompiler()
        let dir = CLI.temporaryDirectory("cuda-bundle-emulate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let emitted = CLI.blockc([
            "emit-cuda", "Examples/attention_causal.graph", "--dim", "BH=1,N=100,d=32", "--bundle", dir, "--seed", "3",
        ])
        XCTAssertEqual(emitted.status, 0, emitted.stderr)
        // The launch rewrite of run.sh (sed) and of the tests (`rewriteLaunches`) agree.
        guard let cu = Self.bundleSource(dir) else { return XCTFail("no .cu in the bundle") }
        let sed = CLI.run("/usr/bin/env", ["sed", "-E", CUDAEmulator.launchRewriteSed, cu])
        XCTAssertEqual(sed.status, 0, sed.stderr)
        XCTAssertEqual(
            sed.stdout, CUDAEmulator.rewriteLaunches((try? String(contentsOfFile: cu, encoding: .utf8)) ?? ""))
        XCTAssertTrue(sed.stdout.contains("blk_emu::launch(blk_u_attention_causal_k0, \"blk_u_attention_causal_k0\""))
        let run = CLI.run("/usr/bin/env", ["CXX=\(compiler)", "EMU_ARCH=80", "sh", "\(dir)/run.sh", "--emulate"])
        let log = run.stdout + run.stderr
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/harness-emu"), log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/out/O.npy"), log)
        XCTAssertEqual(Self.mismatches(dir, out: dir + "/out"), [])
        // compare.py needs NumPy; where it is missing, only the build and the run are checked.
        if run.status == 0 { XCTAssertTrue(log.contains("O: max_abs_err"), log) }
    }
}

/// Why an emulated build failed.
struct EmulatorFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
