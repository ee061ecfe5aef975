import BlockIR
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// Timings of generated code; run only with `BLOCKC_BENCH=1` (tests check correctness, not speed).
final class CodegenBenchmarks: XCTestCase {
    func time(_ program: Program, flops: Double, reps: Int = 10) throws {
        let dir = CodegenHarness.scratch("bench")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (k, t) in program.inputs.enumerated() {
            let a = RandomInputs.standardNormal(shape: program[t].shape, seed: 1, stream: UInt64(k))
            try NPY.writeFile(a, to: dir + "/" + program[t].name + ".npy")
        }
        let source = CEmitter.emit(program)
        if let dump = ProcessInfo.processInfo.environment["BLOCKC_DUMP_C"] {
            try? source.source.write(
                toFile: dump + "/bench_\(program.kernels.count)_" + program.name + ".c", atomically: true,
                encoding: .utf8)
        }
        let exe = try CCompiler.buildHarness(program: program, source: source, directory: dir)
        let run = try CCompiler.run(exe, [dir, "\(reps)"], environment: ["OMP_NUM_THREADS": "2"])
        let fields = run.stdout.split(separator: " ")
        let median = Double(fields[1])!
        print(
            "BENCH \(program.name) (\(program.kernels.count) kernels): \(run.stdout.trimmingCharacters(in: .newlines))"
                + String(format: " -> %.1f GFLOP/s, %.1f%% of 245", flops / median / 1e6, flops / median / 1e6 / 2.45))
    }

    func testBenchmarks() throws {
        guard ProcessInfo.processInfo.environment["BLOCKC_BENCH"] != nil else { throw XCTSkip("set BLOCKC_BENCH=1") }
        var b = GraphBuilder(name: "matmul1024")
        let x = try b.input("A", [1024, 1024])
        let y = try b.input("B", [1024, 1024])
        try b.output(b.matmul(x, y), name: "C")
        try time(CodegenHarness.lower(b.build(), i: 64, j: 64, k: 64), flops: 2 * pow(1024, 3))
        let text = try String(
            contentsOf: FusedCodegenTests.examples.appendingPathComponent("attention.graph"), encoding: .utf8)
        let graph = try GraphParser.parse(text, defaultName: "attention")
        let lowered = try CodegenHarness.lower(graph, i: 64, j: 64, k: 64)
        let flops = 4.0 * 8 * 1024 * 1024 * 64
        try time(lowered, flops: flops)
        try time(Fusion.fuse(lowered, options: FusionOptions(cores: CLI.pinnedCores)).program, flops: flops)
    }
}
