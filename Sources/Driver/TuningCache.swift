import BlockIR
import Foundation
import Graph

/// What `blockc tune` measured and kept, on disk as JSON: per graph fingerprint, CPU model,
/// thread count and target, the block sizes that ran fastest. `emit-c`, `build`, `bench` and
/// `verify` read it with `--tuned FILE`; an entry is used only when every part of its key
/// matches, so an entry for another shape, another machine or another thread count is ignored,
/// as is one for a graph that has changed since (its fingerprint differs).
struct TuningCache: Equatable {
    /// The file format's version; a file of another version is refused, not overwritten.
    static let version = 1

    /// What an entry is for.
    struct Key: Equatable, Comparable {
        /// FNV-1a 64 of the graph's printed form (shapes resolved) and the target, as 16 hex digits.
        var fingerprint: String
        /// The CPU model, from `/proc/cpuinfo`.
        var cpu: String
        /// The OpenMP thread count the kernels run with.
        var threads: Int
        /// The target description's name.
        var target: String

        static func < (a: Key, b: Key) -> Bool {
            (a.fingerprint, a.cpu, a.threads, a.target) < (b.fingerprint, b.cpu, b.threads, b.target)
        }
    }

    /// One tuned choice.
    struct Entry: Equatable {
        var key: Key
        /// The graph's name (for people reading the file).
        var graph: String
        /// The block sizes: `i` rows, `j` columns, `k` reductions.
        var blocks: [(key: String, value: Int)]
        /// The median time of the choice and of the default block sizes, in milliseconds.
        var medianMilliseconds: Double
        var defaultMilliseconds: Double

        static func == (a: Entry, b: Entry) -> Bool {
            a.key == b.key && a.graph == b.graph && a.blocks.map(\.key) == b.blocks.map(\.key)
                && a.blocks.map(\.value) == b.blocks.map(\.value) && a.medianMilliseconds == b.medianMilliseconds
                && a.defaultMilliseconds == b.defaultMilliseconds
        }
    }

    /// The entries, sorted by key (so the file's text is deterministic).
    private(set) var entries: [Entry] = []

    init() {}

    /// The entry for a key.
    func entry(for key: Key) -> Entry? { entries.first { $0.key == key } }

    /// Adds an entry, replacing the one with the same key.
    mutating func insert(_ entry: Entry) {
        entries.removeAll { $0.key == entry.key }
        entries.append(entry)
        entries.sort { $0.key < $1.key }
    }

    // MARK: Keys

    /// The key of a graph on this machine for a target.
    static func key(for graph: Graph, target: TargetDescription) -> Key {
        Key(
            fingerprint: fingerprint(GraphPrinter.print(graph) + "\ntarget " + target.name), cpu: cpuModel(),
            threads: threadCount(), target: target.name)
    }

    /// FNV-1a 64 of a text, as 16 hex digits (stable across runs, unlike `Hasher`).
    static func fingerprint(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The first `model name` of `/proc/cpuinfo` (`BLOCKC_CPU_MODEL` overrides it, for tests).
    static func cpuModel() -> String {
        if let forced = ProcessInfo.processInfo.environment["BLOCKC_CPU_MODEL"], !forced.isEmpty { return forced }
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }

    /// `OMP_NUM_THREADS` when set to a positive number, else the processors this process may use.
    static func threadCount() -> Int {
        if let text = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    // MARK: The file

    /// The JSON text: sorted keys, entries sorted, one format version.
    var json: String {
        let list: [[String: Any]] = entries.map { e in
            [
                "fingerprint": e.key.fingerprint, "cpu": e.key.cpu, "threads": e.key.threads, "target": e.key.target,
                "graph": e.graph,
                "blocks": Dictionary(uniqueKeysWithValues: e.blocks.map { ($0.key, $0.value) }),
                "median_ms": e.medianMilliseconds, "default_ms": e.defaultMilliseconds,
            ]
        }
        let object: [String: Any] = ["blockc-tune": Self.version, "entries": list]
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
            let text = String(data: data, encoding: .utf8)
        else { return "{}\n" }
        return text + "\n"
    }

    /// Reads a cache file; a missing file is an empty cache, anything that is not a cache of this
    /// version is an error (so `tune` never overwrites a file it does not understand).
    static func load(_ path: String) throws(DriverError) -> TuningCache {
        guard FileManager.default.fileExists(atPath: path) else { return TuningCache() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DriverError("cannot read the tuning cache '\(path)'")
        }
        return try parse(data, path: path)
    }

    /// Parses a cache's JSON.
    static func parse(_ data: Data, path: String) throws(DriverError) -> TuningCache {
        func bad(_ why: String) -> DriverError {
            DriverError(
                "'\(path)' is not a blockc tuning cache (\(why)); give --tuned/--cache a file 'blockc tune' wrote")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw bad("not a JSON object")
        }
        guard let version = object["blockc-tune"] as? Int else { throw bad("no \"blockc-tune\" version") }
        guard version == Self.version else {
            throw DriverError(
                "the tuning cache '\(path)' has format version \(version); this blockc reads version \(Self.version); "
                    + "run 'blockc tune' again with another --cache file")
        }
        guard let list = object["entries"] as? [[String: Any]] else { throw bad("no \"entries\" list") }
        var cache = TuningCache()
        for (n, item) in list.enumerated() {
            guard let fingerprint = item["fingerprint"] as? String, let cpu = item["cpu"] as? String,
                let threads = item["threads"] as? Int, let target = item["target"] as? String,
                let blocks = item["blocks"] as? [String: Int], let median = item["median_ms"] as? Double,
                let base = item["default_ms"] as? Double
            else { throw bad("entry \(n + 1) lacks a field or has one of the wrong type") }
            let graph = item["graph"] as? String ?? ""
            let ordered = ["i", "j", "k"].compactMap { k in blocks[k].map { (key: k, value: $0) } }
            guard ordered.count == blocks.count else { throw bad("entry \(n + 1) has block keys other than i, j, k") }
            cache.insert(
                Entry(
                    key: Key(fingerprint: fingerprint, cpu: cpu, threads: threads, target: target), graph: graph,
                    blocks: ordered, medianMilliseconds: median, defaultMilliseconds: base))
        }
        return cache
    }
}
