import BlockIR
import Graph
import XCTest

@testable import Interpreter

/// Hand-built block programs against the graph interpreter and hand-computed values.
final class BlockInterpreterTests: XCTestCase {
    func local(_ shape: [Int]) -> BlockType { BlockType(shape, .local) }
    let i = IndexExpr.v("i")
    let j = IndexExpr.v("j")
    let k = IndexExpr.v("k")

    func assertClose(
        _ x: NDArray?, _ y: NDArray?, _ tolerance: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line
    ) {
        guard let x, let y else { return XCTFail("missing array", file: file, line: line) }
        XCTAssertEqual(x.shape, y.shape, file: file, line: line)
        for (p, q) in zip(x.data, y.data) {
            if p.isInfinite || q.isInfinite {
                XCTAssertEqual(p, q, file: file, line: line)
            } else {
                XCTAssertEqual(p, q, accuracy: tolerance, file: file, line: line)
            }
        }
    }

    func graphOutput(
        _ inputs: [(String, NDArray)], _ body: (inout GraphBuilder, [NodeID]) throws -> NodeID
    ) throws -> NDArray {
        var b = GraphBuilder(name: "g")
        var ids: [NodeID] = []
        for (name, array) in inputs { ids.append(try b.input(name, array.shape)) }
        try b.output(try body(&b, ids), name: "out")
        return try XCTUnwrap(
            try GraphInterpreter.run(b.build(), inputs: Dictionary(uniqueKeysWithValues: inputs))["out"])
    }

    func testTiledMatmulWithEdgeBlocksMatchesGraph() throws {
        for (m, kk, n) in [(70, 50, 33), (32, 32, 32), (1, 100, 5)] {
            let program = TestPrograms.tiledMatmul(m: m, k: kk, n: n, tile: 32)
            let a = RandomInputs.standardNormal(shape: [m, kk], seed: 1, stream: 0)
            let b = RandomInputs.standardNormal(shape: [kk, n], seed: 1, stream: 1)
            let out = try BlockInterpreter.run(program, inputs: ["A": a, "B": b])
            XCTAssertEqual(Array(out.keys), ["C"])
            let expected = try graphOutput([("A", a), ("B", b)]) { g, v in try g.matmul(v[0], v[1]) }
            assertClose(out["C"], expected)
        }
    }

    /// `R[i] = Σ_j X[i, j]` with 32-blocks over a 70×50 tensor (edge blocks on both axes).
    func testRowSumWithEdgeBlocks() throws {
        var b = BodyBuilder()
        let zero = b.emit(.fill(0), local([32]))
        let acc = b.loop(IndexVar("k"), from: .constant(0), to: .constant(2), carrying: [zero], types: [local([32])]) {
            body, carried in
            let x = body.emit(
                .load(TensorID(0), [.slice(start: .mul(i, 32), size: 32), .slice(start: .mul(k, 32), size: 32)]),
                local([32, 32]))
            let s = body.emit(.reduce(.sum, x, axis: 1), local([32]))
            return [body.emit(.binary(.add, carried[0], s), local([32]))]
        }
        b.emit(.store(acc[0], TensorID(1), [.slice(start: .mul(i, 32), size: 32)]))
        let program = Program(
            name: "rowsum",
            tensors: [
                GlobalTensor(name: "X", shape: [70, 50], role: .input),
                GlobalTensor(name: "R", shape: [70], role: .output),
            ],
            kernels: [Kernel(name: "rowsum", grid: [GridAxis(IndexVar("i"), 3)], body: b.instructions)])
        let input = RandomInputs.standardNormal(shape: [70, 50], seed: 2, stream: 0)
        let out = try BlockInterpreter.run(program, inputs: ["X": input])
        assertClose(out["R"], try graphOutput([("X", input)]) { g, v in try g.reduce(.sum, v[0], axis: 1) })
    }

    /// A column max (reduce over axis 0) where the rows of the edge block are partly invalid,
    /// and the tensor holds -inf-like values past... nothing: invalid rows must not count.
    func testColumnMaxIgnoresInvalidRows() throws {
        var b = BodyBuilder()
        let x = b.emit(
            .load(TensorID(0), [.slice(start: .constant(0), size: 4), .slice(start: .constant(0), size: 4)]),
            local([4, 4]))
        let m = b.emit(.reduce(.max, x, axis: 0), local([4]))
        b.emit(.store(m, TensorID(1), [.slice(start: .constant(0), size: 4)]))
        let program = Program(
            name: "colmax",
            tensors: [
                GlobalTensor(name: "X", shape: [2, 3], role: .input),
                GlobalTensor(name: "M", shape: [3], role: .output),
            ],
            kernels: [Kernel(name: "colmax", grid: [], body: b.instructions)])
        // Every element is negative: padding zeros of the block would win if they counted.
        let out = try BlockInterpreter.run(
            program, inputs: ["X": NDArray(shape: [2, 3], data: [-1, -5, -3, -4, -2, -6])])
        XCTAssertEqual(out["M"], NDArray(shape: [3], data: [-1, -2, -3]))
    }

