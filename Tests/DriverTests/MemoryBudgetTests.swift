import BlockTestSupport
import Foundation
import XCTest

/// Interpreter runs estimate their memory before allocating and stop with a clear error above
/// the limit (`--max-memory`, default half the RAM) instead of dying in a failed allocation.
final class MemoryBudgetTests: XCTestCase {
    func assertOverBudget(_ arguments: [String], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let result = CLI.blockc(arguments)
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("error: \(what) needs about "), result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.contains("more than the limit of"), result.stderr, file: file, line: line)
        XCTAssertFalse(result.stderr.contains("Fatal error"), result.stderr, file: file, line: line)
    }

    func testEveryInterpreterPathChecksBeforeAllocating() {
        let small = ["--max-memory", "8G"]
        assertOverBudget(
            ["run", "Examples/attention.graph", "--dim", "N=100000,BH=1,d=1", "--stage", "graph"] + small,
            "running 'attention' at stage graph")
        assertOverBudget(
            ["run", "Examples/attention.graph", "--dim", "N=20000", "--stage", "lower"] + small,
            "running 'attention' at stage lower")
        assertOverBudget(
            ["verify", "Examples/layernorm_matmul.graph", "--dim", "M=100000,K=100000"] + small,
            "verifying 'layernorm_matmul'")
        assertOverBudget(
            ["run", "Examples/attention.graph", "--dim", "N=64", "--stage", "fuse", "--max-memory", "64K"],
            "running 'attention' at stage fuse")
    }

    /// `verify` counts the compiled program's scratch too: attention at N=1024 holds Q, K, V and O
    /// (2 MiB each), a copy of O read back, and (on a CPU) K packed once per call, 2 MiB: 12 MiB.
    func testVerifyCountsTheOperandsPackedOncePerCall() {
        let result = CLI.blockc(["verify", "Examples/attention.graph", "--max-memory", "11M"])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("verifying 'attention' needs about 12582912 bytes"), result.stderr)
    }

    /// Without --max-memory the limit is half the machine's memory: far more than a laptop has
    /// is refused wherever the test runs.
    func testDefaultLimitIsHalfThePhysicalMemory() {
        assertOverBudget(
            ["run", "Examples/attention.graph", "--dim", "N=1000000,BH=1,d=1", "--stage", "graph"],
            "running 'attention' at stage graph")
    }

    func testMaxMemoryAcceptsSuffixes() {
        let ok = CLI.blockc(["run", "Examples/attention.graph", "--dim", "N=16,BH=1", "--max-memory", "512M"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stderr, "", "no progress output when standard error is not a terminal")
        let exact = CLI.blockc([
            "run", "Examples/attention.graph", "--dim", "N=16,BH=1,d=4", "--stage", "graph", "--max-memory", "1000",
        ])
        XCTAssertEqual(exact.status, 1)
        XCTAssertTrue(exact.stderr.contains("the limit of 1000 bytes"), exact.stderr)
        let bad = CLI.blockc(["run", "Examples/attention.graph", "--max-memory", "lots"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--max-memory lots: expected a size"), bad.stderr)
    }
}
