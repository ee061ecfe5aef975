import BlockIR
import Codegen
import Graph
import XCTest

/// Naive lowerings of common graphs, compiled and compared with the interpreter.
final class GraphCodegenTests: XCTestCase {
    func testSoftmaxLayerNormAndCausalMask() throws {
        var b = GraphBuilder(name: "norms")
        let x = try b.input("X", [2, 37, 45])
        let g = try b.input("G", [45])
        let beta = try b.input("Be", [45])
        try b.output(b.softmax(x, axis: -1), name: "P")
        try b.output(b.layerNorm(x, gamma: g, beta: beta), name: "L")
        try b.output(b.rmsNorm(x, gamma: g), name: "R")
        let causal = Predicate([.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
        let masked = try b.mask(x, causal, fill: -.infinity)
        try b.output(b.softmax(masked, axis: -1), name: "M")
        let window = Predicate([
            .affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0),
            .affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: 7),
            .sameSegment(boundaries: [20]),
        ])
        try b.output(b.mask(x, window, fill: 0.5), name: "W")
        // Chunk masks: whole 16-blocks inside one chunk of 8 never happen, inside a band of chunks
        // of 10 they do; `i % 2 == 0` keeps every other row.
        let chunk = Predicate([
            .quotient(QuotientAffine(divisor: 8, rowQuotient: 1, columnQuotient: -1, isEquality: true))
        ])
        try b.output(b.mask(x, chunk, fill: -1), name: "C")
        let band = Predicate([
            .quotient(QuotientAffine(divisor: 10, rowQuotient: 1, columnQuotient: -1)),
            .quotient(QuotientAffine(divisor: 10, rowQuotient: -1, columnQuotient: 1, constant: 1)),
            .quotient(QuotientAffine(divisor: 2, row: 1, rowQuotient: -2, columnQuotient: 0, isEquality: true)),
        ])
        try b.output(b.mask(x, band, fill: 0.25), name: "B")
        _ = try CodegenHarness.check(CodegenHarness.lower(b.build(), i: 16, j: 16, k: 16))
    }

    /// Positions along every kind of axis (grid points, block rows and columns, a vector, a
    /// size-1 axis) at edge blocks, compiled and compared with the interpreter.
    func testPositions() throws {
        var b = GraphBuilder(name: "positions")
        let x = try b.input("X", [3, 37, 45])
        let rows = try b.position(of: x, axis: 1)
        let cols = try b.position(of: x, axis: -1)
        let heads = try b.position(of: x, axis: 0)
        try b.output(b.add(b.mul(heads, b.constant(100)), b.sub(rows, cols)), name: "A")
        try b.output(b.add(x, rows), name: "B")
        try b.output(b.position(shape: [77], axis: 0), name: "V")
        try b.output(b.position(shape: [5, 1, 9], axis: 1), name: "U")
        _ = try CodegenHarness.check(CodegenHarness.lower(b.build(), i: 16, j: 16, k: 16))
    }

    func testReductionsOverEveryAxisKind() throws {
        var b = GraphBuilder(name: "reductions")
        let x = try b.input("X", [3, 41, 29])
        try b.output(b.reduce(.sum, x, axis: 0), name: "S0")
        try b.output(b.reduce(.max, x, axis: 1), name: "M1")
        try b.output(b.reduce(.sum, x, axis: 2, keepDims: true), name: "S2")
        try b.output(b.reduce(.max, x, axis: -1), name: "M2")
        try b.output(b.mean(x, axis: 1, keepDims: true), name: "A1")
        let v = try b.input("V", [77])
        try b.output(b.reduce(.max, v, axis: 0), name: "VM")
        try b.output(b.reduce(.sum, v, axis: 0), name: "VS")
        _ = try CodegenHarness.check(CodegenHarness.lower(b.build(), i: 16, j: 16, k: 16))
    }

    func testTransposeReshapeAndElementwise() throws {
        var b = GraphBuilder(name: "shapes")
        let x = try b.input("X", [2, 3, 20, 12])
        try b.output(b.transpose(x, permutation: [0, 2, 1, 3]), name: "P")
        try b.output(b.transpose(x, permutation: [3, 1, 0, 2]), name: "Q")
        try b.output(b.transposeLast(x), name: "T")
        let r = try b.reshape(x, [6, 240])
        try b.output(b.unary(.exp, r), name: "E")
        try b.output(b.reshape(b.unary(.neg, x), [120, 12]), name: "N")
        let y = try b.input("Y", [20, 12])
        let row = try b.input("Row", [12])
        var acc = try b.add(x, y)
        for op in UnaryOp.allCases where ![.log, .sqrt, .rsqrt, .log1p].contains(op) {
            acc = try b.add(acc, b.unary(op, b.mul(y, b.constant(0.5))))
        }
        for op in [BinaryOp.sub, .mul, .div, .max, .min] { acc = try b.binary(op, acc, row) }
        try b.output(acc, name: "U")
        let pos = try b.add(b.unary(.abs, y), b.constant(0.25))
        try b.output(
            b.add(
                b.add(b.unary(.log, pos), b.unary(.sqrt, pos)), b.add(b.unary(.rsqrt, pos), b.binary(.pow, pos, row))),
            name: "Pos")
        // softplus and log1p over a wide range: large arguments, very negative ones, and near zero.
        let wide = try b.mul(y, b.constant(40))
        try b.output(b.add(b.unary(.softplus, wide), b.unary(.log1p, b.mul(pos, b.constant(1e-3)))), name: "Wide")
        _ = try CodegenHarness.check(CodegenHarness.lower(b.build(), i: 8, j: 8, k: 8))
    }

    func testAttentionNaiveLowering() throws {
        var b = GraphBuilder(name: "attention")
        let q = try b.input("Q", [2, 100, 24])
        let k = try b.input("K", [2, 100, 24])
        let v = try b.input("V", [2, 100, 24])
        let s = try b.mul(b.matmul(q, k, transposeB: true), b.constant(0.2))
        let causal = Predicate([.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
        let p = try b.softmax(b.mask(s, causal, fill: -.infinity), axis: -1)
        try b.output(b.matmul(p, v), name: "O")
        _ = try CodegenHarness.check(CodegenHarness.lower(b.build(), i: 32, j: 32, k: 32))
    }

    func testSanitizersAreSilent() throws {
        var b = GraphBuilder(name: "sanitized")
        let x = try b.input("X", [45, 38])
        let w = try b.input("W", [38, 21])
        let h = try b.matmul(b.layerNorm(x, gamma: nil, beta: nil), w)
        try b.output(b.softmax(h, axis: -1), name: "Y")
        try b.output(b.reduce(.max, b.transposeLast(h), axis: 0), name: "Z")
        let program = try CodegenHarness.lower(b.build(), i: 16, j: 16, k: 16)
        let result = try CodegenHarness.check(program, extraFlags: ["-fsanitize=address,undefined", "-g"])
        XCTAssertFalse(result.stderr.contains("runtime error"), result.stderr)
        XCTAssertFalse(result.stderr.contains("AddressSanitizer"), result.stderr)
    }
}
