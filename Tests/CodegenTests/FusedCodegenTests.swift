import BlockIR
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import XCTest

/// The examples, fused, compiled and compared with the interpreter at small sizes.
final class FusedCodegenTests: XCTestCase {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Examples")

    static func fused(_ file: String, dims: [String: Int], block: Int) throws -> Program {
        let text = try String(contentsOf: Self.examples.appendingPathComponent(file), encoding: .utf8)
        let graph = try GraphParser.parse(text, defaultName: "g", dimOverrides: dims)
        let lowered = try CodegenHarness.lower(graph, i: block, j: block, k: block)
        return Fusion.fuse(lowered, options: FusionOptions(cores: CLI.pinnedCores)).program
    }

    func testFusedAttentionVariants() throws {
        let dims = ["BH": 2, "N": 80, "d": 32]
        for file in ["attention.graph", "attention_causal.graph"] {
            let program = try Self.fused(file, dims: dims, block: 32)
            _ = try CodegenHarness.check(program)
        }
    }

    func testFusedNormsAndFeedForward() throws {
        let ln = try Self.fused("layernorm_matmul.graph", dims: ["M": 70, "K": 48, "N": 40], block: 32)
        _ = try CodegenHarness.check(ln)
        let ffn = try Self.fused("rmsnorm_swiglu.graph", dims: ["M": 40, "d": 48, "h": 72], block: 32)
        _ = try CodegenHarness.check(ffn)
    }

    /// Random graphs with slices and concatenations (window views, parts stored in place) and
    /// positions, naive and fused, in C: the generated addressing through windows matches the
    /// interpreter.
    func testRandomGraphsWithViews() throws {
        var checked = 0
        for seed in 0..<300 as Range<UInt64> where checked < 6 {
            let graph = RandomGraphs.make(seed: seed)
            guard graph.nodes.contains(where: { if case .concat = $0.op { true } else { false } }) else { continue }
            let lowered = try CodegenHarness.lower(graph, i: 8, j: 16, k: 8)
            _ = try CodegenHarness.check(lowered, seed: seed)
            _ = try CodegenHarness.check(
                Fusion.fuse(lowered, options: FusionOptions(cores: CLI.pinnedCores)).program, seed: seed)
            checked += 1
        }
        XCTAssertEqual(checked, 6, "too few random graphs with concatenations")
    }
}
