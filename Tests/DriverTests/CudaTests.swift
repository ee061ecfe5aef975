import BlockTestSupport
import Foundation
import XCTest

/// The CUDA dialect: goldens of every example's `.cu` and `.h`; every example's CUDA, at full and
/// at a reduced size, compiled by the pinned nvcc for sm_80 and sm_90 (`-cubin -Xptxas -v`)
/// with no register spills and shared memory within the target's limit; a GPU bundle whose
/// `run.sh` builds its harness and, without a GPU, stops with the no-GPU message.
///
/// nvcc comes from `$BLOCKC_NVCC` or the `.venv-cuda` in the package root (see Docs/CUDA.md).
/// Without it the compile tests skip locally and fail in CI (`CI=true`).
final class CudaTests: XCTestCase {
    /// A reduced size per example (odd shapes: partial blocks at the edges); an example without one
    /// is compiled at its default size only.
    static let reduced: [String: String] = [
        "attention": "BH=1,N=200,d=40", "attention_causal": "BH=1,N=200,d=40",
        "attention_documents": "BH=1,N=300,d=32", "attention_chunked": "BH=1,N=300,C=70,d=32",
        "embedding_rmsnorm": "T=77,V=101,D=96,F=45",
        "attention_sliding_window": "BH=1,N=300,d=32,W=50",
        "layernorm_matmul": "M=70,K=90,N=50", "rmsnorm_swiglu": "M=100,d=200,h=300",
        "transformer_layer": "S=100,H=2,dh=40,F=200", "attention_bf16": "BH=1,N=200,d=40",
        "rmsnorm_swiglu_bf16": "M=100,d=200,h=300", "attention_gqa": "B=1,Hkv=2,g=3,H=6,N=200,d=40",
        "decode_attention": "BH=3,N=300,d=40", "attention_block_mask": "BH=2,N=300,d=40",
        "attention_packed": "BH=2,N=300,d=40,D=4", "attention_jagged": "H=2,T=300,d=40,B=5,max_len=100",
        "attention_block_mask_blocks": "BH=2,N=320,d=40,bs=64",
        "attention_alibi": "B=1,H=2,N=300,d=24",
        "attention_rope": "B=1,H=2,N=300,d=32", "attention_dca": "B=1,H=2,C=75,NC=4,d=32",
        "stick_breaking_attention": "BH=1,N=300,d=24", "llama_layer_prefill": "S=100,D=128,H=4,Hkv=2,F=200",
        "llama_layer_decode": "D=128,H=4,Hkv=2,N=1001,F=200",
    ]
    /// Shared memory per block of each target (bytes, the opt-in limits), as in `TargetDescription`.
    static let targets: [(arch: String, sharedLimit: Int)] = [("sm_80", 163 * 1024), ("sm_90", 227 * 1024)]

