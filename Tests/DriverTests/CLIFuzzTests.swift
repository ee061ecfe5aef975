import BlockTestSupport
import Foundation
import XCTest

@testable import Driver

/// The CLI end to end on mutated `.graph` files: `check`, `fuse` and `run` (in the process, as
/// `blockc` runs them) end in success or in an error that names the file, never in a trap, a
/// hang or a "compiler bug" (a stage's output that the verifier rejects).
final class CLIFuzzTests: XCTestCase {
    /// Tokens a mutation may insert: names, types, calls, operators, numbers.
    static let vocabulary = [
        "bf16", "f16", "i32", "bool", "f32", "cast(", "matmul(", "softmax(", "where(i >= j, ", "reshape(",
        "transpose(", "rmsnorm(", "reduce_sum(", "exp(", "+", "*", "-", "/", ",", ")", "(", "[", "]", "0",
        "1", "7", "-inf", "axis=-1", "transpose_b=true", "input Z: [3, 5]", "output", "dim", "=", "\n",
        "keepdims=true", "i", "j", "1e30", "nan",
    ]

    /// The examples with every dimension made small (so `run` stays quick).
    static func seeds() throws -> [String] {
        try Examples.names.map { name in
            let text = try String(contentsOfFile: "\(CLI.packageRoot)/Examples/\(name).graph", encoding: .utf8)
            var small: [String] = []
            var k = 0
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("dim "), let eq = line.firstIndex(of: "="), !line.contains("*") {
                    small.append(line[..<eq] + "= \([5, 8, 3, 6][k % 4])")
                    k += 1
                } else {
                    small.append(String(line))
                }
            }
            return small.joined(separator: "\n")
        }
    }

    static func mutate(_ text: String, _ rng: inout SplitMix64) -> String {
        var chars = Array(text)
        guard !chars.isEmpty else { return text }
        let at = rng.below(chars.count)
        switch rng.below(5) {
        case 0: chars.remove(at: at)
        case 1: chars.insert(contentsOf: Array(vocabulary[rng.below(vocabulary.count)]), at: at)
        case 2:
            let end = min(chars.count, at + 1 + rng.below(12))
            chars.removeSubrange(at..<end)
        case 3:
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let line = lines[rng.below(lines.count)]
            chars.insert(contentsOf: Array("\n" + line), at: at)
        default:
            if let d = "0123456789".randomElement(using: &rng) { chars[at] = d }
        }
        return String(chars)
    }

    func testMutatedGraphsThroughCheckFuseAndRun() throws {
        let dir = CLI.temporaryDirectory("clifuzz")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(seed: 0xB10C_F022)
        let path = dir + "/fuzz.graph"
        var outcomes = (ok: 0, rejected: 0)
        let seeds = try Self.seeds()
        let perSeed = 2400 / seeds.count
        for seed in seeds {
            for _ in 0..<perSeed {
                var text = seed
                for _ in 0..<(1 + rng.below(3)) { text = Self.mutate(text, &rng) }
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                for command in [["check"], ["fuse"], ["run", "--max-memory", "1M", "--seed", "1"]] {
                    var err = ""
                    let console = Console(out: { _ in }, err: { err += $0 })
                    let status = Driver.run(command + [path], console: console)
                    if status == 0 {
                        outcomes.ok += 1
                        continue
                    }
                    outcomes.rejected += 1
                    XCTAssertEqual(status, 1, "\(command): \(err)\n\(text)")
                    XCTAssertTrue(err.hasPrefix(path + ":") || err.hasPrefix("error: "), "\(command): \(err)\n\(text)")
                    XCTAssertFalse(err.contains("compiler bug"), "\(command): \(err)\n\(text)")
                    // Parse errors of the file are located: path:line:col.
                    if err.hasPrefix(path + ":") && !err.hasPrefix(path + ": ") {
                        let location = err.dropFirst(path.count + 1).prefix { $0 != " " }
                        XCTAssertTrue(location.split(separator: ":").count >= 2, "\(err)")
                    }
                }
            }
        }
        XCTAssertGreaterThan(outcomes.ok, 300, "mutants that still compile and run: \(outcomes)")
        XCTAssertGreaterThan(outcomes.rejected, 300, "mutants rejected: \(outcomes)")
    }
}

extension SplitMix64 {
    /// A number in `0..<n` (`0` when `n` is not positive).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}
