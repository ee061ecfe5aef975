import BlockIR
import BlockParser
import Schedule
import XCTest

/// A small deterministic generator (SplitMix64), so every run fuzzes the same mutants.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0 ..< bound` (`bound` > 0).
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Mutation fuzzing of the `.block` parser: every mutant either parses (and then verifies,
/// prints and re-parses to the same text) or is rejected with a located diagnostic. A trap
/// anywhere fails the whole test run.
final class BlockFuzzTests: XCTestCase {
    private static let fragments: [String] = [
        "%", "%0", "%99", "{", "}", "(", ")", "[", "]", ",", ":", "=", "+:", "->", "..<", "@", "-", "*", "/",
        "&&", ">=", "==", "\n", " ", "\t", "//", "for", "yield", "iter", "load", "store", "mask", "dot", "f32",
        "@local", "@reg", "@global", "inf", "-inf", "nan", "1e-06", "1e99", "0.5", "i", "j", "k", "min(", "max(",
        "segments(", "view", "tensor", "kernel", "program", "é", "\u{0}", "\r", "\"", "$", "transpose_a",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1099511627777", "4294967296",
        "99999999999999999999999", "0", "within", "next", "when", "if", "full", "true(", "max_len", "offsets into",
    ]

    private static let hugeNumbers = [
        "9223372036854775807", "9223372036854775808", "99999999999999999999999", "1099511627776", "1099511627777",
        "4294967296", "0", "-1", "18446744073709551615",
    ]

    func testMutantsParseOrFailWithLocatedDiagnostics() {
        var rng = SplitMix64(seed: 0x00B1_0CC0_FFEE)
        var parsed = 0
        var rejected = 0
        let perSample = 800
        for sample in BlockSamples.all {
            let words = sample.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            for _ in 0..<perSample {
                var text = sample
                for _ in 0..<(1 + rng.below(3)) {
                    text = mutate(text, words: words, rng: &rng)
                }
                check(text, parsed: &parsed, rejected: &rejected)
            }
        }
        XCTAssertEqual(parsed + rejected, BlockSamples.all.count * perSample)
        // Both outcomes must be exercised for the fuzzing to mean something.
        XCTAssertGreaterThan(parsed, 100)
        XCTAssertGreaterThan(rejected, 1000)
    }

    func testDeepNestingIsRejected() {
        var rng = SplitMix64(seed: 7)
        for depth in [99, 100, 101, 150, 1000] {
            var loops = "program p\n\nkernel k grid() {\n"
            for d in 0..<depth { loops += "for v\(d) in 0 ..< 1 {\n" }
            loops += String(repeating: "yield\n}\n", count: depth) + "}\n"
            var parsed = 0
            var rejected = 0
            check(loops, parsed: &parsed, rejected: &rejected)
            XCTAssertEqual(parsed, depth <= 100 ? 1 : 0, "depth \(depth)")
            let open = String(repeating: "min(", count: depth) + "0" + String(repeating: ", 1)", count: depth)
            check(
                "program p\n\ntensor T: f32[4] @global output\n\nkernel k grid() {\n  %0 = fill 0.0 : f32[1] @local\n"
                    + "  store %0 -> T[\(open) +: 1]\n}\n", parsed: &parsed, rejected: &rejected)
            check(mutate(loops, words: ["{", "}"], rng: &rng), parsed: &parsed, rejected: &rejected)
        }
    }

    /// Parses a mutant and checks the properties; counts the outcome.
    private func check(_ text: String, parsed: inout Int, rejected: inout Int) {
        let program: Program
        do {
            program = try BlockParser.parse(text)
        } catch {
            rejected += 1
            guard let location = error.location else {
                return XCTFail("diagnostic without location: \(error) for:\n\(text)")
            }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
            if location.line < 1 || location.column < 1 || location.line > lines {
                XCTFail("bad location \(location) (\(lines) lines) in \(error) for:\n\(text)")
            }
            return
        }
        parsed += 1
        _ = Verifier.verify(program, target: .cpu)
        _ = Verifier.verify(program, target: .sm80)
        // The capacity check runs the emitters' storage analysis on what the verifier accepts.
        _ = LocalStorage.verify(program, target: .cpu)
        let printed = BlockPrinter.print(program)
        do {
            let again = try BlockParser.parse(printed)
            XCTAssertEqual(BlockPrinter.print(again), printed)
            if !printed.contains("nan") {
                XCTAssertEqual(again, program, "round trip changed the program:\n\(printed)")
            }
        } catch {
            XCTFail("printed program does not parse: \(error)\n\(printed)\nfrom mutant:\n\(text)")
        }
    }

    private func mutate(_ text: String, words: [String], rng: inout SplitMix64) -> String {
        var chars = Array(text.unicodeScalars)
        switch rng.below(11) {
        case 0:  // delete a character
            if !chars.isEmpty { chars.remove(at: rng.below(chars.count)) }
        case 1:  // insert a fragment
            let fragment = Array(rng.pick(Self.fragments).unicodeScalars)
            chars.insert(contentsOf: fragment, at: rng.below(chars.count + 1))
        case 2:  // swap adjacent characters
            if chars.count > 1 {
                let k = rng.below(chars.count - 1)
                chars.swapAt(k, k + 1)
            }
        case 3, 4:  // token edits
            var tokens = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard !tokens.isEmpty else { break }
            let k = rng.below(tokens.count)
            switch rng.below(4) {
            case 0: tokens.remove(at: k)
            case 1: tokens.insert(rng.pick(words), at: k)
            case 2: tokens[k] = rng.pick(words)
            default: tokens.swapAt(k, rng.below(tokens.count))
            }
            return tokens.joined(separator: " ")
        case 5, 6:  // line splices
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let k = rng.below(lines.count)
            switch rng.below(4) {
            case 0: lines.remove(at: k)
            case 1: lines.insert(lines[rng.below(lines.count)], at: k)
            case 2: lines.swapAt(k, rng.below(lines.count))
            default:
                let other = rng.pick(BlockSamples.all).split(separator: "\n").map(String.init)
                lines.insert(rng.pick(other), at: k)
            }
            return lines.joined(separator: "\n")
        case 7, 8:  // replace a number by a huge (or special) one
            let digits = chars.indices.filter { chars[$0].properties.numericType != nil }
            guard !digits.isEmpty else { break }
            var start = rng.pick(digits)
            while start > 0, chars[start - 1].properties.numericType != nil { start -= 1 }
            var end = start
            while end < chars.count, chars[end].properties.numericType != nil { end += 1 }
            chars.replaceSubrange(start..<end, with: Array(rng.pick(Self.hugeNumbers).unicodeScalars))
        case 9:  // deep nesting of parentheses or min(
            let depth = 50 + rng.below(200)
            let open = rng.below(2) == 0 ? "(" : "min("
            let close = open == "(" ? ")" : ", 0)"
            let at = rng.below(chars.count + 1)
            let nested = String(repeating: open, count: depth) + "i" + String(repeating: close, count: depth)
            chars.insert(contentsOf: Array(nested.unicodeScalars), at: at)
        default:  // wrap a random line in nested loops
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let k = rng.below(lines.count)
            let depth = 1 + rng.below(130)
            let wrapped =
                (0..<depth).map { "for w\($0) in 0 ..< 2 {" } + [lines[k]] + Array(repeating: "yield\n}", count: depth)
            lines.replaceSubrange(k...k, with: wrapped)
            return lines.joined(separator: "\n")
        }
        var out = ""
        out.unicodeScalars.append(contentsOf: chars)
        return out
    }
}