    /// The pinned nvcc, or a skip (a failure in CI) saying how to install it.
    static func nvcc() throws -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["BLOCKC_NVCC"], fm.isExecutableFile(atPath: env) {
            return env
        }
        let lib = CLI.packageRoot + "/.venv-cuda/lib"
        for python in (try? fm.contentsOfDirectory(atPath: lib))?.sorted() ?? [] {
            let path = "\(lib)/\(python)/site-packages/nvidia/cu13/bin/nvcc"
            if fm.isExecutableFile(atPath: path) { return path }
        }
        let message =
            "nvcc not found: set BLOCKC_NVCC or install the pinned nvcc into .venv-cuda (see Docs/CUDA.md)"
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail(message)
            throw XCTSkip(message + " (failed: CI)")
        }
        throw XCTSkip(message)
    }

    /// The device runtime is compared once, with `Tests/Golden/cuda/runtime.cu`; each example's
    /// `.cu` golden holds the rest (as in `GoldenTests.testGeneratedC`).
    func testGoldens() {
        var runtimes: [(example: String, text: String)] = []
        for example in Examples.names {
            let dir = CLI.temporaryDirectory("cuda-golden")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let result = CLI.blockc(["emit-cuda", "Examples/\(example).graph", "-o", "\(dir)/\(example).cu"])
            XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
            for ext in ["cu", "h"] {
                var text = (try? String(contentsOfFile: "\(dir)/\(example).\(ext)", encoding: .utf8)) ?? ""
                if ext == "cu" {
                    guard let split = GeneratedSource.split(text, runtimeGolden: "Tests/Golden/cuda/runtime.cu") else {
                        XCTFail("\(example).cu: no runtime between the markers of GeneratedSource")
                        continue
                    }
                    runtimes.append((example, split.runtime))
                    XCTAssertEqual(
                        GeneratedSource.join(
                            runtime: split.runtime, program: split.program,
                            runtimeGolden: "Tests/Golden/cuda/runtime.cu"), text,
                        "\(example): the split loses text")
                    text = split.program
                }
                assertGolden(text, path: "\(CLI.packageRoot)/Tests/Golden/cuda/\(example).\(ext)")
            }
        }
        GoldenTests.assertOneRuntime(runtimes, golden: "\(CLI.packageRoot)/Tests/Golden/cuda/runtime.cu")
    }

    /// One kernel's resources as ptxas reports them.
    struct KernelUsage: Equatable {
        var name: String
        var registers = 0
        var staticShared = 0
        var spillStores = 0
        var spillLoads = 0
    }

    /// Parses `ptxas -v` output: one entry per compiled kernel.
    static func parsePtxas(_ text: String) -> [KernelUsage] {
        var out: [KernelUsage] = []
        func number(before word: String, in line: Substring) -> Int? {
            guard let r = line.range(of: " " + word) else { return nil }
            let head = line[..<r.lowerBound]
            let digits = head.reversed().prefix { $0.isNumber }
            return Int(String(digits.reversed()))
        }
        for line in text.split(separator: "\n") {
            if let r = line.range(of: "Compiling entry function '") {
                let rest = line[r.upperBound...]
                out.append(KernelUsage(name: String(rest.prefix { $0 != "'" })))
            } else if !out.isEmpty {
                if let n = number(before: "registers", in: line) { out[out.count - 1].registers = n }
                if let n = number(before: "bytes smem", in: line) { out[out.count - 1].staticShared = n }
                if let n = number(before: "bytes spill stores", in: line) { out[out.count - 1].spillStores = n }
                if let n = number(before: "bytes spill loads", in: line) { out[out.count - 1].spillLoads = n }
            }
        }
        return out
    }

    /// The dynamic shared memory of each kernel, from the header's launch requirements.
    static func dynamicShared(_ header: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in header.split(separator: "\n") where line.hasSuffix("bytes shared */") {
            let words = line.split(separator: " ")
            guard words.count > 4, let bytes = Int(words[words.count - 4]) else { continue }
            out[String(words[1])] = bytes
        }
        return out
    }

    func testParsePtxas() {
        let text = """
            ptxas info    : Compiling entry function 'blk_u_attention_k0' for 'sm_90'
            ptxas info    : Function properties for blk_u_attention_k0
                8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
            ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 384 bytes cmem[0]
            """
        XCTAssertEqual(
            Self.parsePtxas(text),
            [KernelUsage(name: "blk_u_attention_k0", registers: 40, staticShared: 1024, spillStores: 4, spillLoads: 4)])
        XCTAssertEqual(
            Self.dynamicShared(
                "/*   blk_u_attention_k0 (k7_matmul_O): 128 block(s) x 256 threads, 49920 bytes shared */"),
            ["blk_u_attention_k0": 49920])
    }

    /// The GPU check (`Benchmarks/gpu/check.sh`) runs every example at the sizes of this table, which its
    /// `reduced.txt` repeats (one `NAME DIMS` line each): the two agree, and cover every example.
    func testGPUCheckUsesTheReducedSizes() throws {
        let text = try String(contentsOfFile: CLI.packageRoot + "/Benchmarks/gpu/reduced.txt", encoding: .utf8)
        var listed: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            XCTAssertEqual(words.count, 2, "reduced.txt: '\(line)' is not 'NAME DIMS'")
            guard words.count == 2 else { continue }
            XCTAssertNil(listed[String(words[0])], "reduced.txt names \(words[0]) twice")
            listed[String(words[0])] = String(words[1])
        }
        XCTAssertEqual(listed, Self.reduced)
        Examples.assertCovered(by: Array(listed.keys).sorted(), in: "Benchmarks/gpu/reduced.txt")
    }

    func testEveryExampleCompilesWithoutSpills() throws {
        let nvcc = try Self.nvcc()
        var jobs: [(example: String, dims: String?, arch: String, limit: Int)] = []
        for example in Examples.names {
            for dims in [nil, Self.reduced[example]] {
                for t in Self.targets { jobs.append((example, dims, t.arch, t.sharedLimit)) }
            }
        }
        let allJobs = jobs
        let dir = CLI.temporaryDirectory("cuda-ptxas")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let failures = LockedStrings()
        DispatchQueue.concurrentPerform(iterations: allJobs.count) { k in
            let job = allJobs[k]
            let label = "\(job.example) [\(job.dims ?? "default size")] \(job.arch)"
            let stem = "\(dir)/\(job.example)_\(k)"
            // Fused and scheduled for the architecture it is compiled for (its shared memory).
            var args = ["emit-cuda", "Examples/\(job.example).graph", "--target", job.arch, "-o", stem + ".cu"]
            if let dims = job.dims { args += ["--dim", dims] }
            let emitted = CLI.blockc(args)
            guard emitted.status == 0 else { return failures.append("\(label): emit-cuda failed: \(emitted.stderr)") }
            let compiled = CLI.run(
                nvcc, ["-arch=\(job.arch)", "-cubin", "-Xptxas", "-v", "-o", stem + ".cubin", stem + ".cu"])
            let log = compiled.stdout + compiled.stderr
            guard compiled.status == 0 else { return failures.append("\(label): nvcc failed:\n\(log)") }
            let header = (try? String(contentsOfFile: stem + ".h", encoding: .utf8)) ?? ""
            let dynamic = Self.dynamicShared(header)
            let usages = Self.parsePtxas(log)
            if usages.isEmpty { failures.append("\(label): no kernels in the ptxas output:\n\(log)") }
            for u in usages {
                if u.spillStores != 0 || u.spillLoads != 0 {
                    failures.append("\(label): kernel \(u.name) spills (\(u.spillStores) bytes stored)")
                }
                let shared = u.staticShared + (dynamic[u.name] ?? 0)
                if shared > job.limit {
                    failures.append("\(label): kernel \(u.name) uses \(shared) bytes of shared memory > \(job.limit)")
                }
                if u.registers > 255 { failures.append("\(label): kernel \(u.name) uses \(u.registers) registers") }
            }
            if ProcessInfo.processInfo.environment["BLOCKC_CUDA_REPORT"] == "1" {
                for u in usages {
                    print(
                        "ptxas \(label) \(u.name): \(u.registers) registers, \(u.staticShared) + "
                            + "\(dynamic[u.name] ?? 0) bytes shared, \(u.spillStores) bytes spill stores")
                }
            }
        }
        for f in failures.values { XCTFail(f) }
    }

    func testBundleBuildsAndReportsNoGPU() throws {
        let nvcc = try Self.nvcc()
        let dir = CLI.temporaryDirectory("cuda-bundle")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let emitted = CLI.blockc([
            "emit-cuda", "Examples/attention_causal.graph", "--dim", "BH=1,N=100,d=32", "--bundle", dir, "--seed", "3",
        ])
        XCTAssertEqual(emitted.status, 0, emitted.stderr)
        let fm = FileManager.default
        for file in [
            "attention_causal.cu", "attention_causal.h", "harness.cu", "run.sh", "compare.py", "inputs/Q.npy",
            "inputs/K.npy", "inputs/V.npy", "expected/O.npy",
        ] {
            XCTAssertTrue(fm.fileExists(atPath: "\(dir)/\(file)"), "bundle lacks \(file)")
        }
        let bin = (nvcc as NSString).deletingLastPathComponent
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let run = CLI.run("/usr/bin/env", ["PATH=\(path)", "REPS=2", "sh", "\(dir)/run.sh"])
        let log = run.stdout + run.stderr
        XCTAssertTrue(fm.fileExists(atPath: "\(dir)/harness"), "run.sh did not build the harness:\n\(log)")
        if run.status == 0 {
            XCTAssertTrue(log.contains("max_abs_err"), log)  // a machine with a GPU
        } else {
            XCTAssertEqual(run.status, 3, log)
            XCTAssertTrue(log.contains("no GPU"), log)
        }
    }
}

/// Strings appended from concurrent work.
final class LockedStrings: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []

    func append(_ s: String) {
        lock.lock()
        items.append(s)
        lock.unlock()
    }

    var values: [String] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}
