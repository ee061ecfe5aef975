import BlockIR
import Codegen
import Foundation
import Graph
import Interpreter
import XCTest

/// Compiles programs with the C emitter, runs them through the harness, and compares every
/// output with the interpreter's on the same random inputs.
///
/// Tolerance: `|c - ref| ≤ 1e-4 · max(1, max|ref|)` per output (fp32 reassociation in the
/// block dot and the reductions, and the polynomial `exp`).
enum CodegenHarness {
    /// A fresh scratch directory.
    static func scratch(_ label: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "blockc-codegen-\(label)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The largest absolute error and the reference's largest magnitude of one output.
    struct Comparison {
        var name: String
        var maxAbs: Float
        var refMax: Float
        var ok: Bool { maxAbs <= 1e-4 * Swift.max(1, refMax) }
    }

    /// Lowers a graph with the given block sizes.
    static func lower(_ graph: Graph, i: Int, j: Int, k: Int) throws -> Program {
        var options = LoweringOptions()
        try options.override([("i", i), ("j", j), ("k", k)])
        return try Lowering.lower(graph, options: options)
    }

    /// Emits, compiles, runs and compares; returns the comparisons and the harness's stderr.
    static func check(
        _ program: Program, seed: UInt64 = 1, extraFlags: [String] = [], threads: Int = 2,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> (comparisons: [Comparison], stderr: String) {
        let errors = Verifier.verify(program, target: .cpu)
        XCTAssertEqual(errors.map(\.description), [], "the program does not verify", file: file, line: line)
        let dir = scratch(program.name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var inputs: [String: NDArray] = [:]
        for (k, t) in program.inputs.enumerated() {
            let a = RandomInputs.standardNormal(shape: program[t].shape, seed: seed, stream: UInt64(k))
            inputs[program[t].name] = a
            try NPY.writeFile(a, to: dir + "/" + program[t].name + ".npy")
        }
        let reference = try BlockInterpreter.run(program, inputs: inputs)
        let source = CEmitter.emit(program)
        if let dump = ProcessInfo.processInfo.environment["BLOCKC_DUMP_C"] {
            try? source.source.write(toFile: dump + "/" + program.name + ".c", atomically: true, encoding: .utf8)
        }
        let exe = try CCompiler.buildHarness(program: program, source: source, directory: dir, extraFlags: extraFlags)
        let run = try CCompiler.run(exe, [dir], environment: ["OMP_NUM_THREADS": "\(threads)"])
        XCTAssertEqual(run.status, 0, "harness failed: \(run.stderr)", file: file, line: line)
        var out: [Comparison] = []
        for t in program.outputs {
            let name = program[t].name
            let got = try NPY.readFile(dir + "/" + name + ".npy")
            let ref = reference[name]!
            XCTAssertEqual(got.shape, ref.shape, file: file, line: line)
            var maxAbs: Float = 0
            var refMax: Float = 0
            for (x, y) in zip(got.data, ref.data) {
                if x.isNaN != y.isNaN { maxAbs = .infinity }
                if x.isFinite && y.isFinite { maxAbs = Swift.max(maxAbs, Swift.abs(x - y)) }
                if x.isInfinite || y.isInfinite, x != y { maxAbs = .infinity }
                if y.isFinite { refMax = Swift.max(refMax, Swift.abs(y)) }
            }
            let c = Comparison(name: name, maxAbs: maxAbs, refMax: refMax)
            XCTAssert(
                c.ok, "\(program.name).\(name): max abs error \(maxAbs) (ref max \(refMax))", file: file, line: line)
            out.append(c)
        }
        return (out, run.stderr)
    }
}
