import BlockTestSupport
import Foundation
import XCTest

/// `blockc tune` and `--tuned`: the cache's keying (graph fingerprint with its shapes, CPU model,
/// thread count, target), its determinism, and stale or foreign entries being ignored. Nothing
/// here depends on how long anything takes.
final class TuneTests: XCTestCase {
    static let example = "Examples/attention.graph"
    static let dims = "BH=1,N=100,d=16"
    /// A fixed machine for the keyed tests.
    static let machine = ["BLOCKC_CPU_MODEL": "Test CPU 9000", "OMP_NUM_THREADS": "2"]

    /// The dry run's `field value` lines.
    func key(dims: String = dims, environment: [String: String] = machine) throws -> [String: String] {
        let r = CLI.blockc(["tune", Self.example, "--dim", dims, "--dry-run"], environment: environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        var fields: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        return fields
    }

    /// A cache with one entry, written by hand.
    func cache(fingerprint: String, cpu: String = "Test CPU 9000", threads: Int = 2, blocks: String) -> String {
        """
        {"blockc-tune": 1, "entries": [{"fingerprint": "\(fingerprint)", "cpu": "\(cpu)", "threads": \(threads),
          "target": "cpu", "graph": "attention", "blocks": \(blocks), "median_ms": 1.0, "default_ms": 2.0}]}
        """
    }

    func emitC(_ extra: [String], environment: [String: String] = machine) -> CommandResult {
        CLI.blockc(["emit-c", Self.example, "--dim", Self.dims] + extra, environment: environment)
    }

    func testTheKeyNamesShapesMachineAndThreads() throws {
        let a = try key()
        XCTAssertEqual(a["cpu"], "Test CPU 9000")
        XCTAssertEqual(a["threads"], "2")
        XCTAssertEqual(a["target"], "cpu")
        XCTAssertEqual(a["fingerprint"]?.count, 16)
        XCTAssertEqual(try key(), a, "the key is deterministic")
        XCTAssertNotEqual(try key(dims: "BH=1,N=101,d=16")["fingerprint"], a["fingerprint"], "shapes are in it")
        var three = Self.machine
        three["OMP_NUM_THREADS"] = "3"
        XCTAssertEqual(try key(environment: three)["threads"], "3")
        XCTAssertEqual(try key(environment: three)["fingerprint"], a["fingerprint"])
    }

    func testAnEntryIsUsedOnlyWhenItsKeyMatches() throws {
        let dir = CLI.temporaryDirectory("tune")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fingerprint = try XCTUnwrap(try key()["fingerprint"])
        let path = dir + "/cache.json"
        try cache(fingerprint: fingerprint, blocks: #"{"i": 32, "j": 32, "k": 16}"#)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let defaults = emitC([])
        let explicit = emitC(["--block", "i=32,j=32,k=16"])
        XCTAssertEqual(defaults.status, 0, defaults.stderr)
        XCTAssertNotEqual(defaults.stdout, explicit.stdout, "the chosen blocks must change the code")
        // A matching entry: the same code as the explicit blocks, every time.
        let tuned = emitC(["--tuned", path])
        XCTAssertEqual(tuned.status, 0, tuned.stderr)
        XCTAssertEqual(tuned.stdout, explicit.stdout)
        XCTAssertTrue(tuned.stderr.contains("using the tuned block sizes i=32,j=32,k=16"), tuned.stderr)
        XCTAssertEqual(emitC(["--tuned", path]).stdout, tuned.stdout, "deterministic for a given cache")
        // Another CPU, another thread count, other shapes: no entry, the defaults, and a note.
        var other = Self.machine
        other["BLOCKC_CPU_MODEL"] = "Another CPU"
        var threads = Self.machine
        threads["OMP_NUM_THREADS"] = "4"
        for (label, result) in [
            ("cpu", emitC(["--tuned", path], environment: other)),
            ("threads", emitC(["--tuned", path], environment: threads)),
            (
                "shape",
                CLI.blockc(
                    ["emit-c", Self.example, "--dim", "BH=1,N=101,d=16", "--tuned", path], environment: Self.machine)
            ),
        ] {
            XCTAssertEqual(result.status, 0, "\(label): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("has no entry"), "\(label): \(result.stderr)")
        }
        XCTAssertEqual(emitC(["--tuned", path], environment: other).stdout, defaults.stdout)
        // An explicit --block wins over the cache.
        XCTAssertEqual(
            emitC(["--tuned", path, "--block", "i=64,j=64,k=64"]).stdout, emitC(["--block", "i=64,j=64,k=64"]).stdout)
    }

    func testStaleAndForeignCachesAreNeverTrustedOrOverwritten() throws {
        let dir = CLI.temporaryDirectory("tune")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fingerprint = try XCTUnwrap(try key()["fingerprint"])
        // Block sizes the lowering refuses: ignored with a note, the defaults used.
        let bad = dir + "/bad.json"
        try cache(fingerprint: fingerprint, blocks: #"{"i": 0, "j": 32, "k": 16}"#)
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let ignored = emitC(["--tuned", bad])
        XCTAssertEqual(ignored.status, 0, ignored.stderr)
        XCTAssertTrue(ignored.stderr.contains("ignoring the entry"), ignored.stderr)
        XCTAssertEqual(ignored.stdout, emitC([]).stdout)
        // Files that are not caches: an error for --tuned and for tune's --cache, and tune leaves them as they were.
        let cases = [
            ("notes.txt", "my notes, not JSON\n", "not a blockc tuning cache"),
            ("other.json", #"{"name": "something else"}"#, "not a blockc tuning cache"),
            ("future.json", #"{"blockc-tune": 2, "entries": []}"#, "format version 2"),
        ]
        for (name, text, message) in cases {
            let path = dir + "/" + name
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let use = emitC(["--tuned", path])
            XCTAssertEqual(use.status, 1, name)
            XCTAssertTrue(use.stderr.contains(message), "\(name): \(use.stderr)")
            let tune = CLI.blockc(
                ["tune", Self.example, "--dim", Self.dims, "--cache", path, "--reps", "1"], environment: Self.machine)
            XCTAssertEqual(tune.status, 1, name)
            XCTAssertTrue(tune.stderr.contains(message), "\(name): \(tune.stderr)")
            XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), text, "\(name) must be left as it was")
        }
    }

    /// A real run on a tiny shape: it writes one entry for this key among the file's other
    /// entries, with block sizes from its candidate space, and the next run replaces it. (How
    /// long the candidates take is not checked.)
    func testTuneKeepsOneEntryPerKey() throws {
        let dir = CLI.temporaryDirectory("tune")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/cache.json"
        try cache(fingerprint: "0123456789abcdef", cpu: "Elsewhere", blocks: #"{"i": 64, "j": 64, "k": 64}"#)
            .write(toFile: path, atomically: true, encoding: .utf8)
        for _ in 0..<2 {
            let r = CLI.blockc(
                ["tune", Self.example, "--dim", "BH=1,N=64,d=16", "--cache", path, "--reps", "1", "--budget", "30"],
                environment: Self.machine)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("tune: i=64,j=64,k=64:"), r.stderr)
        }
        let object = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let entries = try XCTUnwrap(object["entries"] as? [[String: Any]])
        XCTAssertEqual(entries.map { $0["cpu"] as? String }, ["Elsewhere", "Test CPU 9000"], "sorted by key")
        let blocks = try XCTUnwrap(entries[1]["blocks"] as? [String: Int])
        XCTAssertTrue([32, 64, 128, 256].contains(blocks["i"] ?? 0), "\(blocks)")
        XCTAssertTrue([32, 64, 128, 256, 512].contains(blocks["j"] ?? 0), "\(blocks)")
        XCTAssertTrue([32, 64, 128, 256].contains(blocks["k"] ?? 0), "\(blocks)")
        XCTAssertEqual(entries[1]["fingerprint"] as? String, try key(dims: "BH=1,N=64,d=16")["fingerprint"])
        // A .block program has its block sizes in it: tune refuses it.
        let block = CLI.blockc(["tune", "Tests/Golden/lower/attention.block", "--cache", path])
        XCTAssertEqual(block.status, 1)
        XCTAssertTrue(block.stderr.contains("tune needs a .graph file"), block.stderr)
    }
}
