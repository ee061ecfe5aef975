import BlockIR
import Codegen
import Graph
import XCTest

/// Matrix products: every transpose combination, sizes that leave partial blocks.
final class MatmulCodegenTests: XCTestCase {
    func testMatmulTransposesAndOddSizes() throws {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            var b = GraphBuilder(name: "mm_\(ta ? "t" : "n")\(tb ? "t" : "n")")
            let (m, k, n) = (70, 50, 33)
            let x = try b.input("A", ta ? [k, m] : [m, k])
            let y = try b.input("B", tb ? [n, k] : [k, n])
            try b.output(b.matmul(x, y, transposeA: ta, transposeB: tb), name: "C")
            let program = try CodegenHarness.lower(b.build(), i: 32, j: 32, k: 32)
            _ = try CodegenHarness.check(program)
        }
    }
}
