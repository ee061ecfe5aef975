import BlockIR
import Graph
import XCTest

final class GraphParserTests: XCTestCase {
    static let attention = """
        # attention
        graph attention
        dim BH = 2
        dim N = 16
        dim d = 8
        input Q: [BH, N, d]
        input K: [BH, N, d]
        input V: [BH, N, d]
        S = matmul(Q, K, transpose_b=true) * rsqrt(d)
        P = softmax(where(i >= j, S, -inf), axis=-1)
        O = matmul(P, V)
        output O
        """

    func parseError(_ text: String, dims: [String: Int] = [:]) -> Diagnostic? {
        do {
            _ = try GraphParser.parse(text, defaultName: "g", dimOverrides: dims)
            return nil
        } catch {
            return error
        }
    }

    func testAttentionParses() throws {
        let g = try GraphParser.parse(Self.attention, defaultName: "x")
        XCTAssertEqual(g.name, "attention")
        XCTAssertEqual(g.inputs.map { g[$0].name }, ["Q", "K", "V"])
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["O"])
        XCTAssertEqual(g[g.outputs[0]].shape, [2, 16, 8])
        let s = try XCTUnwrap(g.node(named: "S"))
        XCTAssertEqual(s.shape, [2, 16, 16])
        guard case .binary(.mul, let m, let c) = s.op, case .matmul(_, _, false, true) = g[m].op,
            case .constant(let scale) = g[c].op
        else { return XCTFail("S = matmul(...) * rsqrt(d), got \(s.op)") }
        XCTAssertEqual(scale, 1 / Float(8).squareRoot(), accuracy: 1e-7)
        XCTAssertTrue(g.nodes.contains { if case .mask = $0.op { return true } else { return false } })
    }

    func testDimOverridesAndDependentDims() throws {
        let text = "dim H = 2\ndim dh = 4\ndim D = H * dh\ninput X: [D, D + 1]\nY = exp(X)\noutput Y\n"
        let g = try GraphParser.parse(text, defaultName: "g", dimOverrides: ["H": 3])
        XCTAssertEqual(g[g.outputs[0]].shape, [12, 13])
        XCTAssertEqual(g.dims.map(\.value), [3, 4, 12])
        let unknown = parseError(text, dims: ["Z": 1])
        XCTAssertTrue(unknown?.message.contains("no dimension 'Z'") ?? false, "\(String(describing: unknown))")
    }

    func testPredicatesNormalize() throws {
        func atoms(_ pred: String) throws -> [PredicateAtom] {
            let g = try GraphParser.parse(
                "dim W = 256\ninput S: [4, 4]\nM = where(\(pred), S, -inf)\noutput M\n", defaultName: "g")
            guard case .mask(_, let p, _) = g[g.outputs[0]].op else { throw Diagnostic("no mask") }
            return p.atoms
        }
        XCTAssertEqual(try atoms("i >= j"), [.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
        XCTAssertEqual(
            try atoms("i - j < 256"), [.affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: 255)])
        XCTAssertEqual(
            try atoms("j <= i && i - j < W"),
            [
                .affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0),
                .affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: 255),
            ])
        XCTAssertEqual(
            try atoms("2 * i > j + 1"), [.affineNonNegative(rowCoefficient: 2, columnCoefficient: -1, constant: -2)])
        XCTAssertEqual(try atoms("same_segment(i, j, [1, 3])"), [.sameSegment(boundaries: [1, 3])])
    }

    func testErrorsAreLocated() {
        let cases: [(String, Int, Int, String)] = [
            ("input X: [4]\nY = exp(Z)\noutput Y\n", 2, 9, "unknown tensor 'Z'"),
            ("input X: [4]\nY = softmx(X)\noutput Y\n", 2, 5, "did you mean 'softmax'"),
            ("input X: [4]\nY = exp(X\noutput Y\n", 2, 10, "expected ',' or ')'"),
            ("dim N = 0\n", 1, 9, "must be positive"),
            ("input X: [4, 3]\ninput W: [4, 3]\nY = matmul(X, W)\noutput Y\n", 3, 5, "inner dimensions differ"),
            ("input X: [4]\nY = exp(X)\nY = exp(X)\noutput Y\n", 3, 1, "already defined"),
            ("input X: [4]\nY = exp(X)\n", 3, 1, "no output"),
            ("input X: [4]\nY = exp(X) $\n", 2, 12, "unexpected character"),
            ("input X: [4, 4]\nY = where(i >= j, X, X)\noutput Y\n", 2, 22, "must be a constant"),
            ("input X: [4]\nY = reduce_sum(X, axis=3)\noutput Y\n", 2, 5, "out of range"),
            ("input X: [4]\nY = matmul(X, X, transpose=true)\noutput Y\n", 2, 18, "no argument 'transpose'"),
        ]
        for (text, line, column, message) in cases {
            guard let d = parseError(text) else {
                XCTFail("expected an error for:\n\(text)")
                continue
            }
            XCTAssertEqual(d.location, SourceLocation(line: line, column: column), "\(d) for:\n\(text)")
            XCTAssertTrue(d.message.contains(message), "\(d.message) should contain \(message)")
        }
    }

    func testPrinterOutputParsesBack() throws {
        let g = try GraphParser.parse(Self.attention, defaultName: "x")
        let text = GraphPrinter.print(g)
        let again = try GraphParser.parse(text, defaultName: "x")
        XCTAssertEqual(GraphPrinter.print(again), text)
    }

    func testBuilderBroadcastsAndChecksShapes() throws {
        var b = GraphBuilder(name: "b")
        let x = try b.input("X", [4, 1, 3])
        let y = try b.input("Y", [5, 1])
        let sum = try b.add(x, y)
        XCTAssertEqual(b.shape(of: sum), [4, 5, 3])
        let w = try b.input("W", [3, 7])
        let product = try b.matmul(x, w)
        XCTAssertEqual(b.shape(of: product), [4, 1, 7])
        XCTAssertThrowsError(try b.matmul(w, w))
        let s = try b.softmax(x, axis: -1)
        XCTAssertEqual(b.shape(of: s), [4, 1, 3])
        let four = try b.unary(.sqrt, b.constant(16))
        XCTAssertEqual(b.constantValue(of: four), 4)
    }
}
