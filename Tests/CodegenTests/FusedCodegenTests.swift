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

    /// The runtime's paths for CPUs without AVX-512 (AVX2 and FMA: 6×16 `ymm` tiles, masked
    /// loads) and without AVX (scalar loops), which `-march=native` never takes on the project's
    /// machines: causal attention (`blk_exp_row`'s fallback, the row reductions, the mask) and
    /// LayerNorm+matmul (products, packing) at odd sizes, compiled with `-mno-avx512f` and with
    /// `-mno-avx` after the native flags, match the interpreter. A probe built with the same
    /// flags shows which ISA macros remain, so the paths taken are the ones named.
    func testRuntimeFallbacksWithoutAVX512OrAVX() throws {
        let probe = """
            #include <stdio.h>
            int main(void) {
            #ifdef __AVX512F__
                puts("avx512f");
            #endif
            #ifdef __AVX2__
                puts("avx2");
            #endif
            #ifdef __FMA__
                puts("fma");
            #endif
                return 0;
            }
            """
        let dir = CodegenHarness.scratch("fallbacks")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let programs = [
            try Self.fused("attention_causal.graph", dims: ["BH": 2, "N": 100, "d": 40], block: 64),
            try Self.fused("layernorm_matmul.graph", dims: ["M": 70, "K": 72, "N": 90], block: 64),
        ]
        for (flags, macros) in [(["-mno-avx512f"], "avx2 fma"), (["-mno-avx"], "")] {
            let exe = try CCompiler.buildProgram(
                source: probe, name: "isa", directory: dir, flags: CCompiler.baseFlags + flags)
            let isa = try CCompiler.run(exe, []).stdout.split(separator: "\n").joined(separator: " ")
            XCTAssertEqual(isa, macros, "\(flags)")
            for program in programs { _ = try CodegenHarness.check(program, extraFlags: flags) }
        }
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
