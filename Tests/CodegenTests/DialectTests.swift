import BlockIR
import Codegen
import XCTest

/// The dialect spells every op, and the emitter's output is deterministic.
final class DialectTests: XCTestCase {
    func testEveryOpHasASpelling() {
        for op in UnaryOp.allCases { XCTAssertNotNil(Dialect.c.unaryTemplates[op], "no C spelling for \(op)") }
        for op in BinaryOp.allCases { XCTAssertNotNil(Dialect.c.binaryTemplates[op], "no C spelling for \(op)") }
        for op in ReduceOp.allCases { XCTAssertNotNil(Dialect.c.reduceTemplates[op], "no C spelling for \(op)") }
    }

    func testCodeWriterIndents() {
        var w = CodeWriter()
        w.block("if (x)") { w in
            w.line("y = 1;")
            w.line()
        }
        XCTAssertEqual(w.text, "if (x) {\n    y = 1;\n\n}\n")
    }
}
