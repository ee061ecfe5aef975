import BlockIR
import Graph
import XCTest

/// The `.graph` parser: shapes and ops of parsed graphs, overrides, predicates, located errors,
/// and the builder API it is a client of.
final class GraphParserTests: XCTestCase {
    /// Causal attention, small.
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

    /// Parses with the default name "g".
    func parse(_ text: String, dims: [String: Int] = [:]) throws -> Graph {
        try GraphParser.parse(text, defaultName: "g", dimOverrides: dims)
    }

    /// The diagnostic a text is rejected with, or nil when it parses.
    func parseError(_ text: String, dims: [String: Int] = [:]) -> Diagnostic? {
        do {
            _ = try GraphParser.parse(text, defaultName: "g", dimOverrides: dims)
            return nil
        } catch {
            return error
        }
    }

    /// The ops of a graph by kind name, in node order (constants left out).
    func opKinds(_ g: Graph) -> [String] {
        g.nodes.compactMap { node -> String? in
            switch node.op {
            case .input: return "input"
            case .constant: return nil
            case .position(let axis): return "pos\(axis)"
            case .unary(let op, _): return op.rawValue
            case .binary(let op, _, _): return op.rawValue
            case .matmul: return "matmul"
            case .reduce(let op, _, _, _): return "reduce_\(op.rawValue)"
            case .transpose: return "transpose"
            case .reshape: return "reshape"
            case .mask: return "mask"
            case .cast(_, let t): return "cast_\(t)"
            case .slice(_, let axis, let start): return "slice\(axis)@\(start)"
            case .concat(let parts, let axis): return "concat\(parts.count)@\(axis)"
            case .select: return "select"
            case .gather(_, _, let axis): return "gather@\(axis)"
            case .cumsum(_, let axis, let r, let e): return "cumsum\(axis)" + (r ? "r" : "") + (e ? "e" : "")
            case .blockBroadcast(_, let blocks): return "block_broadcast\(blocks)"
            }
        }
    }

