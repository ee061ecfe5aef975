import BlockIR
import Graph
import XCTest

@testable import Interpreter

/// `cumsum`: the graph interpreter against sums written out by hand, and the lowered block
/// program (its `scan` blocks and carried totals, at several block sizes) against the graph.
final class ScanTests: XCTestCase {
    /// `Σ` of `x` along `axis` over the positions a scan element covers, by index loops.
    func handCumsum(_ x: NDArray, axis: Int, reverse: Bool, exclusive: Bool) -> NDArray {
        let shape = x.shape
        let inner = shape[(axis + 1)...].reduce(1, *)
        let n = shape[axis]
        var out = [Float](repeating: 0, count: x.data.count)
        for f in 0..<x.data.count {
            let e = (f / inner) % n
            let base = f - e * inner
            let range: [Int] =
                reverse ? Array((exclusive ? e + 1 : e)..<n) : Array(0..<(exclusive ? e : e + 1))
            var s: Float = 0
            for p in range { s += x.data[base + p * inner] }
            out[f] = s
        }
        return NDArray(shape: shape, data: out)
    }

    func cumsumGraph(_ shape: [Int], axis: Int, reverse: Bool, exclusive: Bool) throws -> Graph {
        var b = GraphBuilder(name: "scan")
        let x = try b.input("X", shape)
        try b.output(try b.cumsum(x, axis: axis, reverse: reverse, exclusive: exclusive), name: "Y")
        return try b.build()
    }

    func assertClose(_ x: NDArray?, _ y: NDArray, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let x else { return XCTFail("\(label): missing output", file: file, line: line) }
        XCTAssertEqual(x.shape, y.shape, label, file: file, line: line)
        let scale = max(1, y.data.map(abs).max() ?? 0)
        for (p, q) in zip(x.data, y.data) where abs(p - q) > 1e-5 * scale {
            return XCTFail("\(label): \(p) vs \(q)", file: file, line: line)
        }
    }

    /// A small case written out: rows `[1, 2, 3, 4]` and `[10, 20, 30, 40]`.
    func testFourFormsOnAKnownRow() throws {
        let x = NDArray(shape: [2, 4], data: [1, 2, 3, 4, 10, 20, 30, 40])
        let expected: [(Bool, Bool, [Float])] = [
            (false, false, [1, 3, 6, 10, 10, 30, 60, 100]),
            (false, true, [0, 1, 3, 6, 0, 10, 30, 60]),
            (true, false, [10, 9, 7, 4, 100, 90, 70, 40]),
            (true, true, [9, 7, 4, 0, 90, 70, 40, 0]),
        ]
        for (reverse, exclusive, values) in expected {
            let g = try cumsumGraph([2, 4], axis: 1, reverse: reverse, exclusive: exclusive)
            let out = try GraphInterpreter.run(g, inputs: ["X": x])["Y"]
            XCTAssertEqual(out?.data, values, "reverse=\(reverse) exclusive=\(exclusive)")
        }
    }

    /// Odd sizes, every axis, all four forms; the naive block program at block sizes that leave
    /// edge blocks, and with one block per axis, equals the graph interpreter.
    func testEveryAxisAndFormAgainstHandSums() throws {
        let shape = [3, 37, 29]
        let x = RandomInputs.standardNormal(shape: shape, seed: 5, stream: 0)
        for axis in 0..<3 {
            for reverse in [false, true] {
                for exclusive in [false, true] {
                    let label = "axis \(axis) reverse \(reverse) exclusive \(exclusive)"
                    let g = try cumsumGraph(shape, axis: axis, reverse: reverse, exclusive: exclusive)
                    let expected = handCumsum(x, axis: axis, reverse: reverse, exclusive: exclusive)
                    assertClose(try GraphInterpreter.run(g, inputs: ["X": x])["Y"], expected, label)
                    for blocks in [(8, 16), (64, 64)] {
                        var options = LoweringOptions()
                        try options.override([("i", blocks.0), ("j", blocks.1), ("k", 8)])
                        let program = try Lowering.lower(g, options: options)
                        XCTAssertEqual(Verifier.verify(program, target: .cpu), [], label)
                        let out = try BlockInterpreter.run(program, inputs: ["X": x])["Y"]
                        assertClose(out, expected, "\(label), blocks \(blocks)")
                    }
                }
            }
        }
    }

    /// A size-1 axis: the inclusive sum is the tensor, the exclusive one is zero.
    func testSizeOneAxis() throws {
        let x = RandomInputs.standardNormal(shape: [5, 1], seed: 2, stream: 0)
        for exclusive in [false, true] {
            let g = try cumsumGraph([5, 1], axis: 1, reverse: true, exclusive: exclusive)
            let expected = exclusive ? NDArray(shape: [5, 1], repeating: 0) : x
            assertClose(try GraphInterpreter.run(g, inputs: ["X": x])["Y"], expected, "graph")
            let out = try BlockInterpreter.run(try Lowering.lower(g), inputs: ["X": x])["Y"]
            assertClose(out, expected, "block, exclusive \(exclusive)")
        }
    }
}
