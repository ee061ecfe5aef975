import BlockTestSupport
import Foundation
import XCTest

/// Goldens of the printed block program of every example after lowering, at full size; each
/// golden also parses back to itself (`blockc lower X.block` prints the same text).
final class GoldenTests: XCTestCase {
    static let examples = [
        "attention", "attention_causal", "attention_sliding_window", "attention_documents", "layernorm_matmul",
        "rmsnorm_swiglu", "transformer_layer",
    ]

    func testLoweredExamples() throws {
        for example in Self.examples {
            let golden = "\(CLI.packageRoot)/Tests/Golden/lower/\(example).block"
            let result = CLI.blockc(["lower", "Examples/\(example).graph"])
            XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
            assertGolden(result.stdout, path: golden)
        }
    }

    /// The fused program and the fusion trace of every example; fusing the fused program again
    /// changes nothing.
    func testFusedExamplesAndTraces() throws {
        for example in Self.examples {
            let fused = CLI.blockc(["fuse", "Examples/\(example).graph"])
            XCTAssertEqual(fused.status, 0, "\(example): \(fused.stderr)")
            assertGolden(fused.stdout, path: "\(CLI.packageRoot)/Tests/Golden/fuse/\(example).block")
            let explain = CLI.blockc(["explain", "Examples/\(example).graph"])
            XCTAssertEqual(explain.status, 0, "\(example): \(explain.stderr)")
            assertGolden(explain.stdout, path: "\(CLI.packageRoot)/Tests/Golden/fuse/\(example).trace")
            let again = CLI.blockc(["fuse", "Tests/Golden/fuse/\(example).block"])
            XCTAssertEqual(again.status, 0, "\(example): \(again.stderr)")
            XCTAssertEqual(again.stdout, fused.stdout, "\(example): fusing the fused program changed it")
        }
    }

    /// The schedule of every fused example for the CPU and for sm_90: block sizes (row
    /// coarsening), storage, buffers, micro-kernels and launches, as the emitters render them.
    func testSchedules() throws {
        for example in Self.examples {
            for target in ["cpu", "sm_90"] {
                let result = CLI.blockc(["schedule", "Examples/\(example).graph", "--target", target])
                XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
                XCTAssertTrue(result.stdout.hasPrefix("schedule for \(target): "), result.stdout)
                assertGolden(result.stdout, path: "\(CLI.packageRoot)/Tests/Golden/schedule/\(example).\(target)")
            }
        }
    }

    /// The generated C (source and header) of every fused example.
    func testGeneratedC() throws {
        let dir = CLI.temporaryDirectory("emitc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for example in Self.examples {
            let result = CLI.blockc(["emit-c", "Examples/\(example).graph", "-o", "\(dir)/\(example).c"])
            XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
            for ext in ["c", "h"] {
                let text = (try? String(contentsOfFile: "\(dir)/\(example).\(ext)", encoding: .utf8)) ?? ""
                XCTAssertFalse(text.isEmpty, "\(example).\(ext) was not written")
                assertGolden(text, path: "\(CLI.packageRoot)/Tests/Golden/c/\(example).\(ext)")
            }
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
