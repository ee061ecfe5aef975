import BlockTestSupport
import Foundation
import XCTest

/// Goldens of the printed block program of every example after lowering, at full size; each
/// golden also parses back to itself (`blockc lower X.block` prints the same text).
final class GoldenTests: XCTestCase {
    static let examples = ["attention", "attention_causal", "layernorm_matmul", "rmsnorm_swiglu", "transformer_layer"]

    func testLoweredExamples() throws {
        for example in Self.examples {
            let golden = "\(CLI.packageRoot)/Tests/Golden/lower/\(example).block"
            let result = CLI.blockc(["lower", "Examples/\(example).graph"])
            XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
            assertGolden(result.stdout, path: golden)
        }
    }

    func testGoldensRoundTrip() throws {
        for example in Self.examples {
            let golden = "Tests/Golden/lower/\(example).block"
            guard let text = try? String(contentsOfFile: "\(CLI.packageRoot)/\(golden)", encoding: .utf8) else {
                XCTFail("missing golden \(golden)")
                continue
            }
            let result = CLI.blockc(["lower", golden])
            XCTAssertEqual(result.status, 0, "\(golden): \(result.stderr)")
            XCTAssertEqual(
                result.stdout, text, "\(golden) does not print back to itself:\n" + lineDiff(text, result.stdout))
        }
    }
}