    /// A causal mask over 40×40 in 32-blocks matches the graph's `where`.
    func testMaskKernel() throws {
        let causal = Predicate([.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
        var b = BodyBuilder()
        let access: [AxisAccess] = [.slice(start: .mul(i, 32), size: 32), .slice(start: .mul(j, 32), size: 32)]
        let x = b.emit(.load(TensorID(0), access), local([32, 32]))
        let y = b.emit(
            .mask(x, rowOffset: .mul(i, 32), columnOffset: .mul(j, 32), causal, fill: -.infinity), local([32, 32]))
        b.emit(.store(y, TensorID(1), access))
        let program = Program(
            name: "mask",
            tensors: [
                GlobalTensor(name: "X", shape: [40, 40], role: .input),
                GlobalTensor(name: "Y", shape: [40, 40], role: .output),
            ],
            kernels: [
                Kernel(
                    name: "mask", grid: [GridAxis(IndexVar("i"), 2), GridAxis(IndexVar("j"), 2)], body: b.instructions)
            ])
        let input = RandomInputs.standardNormal(shape: [40, 40], seed: 3, stream: 0)
        let out = try BlockInterpreter.run(program, inputs: ["X": input])
        XCTAssertEqual(out["Y"], try graphOutput([("X", input)]) { g, v in try g.mask(v[0], causal, fill: -.infinity) })
    }

    /// Index blocks against values computed by hand: `Y[b, r, c] = X + b·(r − (c + 5))` (the
    /// column positions start 5 further) and `Z[b, r] = max(r, 1) + b` over edge blocks.
    func testIndexBlocks() throws {
        // The kernels of BlockSamples.positions (Tests/BlockIRTests), built here.
        let b32 = IndexExpr.v("b")
        var a = BodyBuilder()
        let tile: [AxisAccess] = [
            .point(b32), .slice(start: .mul(i, 32), size: 32), .slice(start: .mul(j, 32), size: 32),
        ]
        let x0 = a.emit(.load(TensorID(0), tile), local([32, 32]))
        let rows = a.emit(.index(.mul(i, 32), axis: 0), local([32, 32]))
        let cols = a.emit(.index(.add(.mul(j, 32), .constant(5)), axis: 1), local([32, 32]))
        let head = a.emit(.index(b32, axis: nil), local([32, 32]))
        let diff = a.emit(.binary(.sub, rows, cols), local([32, 32]))
        let bias = a.emit(.binary(.mul, head, diff), local([32, 32]))
        a.emit(.store(a.emit(.binary(.add, x0, bias), local([32, 32])), TensorID(1), tile))
        var v = BodyBuilder()
        let vector = v.emit(.index(.max(.mul(i, 32), .constant(1)), axis: 0), local([32]))
        let point = v.emit(.index(b32, axis: nil), BlockType([], .reg))
        v.emit(
            .store(
                v.emit(.binary(.add, vector, point), local([32])), TensorID(2),
                [.point(b32), .slice(start: .mul(i, 32), size: 32)]))
        let program = Program(
            name: "positions",
            tensors: [
                GlobalTensor(name: "X", shape: [3, 100, 70], role: .input),
                GlobalTensor(name: "Y", shape: [3, 100, 70], role: .output),
                GlobalTensor(name: "Z", shape: [3, 100], role: .output),
            ],
            kernels: [
                Kernel(
                    name: "k0_alibi",
                    grid: [GridAxis(IndexVar("b"), 3), GridAxis(IndexVar("i"), 4), GridAxis(IndexVar("j"), 3)],
                    body: a.instructions),
                Kernel(
                    name: "k1_vector", grid: [GridAxis(IndexVar("b"), 3), GridAxis(IndexVar("i"), 4)],
                    body: v.instructions),
            ])
        let x = RandomInputs.standardNormal(shape: [3, 100, 70], seed: 4, stream: 0)
        let out = try BlockInterpreter.run(program, inputs: ["X": x])
        var y = x
        var z = NDArray(shape: [3, 100], data: [Float](repeating: 0, count: 300))
        for b in 0..<3 {
            for r in 0..<100 {
                for c in 0..<70 { y.data[(b * 100 + r) * 70 + c] += Float(b * (r - (c + 5))) }
                // The vector block starts at max(i·32, 1): element r0 of block i is max(i·32, 1) + r0.
                let start = max((r / 32) * 32, 1)
                z.data[b * 100 + r] = Float(start + r % 32 + b)
            }
        }
        XCTAssertEqual(out["Y"], y)
        XCTAssertEqual(out["Z"], z)
    }

    /// Views: loads through a reshaped view of an input, stores through a view of an output,
    /// and a temp written by one kernel and read by the next.
    func testViewsAndTemps() throws {
        let tensors = [
            GlobalTensor(name: "X", shape: [4, 6], role: .input),
            GlobalTensor(name: "X2", shape: [2, 12], role: .temp, viewOf: TensorID(0)),
            GlobalTensor(name: "T", shape: [2, 12], role: .temp),
            GlobalTensor(name: "Y", shape: [6, 4], role: .output),
            GlobalTensor(name: "Yflat", shape: [24], role: .temp, viewOf: TensorID(3)),
        ]
        // k0: T[r, :] = 2 · X2[r, :] (16-element blocks, 12 valid).
        var b0 = BodyBuilder()
        let x = b0.emit(.load(TensorID(1), [.point(i), .slice(start: .constant(0), size: 16)]), local([16]))
        let two = b0.emit(.fill(2), BlockType([], .reg))
        let y = b0.emit(.binary(.mul, two, x), local([16]))
        b0.emit(.store(y, TensorID(2), [.point(i), .slice(start: .constant(0), size: 16)]))
        // k1: Yflat[r * 12 +: 12] = T[r, :] + 1.
        var b1 = BodyBuilder()
        let t = b1.emit(.load(TensorID(2), [.point(i), .slice(start: .constant(0), size: 12)]), local([12]))
        let one = b1.emit(.fill(1), BlockType([], .reg))
        let u = b1.emit(.binary(.add, t, one), local([12]))
        b1.emit(.store(u, TensorID(4), [.slice(start: .mul(i, 12), size: 12)]))
        let program = Program(
            name: "views", tensors: tensors,
            kernels: [
                Kernel(name: "k0", grid: [GridAxis(IndexVar("i"), 2)], body: b0.instructions),
                Kernel(name: "k1", grid: [GridAxis(IndexVar("i"), 2)], body: b1.instructions),
            ])
        let input = NDArray(shape: [4, 6], data: (0..<24).map(Float.init))
        let out = try BlockInterpreter.run(program, inputs: ["X": input])
        XCTAssertEqual(out, ["Y": NDArray(shape: [6, 4], data: (0..<24).map { Float(2 * $0 + 1) })])
    }

    /// Two carried values (a running max and a running sum of a row, 8-blocks over 20
    /// columns), a scalar broadcast, and an empty loop that returns its initial values.
    func testCarriedValuesAndEmptyLoop() throws {
        var b = BodyBuilder()
        let minusInf = b.emit(.fill(-.infinity), local([4]))
        let zero = b.emit(.fill(0), local([4]))
        let results = b.loop(
            IndexVar("k"), from: .constant(0), to: .constant(3), carrying: [minusInf, zero],
            types: [local([4]), local([4])]
        ) { body, carried in
            let x = body.emit(
                .load(TensorID(0), [.slice(start: .constant(0), size: 4), .slice(start: .mul(k, 8), size: 8)]),
                local([4, 8]))
            let m = body.emit(.reduce(.max, x, axis: 1), local([4]))
            let s = body.emit(.reduce(.sum, x, axis: 1), local([4]))
            return [
                body.emit(.binary(.max, carried[0], m), local([4])),
                body.emit(.binary(.add, carried[1], s), local([4])),
            ]
        }
        let empty = b.loop(IndexVar("e"), from: .constant(5), to: .constant(2), carrying: [zero], types: [local([4])]) {
            body, carried in
            [body.emit(.unary(.neg, carried[0]), local([4]))]
        }
        let total = b.emit(.binary(.add, results[1], empty[0]), local([4]))
        let wide = b.emit(.broadcast(results[0], axis: 1), local([4, 2]))
        b.emit(.store(wide, TensorID(1), [.slice(start: .constant(0), size: 4), .slice(start: .constant(0), size: 2)]))
        b.emit(.store(total, TensorID(2), [.slice(start: .constant(0), size: 4)]))
        let program = Program(
            name: "carried",
            tensors: [
                GlobalTensor(name: "X", shape: [3, 20], role: .input),
                GlobalTensor(name: "M", shape: [3, 2], role: .output),
                GlobalTensor(name: "S", shape: [3], role: .output),
            ],
            kernels: [Kernel(name: "rows", grid: [], body: b.instructions)])
        let input = NDArray(shape: [3, 20], data: (0..<60).map { Float(($0 * 7) % 23) - 11 })
        let out = try BlockInterpreter.run(program, inputs: ["X": input])
        var maxima: [Float] = []
        var sums: [Float] = []
        for r in 0..<3 {
            let row = input.data[(r * 20)..<(r * 20 + 20)]
            maxima += [row.max()!, row.max()!]
            sums.append(row.reduce(0, +))
        }
        XCTAssertEqual(out["M"], NDArray(shape: [3, 2], data: maxima))
        XCTAssertEqual(out["S"], NDArray(shape: [3], data: sums))
    }

    /// A transposed dot with a transposed operand block, against the graph's matmul.
    func testDotTransposesAndTranspose() throws {
        var b = BodyBuilder()
        let q = b.emit(
            .load(TensorID(0), [.slice(start: .constant(0), size: 8), .slice(start: .constant(0), size: 8)]),
            local([8, 8]))
        let kt = b.emit(
            .load(TensorID(1), [.slice(start: .constant(0), size: 8), .slice(start: .constant(0), size: 8)]),
            local([8, 8]))
        let kb = b.emit(.transpose(kt), local([8, 8]))
        let s = b.emit(.dot(q, kb, transposeA: true, transposeB: true), local([8, 8]))
        b.emit(.store(s, TensorID(2), [.slice(start: .constant(0), size: 8), .slice(start: .constant(0), size: 8)]))
        let program = Program(
            name: "dots",
            tensors: [
                GlobalTensor(name: "Q", shape: [5, 6], role: .input),
                GlobalTensor(name: "K", shape: [5, 7], role: .input),
                GlobalTensor(name: "S", shape: [6, 7], role: .output),
            ],
            kernels: [Kernel(name: "dots", grid: [], body: b.instructions)])
        let qa = RandomInputs.standardNormal(shape: [5, 6], seed: 4, stream: 0)
        let ka = RandomInputs.standardNormal(shape: [5, 7], seed: 4, stream: 1)
        let out = try BlockInterpreter.run(program, inputs: ["Q": qa, "K": ka])
        // S = Qᵀ · (Kᵀ)ᵀ = Qᵀ · K.
        assertClose(
            out["S"], try graphOutput([("Q", qa), ("K", ka)]) { g, v in try g.matmul(v[0], v[1], transposeA: true) })
    }

    func testUnwrittenMemoryIsNaN() throws {
        var b = BodyBuilder()
        let x = b.emit(.load(TensorID(0), [.slice(start: .constant(0), size: 2)]), local([2]))
        b.emit(.store(x, TensorID(1), [.slice(start: .constant(0), size: 2)]))
        let program = Program(
            name: "partial",
            tensors: [
                GlobalTensor(name: "X", shape: [4], role: .input), GlobalTensor(name: "Y", shape: [4], role: .output),
            ],
            kernels: [Kernel(name: "copy", grid: [], body: b.instructions)])
        let out = try BlockInterpreter.run(program, inputs: ["X": NDArray(shape: [4], data: [1, 2, 3, 4])])
        let y = try XCTUnwrap(out["Y"])
        XCTAssertEqual(Array(y.data.prefix(2)), [1, 2])
        XCTAssertTrue(y.data[2].isNaN && y.data[3].isNaN)
    }

    func testOutOfRangePointIndexIsAnError() throws {
        var b = BodyBuilder()
        let x = b.emit(.load(TensorID(0), [.point(i), .slice(start: .constant(0), size: 4)]), local([4]))
        b.emit(.store(x, TensorID(1), [.point(i), .slice(start: .constant(0), size: 4)]))
        let program = Program(
            name: "oob",
            tensors: [
                GlobalTensor(name: "X", shape: [4, 4], role: .input),
                GlobalTensor(name: "Y", shape: [4, 4], role: .output),
            ],
            kernels: [Kernel(name: "rows", grid: [GridAxis(IndexVar("i"), 5)], body: b.instructions)])
        XCTAssertThrowsError(try BlockInterpreter.run(program, inputs: ["X": NDArray(shape: [4, 4], repeating: 1)])) {
            error in
            let d = error as! Diagnostic
            XCTAssertNil(d.location)
            XCTAssertTrue(d.message.contains("kernel 'rows'"), d.message)
            XCTAssertTrue(d.message.contains("i = 4"), d.message)
            XCTAssertTrue(d.message.contains("load X"), d.message)
            XCTAssertTrue(d.message.contains("index 4 on axis 0 of 'X' (size 4) is out of range"), d.message)
        }
    }

    func testNegativeStartAndMalformedProgramsAreErrors() throws {
        var b = BodyBuilder()
        let x = b.emit(.load(TensorID(0), [.slice(start: .add(i, .constant(-1)), size: 4)]), local([4]))
        b.emit(.store(x, TensorID(1), [.slice(start: .constant(0), size: 4)]))
        let tensors = [
            GlobalTensor(name: "X", shape: [4], role: .input), GlobalTensor(name: "Y", shape: [4], role: .output),
        ]
        let negative = Program(
            name: "neg", tensors: tensors,
            kernels: [Kernel(name: "k", grid: [GridAxis(IndexVar("i"), 1)], body: b.instructions)])
        let inputs = ["X": NDArray(shape: [4], repeating: 1)]
        XCTAssertThrowsError(try BlockInterpreter.run(negative, inputs: inputs)) { error in
            XCTAssertTrue((error as! Diagnostic).message.contains("slice start -1"), "\(error)")
        }
        // Undefined values, unknown variables, unknown tensors and bad views are diagnostics, not traps.
        let undefined = Program(
            name: "u", tensors: tensors,
            kernels: [
                Kernel(
                    name: "k", grid: [],
                    body: [Instruction([], .store(ValueID(9), TensorID(1), [.slice(start: .constant(0), size: 4)]))])
            ])
        XCTAssertThrowsError(try BlockInterpreter.run(undefined, inputs: inputs))
        let unknownVariable = Program(
            name: "u", tensors: tensors,
            kernels: [
                Kernel(
                    name: "k", grid: [],
                    body: [
                        Instruction(
                            [Value(ValueID(0), local([4]))], .load(TensorID(0), [.slice(start: .v("z"), size: 4)]))
                    ])
            ])
        XCTAssertThrowsError(try BlockInterpreter.run(unknownVariable, inputs: inputs))
        let unknownTensor = Program(
            name: "u", tensors: tensors,
            kernels: [
                Kernel(
                    name: "k", grid: [],
                    body: [
                        Instruction(
                            [Value(ValueID(0), local([4]))], .load(TensorID(7), [.slice(start: .constant(0), size: 4)]))
                    ])
            ])
        XCTAssertThrowsError(try BlockInterpreter.run(unknownTensor, inputs: inputs))
        let badView = Program(
            name: "u", tensors: tensors + [GlobalTensor(name: "V", shape: [5], role: .temp, viewOf: TensorID(0))],
            kernels: [])
        XCTAssertThrowsError(try BlockInterpreter.run(badView, inputs: inputs))
        let mismatch = Program(
            name: "u", tensors: tensors,
            kernels: [
                Kernel(
                    name: "k", grid: [],
                    body: [
                        Instruction(
                            [Value(ValueID(0), local([4]))],
                            .load(TensorID(0), [.slice(start: .constant(0), size: 4)])),
                        Instruction([Value(ValueID(1), local([2, 2]))], .fill(0)),
                        Instruction([Value(ValueID(2), local([4]))], .binary(.add, ValueID(0), ValueID(1))),
                    ])
            ])
        XCTAssertThrowsError(try BlockInterpreter.run(mismatch, inputs: inputs))
    }

    func testInputErrors() throws {
        let program = TestPrograms.tiledMatmul(m: 4, k: 4, n: 4, tile: 4)
        let a = NDArray(shape: [4, 4], repeating: 1)
        XCTAssertThrowsError(try BlockInterpreter.run(program, inputs: ["A": a])) { error in
            let d = error as! Diagnostic
            XCTAssertTrue(d.message.contains("'B'") && d.message.contains("[4, 4]"), d.message)
        }
        XCTAssertThrowsError(
            try BlockInterpreter.run(program, inputs: ["A": a, "B": NDArray(shape: [16], repeating: 1)])
        ) {
            error in
            XCTAssertTrue((error as! Diagnostic).message.contains("input 'B' has shape [16]"), "\(error)")
        }
    }
}