    func testAttentionParses() throws {
        let g = try GraphParser.parse(Self.attention, defaultName: "x")
        XCTAssertEqual(g.name, "attention")
        XCTAssertEqual(
            g.dims, [DimBinding(name: "BH", value: 2), DimBinding(name: "N", value: 16), .init(name: "d", value: 8)])
        XCTAssertEqual(g.inputs.map { g[$0].name }, ["Q", "K", "V"])
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["O"])
        XCTAssertEqual(g[g.outputs[0]].shape, [2, 16, 8])
        let s = try XCTUnwrap(g.node(named: "S"))
        XCTAssertEqual(s.shape, [2, 16, 16])
        guard case .binary(.mul, let m, let c) = s.op, case .matmul(_, _, false, true) = g[m].op,
            case .constant(let scale) = g[c].op
        else { return XCTFail("S = matmul(...) * rsqrt(d), got \(s.op)") }
        XCTAssertEqual(scale, 1 / Float(8).squareRoot(), accuracy: 1e-7)
        XCTAssertEqual(
            opKinds(g),
            [
                "input", "input", "input", "matmul", "mul", "mask", "reduce_max", "sub", "exp", "reduce_sum", "div",
                "matmul",
            ])
        XCTAssertEqual(try XCTUnwrap(g.node(named: "P")).shape, [2, 16, 16])
    }

    func testDefaultNameAndCommentsAndBlankLines() throws {
        let g = try parse("\n# only comments\n\ninput X: [4]   # trailing comment\n\nY = exp(X)\noutput Y")
        XCTAssertEqual(g.name, "g")
        XCTAssertEqual(opKinds(g), ["input", "exp"])
    }

    func testEveryFunctionParses() throws {
        let good = """
            dim M = 4
            dim K = 6
            input X: [M, K]
            input W: [K, 3]
            input g: [K]
            input b: [K]
            A = neg(exp(log(sqrt(rsqrt(recip(tanh(sigmoid(silu(gelu(abs(square(X))))))))))))
            A2 = sin(X) + cos(X) + softplus(X) + log1p(abs(X))
            B = pow(max(min(add(sub(mul(div(X, 2), X), X), X), X), X), 2)
            C = matmul(X, W) + transpose(matmul(W, X, transpose_a=true, transpose_b=true))
            R1 = reduce_sum(X, axis=0, keepdims=true) + reduce_max(X, 1, keepdims=true) + reduce_mean(X, keepdims=true)
            T = transpose(reshape(X, [2, M / 2, K]), perm=[1, 0, 2])
            L = layernorm(X, g, b, eps=1e-3) + layernorm(X) + layernorm(X, gamma=g) + rmsnorm(X, g) + rmsnorm(X)
            S = softmax(X) + softmax(X, axis=0) + softmax(X, 1)
            Wm = where(j <= i && i - j < 2 && same_segment(i, j, [2]), X, 0)
            output A, B, C, R1, T, L, S, Wm, A2
            """
        let g = try parse(good)
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["A", "B", "C", "R1", "T", "L", "S", "Wm", "A2"])
        XCTAssertEqual(
            g.outputs.map { g[$0].shape },
            [[4, 6], [4, 6], [4, 3], [4, 6], [2, 2, 6], [4, 6], [4, 6], [4, 6], [4, 6]])
        let text = GraphPrinter.print(g)
        for op in ["sin(", "cos(", "softplus(", "log1p("] { XCTAssertTrue(text.contains(op), "\(op) in\n\(text)") }
        XCTAssertEqual(GraphPrinter.print(try parse(text)), text)
        guard case .transpose(_, let perm) = try XCTUnwrap(g.node(named: "T")).op else { return XCTFail("T") }
        XCTAssertEqual(perm, [1, 0, 2])
    }

    func testDimOverridesAndDependentDims() throws {
        let text = "dim H = 2\ndim dh = 4\ndim D = H * dh\ninput X: [D, D + 1]\nY = exp(X)\noutput Y\n"
        let g = try parse(text, dims: ["H": 3])
        XCTAssertEqual(g[g.outputs[0]].shape, [12, 13])
        XCTAssertEqual(g.dims.map(\.value), [3, 4, 12])
        let overridden = try parse(text, dims: ["D": 5])
        XCTAssertEqual(overridden[overridden.outputs[0]].shape, [5, 6])
        // An override replaces a default that would be invalid.
        let zero = try parse("dim N = 0\ninput X: [N]\nY = exp(X)\noutput Y\n", dims: ["N": 7])
        XCTAssertEqual(zero.dims, [DimBinding(name: "N", value: 7)])

        let unknown = parseError(text, dims: ["Z": 1, "A": 2])
        XCTAssertNil(unknown?.location)
        XCTAssertTrue(unknown?.message.contains("no dimension 'A'") ?? false, "\(String(describing: unknown))")
        let negative = parseError(text, dims: ["dh": 0])
        XCTAssertEqual(negative?.location, SourceLocation(line: 2, column: 5))
        XCTAssertTrue(negative?.message.contains("dimension 'dh' must be positive, got 0") ?? false)
    }

    func testIntegerDimArithmetic() throws {
        let g = try parse(
            "dim A = (7 + 3) * 2 - 1\ndim B = A / 4\ndim C = -B + 10\ninput X: [A, B, C]\nY = exp(X)\noutput Y\n")
        XCTAssertEqual(g.dims.map(\.value), [19, 4, 6])
        XCTAssertEqual(g.inputs.map { g[$0].shape }, [[19, 4, 6]])
    }

    func testDimNamesAreConstantsInTensorExpressions() throws {
        let g = try parse("dim N = 4\ninput X: [N]\nY = X * N + inf - nan\noutput Y\n")
        let constants = g.nodes.compactMap { node -> Float? in
            if case .constant(let c) = node.op { return c }
            return nil
        }
        XCTAssertEqual(constants.first, 4)
    }

    func testAssignmentNamesAndAliases() throws {
        let g = try parse("input X: [4]\nY = exp(X)\nZ = Y\nW = Z * 2\noutput W, Z\n")
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["W", "Y"])
        XCTAssertEqual(g.nodes.map(\.name).filter { $0 == "Z" }, [])
        let alias = parseError("input X: [4]\nY = X\noutput Y\n")
        XCTAssertEqual(alias?.location, SourceLocation(line: 3, column: 8))
        XCTAssertTrue(alias?.message.contains("another name for 'X'") ?? false, "\(String(describing: alias))")
    }

    func testUserNamesDoNotCollideWithGeneratedNames() throws {
        let g = try parse("input t0: [4]\nt3 = exp(exp(exp(t0)))\nt1 = exp(t3) + t3\noutput t1\n")
        let names = g.nodes.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "\(names)")
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["t1"])
    }

    func testPredicatesNormalize() throws {
        func atoms(_ pred: String) throws -> [PredicateAtom] {
            let g = try parse("dim W = 256\ninput S: [4, 4]\ninput i: [4]\nM = where(\(pred), S, -inf)\noutput M\n")
            guard case .mask(_, let p, let fill) = g[g.outputs[0]].op else { throw Diagnostic("no mask") }
            XCTAssertEqual(fill, -.infinity)
            return p.atoms
        }
        func nonNegative(_ a: Int, _ b: Int, _ c: Int) -> PredicateAtom {
            .affineNonNegative(rowCoefficient: a, columnCoefficient: b, constant: c)
        }
        XCTAssertEqual(try atoms("i >= j"), [nonNegative(1, -1, 0)])
        XCTAssertEqual(try atoms("i > j"), [nonNegative(1, -1, -1)])
        XCTAssertEqual(try atoms("i <= j"), [nonNegative(-1, 1, 0)])
        XCTAssertEqual(try atoms("i - j < 256"), [nonNegative(-1, 1, 255)])
        XCTAssertEqual(try atoms("i == j + 1"), [.affineZero(rowCoefficient: 1, columnCoefficient: -1, constant: -1)])
        XCTAssertEqual(try atoms("j <= i && i - j < W"), [nonNegative(1, -1, 0), nonNegative(-1, 1, 255)])
        XCTAssertEqual(try atoms("2 * i > j + 1"), [nonNegative(2, -1, -2)])
        XCTAssertEqual(try atoms("(i - j) * -3 + W >= -(j)"), [nonNegative(-3, 4, 256)])
        XCTAssertEqual(try atoms("same_segment(i, j, [1, 3])"), [.sameSegment(boundaries: [1, 3])])
        XCTAssertEqual(
            try atoms("(i >= j) && same_segment(i, j, [])"), [nonNegative(1, -1, 0), .sameSegment(boundaries: [])])
        func quotient(_ p: Int, _ q: Int, _ c: Int, equal: Bool = false, i: Int = 0, j: Int = 0) -> PredicateAtom {
            .quotient(
                QuotientAffine(
                    divisor: 256, row: i, column: j, rowQuotient: p, columnQuotient: q, constant: c, isEquality: equal))
        }
        XCTAssertEqual(try atoms("i / 256 == j / 256"), [quotient(1, -1, 0, equal: true)])
        XCTAssertEqual(try atoms("i / W == j / W + 1"), [quotient(1, -1, -1, equal: true)])
        XCTAssertEqual(try atoms("i / W > j / W + 1"), [quotient(1, -1, -2)])
        XCTAssertEqual(try atoms("i / 256 >= j / 256"), [quotient(1, -1, 0)])
        XCTAssertEqual(try atoms("i / 256 < 2 * (j / 256)"), [quotient(-1, 2, -1)])
        XCTAssertEqual(try atoms("j / (W / 2 * 2) <= i / 256 + 1"), [quotient(1, -1, 1)])
        XCTAssertEqual(try atoms("i % 256 >= j"), [quotient(-256, 0, 0, i: 1, j: -1)])
        XCTAssertEqual(
            try atoms("i % 2 == 0"),
            [.quotient(QuotientAffine(divisor: 2, row: 1, rowQuotient: -2, columnQuotient: 0, isEquality: true))])
        // Quotients that cancel leave an affine atom.
        XCTAssertEqual(try atoms("i / 256 - i / 256 + i >= j"), [nonNegative(1, -1, 0)])
    }

    /// Quotient atoms print in a form both parsers read back to the same atom.
    func testQuotientAtomsRoundTrip() throws {
        let text = """
            graph chunks
            input S: [20, 20]
            A = where(i / 4 == j / 4 && i >= j, S, -inf)
            B = where(-(i / 4) + j / 4 + 1 >= 0 && i % 2 == 0 && 2 * (j / 4) > i / 4 - 3, S, 0)
            C = where(j / 3 < -(i / 3) + 9, S, 0)
            output A, B, C
            """
        let g = try parse(text)
        let printed = GraphPrinter.print(g)
        XCTAssertTrue(printed.contains("where(i/4 - j/4 == 0 && i - j >= 0, S, (-inf))"), printed)
        XCTAssertTrue(
            printed.contains("-(i/4) + j/4 + 1 >= 0 && i - 2*(i/2) == 0 && -(i/4) + 2*(j/4) + 2 >= 0"), printed)
        XCTAssertEqual(GraphPrinter.print(try parse(printed)), printed)
        for name in ["A", "B", "C"] {
            guard case .mask(_, let p, _) = try XCTUnwrap(g.node(named: name)).op else { return XCTFail(name) }
            guard case .mask(_, let again, _) = try XCTUnwrap(try parse(printed).node(named: name)).op else {
                return XCTFail(name)
            }
            XCTAssertEqual(again, p)
        }
    }

    func testErrorsAreLocated() {
        let cases: [(String, Int, Int, String)] = [
            ("input X: [4]\nY = exp(Qx)\noutput Y\n", 2, 9, "unknown tensor 'Qx'; declare it with 'input Qx: [...]'"),
            ("input X: [4]\nY = softmx(X)\noutput Y\n", 2, 5, "unknown function 'softmx'; did you mean 'softmax'?"),
            ("input X: [4]\nY = X(2)\noutput Y\n", 2, 5, "'X' is a tensor, not a function"),
            ("input X: [4]\nY = exp(X\noutput Y\n", 2, 10, "close the call with ')'"),
            ("input X: [4]\nY = (X + 1\noutput Y\n", 2, 11, "expected ')' to close the '(' at 2:5"),
            ("input X: [4]\nY = exp(X) +\noutput Y\n", 2, 13, "expected an expression"),
            ("dim N = 0\n", 1, 9, "dimension 'N' must be positive, got 0"),
            ("dim N = 4 - 9\n", 1, 11, "must be positive, got -5"),
            ("dim N = 4 / (2 - 2)\n", 1, 11, "division by zero"),
            ("dim N = 4\ndim N = 5\n", 2, 5, "declared twice"),
            ("dim N = M\n", 1, 9, "unknown dimension 'M'"),
            ("dim N = 2.5\n", 1, 9, "expected an integer, found '2.5'"),
            ("dim N = 99999999999999999999999\n", 1, 9, "too large"),
            ("dim N = 9999999999 * 9999999999\n", 1, 20, "integer overflow"),
            ("dim N = 1099511627777\n", 1, 9, "too large"),
            ("input X: [1048576, 1048576, 2]\n", 1, 29, "more than 2^40"),
            ("input X: [4, 0]\n", 1, 14, "must be positive"),
            ("input X: [1, 1, 1, 1, 1, 1, 1]\n", 1, 10, "at most 6"),
            ("input X: 4\n", 1, 10, "expected a shape like [N, d]"),
            ("input X [4]\n", 1, 9, "expected ':'"),
            ("inptu X: [4]\n", 1, 1, "unknown statement 'inptu'; did you mean 'input'?"),
            ("input X: [4]\ninput X: [4]\n", 2, 7, "already defined"),
            ("dim X = 4\ninput X: [4]\n", 2, 7, "already a dimension"),
            ("input inf: [4]\n", 1, 7, "reserved"),
            ("input X: [4, 3]\ninput W: [4, 3]\nY = matmul(X, W)\noutput Y\n", 3, 5, "inner dimensions differ"),
            ("input X: [4, 3]\ninput W: [5]\nY = X + W\noutput Y\n", 3, 7, "do not broadcast"),
            ("input X: [4]\nY = exp(X)\nY = exp(X)\noutput Y\n", 3, 1, "already defined"),
            ("input X: [4]\nY = exp(X)\n", 3, 1, "the graph has no output; add 'output NAME'"),
            ("input X: [4]\nY = exp(X) $\n", 2, 12, "unexpected character '$'"),
            ("input X: [4, 4]\nY = where(i >= j & i < 3, X, 0)\noutput Y\n", 2, 18, "'&&'"),
            ("input X: [4, 4]\nY = where(i >= j, X, X)\noutput Y\n", 2, 22, "must be a constant"),
            ("input X: [4, 4]\nY = where(i * j >= 0, X, 0)\noutput Y\n", 2, 13, "one side of a product"),
            ("input X: [4, 4]\nY = where(i / j >= 0, X, 0)\noutput Y\n", 2, 15, "must be a positive integer constant"),
            ("input X: [4, 4]\nY = where(i / X >= 0, X, 0)\noutput Y\n", 2, 15, "or a dim"),
            ("input X: [4, 4]\nY = where(i / 0 >= 0, X, 0)\noutput Y\n", 2, 15, "division by zero in a mask"),
            ("input X: [4, 4]\nY = where(j % (2 - 2) == 0, X, 0)\noutput Y\n", 2, 18, "division by zero in a mask"),
            ("input X: [4, 4]\nY = where(i / -2 >= 0, X, 0)\noutput Y\n", 2, 15, "must be positive"),
            ("input X: [4, 4]\nY = where((i + 1) / 2 >= 0, X, 0)\noutput Y\n", 2, 14, "applies to i or j alone"),
            ("input X: [4, 4]\nY = where(i / 2 == j / 3, X, 0)\noutput Y\n", 2, 17, "divide by one number only"),
            ("input X: [4, 4]\nY = where(i / 2 - j / 4 >= 0, X, 0)\noutput Y\n", 2, 17, "divide by one number only"),
            ("input X: [4, 4]\nY = X % 2\noutput Y\n", 2, 7, "'%' (remainder) is allowed only on the mask indices"),
            ("input X: [4, 4]\nY = X[..., 0:32:2]\noutput Y\n", 2, 16, "slicing with a step"),
            ("input X: [4, 4]\nY = X[0:4:1, :]\noutput Y\n", 2, 10, "slicing with a step"),
            ("input X: [4, 4]\nY = where(i != j, X, 0)\noutput Y\n", 2, 13, "'!=' is not supported"),
            ("input X: [4, 4]\nY = where(X, X, 0)\noutput Y\n", 2, 11, "needs a bool tensor as its condition"),
            ("input X: [4, 4]\nY = where(same_segment(j, i, [2]), X, 0)\noutput Y\n", 2, 11, "must be i and j"),
            ("input X: [4, 4]\nY = where(same_segment(i, j, [3, 2]), X, 0)\noutput Y\n", 2, 34, "increasing"),
            ("input X: [4, 4]\nY = where(i >= -9223372036854775807 - 1, X, 0)\noutput Y\n", 2, 17, "below 2^40"),
            ("input X: [4, 4]\nY = where(1048576 * i >= j, X, 0)\noutput Y\n", 2, 19, "below 2^20"),
            ("input X: [4, 4]\nY = same_segment(i, j, [2])\noutput Y\n", 2, 5, "use it as where("),
            ("input X: [4, 4]\nY = exp(i)\noutput Y\n", 2, 9, "it names no tensor; write pos(x, axis=-2)"),
            ("input X: [4]\nY = X + i\noutput Y\n", 2, 9, "the statement's tensors have shape [4]; write pos("),
            ("input X: [4, 3]\ninput W: [5, 3]\nY = j + X + W\noutput Y\n", 3, 5, "do not broadcast"),
            ("input X: [4, 4]\nY = pos(X, axis=2)\noutput Y\n", 2, 5, "pos: axis 2 is out of range for rank 2"),
            ("input X: [4, 4]\nY = pos(2)\noutput Y\n", 2, 9, "pos needs a tensor"),
            ("input X: [4, 4]\nY = pos(X, axes=0)\noutput Y\n", 2, 12, "no argument 'axes'"),
            ("input X: [4, 4]\nY = X * (i >= j)\noutput Y\n", 2, 7, "there is no arithmetic on bool"),
            ("input X: [4]\nY = where(i >= j, X, 0)\noutput Y\n", 2, 5, "last two axes"),
            ("input X: [4]\nY = reduce_sum(X, axis=3)\noutput Y\n", 2, 5, "out of range"),
            ("input X: [4]\nY = reduce_sum(X, 0, axis=0)\noutput Y\n", 2, 19, "given twice"),
            ("input X: [4]\nY = reduce_sum(X, axis=0.5)\noutput Y\n", 2, 24, "expected an integer"),
            ("input X: [4]\nY = reduce_sum(X, keepdims=1)\noutput Y\n", 2, 28, "'keepdims' takes true or false"),
            ("input X: [4]\nY = matmul(X, X, transpose=true)\noutput Y\n", 2, 18, "no argument 'transpose'"),
            ("input X: [4]\nY = matmul(X)\noutput Y\n", 2, 5, "'matmul' takes 2 positional arguments, got 1"),
            ("input X: [4]\nY = exp(X, X)\noutput Y\n", 2, 5, "'exp' takes 1 positional argument, got 2"),
            ("input X: [4]\nY = softmax(axis=0, X)\noutput Y\n", 2, 21, "positional arguments must come before"),
            ("input X: [4]\nY = transpose(X, perm=1)\noutput Y\n", 2, 23, "perm must be a list"),
            ("input X: [4, 2]\nY = transpose(X, perm=[0, 0])\noutput Y\n", 2, 5, "not a permutation"),
            ("input X: [4, 2]\nY = reshape(X, [3, 3])\noutput Y\n", 2, 5, "elements"),
            ("input X: [4, 2]\nY = reshape(X, 8)\noutput Y\n", 2, 16, "expected a shape"),
            ("input X: [4]\nY = reshape(2, [1])\noutput Y\n", 2, 13, "reshape needs a tensor"),
            ("input X: [4]\nY = exp(X) + [1, 2]\noutput Y\n", 2, 14, "a list is not a tensor"),
            ("input X: [4]\nY = 2 * 3\noutput Y\n", 2, 1, "'Y' is a constant"),
            ("input X: [4]\noutput Q\n", 2, 8, "unknown tensor 'Q'"),
            ("input X: [4]\noutput X\n", 2, 8, "is an input"),
            ("input X: [4]\nY = exp(X)\noutput Y, Y\n", 3, 11, "already an output"),
            ("input X: [4]\nY = exp(X)\noutput , Y\n", 3, 8, "expected a tensor name"),
            ("input X: [4]\nY = exp(X)\noutput Y\ngraph h\n", 4, 1, "must be the first statement"),
            ("input X: [4]\nY = exp(X) exp(X)\noutput Y\n", 2, 12, "one statement per line"),
            ("input X: [4]\n= exp(X)\n", 2, 1, "expected a statement"),
            ("input X: [4]\nY = exp(1.2.3)\noutput Y\n", 2, 9, "is not a number"),
            ("input X: [4]\nY = exp(\u{0}X)\noutput Y\n", 2, 9, "U+0000"),
            ("input é: [4]\nY = exp(é) +\n", 2, 13, "expected an expression"),
            ("dim N = 1 << 3\n", 1, 12, "expected an expression"),
        ]
        for (text, line, column, message) in cases {
            guard let d = parseError(text) else {
                XCTFail("expected an error for:\n\(text)")
                continue
            }
            XCTAssertEqual(d.location, SourceLocation(line: line, column: column), "\(d) for:\n\(text)")
            XCTAssertTrue(d.message.contains(message), "'\(d.message)' should contain '\(message)'")
        }
    }

    func testDeepNestingIsAnErrorNotACrash() {
        let deep =
            "input X: [4]\nY = " + String(repeating: "(", count: 5000) + "X" + String(repeating: ")", count: 5000)
        XCTAssertTrue(parseError(deep + "\noutput Y\n")?.message.contains("nested too deeply") ?? false)
        // Parentheses around each step of a chain nest.
        let nestedChain =
            "input X: [4]\nY = " + String(repeating: "(", count: 300) + "X"
            + String(repeating: " + 1)", count: 300) + "\noutput Y\n"
        XCTAssertTrue(parseError(nestedChain)?.message.contains("nested too deeply") ?? false)
        let negations = "input X: [4]\nY = " + String(repeating: "-", count: 5000) + "X\noutput Y\n"
        XCTAssertTrue(parseError(negations)?.message.contains("nested too deeply") ?? false)
        let calls = "input X: [4]\nY = " + String(repeating: "exp(", count: 5000) + "X" + "\noutput Y\n"
        XCTAssertTrue(parseError(calls)?.message.contains("nested too deeply") ?? false)
        // A long but shallow chain within the cap parses.
        XCTAssertNoThrow(try parse("input X: [4]\nY = X" + String(repeating: " + 1", count: 150) + "\noutput Y\n"))
    }

    /// A flat chain of binary operators is not deep, however long: tensors, integers and masks.
    func testLongFlatChainsParse() throws {
        let terms = Array(repeating: "X", count: 1000).joined(separator: " + ")
        let g = try parse("input X: [4]\nY = \(terms)\noutput Y\n")
        XCTAssertEqual(opKinds(g).filter { $0 != "input" }.count, 999)
        let mixed = try parse("input X: [4]\nY = X" + String(repeating: " * 2 - X / 3", count: 2000) + "\noutput Y\n")
        XCTAssertEqual(opKinds(mixed).filter { $0 != "input" }.count, 6000)
        let dims = try parse(
            "dim N = 1" + String(repeating: " + 1", count: 5000) + "\ninput X: [N]\nY = exp(X)\noutput Y\n")
        XCTAssertEqual(dims[dims.inputs[0]].shape, [5001])
        let mask = Array(repeating: "i - j + 1 - 1 >= 0", count: 1000).joined(separator: " && ")
        XCTAssertNoThrow(try parse("input X: [4, 4]\nY = where(\(mask), X, 0)\noutput Y\n"))
        // Chains of chains: each parenthesised level counts once.
        let inner = "(" + Array(repeating: "X", count: 500).joined(separator: " + ") + ")"
        let outer = Array(repeating: inner, count: 50).joined(separator: " * ")
        XCTAssertNoThrow(try parse("input X: [4]\nY = \(outer)\noutput Y\n"))
    }

    /// NumPy-style subscripts are sugar for `slice`: `...` stands for the unnamed axes, omitted
    /// bounds are the axis's ends, negative bounds count from the end, dims and arithmetic work.
    func testSubscriptsAreSlices() throws {
        let g = try parse(
            """
            dim N = 32
            dim d = 16
            input Q: [4, N, d]
            A = Q[..., d/2:]
            B = Q[1:3, :, -4:]
            C = Q[:, 0:N - 8]
            D = concat([A, Q[..., :d/2]], axis=-1)
            output A
            output B
            output C
            output D
            """)
        XCTAssertEqual(
            opKinds(g), ["input", "slice2@8", "slice0@1", "slice2@12", "slice1@0", "slice2@0", "concat2@2"])
        XCTAssertEqual(g.outputs.map { g[$0].shape }, [[4, 32, 8], [2, 32, 4], [4, 24, 16], [4, 32, 16]])
        // The printed form parses back to the same graph.
        let text = GraphPrinter.print(g)
        XCTAssertTrue(text.contains("slice(Q, axis=2, start=8, end=16)"), text)
        XCTAssertEqual(GraphPrinter.print(try GraphParser.parse(text, defaultName: "x")), text)
    }

    /// What the subscripts cannot say is named, at the place it is written.
    func testUnsupportedSubscriptsAreNamed() {
        let cases: [(String, SourceLocation, String)] = [
            ("O = Q[:, 0:16:2]", SourceLocation(line: 3, column: 14), "slicing with a step is not supported"),
            ("O = Q[:, 3]", SourceLocation(line: 3, column: 10), "indexing with a single position is not supported"),
            ("O = Q[..., ..., 0:2]", SourceLocation(line: 3, column: 12), "only one '...'"),
            ("O = Q[:, 20:40]", SourceLocation(line: 3, column: 10), "empty or out of range"),
            ("O = Q[:, 5:2]", SourceLocation(line: 3, column: 10), "empty or out of range"),
            ("O = slice(Q, axis=1, start=0, end=4, step=2)", SourceLocation(line: 3, column: 43), "with a step"),
            ("O = concat(Q, Q[:, 0:4], axis=0)", SourceLocation(line: 3, column: 5), "differ on another axis"),
            ("O = concat(Q, Q, axis=2)", SourceLocation(line: 3, column: 5), "out of range"),
            ("O = slice(Q, axis=1)", SourceLocation(line: 3, column: 5), "slice needs start= and end="),
        ]
        for (line, location, message) in cases {
            let d = parseError("dim N = 32\ninput Q: [N, N]\n\(line)\noutput O\n")
            XCTAssertEqual(d?.location, location, line)
            XCTAssertTrue(d?.message.contains(message) ?? false, "\(line): \(String(describing: d))")
        }
    }

    func testHugeBroadcastIsRejected() {
        let text = """
            input A: [1048576, 1, 1]
            input B: [1, 1048576, 1]
            input C: [1, 1, 1048576]
            Y = A + B + C
            output Y
            """
        let d = parseError(text)
        XCTAssertEqual(d?.location, SourceLocation(line: 4, column: 11))
        XCTAssertTrue(d?.message.contains("more than 2^40 elements") ?? false, "\(String(describing: d))")
    }

    /// `pos(x, axis)` and `i`/`j` as values: shaped like the statement's tensors, never reading them.
    func testPositions() throws {
        let text = """
            graph alibi
            dim H = 2
            input S: [H, 3, 5]
            input b: [5]
            h = pos(S, axis=0)
            A = S - exp(h) * abs(i - j) + b
            R = pos([2, 7], axis=-1) + j
            output A, R

            """
        let g = try GraphParser.parse(text, defaultName: "x")
        XCTAssertEqual(
            opKinds(g),
            ["input", "input", "pos0", "exp", "pos1", "pos2", "sub", "abs", "mul", "sub", "add", "pos1", "pos1", "add"])
        let positions = g.nodes.filter { if case .position = $0.op { true } else { false } }
        XCTAssertEqual(positions.map(\.shape), [[2, 3, 5], [2, 3, 5], [2, 3, 5], [2, 7], [2, 7]])
        XCTAssertEqual(positions.map(\.elementType), [.f32, .f32, .f32, .f32, .f32])
        XCTAssert(positions.allSatisfy { $0.op.operands.isEmpty })
        // The printer names a tensor of the same shape, or writes the shape; the text parses back.
        let printed = GraphPrinter.print(g)
        XCTAssert(printed.contains("h = pos(S, axis=0)"), printed)
        XCTAssert(printed.contains("= pos([2, 7], axis=1)"), printed)
        let again = try GraphParser.parse(printed, defaultName: "x")
        XCTAssertEqual(again, g)
        XCTAssertEqual(GraphPrinter.print(again), printed)
        // A tensor named i is the tensor, not a position.
        let named = try GraphParser.parse("input i: [3]\nY = i * 2\noutput Y\n", defaultName: "x")
        XCTAssertEqual(opKinds(named), ["input", "mul"])
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
        XCTAssertEqual(try GraphBuilder.broadcastShape([2, 1, 4], [3, 1], op: "add"), [2, 3, 4])
        XCTAssertThrowsError(try GraphBuilder.broadcastShape([2, 3], [4], op: "add"))
        let w = try b.input("W", [3, 7])
        let product = try b.matmul(x, w)
        XCTAssertEqual(b.shape(of: product), [4, 1, 7])
        let gram = try b.matmul(w, w, transposeA: true)
        XCTAssertEqual(b.shape(of: gram), [7, 7])
        let outer = try b.matmul(x, x, transposeB: true)
        XCTAssertEqual(b.shape(of: outer), [4, 1, 1])
        XCTAssertThrowsError(try b.matmul(w, w))
        XCTAssertThrowsError(try b.input("X", [2]))
        let s = try b.softmax(x, axis: -1)
        XCTAssertEqual(b.shape(of: s), [4, 1, 3])
        let four = try b.unary(.sqrt, b.constant(16))
        XCTAssertEqual(b.constantValue(of: four), 4)
        try b.output(s, name: "S")
        let g = try b.build()
        // softmax is sugar: max, sub, exp, sum, div.
        XCTAssertEqual(opKinds(g), ["input", "input", "input", "reduce_max", "sub", "exp", "reduce_sum", "div"])
        XCTAssertEqual(g.outputs.map { g[$0].name }, ["S"])
    }
}
