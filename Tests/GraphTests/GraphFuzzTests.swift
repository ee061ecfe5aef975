import BlockIR
import Graph
import XCTest

/// A small deterministic PRNG (SplitMix64) whose bounded draws do not depend on the standard
/// library's algorithms, so the mutants are the same on every toolchain.
struct FuzzRandom {
    private var state: UInt64

    /// Seeds the generator.
    init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<n` (`n > 0`).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// A number in `range`.
    mutating func inRange(_ range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }

    /// An element of a non-empty array.
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Mutation fuzzing of the `.graph` parser: every mutant either parses or is rejected with a
/// diagnostic located inside the text. A trap anywhere fails the whole run.
final class GraphFuzzTests: XCTestCase {
    /// Realistic graphs the mutants start from (each parses).
    static let seeds: [String] = [
        """
        # Attention: softmax(Q·Kᵀ/√d)·V
        graph attention
        dim BH = 2
        dim N = 16
        dim d = 8
        input Q: [BH, N, d]
        input K: [BH, N, d]
        input V: [BH, N, d]
        S = matmul(Q, K, transpose_b=true) * rsqrt(d)
        P = softmax(S, axis=-1)
        O = matmul(P, V)
        output O
        """,
        """
        graph causal
        dim BH = 2
        dim N = 16
        dim d = 8
        dim W = 4
        input Q: [BH, N, d]
        input K: [BH, N, d]
        input V: [BH, N, d]
        S = matmul(Q, K, transpose_b=true) / 2.8284
        M = where(j <= i && i - j < W, S, -inf)
        P = exp(M - reduce_max(M, axis=-1, keepdims=true))
        O = matmul(P / reduce_sum(P, -1, keepdims=true), V)
        output O
        """,
        """
        graph layernorm_matmul
        dim M = 8
        dim K = 16
        dim N = M * 2
        input X: [M, K]
        input gamma: [K]
        input beta: [K]
        input W: [K, N]
        Y = matmul(layernorm(X, gamma, beta, eps=1e-5), W)
        output Y
        """,
        """
        graph rmsnorm_swiglu
        dim M = 4
        dim d = 8
        dim F = (d * 3) / 2
        input X: [M, d]
        input g: [d]
        input W1: [d, F]
        input W3: [d, F]
        input W2: [F, d]
        Xn = rmsnorm(X, g, eps=1e-6)
        G = silu(matmul(Xn, W1)) * matmul(Xn, W3)
        Y = X + matmul(G, W2)
        output Y
        """,
        """
        dim S = 8
        dim H = 2
        input X: [S, H * 4]
        Q = transpose(reshape(X, [S, H, 4]), perm=[1, 0, 2])
        A = reduce_mean(Q, axis=2, keepdims=true) - reduce_max(Q, 1, keepdims=true)
        B = where(i - j < 3 && same_segment(i, j, [2, 5]), Q, 0)
        C = matmul(transpose(B), pow(abs(Q), 0.5))
        output A, B, C
        """,
        """
        dim H = 2
        dim T = 12
        dim B = 3
        dim max_len = 6
        input Q: [H, T, 4]
        input offsets: i32[B + 1]
        S = matmul(Q, Q, transpose_b=true)
        P = softmax(where(same_segment(i, j, offsets, max_len=max_len), S, -inf), axis=-1)
        output P
        """,
        """
        dim N = 8
        dim bs = 4
        input Q: [2, N, 4]
        input M: bool[1, N / bs, N / bs]
        S = matmul(Q, Q, transpose_b=true)
        P = softmax(where(block_broadcast(M, [bs, bs]), S, -inf), axis=-1)
        output P
        """,
    ]

    /// Text inserted by mutations: punctuation, keywords, odd numbers, odd characters.
    static let fragments = [
        "(", ")", "[", "]", ",", "=", ":", "+", "-", "*", "/", "&&", ">=", ">", "<", "<=", "==", "!=", "&", "|",
        "\n", " ", "\t", "#", ".", ";", "i", "j", "inf", "nan", "-inf", "1e-5", "1e99", "1e", "0", "-1", "0.5",
        "99999999999999999999", "9223372036854775807", "-9223372036854775808", "1099511627776", "4294967296",
        "dim", "input", "output", "graph", "matmul(", "softmax(", "where(", "reshape(", "transpose(", "perm=[",
        "axis=", "keepdims=", "transpose_b=", "eps=", "max_len=", "block_broadcast(", "i32", "bool", "true", "false",
        "same_segment(i, j, [", "é", "\u{0}", "$",
        "\r\n", "\u{301}", "😀", "((((((((", "))))", "X", "Y = ", "dim Z = 0\n", "input Z: [",
    ]

    /// Splits text into rough tokens: runs of name characters, runs of spaces, single others.
    static func roughTokens(_ text: String) -> [String] {
        var out: [String] = []
        var word = ""
        for c in text {
            if c.isLetter || c.isNumber || c == "_" || c == "." {
                word.append(c)
            } else {
                if !word.isEmpty { out.append(word) }
                word = ""
                out.append(String(c))
            }
        }
        if !word.isEmpty { out.append(word) }
        return out
    }

    /// One mutation of a text.
    static func mutate(_ text: String, _ rng: inout FuzzRandom) -> String {
        var chars = Array(text.unicodeScalars)
        let at = rng.below(chars.count + 1)
        switch rng.below(14) {
        case 0 where !chars.isEmpty:  // delete characters
            chars.removeSubrange(min(at, chars.count - 1)..<min(chars.count, at + rng.inRange(1...3)))
        case 1:  // insert a fragment
            chars.insert(contentsOf: rng.pick(fragments).unicodeScalars, at: at)
        case 2 where chars.count > 2:  // swap two characters
            chars.swapAt(rng.below(chars.count), rng.below(chars.count))
        case 3 where !chars.isEmpty:  // duplicate a character
            let k = min(at, chars.count - 1)
            chars.insert(chars[k], at: k)
        case 4, 5:  // delete, duplicate or swap tokens
            var tokens = roughTokens(text)
            guard !tokens.isEmpty else { break }
            let k = rng.below(tokens.count)
            switch rng.below(3) {
            case 0: tokens.remove(at: k)
            case 1: tokens.insert(tokens[k], at: k)
            default: tokens.swapAt(k, rng.below(tokens.count))
            }
            return tokens.joined()
        case 6:  // replace a token by a fragment
            var tokens = roughTokens(text)
            guard !tokens.isEmpty else { break }
            tokens[rng.below(tokens.count)] = rng.pick(fragments)
            return tokens.joined()
        case 7:  // splice a line from any seed
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let donor = rng.pick(seeds).split(separator: "\n", omittingEmptySubsequences: false)
            let line = String(rng.pick(donor))
            switch rng.below(3) {
            case 0: lines.insert(line, at: rng.below(lines.count + 1))
            case 1: lines[rng.below(lines.count)] = line
            default: lines.remove(at: rng.below(lines.count))
            }
            return lines.joined(separator: "\n")
        case 8:  // replace a number by a huge or odd one
            var tokens = roughTokens(text)
            let numbers = tokens.indices.filter { tokens[$0].first?.isNumber ?? false }
            guard !numbers.isEmpty else { break }
            tokens[rng.pick(numbers)] = rng.pick([
                "0", "-0", "1099511627777", "9223372036854775807", "99999999999999999999999", "1e40", "1e-50",
                "0.0", "3.5", "1048576", "16777217", "00", "1.2.3",
            ])
            return tokens.joined()
        case 9:  // deep parentheses, negations, calls, lists
            let n = rng.pick([10, 150, 199, 200, 201, 400, 1000])
            let opener = rng.pick(["(", "-", "exp(", "[", "-(", "(-"])
            chars.insert(contentsOf: String(repeating: opener, count: n).unicodeScalars, at: at)
            if rng.below(2) == 0 {
                let closer = opener.hasSuffix("[") ? "]" : ")"
                let end = min(chars.count, at + n * opener.unicodeScalars.count + rng.below(8))
                chars.insert(contentsOf: String(repeating: closer, count: n).unicodeScalars, at: end)
            }
        case 10:  // long operator chains
            let n = rng.pick([50, 199, 250, 2000])
            chars.insert(
                contentsOf: String(repeating: rng.pick([" + 1", " * X", "-1", " && i >= j"]), count: n)
                    .unicodeScalars, at: at)
        case 11:  // random punctuation burst
            for _ in 0..<rng.inRange(1...6) {
                let p = rng.pick(Array("()[],=:+-*/&<>!#.;{}|\"'\\@".unicodeScalars))
                chars.insert(p, at: rng.below(chars.count + 1))
            }
        case 12:  // truncate
            chars.removeSubrange(at..<chars.count)
        default:  // a random byte-ish scalar
            let scalar = Unicode.Scalar(UInt8(truncatingIfNeeded: rng.next()))
            chars.insert(scalar, at: at)
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: chars)
        return String(out)
    }

    func testMutantsParseOrFailWithLocatedDiagnostics() {
        var rng = FuzzRandom(seed: 0x6A0F_00D5_EED5)
        var parsed = 0
        var rejected = 0
        let perSeed = 700
        for seed in Self.seeds {
            XCTAssertNoThrow(try GraphParser.parse(seed, defaultName: "fuzz"), "the seed itself must parse")
            for _ in 0..<perSeed {
                var text = seed
                for _ in 0..<rng.inRange(1...4) { text = Self.mutate(text, &rng) }
                // Lines as the lexer counts them: one more than the number of "\n" scalars.
                let lines = 1 + text.unicodeScalars.filter { $0 == "\n" }.count
                do {
                    let graph = try GraphParser.parse(text, defaultName: "fuzz", dimOverrides: [:])
                    parsed += 1
                    XCTAssertFalse(graph.outputs.isEmpty)
                    // What parses prints as text that parses back to the same print.
                    let printed = GraphPrinter.print(graph)
                    do {
                        let again = try GraphParser.parse(printed, defaultName: "fuzz")
                        XCTAssertEqual(GraphPrinter.print(again), printed, "round trip of:\n\(text)")
                    } catch {
                        XCTFail("printed graph does not parse back: \(error)\n\(printed)\nfrom:\n\(text)")
                    }
                } catch {
                    rejected += 1
                    XCTAssertFalse(error.message.isEmpty)
                    if let l = error.location {
                        XCTAssertTrue(
                            l.line >= 1 && l.column >= 1 && l.line <= lines + 1,
                            "\(error) (\(lines) lines) in:\n\(text)")
                    }
                }
            }
        }
        print("graph fuzz: \(parsed) mutants parsed, \(rejected) rejected with located diagnostics")
        XCTAssertEqual(parsed + rejected, Self.seeds.count * perSeed)
        XCTAssertGreaterThanOrEqual(parsed + rejected, 3000)
        XCTAssertGreaterThan(parsed, 100, "some mutants should still parse")
        XCTAssertGreaterThan(rejected, 1000, "most mutants should be rejected")
    }

    /// A random expression over the tensors `A` (rank 0 to 3 by seed), `B`, `C` and numbers, using
    /// every function with plausible and implausible arguments.
    static func randomExpression(_ rng: inout FuzzRandom, depth: Int) -> String {
        let leaves = ["A", "B", "C", "2", "-inf", "0.5", "N", "1e-5", "nan"]
        guard depth > 0, rng.below(4) != 0 else { return rng.pick(leaves) }
        func sub(_ rng: inout FuzzRandom) -> String { randomExpression(&rng, depth: depth - 1) }
        let axis = rng.pick(["-1", "-2", "0", "1", "2", "3", "-4", "99999999999", "-9223372036854775807"])
        let bool = rng.pick(["true", "false", "1"])
        switch rng.below(13) {
        case 0: return "\(rng.pick(["exp", "neg", "silu", "gelu", "rsqrt", "one", "square"]))(\(sub(&rng)))"
        case 1: return "\(rng.pick(["add", "max", "pow", "div"]))(\(sub(&rng)), \(sub(&rng)))"
        case 2: return "\(sub(&rng)) \(rng.pick(["+", "-", "*", "/"])) \(sub(&rng))"
        case 3:
            return "matmul(\(sub(&rng)), \(sub(&rng)), transpose_a=\(bool), transpose_b=\(rng.pick(["true", "false"])))"
        case 4:
            let f = rng.pick(["reduce_sum", "reduce_max", "reduce_mean"])
            return "\(f)(\(sub(&rng)), axis=\(axis), keepdims=\(rng.pick(["true", "false"])))"
        case 5: return "transpose(\(sub(&rng)))"
        case 6:
            let perm = rng.pick(["[]", "[0]", "[1, 0]", "[0, 2, 1]", "[2, 0, 1]", "[0, 0, 1]", "[-1, 0]"])
            return "transpose(\(sub(&rng)), perm=\(perm))"
        case 7:
            let shape = rng.pick(["[N]", "[2, 6]", "[3, 4]", "[12]", "[1, 12]", "[2, 2, 3]", "[0]", "[N * N]"])
            return "reshape(\(sub(&rng)), \(shape))"
        case 8:
            let pred = rng.pick(["i >= j", "i - j < 2", "j <= i && i < 3", "same_segment(i, j, [1, 2])", "i == 2 * j"])
            return "where(\(pred), \(sub(&rng)), \(rng.pick(["-inf", "0", "N", "A"])))"
        case 9: return "softmax(\(sub(&rng)), axis=\(axis))"
        case 10: return "layernorm(\(sub(&rng)), \(rng.pick(["B", "C", "A", "2"])), eps=1e-5)"
        case 11: return "rmsnorm(\(sub(&rng)), \(rng.pick(["B", "C", "A"])))"
        default: return "(\(sub(&rng)))"
        }
    }

    func testRandomExpressionsNeverTrap() {
        var rng = FuzzRandom(seed: 42)
        let shapes = ["[]", "[12]", "[3, 4]", "[2, 3, 4]", "[1, 4]", "[4]", "[3, 1]", "[N, N]"]
        var parsed = 0
        for _ in 0..<1500 {
            let text = """
                dim N = 4
                input A: \(rng.pick(shapes))
                input B: \(rng.pick(shapes))
                input C: \(rng.pick(shapes))
                Y = \(Self.randomExpression(&rng, depth: rng.inRange(1...4)))
                output Y
                """
            do {
                let graph = try GraphParser.parse(text, defaultName: "random")
                parsed += 1
                let printed = GraphPrinter.print(graph)
                XCTAssertEqual(
                    (try? GraphParser.parse(printed, defaultName: "random")).map(GraphPrinter.print), printed,
                    "round trip of:\n\(text)")
            } catch {
                // Errors are in the expression (line 5) or at the output (line 6), never a trap.
                XCTAssertTrue((5...6).contains(error.location?.line ?? 5), "\(error) in:\n\(text)")
                XCTAssertGreaterThanOrEqual(error.location?.column ?? 1, 1, "\(error) in:\n\(text)")
            }
        }
        print("graph random expressions: \(parsed) of 1500 parsed")
        XCTAssertGreaterThan(parsed, 100)
    }

    func testOverridesOfEveryKindNeverTrap() {
        let overrides: [[String: Int]] = [
            ["N": 0], ["N": -5], ["N": Int.max], ["N": Int.min], ["N": 1 << 40], ["N": (1 << 40) + 1],
            ["d": 1 << 30, "BH": 1 << 30], ["zzz": 1], ["N": 1, "d": 1, "BH": 1],
        ]
        for seed in Self.seeds {
            for o in overrides {
                do {
                    _ = try GraphParser.parse(seed, defaultName: "fuzz", dimOverrides: o)
                } catch {
                    XCTAssertFalse(error.message.isEmpty)
                    if let l = error.location { XCTAssertTrue(l.line >= 1 && l.column >= 1) }
                }
            }
        }
    }
}
