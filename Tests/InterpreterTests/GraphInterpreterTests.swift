import BlockIR
import Foundation
import Graph
import XCTest

@testable import Interpreter

/// Hand-computed cases for every graph op.
final class GraphInterpreterTests: XCTestCase {
    /// Builds a graph with `body`, runs it and returns the single output.
    func evaluate(
        _ inputs: [(String, NDArray)], _ body: (inout GraphBuilder, [NodeID]) throws -> NodeID
    ) throws -> NDArray {
        var b = GraphBuilder(name: "g")
        var ids: [NodeID] = []
        for (name, array) in inputs { ids.append(try b.input(name, array.shape)) }
        let out = try body(&b, ids)
        try b.output(out, name: "out")
        let graph = try b.build()
        let result = try GraphInterpreter.run(graph, inputs: Dictionary(uniqueKeysWithValues: inputs))
        return try XCTUnwrap(result["out"])
    }

    func a(_ shape: [Int], _ data: [Float]) -> NDArray { NDArray(shape: shape, data: data) }

    /// `pos` by hand: every element is its index along the axis, and the shaping tensor is not read.
    func testPositions() throws {
        let x = a([2, 3], [.nan, .nan, .nan, .nan, .nan, .nan])
        XCTAssertEqual(
            try evaluate([("x", x)]) { b, v in try b.position(of: v[0], axis: 0) }, a([2, 3], [0, 0, 0, 1, 1, 1]))
        XCTAssertEqual(
            try evaluate([("x", x)]) { b, v in try b.position(of: v[0], axis: -1) }, a([2, 3], [0, 1, 2, 0, 1, 2]))
        // `i - j` over [2, 2, 3] plus a head bias 10·h.
        let s = a([2, 2, 3], [Float](repeating: 0, count: 12))
        let alibi = try evaluate([("s", s)]) { b, v in
            let i = try b.position(of: v[0], axis: -2)
            let j = try b.position(of: v[0], axis: -1)
            let h = try b.position(of: v[0], axis: 0)
            return try b.add(try b.sub(i, j), try b.mul(h, b.constant(10)))
        }
        XCTAssertEqual(alibi, a([2, 2, 3], [0, -1, -2, 1, 0, -1, 10, 9, 8, 11, 10, 9]))
        // The block program lowered from it computes the same, at edge blocks too.
        var b = GraphBuilder(name: "p")
        let big = try b.input("X", [3, 70, 45])
        let rows = try b.position(of: big, axis: 1)
        let cols = try b.position(of: big, axis: 2)
        let heads = try b.position(of: big, axis: 0)
        try b.output(try b.add(try b.mul(rows, cols), heads), name: "out")
        let graph = try b.build()
        var options = LoweringOptions()
        try options.override([("i", 32), ("j", 16)])
        let program = try Lowering.lower(graph, options: options)
        let input = NDArray(shape: [3, 70, 45], data: [Float](repeating: .nan, count: 3 * 70 * 45))
        let fromBlocks = try BlockInterpreter.run(program, inputs: ["X": input])["out"]
        let fromGraph = try GraphInterpreter.run(graph, inputs: ["X": input])["out"]
        XCTAssertEqual(fromBlocks, fromGraph)
        XCTAssertEqual(fromGraph?.data[(2 * 70 + 69) * 45 + 44], Float(69 * 44 + 2))
    }

    func testUnaryAndConstants() throws {
        let x = a([3], [1, -2, 4])
        XCTAssertEqual(try evaluate([("x", x)]) { b, v in try b.unary(.neg, v[0]) }, a([3], [-1, 2, -4]))
        XCTAssertEqual(try evaluate([("x", x)]) { b, v in try b.unary(.square, v[0]) }, a([3], [1, 4, 16]))
        let e = try evaluate([("x", x)]) { b, v in try b.unary(.exp, v[0]) }
        XCTAssertEqual(e.data[0], Foundation.exp(1), accuracy: 1e-6)
        let r = try evaluate([("x", x)]) { b, v in try b.mul(v[0], b.unary(.rsqrt, b.constant(4))) }
        XCTAssertEqual(r, a([3], [0.5, -1, 2]))
    }

