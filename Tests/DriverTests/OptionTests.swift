import BlockTestSupport
import Foundation
import XCTest

/// Options and their messages: help layout, sizes, repeated keys, output folders, `-o` of
/// `verify` and `bench`, and scratch folders that never outlive a run.
final class OptionTests: XCTestCase {
    var dir = ""

    override func setUp() { dir = CLI.temporaryDirectory("opts") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testOverviewSeparatesEveryNameFromItsSummary() {
        let overview = CLI.blockc(["--help"]).stdout
        XCTAssertTrue(overview.contains("  emit-cuda  write the program as CUDA"), overview)
        for name in CLITests.subcommands + ["emit-cuda"] {
            XCTAssertTrue(overview.contains("  \(name)  "), "\(name) is followed by two spaces:\n\(overview)")
        }
    }

    func testDimTooLargeSaysSo() {
        let result = CLI.blockc(["lower", "Examples/attention.graph", "--dim", "N=99999999999999999999"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("--dim N=99999999999999999999: the value is too large"), result.stderr)
        let block = CLI.blockc(["lower", "Examples/attention.graph", "--block", "i=99999999999999999999"])
        XCTAssertTrue(block.stderr.contains("is too large"), block.stderr)
        let negative = CLI.blockc(["lower", "Examples/attention.graph", "--dim", "N=-3"])
        XCTAssertTrue(negative.stderr.contains("must be a positive integer"), negative.stderr)
    }

    /// `--cores N` is the plan's core count: it overrides `BLOCKC_CORES` (which the tests pin),
    /// a grid of fewer instances has its reduction split (R15), and a bad count is an error.
    func testCoresDecideTheSplit() {
        let args = ["fuse", "Examples/decode_attention.graph", "--dim", "BH=2,N=1001,d=32"]
        let pinned = CLI.blockc(args)
        XCTAssertEqual(pinned.status, 0, pinned.stderr)
        XCTAssertTrue(pinned.stdout.contains("kernel k7_matmul_O_split grid(b0 < 2, j < 1, s < 4)"), pinned.stdout)
        let filled = CLI.blockc(args + ["--cores", "2"])
        XCTAssertEqual(filled.status, 0, filled.stderr)
        XCTAssertFalse(filled.stdout.contains("_split"), "2 instances fill 2 cores:\n\(filled.stdout)")
        let environment = CLI.blockc(args, environment: ["BLOCKC_CORES": "2"])
        XCTAssertEqual(environment.stdout, filled.stdout, "BLOCKC_CORES=2 is --cores 2")
        for bad in ["0", "-1", "many"] {
            let result = CLI.blockc(args + ["--cores", bad])
            XCTAssertEqual(result.status, 1, bad)
            XCTAssertTrue(result.stderr.contains("--cores \(bad): expected a positive number of cores"), result.stderr)
        }
    }

    func testRepeatedKeysAreErrors() {
        for arguments in [
            ["--dim", "N=8,N=16"], ["--dim", "N=8", "--dim", "BH=1,N=16"],
            ["--input", "Q=a.npy", "--input", "Q=b.npy"],
            ["--block", "i=8,i=16"],
        ] {
            let result = CLI.blockc(["run", "Examples/attention.graph"] + arguments)
            XCTAssertEqual(result.status, 1, "\(arguments)")
            let key = arguments[1].split(separator: "=")[0]
            XCTAssertTrue(
                result.stderr.hasPrefix("error: \(arguments[0]) \(key) is given more than once"),
                "\(arguments): \(result.stderr)")
        }
    }

    func testOutputDirUnderAFileSaysWhich() throws {
        try "x".write(toFile: dir + "/afile", atomically: false, encoding: .utf8)
        let result = CLI.blockc([
            "run", "Examples/attention.graph", "--dim", "N=8,BH=1", "--output-dir", dir + "/afile/sub",
        ])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("'\(dir)/afile' is a file, not a folder"), result.stderr)
        XCTAssertFalse(result.stderr.contains("NSCocoaErrorDomain"), result.stderr)
    }

    func testVerifyAndBenchWriteTheirReportToO() throws {
        let verify = CLI.blockc([
            "verify", "Examples/layernorm_matmul.graph", "--dim", "M=64,K=64,N=64", "-o", dir + "/verify.txt",
        ])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertEqual(verify.stdout, "")
        let report = try String(contentsOfFile: dir + "/verify.txt", encoding: .utf8)
        XCTAssertTrue(report.contains("max abs error") && report.hasSuffix("ok\n"), report)
        let bench = CLI.blockc([
            "bench", "Examples/layernorm_matmul.graph", "--dim", "M=64,K=64,N=64", "--reps", "1", "-o",
            dir + "/bench.txt",
        ])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        XCTAssertEqual(bench.stdout, "")
        let line = try String(contentsOfFile: dir + "/bench.txt", encoding: .utf8)
        XCTAssertTrue(line.contains("median"), line)
        // Without --peak the percentage is of this host's peak, measured in the same run.
        XCTAssertTrue(line.contains(" GFLOP/s peak (measured, the higher before and after, "), line)
        let given = CLI.blockc([
            "bench", "Examples/layernorm_matmul.graph", "--dim", "M=64,K=64,N=64", "--reps", "1", "--peak", "100",
        ])
        XCTAssertEqual(given.status, 0, given.stderr)
        XCTAssertTrue(given.stdout.contains("of 100 GFLOP/s peak (given)"), given.stdout)
    }

    /// `blockc peak`: the CPU model, then one line per thread count with positive rates; no file.
    func testPeakMeasuresThisHost() throws {
        let result = CLI.blockc(["peak", "--reps", "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.first?.hasPrefix("cpu ") ?? false, result.stdout)
        let probes = lines.filter { $0.hasPrefix("peak_fma isa=") }
        XCTAssertFalse(probes.isEmpty, result.stdout)
        for line in probes {
            let words = line.split(separator: " ").map(String.init)
            let best = try XCTUnwrap(words.firstIndex(of: "max").flatMap { Double(words[$0 + 1]) }, line)
            XCTAssertGreaterThan(best, 0, line)
        }
        XCTAssertTrue(probes[0].contains("threads=1"), result.stdout)
        let withFile = CLI.blockc(["peak", "Examples/attention.graph"])
        XCTAssertEqual(withFile.status, 1)
        XCTAssertTrue(withFile.stderr.contains("'peak' takes no file"), withFile.stderr)
    }

    /// A multi-gigabyte `--input` that is not a `.npy` fails on its first bytes.
    func testHugeNonNPYInputFailsFast() throws {
        let path = dir + "/big"
        FileManager.default.createFile(atPath: path, contents: Data("junk".utf8))
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: 3 << 30)
        try handle.close()
        let start = Date()
        let result = CLI.blockc(["run", "Examples/attention.graph", "--dim", "N=8,BH=1", "--input", "Q=\(path)"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("error: \(path): not a .npy file"), result.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    /// The scratch folders under `$TMPDIR`.
    func scratchFolders(_ tmp: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).filter { $0.hasPrefix("blockc-") }
    }

    func testVerifyRemovesItsScratchFolderWhenTheBuildFails() throws {
        let tmp = dir + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let result = CLI.blockc(
            ["verify", "Examples/layernorm_matmul.graph", "--dim", "M=64,K=64,N=64"],
            environment: ["TMPDIR": tmp, "BLOCKC_CC": "false"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(scratchFolders(tmp), [])
    }

    func testVerifyRemovesItsScratchFolderOnSIGINT() throws {
        let tmp = dir + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        // A "compiler" that takes a while, so that the interrupt arrives while verify waits for it.
        let slow = dir + "/slow-cc"
        try "#!/bin/sh\nexec sleep 3\n".write(toFile: slow, atomically: false, encoding: .utf8)
        XCTAssertEqual(chmod(slow, 0o755), 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["verify", "Examples/layernorm_matmul.graph", "--dim", "M=64,K=64,N=64"]
        process.currentDirectoryURL = URL(fileURLWithPath: CLI.packageRoot)
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": tmp, "BLOCKC_CC": slow]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while scratchFolders(tmp).isEmpty && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(scratchFolders(tmp).isEmpty, "verify made a scratch folder")
        usleep(300_000)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130)
        XCTAssertEqual(scratchFolders(tmp), [])
    }
}
