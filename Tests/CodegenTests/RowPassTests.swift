import BlockIR
import BlockParser
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Schedule
import XCTest

/// Row-local ops computed in one pass over the rows (`RowPass`): which runs form, what ends
/// them, and that the C of each matches the interpreter (partial blocks, several threads).
final class RowPassTests: XCTestCase {
    /// A softmax-like loop over 8-column blocks of 8-row blocks of `X` (13 rows: the last row
    /// block is partial), with `tail` appended to the loop's body before its yield.
    private func program(tail: String = "", yield: String = "%10", shiftAxis: Int = 1) throws -> Program {
        try BlockParser.parse(
            """
            program p

            tensor X: f32[13,16] @global input
            tensor Y: f32[13] @global output

            kernel k grid(i < 2) {
              %0 = fill 0.0 : f32[8] @local
              %1 = load X[i * 8 +: 8, 0 +: 8] : f32[8,8] @local
              %2 = fill 0.5 : f32[] @local
              %3 = for k2 in 0 ..< 2 iter(%4 = %0) : f32[8] @local {
                %5 = load X[i * 8 +: 8, k2 * 8 +: 8] : f32[8,8] @local
                %6 = mul %5, %2 : f32[8,8] @local
                %7 = reduce_max %6 axis 1 : f32[8] @local
                %8 = broadcast %7 axis \(shiftAxis) : f32[8,8] @local
                %9 = sub %6, %8 : f32[8,8] @local
                %11 = exp %9 : f32[8,8] @local
                %12 = reduce_sum %11 axis 1 : f32[8] @local
                %10 = add %4, %12 : f32[8] @local
            \(tail)
                yield \(yield)
              }
              store %3 -> Y[i * 8 +: 8]
            }

            """)
    }

    private func passes(_ p: Program) -> [[String]] {
        Scheduler.scheduleKeepingBlocks(p, target: .cpu).kernels.flatMap { $0.rowPasses.values }
            .map { $0.values.map(\.description) }.sorted { $0.joined() < $1.joined() }
    }

    /// The loop's scale, row maximum, shift, `exp` and row sum form one pass (the vector add
    /// after them is not part of it); its C matches the interpreter at 1 and 3 threads, and
    /// `blockc schedule` names the pass. GPU targets plan none.
    func testRowLocalOpsFormOnePass() throws {
        let p = try program()
        XCTAssertEqual(passes(p), [["%6", "%7", "%8", "%9", "%11", "%12"]])
        let schedule = Scheduler.scheduleKeepingBlocks(p, target: .cpu)
        XCTAssertTrue(SchedulePrinter.print(schedule).contains("one pass over the 8 rows: %6, %7, %8, %9, %11, %12"))
        for threads in [1, 3] { _ = try CodegenHarness.check(p, seed: 5, threads: threads) }
        XCTAssertTrue(Scheduler.scheduleKeepingBlocks(p, target: .sm90).kernels.allSatisfy { $0.rowPasses.isEmpty })
    }

    /// A vector read at every row (broadcast along the rows) is not row-local when the run
    /// computes it, nor when the run writes its buffer (here the row sum `%15` takes the buffer
    /// of `%12`, which `%14` reads at every row): no pass joins them, and the C still matches the
    /// interpreter.
    func testAVectorReadAtEveryRowEndsThePass() throws {
        let p = try program(
            tail: """
                    %13 = broadcast %12 axis 0 : f32[8,8] @local
                    %14 = mul %11, %13 : f32[8,8] @local
                    %15 = reduce_sum %14 axis 1 : f32[8] @local
                    %16 = add %10, %15 : f32[8] @local
                """, yield: "%16")
        let found = passes(p)
        XCTAssertEqual(found, [["%6", "%7", "%8", "%9", "%11", "%12"]])
        let schedule = Scheduler.scheduleKeepingBlocks(p, target: .cpu).kernels[0]
        XCTAssertEqual(schedule.buffers.bufferOf[ValueID(15)], schedule.buffers.bufferOf[ValueID(12)])
        for threads in [1, 3] { _ = try CodegenHarness.check(p, seed: 6, threads: threads) }
    }

    /// The row maximum computed in a run and read at every row (`%8` broadcast along the rows):
    /// the shift cannot join the pass that computes it, and the row sum `%12`, which takes the
    /// buffer of `%7`, cannot join the shift's pass.
    func testARowStatisticReadAcrossRowsEndsThePass() throws {
        let p = try program(shiftAxis: 0)
        XCTAssertEqual(passes(p), [["%6", "%7"], ["%9", "%11"]])
        let schedule = Scheduler.scheduleKeepingBlocks(p, target: .cpu).kernels[0]
        XCTAssertEqual(schedule.buffers.bufferOf[ValueID(12)], schedule.buffers.bufferOf[ValueID(7)])
        for threads in [1, 3] { _ = try CodegenHarness.check(p, seed: 8, threads: threads) }
    }

    /// A reduction over the rows ends a pass.
    func testOtherOpsEndThePass() throws {
        let p = try program(
            tail: """
                    %13 = reduce_sum %11 axis 0 : f32[8] @local
                    %16 = add %10, %13 : f32[8] @local
                """, yield: "%16")
        XCTAssertEqual(passes(p), [["%6", "%7", "%8", "%9", "%11", "%12"]])
        _ = try CodegenHarness.check(p, seed: 7, threads: 2)
    }

    /// Attention at sizes that leave partial blocks, with and without the causal mask (whose row
    /// restriction shifts the pass's rows): passes form and the C matches the interpreter.
    func testAttentionPasses() throws {
        for (file, dims) in [
            ("attention.graph", ["BH": 2, "N": 75, "d": 16]), ("attention_causal.graph", ["BH": 2, "N": 75, "d": 16]),
        ] {
            let text = try String(contentsOf: FusedCodegenTests.examples.appendingPathComponent(file), encoding: .utf8)
            let graph = try GraphParser.parse(text, defaultName: "g", dimOverrides: dims)
            let lowered = try CodegenHarness.lower(graph, i: 32, j: 16, k: 16)
            let program = Fusion.fuse(lowered, options: FusionOptions(cores: CLI.pinnedCores)).program
            let schedule = Scheduler.scheduleKeepingBlocks(program, target: .cpu)
            XCTAssertFalse(schedule.kernels.allSatisfy { $0.rowPasses.isEmpty }, file)
            for threads in [1, 3] { _ = try CodegenHarness.check(program, seed: 3, threads: threads) }
        }
    }
}
