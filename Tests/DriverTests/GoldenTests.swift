import BlockTestSupport
import Foundation
import XCTest

/// Goldens of the printed block program of every example after lowering, at full size; each
/// golden also parses back to itself (`blockc lower X.block` prints the same text).
final class GoldenTests: XCTestCase {
    func testLoweredExamples() throws {
        for example in Examples.names {
            let golden = "\(CLI.packageRoot)/Tests/Golden/lower/\(example).block"
            let result = CLI.blockc(["lower", "Examples/\(example).graph"])
            XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
            assertGolden(result.stdout, path: golden)
        }
    }

    /// The fused program and the fusion trace of every example; fusing the fused program again
    /// changes nothing.
    func testFusedExamplesAndTraces() throws {
        for example in Examples.names {
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
        for example in Examples.names {
            for target in ["cpu", "sm_90"] {
                let result = CLI.blockc(["schedule", "Examples/\(example).graph", "--target", target])
                XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
                XCTAssertTrue(result.stdout.hasPrefix("schedule for \(target): "), result.stdout)
                assertGolden(result.stdout, path: "\(CLI.packageRoot)/Tests/Golden/schedule/\(example).\(target)")
            }
        }
    }

    /// The generated C (source and header) of every fused example. The C runtime every source
    /// starts with is compared once, with `Tests/Golden/c/runtime.c`; each example's golden holds
    /// the rest of its source, a marker line in the runtime's place (`GeneratedSource`).
    func testGeneratedC() throws {
        let dir = CLI.temporaryDirectory("emitc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var runtimes: [(example: String, text: String)] = []
        for example in Examples.names {
            let result = CLI.blockc(["emit-c", "Examples/\(example).graph", "-o", "\(dir)/\(example).c"])
            XCTAssertEqual(result.status, 0, "\(example): \(result.stderr)")
            for ext in ["c", "h"] {
                var text = (try? String(contentsOfFile: "\(dir)/\(example).\(ext)", encoding: .utf8)) ?? ""
                XCTAssertFalse(text.isEmpty, "\(example).\(ext) was not written")
                if ext == "c" {
                    guard let split = GeneratedSource.split(text, runtimeGolden: "Tests/Golden/c/runtime.c") else {
                        XCTFail("\(example).c: no runtime between the markers of GeneratedSource")
                        continue
                    }
                    runtimes.append((example, split.runtime))
                    XCTAssertEqual(
                        GeneratedSource.join(
                            runtime: split.runtime, program: split.program, runtimeGolden: "Tests/Golden/c/runtime.c"),
                        text,
                        "\(example): the split loses text")
                    text = split.program
                }
                assertGolden(text, path: "\(CLI.packageRoot)/Tests/Golden/c/\(example).\(ext)")
            }
        }
        Self.assertOneRuntime(runtimes, golden: "\(CLI.packageRoot)/Tests/Golden/c/runtime.c")
    }

    /// Every source carries the same runtime, which matches its golden.
    static func assertOneRuntime(
        _ runtimes: [(example: String, text: String)], golden: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        guard let first = runtimes.first else { return XCTFail("no runtime found", file: file, line: line) }
        assertGolden(first.text, path: golden, file: file, line: line)
        for r in runtimes.dropFirst() where r.text != first.text {
            XCTFail(
                "\(r.example): its runtime differs from \(first.example)'s:\n" + lineDiff(first.text, r.text),
                file: file,
                line: line)
        }
    }

    func testGoldensRoundTrip() throws {
        for example in Examples.names {
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