    /// `sin`, `cos`, `softplus`, `log1p` and `erf` against Foundation in Double, including the values
    /// where a naive formula loses: softplus of large and very negative arguments, log1p near 0.
    func testTrigonometricSoftplusAndLog1p() throws {
        let values: [Float] = [0, 1e-7, -0.5, 0.75, 3, -3, 20, -20, 100, -100, 1e4]
        let x = a([values.count], values)
        let references: [(UnaryOp, (Double) -> Double)] = [
            (.sin, { Foundation.sin($0) }), (.cos, { Foundation.cos($0) }),
            (.softplus, { $0 > 30 ? $0 : Foundation.log1p(Foundation.exp($0)) }),
            (.log1p, { Foundation.log1p($0) }), (.erf, { Foundation.erf($0) }),
        ]
        for (op, reference) in references {
            let y = try evaluate([("x", x)]) { b, v in try b.unary(op, v[0]) }
            for (k, v) in values.enumerated() {
                let want = reference(Double(v))
                if want.isNaN {
                    XCTAssertTrue(y.data[k].isNaN, "\(op)(\(v))")
                    continue
                }
                XCTAssertEqual(
                    Double(y.data[k]), want, accuracy: 1e-6 * Swift.max(1, Swift.abs(want)), "\(op)(\(v))")
            }
        }
        XCTAssertGreaterThan(UnaryOp.softplus.apply(-100), 0, "softplus keeps tiny values")
        XCTAssertEqual(UnaryOp.softplus.apply(1e4), 1e4)
        XCTAssertEqual(UnaryOp.softplus.apply(-.infinity), 0)
        XCTAssertEqual(UnaryOp.softplus.apply(.infinity), .infinity)
        XCTAssertTrue(UnaryOp.softplus.apply(.nan).isNaN)
        XCTAssertEqual(UnaryOp.log1p.apply(1e-7), 1e-7, accuracy: 1e-13)
        XCTAssertEqual(UnaryOp.log1p.apply(0), 0)
        XCTAssertEqual(UnaryOp.sin.apply(0), 0)
        XCTAssertTrue(UnaryOp.cos.apply(-.infinity).isNaN)
    }

    func testBroadcasting() throws {
        let x = a([2, 3], [1, 2, 3, 4, 5, 6])
        let row = a([3], [10, 20, 30])
        XCTAssertEqual(
            try evaluate([("x", x), ("r", row)]) { b, v in try b.add(v[0], v[1]) },
            a([2, 3], [11, 22, 33, 14, 25, 36]))
        XCTAssertEqual(
            try evaluate([("r", row), ("x", x)]) { b, v in try b.sub(v[0], v[1]) }, a([2, 3], [9, 18, 27, 6, 15, 24]))
        let column = a([2, 1], [1, 2])
        let line = a([1, 3], [1, 10, 100])
        XCTAssertEqual(
            try evaluate([("c", column), ("l", line)]) { b, v in try b.mul(v[0], v[1]) },
            a([2, 3], [1, 10, 100, 2, 20, 200]))
        let batched = a([2, 1, 2], [1, 2, 3, 4])
        let other = a([3, 1], [0, 10, 20])
        XCTAssertEqual(
            try evaluate([("p", batched), ("q", other)]) { b, v in try b.binary(.max, v[0], v[1]) },
            a([2, 3, 2], [1, 2, 10, 10, 20, 20, 3, 4, 10, 10, 20, 20]))
        XCTAssertEqual(
            try evaluate([("x", x)]) { b, v in try b.div(b.constant(12), v[0]) }, a([2, 3], [12, 6, 4, 3, 2.4, 2]))
    }

    /// A naive batched matmul in Double with explicit broadcasting.
    func naiveMatmul(_ x: NDArray, _ y: NDArray, _ ta: Bool, _ tb: Bool, batch: [Int]) -> [Float] {
        let (xr, xc) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let (yr, yc) = (y.shape[y.rank - 2], y.shape[y.rank - 1])
        let (m, k) = ta ? (xc, xr) : (xr, xc)
        let n = tb ? yr : yc
        var out: [Float] = []
        let batches = batch.reduce(1, *)
        for t in 0..<batches {
            // Unravel t over `batch`, then map to each operand's batch index.
            var index: [Int] = []
            var rest = t
            for d in batch.reversed() {
                index.insert(rest % d, at: 0)
                rest /= d
            }
            func offset(_ s: [Int]) -> Int {
                let own = Array(s.dropLast(2))
                var o = 0
                for (k, d) in own.enumerated() {
                    let i = index[k + batch.count - own.count]
                    o = o * d + (d == 1 ? 0 : i)
                }
                return o * s[s.count - 2] * s[s.count - 1]
            }
            let ox = offset(x.shape)
            let oy = offset(y.shape)
            for i in 0..<m {
                for j in 0..<n {
                    var acc = 0.0
                    for p in 0..<k {
                        let u = ta ? x.data[ox + p * xc + i] : x.data[ox + i * xc + p]
                        let w = tb ? y.data[oy + j * yc + p] : y.data[oy + p * yc + j]
                        acc += Double(u) * Double(w)
                    }
                    out.append(Float(acc))
                }
            }
        }
        return out
    }

