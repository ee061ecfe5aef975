import XCTest

@testable import BlockIR

final class IndexExprTests: XCTestCase {
    func testFloorDivisionRoundsDown() {
        XCTAssertEqual(IndexExpr.floorDiv(.constant(-1), 64).evaluate([:]), -1)
        XCTAssertEqual(IndexExpr.floorDiv(.constant(127), 64).evaluate([:]), 1)
    }

    func testPrintingParenthesizes() {
        let e = IndexExpr.floorDiv(.add(.mul(.v("i"), 64), .constant(63)), 128)
        XCTAssertEqual(e.description, "(i * 64 + 63) / 128")
        XCTAssertEqual(IndexExpr.mul(.add(.v("i"), .constant(1)), 64).description, "(i + 1) * 64")
    }
}
