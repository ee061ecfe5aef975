import BlockIR
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Schedule
import XCTest

/// Random names through the whole pipeline: 300 small graphs whose graph, dimension and tensor
/// names are drawn from C/C++/CUDA keywords, macros, libc and runtime names, blockc's own
/// prefixes and random identifier text. Each either fails to parse with a located error
/// (duplicate names, a name used as a dimension and a tensor, a reserved constant, a statement
/// keyword in the wrong place) or emits C whose source and harness pass `gcc -fsyntax-only`
/// (batched: many files per gcc run); a handful also run against the interpreter.
final class NameFuzzTests: XCTestCase {
    static let pool = [
        "int", "for", "if", "return", "static", "restrict", "const", "float", "void", "long", "sizeof", "_Bool",
        "_Generic", "class", "new", "and", "not", "bool", "EOF", "HUGE_VAL", "M_PI", "NULL", "errno", "stdin",
        "INFINITY", "NAN", "assert", "offsetof", "EINVAL", "linux", "unix", "__LINE__", "__cplusplus", "size_t",
        "int32_t", "FILE", "printf", "malloc", "free", "exp", "memcpy", "main", "argc", "argv", "dir", "reps",
        "times", "status", "blk_alloc", "blk_gemm", "blk_pack", "blk_smem", "blk_u_", "blk_t_", "blk_g_x",
        "BLK_CHECK", "g_", "d_", "v0", "s1", "e2_0", "B0", "f_", "threadIdx", "warpSize", "i", "j", "k", "b0",
        "input", "output", "dim", "graph", "inf", "nan", "true", "matmul", "softmax", "tanh", "_", "__", "x",
    ]

    /// A random identifier: a pool name, a pool name with a suffix that collides once derived
    /// (`_k0`, `_device`, `_H`), or random identifier text.
    static func name(_ rng: inout SplitMix64) -> String {
        let letters = Array("abcxyzABCXYZ_EHMN")
        let tail = Array("abcxyzABCXYZ_0123456789")
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<5: return pool.randomElement(using: &rng)!
        case 5, 6:
            let suffix = ["_k0", "_k1", "_device", "_H", "_", "__", "0"].randomElement(using: &rng)!
            return pool.randomElement(using: &rng)! + suffix
        default:
            var s = String(letters.randomElement(using: &rng)!)
            for _ in 0..<Int.random(in: 0...6, using: &rng) { s.append(tail.randomElement(using: &rng)!) }
            return s
        }
    }

    /// A small graph over `[D, D]` tensors: two inputs, three to five steps, one or two outputs.
    static func graph(seed: UInt64) -> String {
        var rng = SplitMix64(seed: seed)
        let dim = name(&rng)
        var text = "graph \(name(&rng))\ndim \(dim) = \(Int.random(in: 3...9, using: &rng))\n"
        var tensors: [String] = []
        for _ in 0..<2 {
            let t = name(&rng)
            tensors.append(t)
            text += "input \(t): [\(dim), \(dim)]\n"
        }
        for _ in 0..<Int.random(in: 3...5, using: &rng) {
            let a = tensors.last!
            let b = tensors.randomElement(using: &rng)!
            let expr = [
                "\(a) * \(b) + 1", "tanh(\(a)) - \(b)", "matmul(\(a), \(b)) * 0.25", "softmax(\(a), axis=-1)",
                "matmul(\(a), \(b), transpose_b=true)", "exp(tanh(\(a)))",
            ].randomElement(using: &rng)!
            let t = name(&rng)
            tensors.append(t)
            text += "\(t) = \(expr)\n"
        }
        text += "output \(tensors.last!)\n"
        if Bool.random(using: &rng) { text += "output \(tensors[tensors.count - 2])\n" }
        return text
    }

    /// The fused, scheduled program of a graph's text, or the parser's diagnostic.
    static func compile(_ text: String) -> Result<ProgramSchedule, Diagnostic> {
        do {
            let graph = try GraphParser.parse(text, defaultName: "fuzz")
            let lowered = try Lowering.lower(graph, options: LoweringOptions(target: .cpu))
            let fused = Fusion.fuse(lowered, options: FusionOptions(target: .cpu, cores: CLI.pinnedCores)).program
            return .success(Scheduler.schedule(fused, target: .cpu))
        } catch let d as Diagnostic {
            return .failure(d)
        } catch {
            return .failure(Diagnostic("\(error)"))
        }
    }

    func testRandomNamesCompileOrFailWithALocatedError() throws {
        let dir = CodegenHarness.scratch("names")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var files: [String] = []
        var built: [(seed: UInt64, program: Program)] = []
        var rejected = 0
        for seed in UInt64(0)..<300 {
            let text = Self.graph(seed: seed)
            switch Self.compile(text) {
            case .failure(let d):
                rejected += 1
                XCTAssertNotNil(d.location, "seed \(seed): an error without a location: \(d.message)\n\(text)")
            case .success(let schedule):
                let stem = "g\(seed)"
                let c = CEmitter.emit(schedule, headerName: stem)
                let harness = CHarness.source(for: schedule.program, headerName: stem)
                try c.source.write(toFile: "\(dir)/\(stem).c", atomically: true, encoding: .utf8)
                try c.header.write(toFile: "\(dir)/\(stem).h", atomically: true, encoding: .utf8)
                try harness.write(toFile: "\(dir)/\(stem)_main.c", atomically: true, encoding: .utf8)
                // The text beside the C, for a failure's report.
                try text.write(toFile: "\(dir)/\(stem).graph", atomically: true, encoding: .utf8)
                files += ["\(dir)/\(stem).c", "\(dir)/\(stem)_main.c"]
                built.append((seed, schedule.program))
            }
        }
        XCTAssertGreaterThan(built.count, 100, "most random graphs should build")
        XCTAssertGreaterThan(rejected, 10, "some names should collide and be rejected")
        // gcc -fsyntax-only over batches of files, two batches at a time.
        let batches = stride(from: 0, to: files.count, by: 60).map { Array(files[$0..<min($0 + 60, files.count)]) }
        let failures = Messages()
        DispatchQueue.concurrentPerform(iterations: batches.count) { k in
            let flags = CCompiler.baseFlags + ["-fsyntax-only", "-I", dir]
            let result: String
            do {
                let r = try CCompiler.run(CCompiler.compiler, flags + batches[k])
                result = r.status == 0 ? "" : "gcc failed (status \(r.status)):\n\(r.stderr.prefix(4000))"
            } catch {
                result = "\(error)"
            }
            if !result.isEmpty { failures.append(result) }
        }
        XCTAssertEqual(failures.values, [], "gcc rejected generated C")
        // A handful compiled, run and compared with the interpreter.
        for (seed, program) in built.prefix(6) {
            let (comparisons, _) = try CodegenHarness.check(program, seed: seed)
            XCTAssertFalse(comparisons.isEmpty, "seed \(seed)")
        }
    }
}

/// Messages collected from concurrent work.
final class Messages: @unchecked Sendable {
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
