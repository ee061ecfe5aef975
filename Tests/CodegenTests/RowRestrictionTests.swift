import BlockIR
import BlockParser
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Schedule
import XCTest

/// Rows a masked iteration leaves out (`RowRestriction`): which loops qualify, and that the C of
/// those that do matches the interpreter where query blocks are taller than key blocks (partial
/// blocks, several threads).
final class RowRestrictionTests: XCTestCase {
    /// Causal, sliding-window and dual-chunk attention with 32-row query blocks over 16-column key
    /// blocks: the diagonal's last key block leaves the first 16 rows out (the window's first key
    /// block its last rows), at sizes that leave partial blocks; C at 1 and 3 threads matches the
    /// interpreter. A GPU target keeps every row.
    func testAttentionSkipsFullyMaskedRowsOfTallQueryBlocks() throws {
        let cases: [(String, [String: Int], first: Bool, end: Bool)] = [
            ("attention_causal.graph", ["BH": 2, "N": 75, "d": 16], true, false),
            ("attention_sliding_window.graph", ["BH": 2, "N": 90, "d": 16, "W": 20], true, true),
            ("attention_dca.graph", ["H": 2, "NC": 3, "C": 24, "d": 16], true, false),
        ]
        for (file, dims, first, end) in cases {
            let text = try String(contentsOf: FusedCodegenTests.examples.appendingPathComponent(file), encoding: .utf8)
            let graph = try GraphParser.parse(text, defaultName: "g", dimOverrides: dims)
            let lowered = try CodegenHarness.lower(graph, i: 32, j: 16, k: 16)
            let program = Fusion.fuse(lowered, options: FusionOptions(cores: CLI.pinnedCores)).program
            let schedule = Scheduler.scheduleKeepingBlocks(program, target: .cpu)
            let restrictions = schedule.kernels.flatMap { $0.rowRestrictions.values }
            XCTAssertEqual(restrictions.count, 1, file)
            XCTAssertEqual(restrictions.first?.rows, 32, file)
            XCTAssertEqual(restrictions.first?.first != nil, first, file)
            XCTAssertEqual(restrictions.first?.end != nil, end, file)
            XCTAssertTrue(
                SchedulePrinter.print(schedule).contains("of its 32-row block, the others fully masked"), file)
            for threads in [1, 3] { _ = try CodegenHarness.check(program, seed: 3, threads: threads) }
            let gpu = Scheduler.scheduleKeepingBlocks(program, target: .sm90)
            XCTAssertTrue(gpu.kernels.allSatisfy { $0.rowRestrictions.isEmpty }, file)
        }
    }

    /// Square blocks: every row of a causal block keeps its diagonal, so no bound is needed.
    func testSquareCausalBlocksKeepEveryRow() throws {
        let text = try String(
            contentsOf: FusedCodegenTests.examples.appendingPathComponent("attention_causal.graph"), encoding: .utf8)
        let graph = try GraphParser.parse(text, defaultName: "g", dimOverrides: ["BH": 2, "N": 75, "d": 24])
        let lowered = try CodegenHarness.lower(graph, i: 16, j: 16, k: 16)
        let program = Fusion.fuse(lowered, options: FusionOptions(cores: CLI.pinnedCores)).program
        let schedule = Scheduler.scheduleKeepingBlocks(program, target: .cpu)
        XCTAssertTrue(schedule.kernels.allSatisfy { $0.rowRestrictions.isEmpty })
    }

    /// A running row maximum of masked scores over two 8-column blocks of 8-row blocks (`k2 < 2`
    /// whatever `i`, so row block 0's second iteration masks every row), and what disqualifies it.
    private func runningMaximum(fill: String = "-inf", reduceAxis: Int = 1, scoresTransposed: Bool = false) throws
        -> Program
    {
        let dot = scoresTransposed ? "dot %4, %1 transpose_b" : "dot %1, %4 transpose_b"
        return try BlockParser.parse(
            """
            program p

            tensor X: f32[16,8] @global input
            tensor Y: f32[16] @global output

            kernel k grid(i < 2) {
              %0 = fill -inf : f32[8] @local
              %1 = load X[i * 8 +: 8, 0 +: 8] : f32[8,8] @local
              %2 = for k2 in 0 ..< 2 iter(%3 = %0) : f32[8] @local {
                %4 = load X[k2 * 8 +: 8, 0 +: 8] : f32[8,8] @local
                %5 = \(dot) : f32[8,8] @local
                %6 = mask %5 at (i * 8, k2 * 8) if i - j >= 0 else \(fill) : f32[8,8] @local
                %7 = reduce_max %6 axis \(reduceAxis) : f32[8] @local
                %8 = max %3, %7 : f32[8] @local
                yield %8
              }
              store %2 -> Y[i * 8 +: 8]
            }

            """)
    }

    private func restrictions(_ p: Program) -> [RowRestriction] {
        Scheduler.scheduleKeepingBlocks(p, target: .cpu).kernels.flatMap { $0.rowRestrictions.values }
    }

    /// The running maximum qualifies (its C matches the interpreter, an iteration of no rows
    /// included); a fill that is not an identity (0: `max(m, 0)` changes `m`), a reduction over
    /// the rows, and scores whose rows come from the right operand do not.
    func testWhatQualifies() throws {
        let plain = try runningMaximum()
        XCTAssertEqual(restrictions(plain).map(\.rows), [8])
        XCTAssertEqual(restrictions(plain).first?.first.map { "\($0)" }, "k2 * 8 + i * (-8)")
        _ = try CodegenHarness.check(plain)
        XCTAssertEqual(restrictions(try runningMaximum(fill: "0.0")).count, 0)
        XCTAssertEqual(restrictions(try runningMaximum(reduceAxis: 0)).count, 0)
        XCTAssertEqual(restrictions(try runningMaximum(scoresTransposed: true)).count, 0)
    }
}
