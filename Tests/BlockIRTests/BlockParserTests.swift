import BlockIR
import BlockParser
import XCTest

final class BlockParserTests: XCTestCase {
    func testSamplesRoundTrip() throws {
        for text in BlockSamples.all {
            let program = try BlockParser.parse(text)
            XCTAssertEqual(BlockPrinter.print(program), text)
            XCTAssertEqual(try BlockParser.parse(BlockPrinter.print(program)), program)
        }
    }

    func testParsedStructure() throws {
        let program = try BlockParser.parse(BlockSamples.matmul)
        XCTAssertEqual(program.name, "matmul")
        XCTAssertEqual(program.tensors.map(\.name), ["A", "B", "C"])
        XCTAssertEqual(program.tensors[2].role, .output)
        let kernel = program.kernels[0]
        XCTAssertEqual(kernel.grid, [GridAxis(IndexVar("i"), 4), GridAxis(IndexVar("j"), 6)])
        guard case .loop(let loop) = kernel.body[1].op else { return XCTFail("expected a loop") }
        XCTAssertEqual(kernel.body[1].results.map(\.id), [ValueID(1)])
        XCTAssertEqual(loop.carried.map(\.id), [ValueID(2)])
        XCTAssertEqual(loop.initial, [ValueID(0)])
        XCTAssertEqual(loop.upper, .constant(8))
        XCTAssertEqual(
            loop.body[0].op,
            .load(
                TensorID(0), [.slice(start: .mul(.v("i"), 64), size: 64), .slice(start: .mul(.v("k"), 64), size: 64)]))
        XCTAssertEqual(loop.body.last?.op, .yield([ValueID(6)]))
    }

    func testIndexBlocks() throws {
        let program = try BlockParser.parse(BlockSamples.positions)
        let body = program.kernels[0].body
        XCTAssertEqual(body[1].op, .index(.mul(.v("i"), 32), axis: 0))
        XCTAssertEqual(body[2].op, .index(.add(.mul(.v("j"), 32), .constant(5)), axis: 1))
        XCTAssertEqual(body[3].op, .index(.v("b"), axis: nil))
        XCTAssertEqual(body[3].op.operands, [])
        XCTAssertEqual(body[3].op.mnemonic, "index")
        XCTAssertEqual(Verifier.verify(program, target: .cpu), [])
        XCTAssertEqual(
            program.kernels[0].body.substitutingIndices([IndexVar("j"): .constant(2)])[2].op,
            .index(.constant(69), axis: 1))
        XCTAssertEqual(program.kernels[0].body.freeIndexVariables, [IndexVar("b"), IndexVar("i"), IndexVar("j")])
    }

