import BlockTestSupport
import Foundation
import XCTest

/// A command never overwrites its input or its own other output: the clash is an error
/// naming both paths, before anything is written.
final class OutputPlanTests: XCTestCase {
    var dir = ""
    var graph = ""
    var original = ""

    override func setUpWithError() throws {
        dir = CLI.temporaryDirectory("clash")
        graph = dir + "/a.graph"
        original = try String(contentsOfFile: CLI.packageRoot + "/Examples/layernorm_matmul.graph", encoding: .utf8)
        try original.write(toFile: graph, atomically: false, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func assertInputUnchanged(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(try? String(contentsOfFile: graph, encoding: .utf8), original, file: file, line: line)
    }

    func testOutputOverInputIsAnError() {
        for command in ["lower", "fuse", "explain", "dot", "report"] {
            let result = CLI.blockc([command, graph, "-o", graph])
            XCTAssertEqual(result.status, 1, command)
            XCTAssertTrue(
                result.stderr.hasPrefix("error: the output (-o) '\(graph)' would overwrite the input file '\(graph)'"),
                result.stderr)
            assertInputUnchanged()
        }
    }

    func testLinkToTheInputIsCaught() {
        XCTAssertEqual(symlink("a.graph", dir + "/link.graph"), 0)
        let result = CLI.blockc(["fuse", graph, "-o", dir + "/link.graph"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("would overwrite the input file"), result.stderr)
        // The same file reached through a linked folder.
        XCTAssertEqual(symlink(".", dir + "/here"), 0)
        let viaFolder = CLI.blockc(["fuse", dir + "/here/a.graph", "-o", graph])
        XCTAssertEqual(viaFolder.status, 1)
        assertInputUnchanged()
    }

    func testSourceAndHeaderOnOnePath() throws {
        let result = CLI.blockc(["emit-c", graph, "-o", dir + "/a.h"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(
            result.stderr.contains("the header '\(dir)/a.h' is the same file as the C source (-o) '\(dir)/a.h'"),
            result.stderr)
        XCTAssertTrue(result.stderr.contains("give -o a path ending in .c"), result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.graph"], "nothing written")
        let cuda = CLI.blockc(["emit-cuda", graph, "-o", dir + "/k.h"])
        XCTAssertEqual(cuda.status, 1)
        XCTAssertTrue(cuda.stderr.contains("is the same file as the CUDA source (-o)"), cuda.stderr)
    }

    func testRunOutputOverAnInputFile() throws {
        let out = dir + "/out"
        let first = CLI.blockc(["run", graph, "--dim", "M=8,K=8,N=8", "--output-dir", out, "--save-inputs"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/X.npy"))
        let again = CLI.blockc([
            "run", graph, "--dim", "M=8,K=8,N=8", "--output-dir", out, "--save-inputs", "--input", "X=\(out)/X.npy",
        ])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("would overwrite the input file of 'X' (--input)"), again.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/X.npy")), before)
    }
}
