import BlockIR
import BlockTestSupport
import Graph
import XCTest

/// Mutation fuzzing of the `.graph` parser: every mutant either parses or is rejected with a
/// diagnostic located inside the text. A trap anywhere fails the whole run.
final class GraphFuzzTests: XCTestCase {
    static let seeds: [String] = [
        GraphParserTests.attention,
        """
        dim M = 8
        dim K = 16
        input X: [M, K]
        input gamma: [K]
        input beta: [K]
        input W: [K, 4]
        Y = matmul(layernorm(X, gamma, beta, eps=1e-5), W)
        output Y
        """,
        """
        dim M = 4
        dim d = 8
        input X: [M, d]
        input g: [d]
        input W1: [d, 6]
        input W3: [d, 6]
        input W2: [6, d]
        Xn = rmsnorm(X, g)
        Y = matmul(silu(matmul(Xn, W1)) * matmul(Xn, W3), W2)
        output Y
        """,
        """
        dim S = 8
        dim H = 2
        input X: [S, H * 4]
        Q = transpose(reshape(X, [S, H, 4]), perm=[1, 0, 2])
        A = reduce_mean(Q, axis=2, keepdims=true) - reduce_max(Q, 1, keepdims=true)
        B = where(i - j < 3 && same_segment(i, j, [2, 5]), Q, 0)
        output A, B
        """,
    ]

    static let fragments = [
        "(", ")", "[", "]", ",", "=", ":", "+", "-", "*", "/", "&&", ">=", "<", "==", "!=", "\n", " ", "#", "i", "j",
        "inf", "nan", "1e-5", "1e99", "0", "-1", "99999999999999999999", "9223372036854775807", "dim", "input",
        "output", "graph", "matmul(", "softmax(", "where(", "reshape(", "transpose(", "perm=[", "axis=", "keepdims=",
        "true", "é", "\u{0}", "$", "((((((((", "))))",
    ]

    func testMutantsParseOrFailWithLocatedDiagnostics() {
        var rng = SplitMix64(seed: 0x6A_0F00D)
        var parsed = 0
        var rejected = 0
        for seed in Self.seeds {
            let lineCount = seed.split(separator: "\n", omittingEmptySubsequences: false).count
            for _ in 0..<800 {
                var chars = Array(seed)
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let at = Int.random(in: 0...chars.count, using: &rng)
                    switch Int.random(in: 0..<5, using: &rng) {
                    case 0 where !chars.isEmpty: chars.remove(at: min(at, chars.count - 1))
                    case 1: chars.insert(contentsOf: Self.fragments.randomElement(using: &rng)!, at: at)
                    case 2 where chars.count > 2:
                        let a = Int.random(in: 0..<chars.count, using: &rng)
                        let b = Int.random(in: 0..<chars.count, using: &rng)
                        chars.swapAt(a, b)
                    case 3:
                        let lines = String(chars).split(separator: "\n", omittingEmptySubsequences: false)
                        let line = lines.randomElement(using: &rng)!
                        chars.insert(contentsOf: "\n" + line + "\n", at: at)
                    default:
                        chars.insert(
                            contentsOf: String(repeating: "(", count: Int.random(in: 1...400, using: &rng)), at: at)
                    }
                }
                let text = String(chars)
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
                do {
                    _ = try GraphParser.parse(text, defaultName: "fuzz")
                    parsed += 1
                } catch {
                    rejected += 1
                    if let l = error.location {
                        XCTAssertTrue(l.line >= 1 && l.column >= 1 && l.line <= lines + 1, "\(error) in:\n\(text)")
                    }
                    XCTAssertFalse(error.message.isEmpty)
                }
            }
            _ = lineCount
        }
        XCTAssertEqual(parsed + rejected, Self.seeds.count * 800)
        XCTAssertGreaterThan(parsed, 50, "some mutants should still parse")
        XCTAssertGreaterThan(rejected, 1000)
    }
}
