import BlockIR
import BlockParser
import XCTest

/// The block-level `scan_sum` / `scan_max` op: text round trip, parse errors and the verifier.
final class ScanOpTests: XCTestCase {
    func program(_ op: String, type: String = "f32[8,16]") -> String {
        """
        program scan

        tensor X: f32[8,16] @global input
        tensor Y: f32[8,16] @global output

        kernel k0 grid(i < 1) {
          %0 = load X[0 +: 8, 0 +: 16] : f32[8,16] @local
          %1 = \(op) : \(type) @local
          store %1 -> Y[0 +: 8, 0 +: 16]
        }

        """
    }

    func testRoundTrip() throws {
        for op in [
            "scan_sum %0 axis 1", "scan_sum %0 axis 0 reverse", "scan_max %0 axis 1 exclusive",
            "scan_sum %0 axis 1 reverse exclusive",
        ] {
            let text = program(op)
            let parsed = try BlockParser.parse(text)
            XCTAssertEqual(BlockPrinter.print(parsed), text)
            XCTAssertEqual(Verifier.verify(parsed, target: .cpu), [], op)
        }
        let parsed = try BlockParser.parse(program("scan_sum %0 axis 1 reverse exclusive"))
        XCTAssertEqual(
            parsed.kernels[0].body[1].op, .scan(.sum, ValueID(0), axis: 1, reverse: true, exclusive: true))
    }

    func testFlagsInOrderOnce() {
        for (op, message) in [
            ("scan_sum %0 axis 1 exclusive reverse", "write 'reverse' once, before 'exclusive'"),
            ("scan_sum %0 axis 1 exclusive exclusive", "'exclusive' is given twice"),
            ("scan_sum %0 reverse", "'axis K' after the operand of scan_sum"),
        ] {
            XCTAssertThrowsError(try BlockParser.parse(program(op)), op) { error in
                XCTAssertTrue("\(error)".contains(message), "\(op): \(error)")
                XCTAssertEqual((error as? Diagnostic)?.location?.line, 8, op)
            }
        }
    }

    func testVerifierChecksAxisAndShape() throws {
        let bad = try BlockParser.parse(program("scan_sum %0 axis 2"))
        XCTAssertTrue(
            Verifier.verify(bad, target: .cpu).contains { $0.message.contains("scan axis 2 is out of range") })
        let shape = try BlockParser.parse(program("scan_sum %0 axis 1", type: "f32[8]"))
        XCTAssertFalse(Verifier.verify(shape, target: .cpu).isEmpty)
    }
}