    func testMatmulSmallByHand() throws {
        let x = a([2, 2], [1, 2, 3, 4])
        let y = a([2, 2], [5, 6, 7, 8])
        XCTAssertEqual(
            try evaluate([("x", x), ("y", y)]) { b, v in try b.matmul(v[0], v[1]) }, a([2, 2], [19, 22, 43, 50]))
        XCTAssertEqual(
            try evaluate([("x", x), ("y", y)]) { b, v in try b.matmul(v[0], v[1], transposeB: true) },
            a([2, 2], [17, 23, 39, 53]))
        XCTAssertEqual(
            try evaluate([("x", x), ("y", y)]) { b, v in try b.matmul(v[0], v[1], transposeA: true) },
            a([2, 2], [26, 30, 38, 44]))
    }

    func testMatmulTransposesAndBatchBroadcast() throws {
        let cases: [([Int], [Int], Bool, Bool, [Int])] = [
            ([2, 3, 5], [5, 4], false, false, [2]),
            ([2, 5, 3], [4, 5], true, true, [2]),
            ([2, 1, 3, 5], [1, 3, 4, 5], false, true, [2, 3]),
            ([3, 5, 3], [2, 1, 5, 7], true, false, [2, 3]),
            ([37, 29], [29, 41], false, false, []),
        ]
        for (k, (sx, sy, ta, tb, batch)) in cases.enumerated() {
            let x = RandomInputs.standardNormal(shape: sx, seed: 11, stream: UInt64(2 * k))
            let y = RandomInputs.standardNormal(shape: sy, seed: 11, stream: UInt64(2 * k + 1))
            let out = try evaluate([("x", x), ("y", y)]) { b, v in
                try b.matmul(v[0], v[1], transposeA: ta, transposeB: tb)
            }
            let expected = naiveMatmul(x, y, ta, tb, batch: batch)
            XCTAssertEqual(out.data.count, expected.count)
            for (p, q) in zip(out.data, expected) { XCTAssertEqual(p, q, accuracy: 1e-4, "case \(k)") }
        }
    }

