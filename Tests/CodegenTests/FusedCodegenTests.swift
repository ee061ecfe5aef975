import BlockIR
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Schedule
import XCTest

/// The examples, fused, compiled and compared with the interpreter at small sizes.
final class FusedCodegenTests: XCTestCase {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Examples")

    static func fused(_ file: String, dims: [String: Int], block: Int) throws -> Program {
        try fused(file, dims: dims, i: block, j: block, k: block)
    }

    /// An example lowered at blocks `i × j` (reductions `k`) and fused.
    static func fused(_ file: String, dims: [String: Int], i: Int, j: Int, k: Int) throws -> Program {
        let text = try String(contentsOf: Self.examples.appendingPathComponent(file), encoding: .utf8)
        let graph = try GraphParser.parse(text, defaultName: "g", dimOverrides: dims)
        let lowered = try CodegenHarness.lower(graph, i: i, j: j, k: k)
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

    /// LayerNorm+matmul on a CPU: the schedule splits the loop over K (`InvariantFission`), so a
    /// thread computes the row statistics once per run of column blocks of one row block and
    /// keeps them (`GridHoisting`), computes the column sums `ΣγW`, `ΣβW` once per call where the
    /// column blocks are full (`GridHoisting.Table`), and packs W once per call with its rows
    /// scaled by γ (R4a moved γ onto W; `Prepack.scale`). A 4×3 grid with partial last row and
    /// column blocks, run by 1, 2, 3 and 5 threads (whose runs start inside a row block, so the
    /// statistics must be recomputed where the row block changes), matches the interpreter.
    func testGridHoistingAndScaledPackAcrossColumnBlocks() throws {
        let ln = try Self.fused("layernorm_matmul.graph", dims: ["M": 100, "K": 72, "N": 90], block: 32)
        let kernel = try XCTUnwrap(Scheduler.scheduleKeepingBlocks(ln, target: .cpu).kernels.first)
        XCTAssertEqual(kernel.kernel.grid.map(\.extent), [4, 3])
        let hoisting = try XCTUnwrap(kernel.hoisting, "the statistics are hoisted")
        XCTAssertEqual(hoisting.axis.name, "j")
        // The mean and r (and the statistics they come from) are kept between instances.
        XCTAssertGreaterThanOrEqual(hoisting.kept.count, 2)
        XCTAssertTrue(hoisting.kept.allSatisfy { $0.floats <= 32 }, "\(hoisting.kept)")
        let scales = kernel.prepacks.compactMap { $0.scale.map { ln[$0].name } }
        XCTAssertEqual(scales, ["gamma"], "W packed with its rows scaled by gamma")
        // No instance multiplies X by gamma: the only products read X in place or the packed copies.
        let source = CEmitter.emit(ln).source
        XCTAssertTrue(source.contains("if (!blk_h_again)"), "the hoisted run is guarded")
        for threads in [1, 2, 3, 5] { _ = try CodegenHarness.check(ln, threads: threads) }
        // Full column blocks: `ΣγW` and `ΣβW` (the same for every row block) are computed once per
        // call, before the grid, into a table per column block (`GridHoisting.Table`).
        let full = try Self.fused("layernorm_matmul.graph", dims: ["M": 100, "K": 72, "N": 96], block: 32)
        let tabled = try XCTUnwrap(Scheduler.scheduleKeepingBlocks(full, target: .cpu).kernels.first?.hoisting)
        let table = try XCTUnwrap(tabled.table, "the column sums are computed once per call")
        XCTAssertEqual(table.part.axis.name, "i")
        XCTAssertEqual(table.extent, 3)
        XCTAssertFalse(tabled.runs.isEmpty, "the row statistics are still hoisted along j")
        XCTAssertTrue(CEmitter.emit(full).source.contains("blk_table"))
        for threads in [1, 2, 3] { _ = try CodegenHarness.check(full, threads: threads) }
        // The same kernel where hoisting is impossible (one column block): no guard, same values.
        let narrow = try Self.fused("layernorm_matmul.graph", dims: ["M": 100, "K": 72, "N": 30], block: 32)
        XCTAssertNil(try XCTUnwrap(Scheduler.scheduleKeepingBlocks(narrow, target: .cpu).kernels.first).hoisting)
        _ = try CodegenHarness.check(narrow, threads: 3)
    }

    /// RMSNorm+SwiGLU on a CPU: inside the loop over hidden blocks, the loop over `d` carries the
    /// sum of `x²` beside the gate and up products. The schedule splits it and moves the sum (and
    /// `1/rms` from it) out of the loop over hidden blocks (`InvariantFission.hoistFromLoops`), so
    /// each row block computes it once instead of once per hidden block. At odd sizes (partial
    /// last blocks), run by 1, 2 and 3 threads, the C matches the interpreter.
    func testLoopInvariantsMoveOutOfTheHiddenLoop() throws {
        let ffn = try Self.fused("rmsnorm_swiglu.graph", dims: ["M": 40, "d": 48, "h": 72], block: 32)
        let schedule = Scheduler.scheduleKeepingBlocks(ffn, target: .cpu)
        XCTAssertTrue(
            schedule.decisions.contains { $0.hasPrefix("moved ") && $0.contains("out of loop") },
            "\(schedule.decisions)")
        let kernel = try XCTUnwrap(schedule.kernels.first).kernel
        // Two top-level loops: the sum of squares alone, then the hidden loop, whose inner loop
        // carries only the two products.
        let loops = kernel.body.compactMap { if case .loop(let l) = $0.op { l } else { nil } }
        XCTAssertEqual(loops.map(\.carried.count), [1, 1])
        let inner = loops.last?.body.compactMap { if case .loop(let l) = $0.op { l } else { nil } }
        XCTAssertEqual(inner?.map(\.carried.count), [2])
        for threads in [1, 2, 3] { _ = try CodegenHarness.check(ffn, threads: threads) }
        // A GPU target keeps the loops as fusion left them.
        let gpu = Scheduler.scheduleKeepingBlocks(ffn, target: .sm90)
        XCTAssertFalse(gpu.decisions.contains { $0.hasPrefix("moved ") }, "\(gpu.decisions)")
    }

    /// LayerNorm+matmul's product loop on a CPU (`WholeReduction`): a call every `group`
    /// iterations runs `group` blocks of K from the packed weights, the last call shorter where K
    /// is not a multiple of the group's depth (330 = 256 + 74 with 32-deep blocks) or of the block
    /// (a partial last block); at 1, 2 and 3 threads against the interpreter. A GPU target keeps
    /// one call per block. RMSNorm+SwiGLU's two products read their shared block of X in place.
    func testProductsRunSeveralBlocksOfTheReductionPerCall() throws {
        for (k, depth, group) in [(330, 330, 8), (200, 200, 7)] {
            let ln = try Self.fused("layernorm_matmul.graph", dims: ["M": 300, "K": k, "N": 90], block: 32)
            let schedule = Scheduler.scheduleKeepingBlocks(ln, target: .cpu)
            let whole = schedule.kernels.flatMap { $0.wholeReductions.values }
            XCTAssertEqual(whole.map(\.depth), [depth], "K = \(k)")
            XCTAssertEqual(whole.map(\.group), [group], "K = \(k)")
            XCTAssertEqual(whole.map(\.size), [32], "K = \(k)")
            for threads in [1, 2, 3] { _ = try CodegenHarness.check(ln, threads: threads) }
            let gpu = Scheduler.scheduleKeepingBlocks(ln, target: .sm90)
            XCTAssertTrue(gpu.kernels.allSatisfy { $0.wholeReductions.isEmpty })
        }
        // RMSNorm+SwiGLU: the gate and up products read one block of X, which the storage analysis
        // copies for its two readers (rows 600 apart); they read it in place instead (K = 600: calls
        // 256, 256 and 88 deep).
        let ffn = try Self.fused("rmsnorm_swiglu.graph", dims: ["M": 100, "d": 600, "h": 90], block: 32)
        let schedule = Scheduler.scheduleKeepingBlocks(ffn, target: .cpu)
        XCTAssertEqual(schedule.kernels.map(\.wholeReductions.count), [2])
        XCTAssertEqual(schedule.kernels.map(\.loadsReadInPlace.count), [1])
        for threads in [1, 3] { _ = try CodegenHarness.check(ffn, threads: threads) }
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
