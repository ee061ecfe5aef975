import BlockIR
import BlockParser
import XCTest

/// `select`, `gather` and the comparison ops in the block text: print ∘ parse is the identity,
/// the verifier checks their shapes, and the parser names what is missing.
final class SelectGatherBlockTests: XCTestCase {
    static let text = """
        program g

        tensor tok: i32[77] @global input
        tensor E: f32[101,96] @global input
        tensor X: f32[77,96] @global input
        tensor Y: f32[77,96] @global output

        kernel k0 grid(i < 2, j < 2) {
          %0 = load tok[i * 64 +: 64] : f32[64] @local
          %1 = gather E[%0, j * 64 +: 64] : f32[64,64] @local
          %2 = load X[i * 64 +: 64, j * 64 +: 64] : f32[64,64] @local
          %3 = ge %1, %2 : f32[64,64] @local
          %4 = fill 0.0 : f32[] @reg
          %5 = ne %2, %2 : f32[64,64] @local
          %6 = logical_or %3, %5 : f32[64,64] @local
          %7 = select %6, %1, %4 : f32[64,64] @local
          store %7 -> Y[i * 64 +: 64, j * 64 +: 64]
        }

        """

    func testRoundTripAndVerify() throws {
        let program = try BlockParser.parse(Self.text)
        XCTAssertEqual(BlockPrinter.print(program), Self.text)
        XCTAssertEqual(Verifier.verify(program, target: .cpu).map(\.description), [])
        guard case .gather(_, let access, _, let axis) = program.kernels[0].body[1].op else {
            return XCTFail("expected a gather")
        }
        XCTAssertEqual(axis, 0)
        XCTAssertEqual(access.count, 1)
        // The index block in the middle of the access list: a gather along axis 1.
        let middle = Self.text.replacingOccurrences(
            of: "tensor E: f32[101,96]", with: "tensor E: f32[96,101]"
        ).replacingOccurrences(
            of: "gather E[%0, j * 64 +: 64] : f32[64,64]", with: "gather E[j * 64 +: 64, %0] : f32[64,64]")
        let p2 = try BlockParser.parse(middle)
        XCTAssertEqual(BlockPrinter.print(p2), middle)
        XCTAssertEqual(Verifier.verify(p2, target: .cpu).map(\.description), [])
    }

    func testVerifierChecksShapes() throws {
        let badSelect = Self.text.replacingOccurrences(
            of: "%7 = select %6, %1, %4 : f32[64,64] @local", with: "%7 = select %0, %1, %4 : f32[64,64] @local")
        let e1 = Verifier.verify(try BlockParser.parse(badSelect), target: .cpu).map(\.description).joined(
            separator: "\n")
        XCTAssertTrue(e1.contains("operand shapes"), e1)
        let badGather = Self.text.replacingOccurrences(
            of: "%1 = gather E[%0, j * 64 +: 64] : f32[64,64] @local",
            with: "%1 = gather E[%0, j * 64 +: 32] : f32[64,64] @local")
        let e2 = Verifier.verify(try BlockParser.parse(badGather), target: .cpu).map(\.description).joined(
            separator: "\n")
        XCTAssertTrue(e2.contains("does not match the gathered shape [64, 32]"), e2)
        let rank = Self.text.replacingOccurrences(
            of: "gather E[%0, j * 64 +: 64]", with: "gather E[%0, 0, j * 64 +: 64]")
        let e3 = Verifier.verify(try BlockParser.parse(rank), target: .cpu).map(\.description).joined(separator: "\n")
        XCTAssertTrue(e3.contains("give one index per axis"), e3)
    }

    func testParserErrors() throws {
        let none = Self.text.replacingOccurrences(of: "gather E[%0, j * 64 +: 64]", with: "gather E[0, j * 64 +: 64]")
        XCTAssertThrowsError(try BlockParser.parse(none)) { error in
            let d = error as! Diagnostic
            XCTAssertTrue(d.message.contains("gather needs the index block"), d.message)
            XCTAssertEqual(d.location?.line, 10)
        }
        let two = Self.text.replacingOccurrences(of: "gather E[%0, j * 64 +: 64]", with: "gather E[%0, %0]")
        XCTAssertThrowsError(try BlockParser.parse(two)) { error in
            XCTAssertTrue((error as! Diagnostic).message.contains("one index block"), "\(error)")
        }
        let select = Self.text.replacingOccurrences(of: "select %6, %1, %4", with: "select %6, %1")
        XCTAssertThrowsError(try BlockParser.parse(select)) { error in
            XCTAssertTrue((error as! Diagnostic).message.contains("where it does not"), "\(error)")
        }
    }
}
