import BlockTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `-o`, `--output-dir` and `--bundle` write into the path they are given: devices, FIFOs and
/// symbolic links stay what they are, regular files keep their permissions and are replaced
/// atomically, write errors are errors.
final class OutputFileTests: XCTestCase {
    /// A small example to compile quickly.
    static let example = "Examples/layernorm_matmul.graph"

    var dir = ""

    override func setUp() { dir = CLI.temporaryDirectory("out") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// `lstat` of a path: its type bits and permission bits.
    func kind(_ path: String) -> (type: mode_t, permissions: mode_t)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (info.st_mode & S_IFMT, info.st_mode & 0o7777)
    }

    func mknod(_ name: String, major: Int, minor: Int) -> String {
        let path = dir + "/" + name
        let result = CLI.run("/usr/bin/env", ["mknod", path, "c", String(major), String(minor)])
        XCTAssertEqual(result.status, 0, result.stderr)
        return path
    }

    /// Names in the folder other than `expected`: leftover temporary files.
    func leftovers(_ expected: Set<String>) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !expected.contains($0) }.sorted()
    }

    func testFullDeviceIsAnError() {
        let full = mknod("full", major: 1, minor: 7)
        let result = CLI.blockc(["fuse", Self.example, "-o", full])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("error: cannot write '\(full)': no space left on device"), result.stderr)
        XCTAssertEqual(kind(full)?.type, S_IFCHR, "the device is still a device")
    }

    func testNullDeviceStaysADevice() {
        let null = mknod("null", major: 1, minor: 3)
        for arguments in [["fuse", Self.example, "-o", null], ["emit-cuda", Self.example, "-o", null]] {
            let result = CLI.blockc(arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(kind(null)?.type, S_IFCHR, "\(arguments[0]) keeps the device")
        }
    }

    func testFIFOIsWrittenInPlace() {
        let fifo = dir + "/pipe"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let group = DispatchGroup()
        nonisolated(unsafe) var received = Data()
        group.enter()
        DispatchQueue.global().async {
            received = FileHandle(forReadingAtPath: fifo)?.readDataToEndOfFile() ?? Data()
            group.leave()
        }
        let result = CLI.blockc(["fuse", Self.example, "-o", fifo])
        XCTAssertEqual(result.status, 0, result.stderr)
        if group.wait(timeout: .now() + 20) == .timedOut {
            // Old behaviour: the FIFO was replaced and the reader still waits; release it.
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
            group.wait()
            XCTFail("nothing was written into the FIFO")
        }
        XCTAssertTrue(String(decoding: received, as: UTF8.self).hasPrefix("program layernorm_matmul"))
        XCTAssertEqual(kind(fifo)?.type, S_IFIFO)
    }

    func testSymlinkIsFollowedAndKept() throws {
        try "old\n".write(toFile: dir + "/target.block", atomically: false, encoding: .utf8)
        XCTAssertEqual(symlink("target.block", dir + "/link.block"), 0)
        let result = CLI.blockc(["fuse", Self.example, "-o", dir + "/link.block"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(kind(dir + "/link.block")?.type, S_IFLNK, "the link stays a link")
        let text = try String(contentsOfFile: dir + "/target.block", encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("program layernorm_matmul"), text)
        XCTAssertEqual(leftovers(["target.block", "link.block"]), [])
    }

    func testRegularFileKeepsItsPermissions() throws {
        let path = dir + "/private.block"
        try "old\n".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertEqual(chmod(path, 0o600), 0)
        let result = CLI.blockc(["lower", Self.example, "-o", path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(kind(path)?.permissions, 0o600)
        XCTAssertTrue(try String(contentsOfFile: path, encoding: .utf8).hasPrefix("program layernorm_matmul"))
        XCTAssertEqual(leftovers(["private.block"]), [])
    }

    func testDashIsStandardOutput() {
        let result = CLI.blockc(["fuse", Self.example, "-o", "-"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("program layernorm_matmul"), result.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: CLI.packageRoot + "/-"))
    }

    func testMissingFolderIsAnError() {
        let result = CLI.blockc(["fuse", Self.example, "-o", dir + "/nowhere/x.block"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("the folder '\(dir)/nowhere' does not exist"), result.stderr)
    }

    /// `.npy` outputs of `run --output-dir` follow the same rules.
    func testRunOutputDirFollowsLinksAndReportsFullDevices() throws {
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        XCTAssertEqual(symlink("../kept.npy", out + "/O.npy"), 0)
        let ok = CLI.blockc(["run", "Examples/attention.graph", "--dim", "N=8,BH=1", "--output-dir", out])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(kind(out + "/O.npy")?.type, S_IFLNK)
        XCTAssertEqual(kind(dir + "/kept.npy")?.type, S_IFREG)
        let full = mknod("out/Q.npy", major: 1, minor: 7)
        let failed = CLI.blockc([
            "run", "Examples/attention.graph", "--dim", "N=8,BH=1", "--output-dir", out, "--save-inputs",
        ])
        XCTAssertEqual(failed.status, 1)
        XCTAssertTrue(failed.stderr.contains("cannot write '\(full)': no space left on device"), failed.stderr)
    }

    /// `emit-c` writes its source and header, `build` its library, each through the same path.
    func testEmitCAndBuildWriteIntoLinks() throws {
        try "old\n".write(toFile: dir + "/real.c", atomically: false, encoding: .utf8)
        XCTAssertEqual(chmod(dir + "/real.c", 0o640), 0)
        XCTAssertEqual(symlink("real.c", dir + "/k.c"), 0)
        let emit = CLI.blockc(["emit-c", Self.example, "-o", dir + "/k.c"])
        XCTAssertEqual(emit.status, 0, emit.stderr)
        XCTAssertEqual(kind(dir + "/k.c")?.type, S_IFLNK)
        XCTAssertEqual(kind(dir + "/real.c")?.permissions, 0o640)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/k.h"))
        let full = mknod("lib.so", major: 1, minor: 7)
        let build = CLI.blockc(["build", Self.example, "-o", full])
        XCTAssertEqual(build.status, 1)
        XCTAssertTrue(build.stderr.contains("no space left on device"), build.stderr)
        XCTAssertEqual(kind(full)?.type, S_IFCHR)
    }
}