    func testReduce() throws {
        let x = a([2, 3], [1, 5, 3, 4, 2, 6])
        XCTAssertEqual(try evaluate([("x", x)]) { b, v in try b.reduce(.sum, v[0], axis: 0) }, a([3], [5, 7, 9]))
        XCTAssertEqual(
            try evaluate([("x", x)]) { b, v in try b.reduce(.max, v[0], axis: -1, keepDims: true) }, a([2, 1], [5, 6]))
        XCTAssertEqual(
            try evaluate([("x", x)]) { b, v in try b.reduce(.sum, v[0], axis: 1, keepDims: false) }, a([2], [9, 12]))
        XCTAssertEqual(
            try evaluate([("x", x)]) { b, v in try b.reduce(.max, v[0], axis: 0, keepDims: true) },
            a([1, 3], [4, 5, 6]))
        let y = a([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(
            try evaluate([("y", y)]) { b, v in try b.reduce(.sum, v[0], axis: 1) }, a([2, 2], [4, 6, 12, 14]))
        XCTAssertEqual(
            try evaluate([("y", y)]) { b, v in try b.mean(v[0], axis: 2) }, a([2, 2], [1.5, 3.5, 5.5, 7.5]))
        let withNaN = a([3], [1, .nan, 2])
        XCTAssertTrue(try evaluate([("x", withNaN)]) { b, v in try b.reduce(.max, v[0], axis: 0) }.data[0].isNaN)
    }

    func testTransposeAndReshape() throws {
        let x = a([2, 3, 4], (0..<24).map(Float.init))
        let t = try evaluate([("x", x)]) { b, v in try b.transpose(v[0], permutation: [1, 2, 0]) }
        XCTAssertEqual(t.shape, [3, 4, 2])
        for i in 0..<3 {
            for j in 0..<4 {
                for k in 0..<2 { XCTAssertEqual(t[[i, j, k]], x[[k, i, j]]) }
            }
        }
        let last = try evaluate([("x", a([2, 3], [1, 2, 3, 4, 5, 6]))]) { b, v in try b.transposeLast(v[0]) }
        XCTAssertEqual(last, a([3, 2], [1, 4, 2, 5, 3, 6]))
        let r = try evaluate([("x", x)]) { b, v in try b.reshape(v[0], [6, 4]) }
        XCTAssertEqual(r, a([6, 4], x.data))
    }

    func testCausalMask() throws {
        let x = a([2, 3, 3], (1...18).map(Float.init))
        let causal = Predicate([.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
        let m = try evaluate([("x", x)]) { b, v in try b.mask(v[0], causal, fill: -.infinity) }
        let n = -Float.infinity
        XCTAssertEqual(m, a([2, 3, 3], [1, n, n, 4, 5, n, 7, 8, 9, 10, n, n, 13, 14, n, 16, 17, 18]))
        let window = Predicate([
            .affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0),
            .affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: 1),
        ])
        let w = try evaluate([("x", a([3, 3], (1...9).map(Float.init)))]) { b, v in try b.mask(v[0], window, fill: 0) }
        XCTAssertEqual(w, a([3, 3], [1, 0, 0, 4, 5, 0, 0, 8, 9]))
    }

    func testSoftmaxRowsSumToOne() throws {
        let x = RandomInputs.standardNormal(shape: [3, 5, 17], seed: 5, stream: 0)
        let p = try evaluate([("x", x)]) { b, v in try b.softmax(v[0], axis: -1) }
        for row in 0..<15 {
            let values = p.data[(row * 17)..<(row * 17 + 17)]
            XCTAssertEqual(values.reduce(0, +), 1, accuracy: 1e-5)
            XCTAssertTrue(values.allSatisfy { $0 > 0 && $0 < 1 })
        }
    }

    func testInputErrors() throws {
        var b = GraphBuilder(name: "g")
        let q = try b.input("Q", [2, 3])
        try b.output(try b.unary(.neg, q), name: "O")
        let graph = try b.build()
        XCTAssertThrowsError(try GraphInterpreter.run(graph, inputs: [:])) { error in
            let d = error as! Diagnostic
            XCTAssertNil(d.location)
            XCTAssertTrue(d.message.contains("'Q'") && d.message.contains("[2, 3]"), d.message)
        }
        XCTAssertThrowsError(try GraphInterpreter.run(graph, inputs: ["Q": NDArray(shape: [3, 2], repeating: 0)])) {
            error in
            let d = error as! Diagnostic
            XCTAssertTrue(d.message.contains("'Q'") && d.message.contains("[2, 3]"), d.message)
        }
        let ok = try GraphInterpreter.run(graph, inputs: ["Q": NDArray(shape: [2, 3], repeating: 1)])
        XCTAssertEqual(ok, ["O": NDArray(shape: [2, 3], repeating: -1)])
    }

    /// The mask's per-row column intervals agree with `Predicate.holds` everywhere.
    func testMaskIntervalsMatchPredicate() {
        var generator = RandomInputs.SplitMix64(seed: 3, stream: 9)
        func small() -> Int { Int(generator.next() % 9) - 4 }
        for _ in 0..<300 {
            var atoms: [PredicateAtom] = []
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                switch generator.next() % 4 {
                case 0:
                    atoms.append(
                        .affineNonNegative(rowCoefficient: small(), columnCoefficient: small(), constant: small() * 3))
                case 1:
                    atoms.append(.affineZero(rowCoefficient: small(), columnCoefficient: small(), constant: small()))
                case 2:
                    // Quotients, sometimes with i or j beside them (`j % m` keeps no interval).
                    let linear = generator.next() % 2 == 0
                    atoms.append(
                        .quotient(
                            QuotientAffine(
                                divisor: 1 + Int(generator.next() % 5), row: linear ? small() : 0,
                                column: linear ? small() : 0, rowQuotient: small(), columnQuotient: small(),
                                constant: small(), isEquality: generator.next() % 3 == 0)))
                default:
                    atoms.append(.sameSegment(boundaries: [Int(generator.next() % 12), Int(generator.next() % 12)]))
                }
            }
            let predicate = Predicate(atoms)
            let rowOffset = small() * 2
            let columnOffset = small() * 2
            var block = [Float](repeating: 1, count: 12 * 12)
            block.withUnsafeMutableBufferPointer { p in
                MaskRows.apply(
                    predicate, fill: 0, to: p.baseAddress!, rows: 12, columns: 12, ld: 12, rowOffset: rowOffset,
                    columnOffset: columnOffset)
            }
            for r in 0..<12 {
                for c in 0..<12 {
                    let kept = predicate.holds(row: rowOffset + r, column: columnOffset + c)
                    XCTAssertEqual(
                        block[r * 12 + c], kept ? 1 : 0, "\(predicate) at (\(rowOffset + r), \(columnOffset + c))")
                }
            }
        }
    }
}
