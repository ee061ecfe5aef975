import BlockIR
import Graph
import Interpreter
import XCTest

/// `same_segment(i, j, offsets)` with an i32 tensor of document boundaries (cu_seqlens): the
/// graph interpreter keeps exactly the pairs in one document, for sorted offsets with an empty
/// document and for unsorted ones (a well-defined segmentation, never a read out of range).
final class RuntimeSegmentTests: XCTestCase {
    static let text = """
        input X: [5, 5]
        input offsets: i32[4]
        Y = where(same_segment(i, j, offsets) && i >= j, X, 0)
        output Y
        """

    func testDocumentsFromOffsets() throws {
        let g = try GraphParser.parse(Self.text, defaultName: "g")
        let x = NDArray(shape: [5, 5], data: (0..<25).map { Float($0 + 1) })
        // Position p's document: the number of starts offsets[1], offsets[2] at or before p.
        for (offsets, document) in [([0, 2, 2, 5], [0, 0, 2, 2, 2]), ([0, 1, 4, 5], [0, 1, 1, 1, 2])]
            as [([Float], [Int])]
        {
            let y = try GraphInterpreter.run(
                g, inputs: ["X": x, "offsets": NDArray(shape: [4], data: offsets, elementType: .i32)])["Y"]!
            for r in 0..<5 {
                for c in 0..<5 {
                    let kept = document[r] == document[c] && r >= c
                    XCTAssertEqual(y.data[r * 5 + c], kept ? Float(r * 5 + c + 1) : 0, "\(offsets) (\(r), \(c))")
                }
            }
        }
    }

    /// Offsets that decrease, or leave 0 ... 5, stop the interpreter with a message naming the element.
    func testBadOffsetsAreAnError() throws {
        let g = try GraphParser.parse(Self.text, defaultName: "g")
        XCTAssertEqual(g.offsetInputs, ["offsets": 5])
        let x = NDArray(shape: [5, 5], data: (0..<25).map { Float($0 + 1) })
        for (offsets, message) in [
            ([0, 4, 1, 5], "element 2 (1) is below element 1 (4)"), ([0, 2, 2, 6], "element 3 is 6"),
        ]
            as [([Float], String)]
        {
            let inputs = ["X": x, "offsets": NDArray(shape: [4], data: offsets, elementType: .i32)]
            XCTAssertThrowsError(try GraphInterpreter.run(g, inputs: inputs)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testOffsetsMustBeI32() {
        let text = "input X: [4, 4]\ninput o: [3]\nY = where(same_segment(i, j, o), X, 0)\noutput Y\n"
        XCTAssertThrowsError(try GraphParser.parse(text, defaultName: "g")) { error in
            XCTAssertTrue("\(error)".contains("from an i32 tensor of D + 1 offsets"), "\(error)")
        }
    }
}
