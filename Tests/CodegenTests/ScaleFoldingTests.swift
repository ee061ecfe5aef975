import BlockIR
import BlockParser
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Schedule
import XCTest

/// A product's scale folded into its loop-invariant left operand (`ScaleFolding`): where it
/// applies, that the C still matches the interpreter, and what it leaves alone.
final class ScaleFoldingTests: XCTestCase {
    private func fused(_ file: String, _ dims: [String: Int]) throws -> Program {
        try FusedCodegenTests.fused(file, dims: dims, i: 32, j: 16, k: 16)
    }

    /// The multiplications by a product of the scheduled program's kernels.
    private func scaledProducts(_ p: Program) -> Int {
        var n = 0
        for kernel in p.kernels {
            var dots: Set<ValueID> = []
            kernel.walk { inst in
                if case .dot = inst.op, let r = inst.result { dots.insert(r.id) }
            }
            kernel.walk { inst in
                if case .binary(.mul, let a, let b) = inst.op, dots.contains(a) || dots.contains(b) { n += 1 }
            }
        }
        return n
    }

    /// Attention and causal attention at sizes that leave partial blocks: `Q·c` once per query
    /// block (the decision says so; no product is scaled in the loop any more), and the C at 1 and
    /// 3 threads matches the interpreter. GPU targets keep the program as it is.
    func testAttentionScalesQueriesOnce() throws {
        for (file, dims) in [
            ("attention.graph", ["BH": 2, "N": 75, "d": 16]), ("attention_causal.graph", ["BH": 2, "N": 75, "d": 16]),
        ] {
            let program = try fused(file, dims)
            XCTAssertEqual(scaledProducts(program), 1, file)
            let schedule = Scheduler.scheduleKeepingBlocks(program, target: .cpu)
            XCTAssertEqual(schedule.decisions.filter { $0.hasPrefix("folded the scale") }.count, 1, file)
            XCTAssertEqual(scaledProducts(schedule.program), 0, file)
            for threads in [1, 3] { _ = try CodegenHarness.check(program, seed: 4, threads: threads) }
            let gpu = Scheduler.scheduleKeepingBlocks(program, target: .sm90)
            XCTAssertEqual(scaledProducts(gpu.program), 1, file)
        }
    }

    /// bf16 products keep their scale (`c·a` would be rounded to bf16).
    func testBF16ProductsKeepTheirScale() throws {
        let program = try fused("attention_bf16.graph", ["BH": 2, "N": 75, "d": 16])
        let schedule = Scheduler.scheduleKeepingBlocks(program, target: .cpu)
        XCTAssertTrue(schedule.decisions.allSatisfy { !$0.hasPrefix("folded the scale") })
    }

    /// A product read by more than its scale, or scaled by a value the loop computes, is left alone.
    func testWhatIsLeftAlone() throws {
        func program(_ body: String) throws -> Program {
            try BlockParser.parse(
                """
                program p

                tensor X: f32[16,8] @global input
                tensor Y: f32[16] @global output

                kernel k grid(i < 2) {
                  %0 = fill 0.0 : f32[8] @local
                  %1 = load X[i * 8 +: 8, 0 +: 8] : f32[8,8] @local
                  %2 = fill 0.5 : f32[] @reg
                  %3 = for k2 in 0 ..< 2 iter(%4 = %0) : f32[8] @local {
                    %5 = load X[k2 * 8 +: 8, 0 +: 8] : f32[8,8] @local
                    %6 = dot %1, %5 transpose_b : f32[8,8] @local
                \(body)
                  }
                  store %3 -> Y[i * 8 +: 8]
                }

                """)
        }
        let folded = try program(
            """
                %7 = mul %6, %2 : f32[8,8] @local
                %8 = reduce_sum %7 axis 1 : f32[8] @local
                %9 = add %4, %8 : f32[8] @local
                yield %9
            """)
        let twice = try program(
            """
                %7 = mul %6, %2 : f32[8,8] @local
                %8 = reduce_sum %7 axis 1 : f32[8] @local
                %10 = reduce_max %6 axis 1 : f32[8] @local
                %11 = add %8, %10 : f32[8] @local
                %9 = add %4, %11 : f32[8] @local
                yield %9
            """)
        let computed = try program(
            """
                %12 = reduce_max %5 axis 0 : f32[8] @local
                %13 = reduce_max %12 axis 0 : f32[] @reg
                %7 = mul %6, %13 : f32[8,8] @local
                %8 = reduce_sum %7 axis 1 : f32[8] @local
                %9 = add %4, %8 : f32[8] @local
                yield %9
            """)
        for (p, folds) in [(folded, 1), (twice, 0), (computed, 0)] {
            let schedule = Scheduler.scheduleKeepingBlocks(p, target: .cpu)
            XCTAssertEqual(schedule.decisions.filter { $0.hasPrefix("folded the scale") }.count, folds)
            _ = try CodegenHarness.check(p, seed: 9, threads: 2)
        }
    }
}
