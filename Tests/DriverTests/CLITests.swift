import BlockTestSupport
import Foundation
import XCTest

/// The command line: help, diagnostics with file:line:col and a caret, exit statuses, report.
final class CLITests: XCTestCase {
    static let subcommands = [
        "lower", "fuse", "schedule", "explain", "run", "report", "check", "dot", "emit-c", "emit-cuda", "build",
        "verify", "bench", "tune", "peak", "import",
    ]

    func testHelpOnEverySubcommand() {
        let overview = CLI.blockc(["--help"])
        XCTAssertEqual(overview.status, 0)
        for sub in Self.subcommands {
            XCTAssertTrue(overview.stdout.contains("  \(sub) "), "overview lists \(sub)")
            let help = CLI.blockc([sub, "--help"])
            XCTAssertEqual(help.status, 0, sub)
            XCTAssertTrue(help.stdout.hasPrefix("USAGE: blockc \(sub)"), help.stdout)
            XCTAssertTrue(help.stdout.contains("--help"), help.stdout)
        }
    }

    func testNoArgumentsAndUnknownSubcommand() {
        XCTAssertEqual(CLI.blockc([]).status, 1)
        let bad = CLI.blockc(["frobnicate"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("unknown subcommand 'frobnicate'"), bad.stderr)
    }

    func testUnknownOptionAndMissingFile() {
        let opt = CLI.blockc(["lower", "--frob", "Examples/attention.graph"])
        XCTAssertEqual(opt.status, 1)
        XCTAssertTrue(opt.stderr.contains("unknown option '--frob'"), opt.stderr)
        let missing = CLI.blockc(["lower", "Examples/nope.graph"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("cannot read 'Examples/nope.graph'"), missing.stderr)
        let noFile = CLI.blockc(["check"])
        XCTAssertEqual(noFile.status, 1)
        XCTAssertTrue(noFile.stderr.contains("needs an input file"), noFile.stderr)
    }

    func testGraphParseErrorHasLocationAndCaret() throws {
        let dir = CLI.temporaryDirectory("diag")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/bad.graph"
        try "dim N = 4\ninput X: [N, N]\nY = exp(Z)\noutput Y\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = CLI.blockc(["check", path])
        XCTAssertEqual(result.status, 1)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertTrue(lines[0].hasPrefix("\(path):3:9: error: "), result.stderr)
        XCTAssertEqual(lines.count >= 3 ? String(lines[1]) : "", "Y = exp(Z)")
        XCTAssertEqual(lines.count >= 3 ? String(lines[2]) : "", "        ^")
    }

    func testBlockParseErrorHasLocation() throws {
        let dir = CLI.temporaryDirectory("diagb")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/bad.block"
        try
            "program p\n\ntensor X: f32[4] @global input\ntensor Y: f32[4] @global output\n\nkernel k grid(i < 1) {\n  store %9 -> Y[0 +: 4]\n}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = CLI.blockc(["check", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("\(path):7:"), result.stderr)
        XCTAssertTrue(result.stderr.contains("%9"), result.stderr)
    }

    func testBlockVerifierErrorHasLocation() throws {
        let dir = CLI.temporaryDirectory("diagv")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/bad.block"
        try
            "program p\n\ntensor X: f32[4] @global input\ntensor Y: f32[4] @global output\n\nkernel k grid(i < 1) {\n  %0 = load X[0 +: 4] : f32[4] @local\n  store %0 -> Y[2 +: 4]\n}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = CLI.blockc(["check", path])
        XCTAssertEqual(result.status, 1)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(
            lines.first.map(String.init),
            "\(path):4:8: error: no store writes Y[0 ..< 2] of output 'Y'; store every element of every output once")
        XCTAssertEqual(lines.count >= 3 ? String(lines[1]) : "", "tensor Y: f32[4] @global output")
        let reg = "\(dir)/reg.block"
        try
            "program p\n\ntensor X: f32[4] @global input\ntensor Y: f32[4] @global output\n\nkernel k grid(i < 1) {\n  %0 = load X[0 +: 4] : f32[4] @local\n  %1 = fill 0.0 : f32[4096,4096] @reg\n  store %0 -> Y[0 +: 4]\n}\n"
            .write(toFile: reg, atomically: true, encoding: .utf8)
        let regResult = CLI.blockc(["check", reg, "--target", "sm_90"])
        XCTAssertEqual(regResult.status, 1)
        XCTAssertTrue(regResult.stderr.hasPrefix("\(reg):6:1: error: kernel k: reg tier needs"), regResult.stderr)
    }

    func testBadDimOverride() {
        let unknown = CLI.blockc(["lower", "Examples/attention.graph", "--dim", "Q=3"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("Q"), unknown.stderr)
        let bad = CLI.blockc(["lower", "Examples/attention.graph", "--dim", "N=abc"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("positive integer"), bad.stderr)
    }

    func testBlockOverrideChangesBlocks() {
        let result = CLI.blockc(["lower", "Examples/attention.graph", "--dim", "N=256", "--block", "i=32,j=128,k=16"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("i * 32 +: 32"), result.stdout)
        XCTAssertTrue(result.stdout.contains("j * 128 +: 128"), result.stdout)
        XCTAssertTrue(result.stdout.contains("k * 16 +: 16"), result.stdout)
    }

    func testPrintAfterStages() {
        let result = CLI.blockc(["lower", "Examples/attention.graph", "--print-after=parse", "--print-after=lower"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("// after parse\ngraph attention"), result.stderr)
        XCTAssertTrue(result.stderr.contains("// after lower\nprogram attention"), result.stderr)
        // Every stage of the pipeline, in order, through emit.
        let all =
            ["emit-c", "Examples/attention.graph", "--dim", "N=64,BH=1"]
            + [
                "parse", "lower", "fuse", "schedule", "emit",
            ].map { "--print-after=" + $0 }
        let every = CLI.blockc(all)
        XCTAssertEqual(every.status, 0, every.stderr)
        let positions = ["parse", "lower", "fuse", "schedule", "emit"].map {
            every.stderr.range(of: "// after \($0)\n")?.lowerBound
        }
        XCTAssertFalse(positions.contains(nil), every.stderr)
        XCTAssertEqual(positions.compactMap { $0 }, positions.compactMap { $0 }.sorted())
        XCTAssertTrue(every.stderr.contains("// after schedule\nschedule for cpu: 1 kernel(s)"), every.stderr)
        XCTAssertTrue(every.stderr.contains("// after emit\n/* attention.c: generated by blockc"), every.stderr)
    }

    func testCheckPrintsOk() {
        for example in Examples.names {
            let result = CLI.blockc(["check", "Examples/\(example).graph"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stdout.contains(": ok ("), result.stdout)
        }
    }

    /// The N×N scores of naive attention go through global memory: some kernel writes them and
    /// a later one reads them.
    func testReportShowsScoresInGlobalMemory() throws {
        let result = CLI.blockc(["report", "--json", "--stage", "lower", "Examples/attention.graph"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let kernels = json["kernels"] as! [[String: Any]]
        let scoreBytes = 8 * 1024 * 1024 * 4
        let writers = kernels.filter { ($0["global_write_bytes"] as! Int) >= scoreBytes }
        let readers = kernels.filter { ($0["global_read_bytes"] as! Int) >= scoreBytes }
        XCTAssertGreaterThanOrEqual(writers.count, 4, "kernels writing N×N tensors: \(writers.map { $0["name"]! })")
        XCTAssertGreaterThanOrEqual(readers.count, 4)
        let matmul = kernels.first { ($0["name"] as! String).contains("matmul") }!
        // 2 per multiply-add of the dot, plus the accumulating add (one block of k: d = 64).
        XCTAssertEqual(matmul["flops"] as! Int, 2 * 8 * 1024 * 1024 * 64 + 8 * 1024 * 1024)
        XCTAssertEqual(matmul["global_write_bytes"] as! Int, scoreBytes)
        let total = json["total"] as! [String: Any]
        let sum = kernels.reduce(0) { $0 + ($1["global_read_bytes"] as! Int) }
        XCTAssertEqual(total["global_read_bytes"] as! Int, sum)
    }

    func testRunRejectsBadInputs() throws {
        let dir = CLI.temporaryDirectory("badin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let unknown = CLI.blockc(["run", "Examples/attention.graph", "--dim", "N=8", "--input", "Z=\(dir)/z.npy"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("no input 'Z'"), unknown.stderr)
        // A float64 file is rejected with a message naming the dtype.
        let make = CLI.run(
            "/usr/bin/env", ["python3", "-c", "import numpy as np; np.save('\(dir)/q.npy', np.zeros((8, 8, 64)))"])
        XCTAssertEqual(make.status, 0, make.stderr)
        let wrong = CLI.blockc(["run", "Examples/attention.graph", "--dim", "N=8", "--input", "Q=\(dir)/q.npy"])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("<f8"), wrong.stderr)
    }
}

/// `blockc dot` draws programs before and after fusion.
final class DotTests: XCTestCase {
    func testDotBeforeAndAfterFusion() {
        let before = CLI.blockc(["dot", "--stage", "lower", "Examples/attention.graph"])
        XCTAssertEqual(before.status, 0, before.stderr)
        XCTAssertTrue(before.stdout.hasPrefix("digraph \"attention\" {"), before.stdout)
        XCTAssertEqual(before.stdout.components(separatedBy: "subgraph cluster_k").count - 1 >= 8, true)
        XCTAssertTrue(before.stdout.contains("S\\n8×1024×1024 @global"), "the scores are a global tensor")
        let after = CLI.blockc(["dot", "Examples/attention.graph"])
        XCTAssertEqual(after.status, 0, after.stderr)
        XCTAssertFalse(after.stdout.contains("@global (view"), after.stdout)
        XCTAssertFalse(after.stdout.contains("S\\n8×1024×1024"), "no scores in global memory after fusion")
        XCTAssertTrue(
            after.stdout.contains("carries f32[64] @local, f32[64] @local, f32[64,64] @local"),
            "attention streams K and V within the local tier: no coarsening")
    }
}