    func testMaskPredicatesAndConstants() throws {
        let program = try BlockParser.parse(BlockSamples.masks)
        let body = program.kernels[0].body
        XCTAssertEqual(program.tensors[2].viewOf, TensorID(1))
        guard case .mask(_, _, _, let p1, let f1) = body[1].op, case .mask(_, _, _, let p2, let f2) = body[2].op,
            case .mask(_, let row3, _, let p3, let f3) = body[3].op, case .mask(_, _, _, let p4, let f4) = body[4].op,
            case .mask(_, let row5, let col5, let p5, let f5) = body[5].op
        else { return XCTFail("expected masks") }
        XCTAssertEqual(p1.atoms, [.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
        XCTAssertEqual(f1, -.infinity)
        XCTAssertEqual(
            p2.atoms,
            [
                .affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: 255),
                .affineZero(rowCoefficient: 1, columnCoefficient: -1, constant: 0),
            ])
        XCTAssertEqual(f2, 0)
        XCTAssertEqual(p3.atoms, [.sameSegment(boundaries: [100, 200])])
        XCTAssertEqual(row3, .add(.mul(.v("i"), 64), .constant(-3)))
        XCTAssertEqual(f3, 1e-6)
        XCTAssertEqual(
            p4.atoms,
            [.affineNonNegative(rowCoefficient: 2, columnCoefficient: -3, constant: -7), .sameSegment(boundaries: [])])
        XCTAssertEqual(f4, .infinity)
        XCTAssertEqual(p5.atoms, [])
        XCTAssertEqual(row5, .constant(-5))
        XCTAssertEqual(col5, .max(.mul(.v("j"), 64), .constant(1)))
        XCTAssertEqual(f5, -0.5)
        let edges = program.kernels[1].body
        XCTAssertEqual(
            edges[0].op,
            .load(
                TensorID(2),
                [
                    .slice(start: .min(.add(.mul(.v("i"), 64), .constant(63)), .constant(599)), size: 1),
                    .slice(start: .mul(.floorDiv(.add(.mul(.v("i"), 64), .constant(63)), 128), 2), size: 32),
                ]))
        XCTAssertEqual(edges[5].op, .dot(ValueID(1), ValueID(0), transposeA: true, transposeB: true))
    }

    /// Quotient atoms (`i/m`, `N*(j/m)`) parse to `QuotientAffine` and print back as written.
    func testQuotientPredicates() throws {
        let text = """
            program q

            tensor S: f32[20,20] @global input
            tensor P: f32[20,20] @global output

            kernel k0 grid(i < 2, j < 2) {
              %0 = load S[i * 10 +: 10, j * 10 +: 10] : f32[10,10] @local
              %1 = mask %0 at (i * 10, j * 10) if i/4 - j/4 == 0 && -(i/4) + 2*(j/4) + 2 >= 0 else -inf : f32[10,10] @local
              %2 = mask %1 at (i * 10, j * 10) if i - 2*(i/2) == 0 else 0.0 : f32[10,10] @local
              store %2 -> P[i * 10 +: 10, j * 10 +: 10]
            }

            """
        let program = try BlockParser.parse(text)
        XCTAssertEqual(BlockPrinter.print(program), text)
        guard case .mask(_, _, _, let p1, _) = program.kernels[0].body[1].op,
            case .mask(_, _, _, let p2, _) = program.kernels[0].body[2].op
        else { return XCTFail("expected masks") }
        XCTAssertEqual(
            p1.atoms,
            [
                .quotient(QuotientAffine(divisor: 4, rowQuotient: 1, columnQuotient: -1, isEquality: true)),
                .quotient(QuotientAffine(divisor: 4, rowQuotient: -1, columnQuotient: 2, constant: 2)),
            ])
        XCTAssertEqual(
            p2.atoms,
            [.quotient(QuotientAffine(divisor: 2, row: 1, rowQuotient: -2, columnQuotient: 0, isEquality: true))])
        // Written without the canonical parentheses, or with terms in another order.
        let loose = text.replacingOccurrences(of: "-(i/4) + 2*(j/4) + 2", with: "2 + 2*(j/4) - i/4")
        XCTAssertEqual(try BlockParser.parse(loose), program)
        for (bad, message) in [
            ("i/0 - j/4 == 0", "division by zero"), ("i/4 - j/3 == 0", "divides by one number only"),
            ("(i) >= 0", "expected '/'"),
        ] {
            let wrong = text.replacingOccurrences(of: "i/4 - j/4 == 0", with: bad)
            XCTAssertThrowsError(try BlockParser.parse(wrong)) { error in
                let d = error as! Diagnostic
                XCTAssertTrue(d.message.contains(message), "\(d.message) for \(bad)")
                XCTAssertEqual(d.location?.line, 8, "\(bad)")
            }
        }
    }

    func testCommentsBlankLinesAndSpacingAreAccepted() throws {
        let text = """
            // leading comment
            program   p   // the name

            tensor X : f32[ 4 , 4 ] @global input
            tensor Y: f32[4,4] @global output


            kernel k grid( i < 1 ) {   // grid
              %0 = load X[0 +: 4, 0 +: 4] : f32[4, 4] @local
              // a comment line
              %1 = exp %0 : f32[4,4] @local
              store %1 -> Y[0 +: 4, 0 +: 4]
            }
            """
        let program = try BlockParser.parse(text)
        XCTAssertEqual(
            BlockPrinter.print(program),
            """
            program p

            tensor X: f32[4,4] @global input
            tensor Y: f32[4,4] @global output

            kernel k grid(i < 1) {
              %0 = load X[0 +: 4, 0 +: 4] : f32[4,4] @local
              %1 = exp %0 : f32[4,4] @local
              store %1 -> Y[0 +: 4, 0 +: 4]
            }

            """)
    }

    func testValueNumbersAreKept() throws {
        let text = """
            program p

            tensor Y: f32[4] @global output

            kernel k grid() {
              %7 = fill 2.5 : f32[4] @local
              %3 = neg %7 : f32[4] @local
              store %3 -> Y[0 +: 4]
            }

            """
        let program = try BlockParser.parse(text)
        XCTAssertEqual(program.kernels[0].body.map { $0.results.map(\.id.number) }, [[7], [3], []])
        XCTAssertEqual(BlockPrinter.print(program), text)
    }

    // MARK: Errors

    /// Parses `text` expecting a diagnostic at `line:column` whose message contains `fragment`.
    private func assertError(
        _ text: String, _ line: Int, _ column: Int, _ fragment: String, file: StaticString = #filePath,
        sourceLine: UInt = #line
    ) {
        do {
            let p = try BlockParser.parse(text)
            XCTFail("expected an error, parsed \(p.name)", file: file, line: sourceLine)
        } catch {
            XCTAssertEqual(
                error.location, SourceLocation(line: line, column: column), "\(error)", file: file, line: sourceLine)
            XCTAssertTrue(
                error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: sourceLine
            )
        }
    }

    private let header = "program p\n\ntensor X: f32[64,64] @global input\ntensor Y: f32[64,64] @global output\n\n"

    /// A kernel with `lines` as its body, starting on line 7.
    private func kernel(_ lines: String) -> String {
        header + "kernel k grid(i < 1) {\n" + lines + "\n}\n"
    }

    func testUnknownTensor() {
        assertError(kernel("  %0 = load Sx[0 +: 64, 0 +: 64] : f32[64,64] @local"), 7, 13, "unknown tensor 'Sx'")
    }

    func testUseBeforeDefinition() {
        assertError(kernel("  %1 = exp %7 : f32[64,64] @local"), 7, 12, "value %7 is used before it is defined")
        assertError(kernel("  %1 = exp %1 : f32[64,64] @local"), 7, 12, "value %1 is used before it is defined")
    }

    func testMissingType() {
        assertError(
            kernel("  %0 = fill 0.0 : f32[64,64] @local\n  %1 = exp %0"), 8, 14,
            "expected ':' and a type after the instruction")
    }

    func testDefinedTwice() {
        assertError(
            kernel("  %3 = fill 0.0 : f32[64,64] @local\n  %3 = exp %3 : f32[64,64] @local"), 8, 3,
            "'%3' is defined twice (first on line 7)")
    }

    func testValueUsedOutsideItsLoop() {
        let body = """
              for k in 0 ..< 2 {
                %0 = fill 0.0 : f32[64,64] @local
                yield
              }
              store %0 -> Y[0 +: 64, 0 +: 64]
            """
        assertError(kernel(body), 11, 9, "not visible here")
    }

    func testLexicalErrors() {
        assertError(kernel("  %0 = fill $ : f32[] @reg"), 7, 13, "unexpected character '$'")
        assertError(kernel("  % = fill 0.0 : f32[] @reg"), 7, 3, "expected a value number after '%'")
        assertError("program p\n\ttensor X: f32[1] @global in\u{7}put\n", 2, 29, "unexpected character '\\u{7}'")
    }

    func testStructuralErrors() {
        assertError("", 1, 1, "expected 'program NAME'")
        assertError("program\n", 1, 8, "expected the program's name")
        assertError("program p q\n", 1, 11, "unexpected 'q' after the program's name")
        assertError(header + "tensor X: f32[1] @global temp\n", 6, 8, "tensor 'X' is already declared on line 3")
        assertError(header + "tensor Z: f32[1] @local temp\n", 6, 19, "write '@global'")
        assertError(header + "tensor Z: f32[1] @global scratch\n", 6, 26, "unknown tensor role 'scratch'")
        assertError(header + "tensor Z: f32[4096] @global temp view W\n", 6, 39, "unknown tensor 'W' after 'view'")
        assertError(header + "kernel k grid(i < 1) {\n", 7, 1, "missing '}' to close kernel 'k' opened on line 6")
        assertError(header + "kernel k grid(i < 1) {\n}\nkernel k grid() {\n}\n", 8, 8, "kernel 'k' is defined twice")
        assertError(
            header + "kernel k grid() {\n}\ntensor Z: f32[1] @global temp\n", 8, 1, "must come before the first kernel")
        assertError(kernel("  %0 = frob %1 : f32[] @reg"), 7, 8, "unknown instruction 'frob'")
        assertError(kernel("  exp %1"), 7, 3, "'exp' needs a result")
        assertError(kernel("  %0 = fill 0.0 : f32[] @reg\n  %1 = store %0 -> Y[0, 0]"), 8, 3, "'store' has no result")
        assertError(kernel("  yield"), 7, 3, "'yield' outside a loop")
        assertError(kernel("  for k in 0 ..< 1 {\n  }"), 8, 3, "must end with 'yield'")
        assertError(kernel("  for k in 0 ..< 1 {\n    yield\n    yield\n  }"), 9, 5, "must be the last instruction")
        assertError(
            kernel("  %0 = fill 0.0 : f32[] @reg\n  %1 = for k in 0 ..< 1 {\n    yield\n  }"), 8, 8,
            "1 results but 0 carried values")
        assertError(
            kernel("  %0 = fill 0.0 : f32[] @reg\n  %1 = for k in 0 ..< 1 iter(%2 = %0) {\n    yield %2\n  }"), 8, 39,
            "':' and one type per carried value")
        assertError(kernel("  %0 = fill 0.0 : f32[] @reg %1 = fill 0.0 : f32[] @reg"), 7, 30, "one statement per line")
    }

    func testIndexExpressionErrors() {
        assertError(kernel("  %0 = load X[q +: 64, 0 +: 64] : f32[64,64] @local"), 7, 15, "unknown index variable 'q'")
        assertError(kernel("  %0 = load X[64 * i +: 64, 0] : f32[64] @local"), 7, 20, "must be an integer constant")
        assertError(kernel("  %0 = load X[i / 0 +: 64, 0] : f32[64] @local"), 7, 19, "division by zero")
        assertError(kernel("  %0 = load X[-i +: 64, 0] : f32[64] @local"), 7, 16, "no negation")
        assertError(
            kernel("  %0 = load X[99999999999999999999 +: 64, 0] : f32[64] @local"), 7, 15, "is too large")
        assertError(kernel("  %99999999999999999999 = fill 0.0 : f32[] @reg"), 7, 3, "is too large")
    }

    func testLimits() {
        let deepExpr = String(repeating: "(", count: 150) + "0" + String(repeating: ")", count: 150)
        assertError(kernel("  %0 = load X[\(deepExpr) +: 64, 0] : f32[64] @local"), 7, 115, "nested more than 100 deep")
        var loops = ""
        for d in 0..<120 { loops += String(repeating: "  ", count: d + 1) + "for k\(d) in 0 ..< 1 {\n" }
        assertError(kernel(loops), 107, 203, "nested more than 100 deep")
        assertError(kernel("  %0 = fill 0.0 : f32[1048576,1048577] @local"), 7, 22, "more than 2^40 elements")
        assertError(header + "tensor Z: f32[4294967296,4294967296,0] @global temp\n", 6, 14, "more than 2^40 elements")
        assertError(
            kernel(
                "  %0 = fill 0.0 : f32[64,64] @local\n"
                    + "  %1 = mask %0 at (0, 0) if 9223372036854775807*i + i >= 0 else 0.0 : f32[64,64] @local"
            ),
            8, 53, "too large")
    }
}
