import BlockIR
import Graph
import XCTest

/// `cumsum` in the graph form: parsing, the builder, printing (round trip) and diagnostics.
final class CumsumTests: XCTestCase {
    func parse(_ text: String) throws -> Graph { try GraphParser.parse(text, defaultName: "g") }

    func testParsesEveryFormAndPrintsBack() throws {
        let text = """
            graph g
            input X: [3, 5, 7]
            A = cumsum(X)
            B = cumsum(X, axis=1, reverse=true)
            C = cumsum(X, 0, exclusive=true)
            D = cumsum(X, axis=-1, reverse=true, exclusive=true)
            output A, B, C, D

            """
        let g = try parse(text)
        let ops = ["A", "B", "C", "D"].map { try? XCTUnwrap(g.node(named: $0)).op }
        guard case .cumsum(_, 2, false, false)? = ops[0], case .cumsum(_, 1, true, false)? = ops[1],
            case .cumsum(_, 0, false, true)? = ops[2], case .cumsum(_, 2, true, true)? = ops[3]
        else { return XCTFail("\(ops)") }
        XCTAssertEqual(g.node(named: "D")?.shape, [3, 5, 7])
        let printed = GraphPrinter.print(g)
        XCTAssertTrue(printed.contains("D = cumsum(X, axis=2, reverse=true, exclusive=true)"), printed)
        XCTAssertTrue(printed.contains("A = cumsum(X, axis=2)"), printed)
        XCTAssertEqual(GraphPrinter.print(try parse(printed)), printed)
    }

    func testBuilderMatchesTheTextForm() throws {
        var b = GraphBuilder(name: "g")
        let x = try b.input("X", [3, 5, 7])
        try b.output(try b.cumsum(x, axis: -2, reverse: true, exclusive: true), name: "Y")
        let built = try b.build()
        let parsed = try parse(
            "graph g\ninput X: [3, 5, 7]\nY = cumsum(X, axis=1, reverse=true, exclusive=true)\noutput Y\n")
        XCTAssertEqual(GraphPrinter.print(built), GraphPrinter.print(parsed))
    }

    /// Bad arguments are located at the argument (or the call) and say what to write.
    func testBadArgumentsAreLocated() {
        let cases: [(String, SourceLocation, String)] = [
            ("Y = cumsum(X, axis=3)", SourceLocation(line: 3, column: 5), "cumsum: axis 3 is out of range for rank 2"),
            ("Y = cumsum(X, reverse=1)", SourceLocation(line: 3, column: 23), "'reverse' takes true or false"),
            ("Y = cumsum(X, exclusive=yes)", SourceLocation(line: 3, column: 25), "'exclusive' takes true or false"),
            ("Y = cumsum(X, axis=0.5)", SourceLocation(line: 3, column: 20), "expected an integer"),
            ("Y = cumsum(X, 0, axis=0)", SourceLocation(line: 3, column: 15), "given twice"),
            ("Y = cumsum(X, inclusive=true)", SourceLocation(line: 3, column: 15), "no argument 'inclusive'"),
            ("Y = cumsum(I)", SourceLocation(line: 3, column: 5), "not defined on i32"),
        ]
        for (line, location, message) in cases {
            do {
                _ = try GraphParser.parse(
                    "input X: [4, 6]\ninput I: i32[4]\n\(line)\noutput Y\n", defaultName: "g")
                XCTFail("\(line): no error")
            } catch {
                XCTAssertEqual(error.location, location, "\(line): \(error)")
                XCTAssertTrue(error.message.contains(message), "\(line): \(error)")
            }
        }
    }
}
