import BlockIR
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// The shapes the fusion issue asks for, checked on the fused programs of the examples.
final class FusedShapeTests: XCTestCase {
    static func fused(_ name: String, dims: [String: Int]) throws -> (Program, Program) {
        let program = try DifferentialTests.example(name, dims: dims)
        return (program, Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program)
    }

    /// The top-level loops of a kernel.
    static func loops(_ kernel: Kernel) -> [Loop] {
        kernel.body.compactMap { if case .loop(let l) = $0.op { return l } else { return nil } }
    }

    func testAttentionFusesIntoOneStreamingKernel() throws {
        let (naive, fused) = try Self.fused("attention", dims: ["BH": 2, "N": 256, "d": 64])
        XCTAssertEqual(fused.kernels.count, 1, BlockPrinter.print(fused))
        let kernel = fused.kernels[0]
        XCTAssertEqual(kernel.grid.map(\.variable.name), ["b0", "i", "j"])
        let loops = Self.loops(kernel)
        XCTAssertEqual(loops.count, 1)
        // Running max, running sum, output accumulator, over the target's row block.
        let r = TargetDescription.cpu.rowBlock
        XCTAssertEqual(loops.first?.carried.map(\.type.shape), [[r], [r], [r, 64]])
        XCTAssertFalse(fused.tensors.contains { $0.role == .temp }, "no intermediate in global memory")
        // Global traffic: Q and O once, K and V once per query block.
        let report = CostReport.analyze(fused, localPeak: { _ in 0 })
        let qkvo = 2 * 256 * 64 * 4
        XCTAssertEqual(report.total.globalReadBytes, qkvo + 2 * qkvo * (256 / r))
        XCTAssertEqual(report.total.globalWriteBytes, qkvo)
        let naiveReport = CostReport.analyze(naive, localPeak: { _ in 0 })
        XCTAssertLessThan(report.total.globalReadBytes, naiveReport.total.globalReadBytes / 2)
    }

    /// Unit batch axes and sizes that are not multiples of the block fuse the same way.
    func testAttentionFusesAtOddShapes() throws {
        for dims in [["BH": 1, "N": 256, "d": 64], ["BH": 3, "N": 100, "d": 40]] {
            let (_, fused) = try Self.fused("attention", dims: dims)
            XCTAssertEqual(fused.kernels.count, 1, "\(dims): " + BlockPrinter.print(fused))
            XCTAssertFalse(fused.tensors.contains { $0.role == .temp }, "\(dims)")
        }
    }

    /// Decode: one query row per head. The size-1 query axis is a point in every naive kernel (no
    /// `+: 1` slices), so the whole chain fuses into one kernel that reads K and V once, with one
    /// running maximum and sum per head (rank 0) and the division by the sum after the loop.
    func testDecodeAttentionStreamsTheCacheOnce() throws {
        let (naive, fused) = try Self.fused("decode_attention", dims: ["BH": 3, "N": 300, "d": 32])
        for kernel in naive.kernels {
            kernel.walk { inst in
                let accesses: [AxisAccess]
                switch inst.op {
                case .load(_, let a), .store(_, _, let a): accesses = a
                default: return
                }
                for access in accesses {
                    if case .slice(_, 1) = access { XCTFail("\(kernel.name) slices a size-1 axis: \(inst.op)") }
                }
            }
        }
        XCTAssertEqual(fused.kernels.count, 1, BlockPrinter.print(fused))
        let loops = Self.loops(fused.kernels[0])
        XCTAssertEqual(loops.count, 1, BlockPrinter.print(fused))
        XCTAssertEqual(loops.first?.carried.map(\.type.rank), [0, 0, 2])
        XCTAssertFalse(fused.tensors.contains { $0.role == .temp }, "no intermediate in global memory")
        let report = CostReport.analyze(fused, localPeak: { _ in 0 })
        let q = 3 * 32 * 4
        XCTAssertEqual(report.total.globalReadBytes, q + 2 * 3 * 300 * 32 * 4, "Q once, K and V once")
        XCTAssertEqual(report.total.globalWriteBytes, q)
    }

    /// Decode attention on fewer heads than cores (2 heads, 1001 keys, the tests' 16 cores): R15
    /// splits the key loop into chunks over a new grid axis; the split kernel still reads K and V
    /// once in total, and the merge kernel reads only the chunks' states.
    func testDecodeAttentionSplitsTheKeyLoopAcrossTheCores() throws {
        let (_, fused) = try Self.fused("decode_attention", dims: ["BH": 2, "N": 1001, "d": 32])
        XCTAssertEqual(fused.kernels.count, 2, BlockPrinter.print(fused))
        let (split, merge) = (fused.kernels[0], fused.kernels[1])
        // 16 key blocks on 2 heads: min(⌈16 / 2⌉, ⌊16 / 4⌋) = 4 chunks of 4 blocks.
        XCTAssertEqual(split.grid.map(\.extent), [2, 1, 4], BlockPrinter.print(fused))
        XCTAssertEqual(merge.grid.map(\.extent), [2, 1])
        XCTAssertEqual(Self.loops(merge).first?.upper, .constant(4))
        let report = CostReport.analyze(fused, localPeak: { _ in 0 })
        let q = 2 * 32 * 4
        XCTAssertEqual(report.kernels[0].globalReadBytes, 4 * q + 2 * 2 * 1001 * 32 * 4, "Q per chunk, K and V once")
        let states = 2 * 4 * (1 + 1 + 32) * 4
        XCTAssertEqual(report.kernels[0].globalWriteBytes, states)
        XCTAssertEqual(report.kernels[1].globalReadBytes, states)
        XCTAssertEqual(report.kernels[1].globalWriteBytes, q)
    }

    /// The Llama decode layer: the grouped attention (2 K/V heads, 2 query heads each as rows)
    /// splits its key loop, and one kernel reads the cache, once.
    func testDecodeLayerReadsTheCacheOnceInSplitChunks() throws {
        let (_, fused) = try Self.fused("llama_layer_decode", dims: ["D": 128, "H": 4, "Hkv": 2, "N": 1001, "F": 200])
        let cache = ["Kc", "Vc"].compactMap { fused.tensorID(named: $0) }
        let readers = fused.kernels.filter { !$0.body.loadedTensors.isDisjoint(with: cache) }
        XCTAssertEqual(readers.map(\.name), ["k17_matmul_t33_split"], BlockPrinter.print(fused))
        XCTAssertEqual(readers.first?.grid.last?.extent, 4, "2 groups, 16 key blocks: 4 chunks")
        let report = CostReport.analyze(fused, localPeak: { _ in 0 })
        let index = fused.kernels.firstIndex { $0.name == "k17_matmul_t33_split" } ?? 0
        let cacheBytes = 2 * 2 * 1001 * 32 * 4
        let queries = 4 * 2 * 2 * 32 * 4  // each of the 4 chunks reads its group's 2 query rows
        XCTAssertEqual(report.kernels[index].globalReadBytes, cacheBytes + queries)
    }

    /// Grouped-query attention: reshapes of the inputs and of the output are views, not copy
    /// kernels, and the 5-D program fuses into one attention kernel reading K and V per group.
    func testGroupedQueryAttentionViewsInsteadOfCopies() throws {
        let dims = ["B": 1, "Hkv": 2, "g": 4, "H": 8, "N": 128, "d": 32]
        let (naive, fused) = try Self.fused("attention_gqa", dims: dims)
        XCTAssertFalse(naive.kernels.contains { $0.name.contains("copy") }, BlockPrinter.print(naive))
        XCTAssertEqual(
            naive.tensors.filter { $0.viewOf != nil }.map(\.name).sorted(), ["Kg", "Og", "Qg", "Vg"])
        XCTAssertEqual(fused.kernels.count, 1, BlockPrinter.print(fused))
        XCTAssertEqual(fused.tensors.filter { $0.viewOf == nil }.map(\.name), ["Q", "K", "V", "O"])
        let report = CostReport.analyze(fused, localPeak: { _ in 0 })
        let r = TargetDescription.cpu.rowBlock
        let q = 8 * 128 * 32 * 4
        let kv = 2 * 128 * 32 * 4
        // Q and O once; each of the 8 query heads' 128 / r row blocks reads its group's K and V.
        XCTAssertEqual(report.total.globalReadBytes, q + 2 * kv * 4 * (128 / r))
        XCTAssertEqual(report.total.globalWriteBytes, q)
    }

    func testCausalAttentionSkipsBlocksAboveTheDiagonal() throws {
        let (_, full) = try Self.fused("attention", dims: ["BH": 2, "N": 512, "d": 64])
        let (_, causal) = try Self.fused("attention_causal", dims: ["BH": 2, "N": 512, "d": 64])
        XCTAssertEqual(causal.kernels.count, 1, BlockPrinter.print(causal))
        let loop = Self.loops(causal.kernels[0]).first
        XCTAssertNotNil(loop)
        XCTAssertTrue(loop?.upper.variables.contains(IndexVar("i")) ?? false, "the key loop stops at the diagonal")
        let fullFlops = CostReport.analyze(full, localPeak: { _ in 0 }).total.flops
        let causalFlops = CostReport.analyze(causal, localPeak: { _ in 0 }).total.flops
        // n query blocks of r rows; block q visits the key blocks up to its last row, (q+1)·r/c
        // of N/c: the ratio is (n+1)/(2n), about half (5/8 for n = 4 blocks of 128).
        let n = Double(512 / TargetDescription.cpu.rowBlock)
        let ratio = Double(causalFlops) / Double(fullFlops)
        XCTAssertEqual(ratio, (n + 1) / (2 * n), accuracy: 0.02)
    }

    /// ALiBi's positions (`pos` and `i - j`) and slopes fuse into the one attention kernel like
    /// fills: no N×N tensor in global memory, no extra global reads, and the causal key loop still
    /// stops at the diagonal (FLOPs close to the causal example's).
    func testAlibiAttentionFusesIntoOneCausalKernel() throws {
        let (_, causal) = try Self.fused("attention_causal", dims: ["BH": 4, "N": 512, "d": 64])
        let (_, alibi) = try Self.fused("attention_alibi", dims: ["B": 2, "H": 2, "N": 512, "d": 64])
        XCTAssertEqual(alibi.kernels.count, 1, BlockPrinter.print(alibi))
        XCTAssertEqual(alibi.tensors.map(\.name), ["Q", "K", "V", "O"])
        let loop = Self.loops(alibi.kernels[0]).first
        XCTAssertTrue(loop?.upper.variables.contains(IndexVar("i")) ?? false, "the key loop stops at the diagonal")
        XCTAssertTrue(
            loop?.body.contains { if case .index(_, axis: 1) = $0.op { true } else { false } } ?? false,
            "the key positions move with the loop")
        let c = CostReport.analyze(causal, localPeak: { _ in 0 }).total
        let a = CostReport.analyze(alibi, localPeak: { _ in 0 }).total
        XCTAssertEqual(a.globalReadBytes, c.globalReadBytes)
        XCTAssertEqual(Double(a.flops) / Double(c.flops), 1, accuracy: 0.05)
    }

    /// RoPE inside the graph: the rotated Q and K (slices, a concat of −x₂ and x₁, cos and sin of
    /// concatenated angles from positions) fuse into the one causal attention kernel once R14
    /// splits each load of a concatenation into its parts: no tensor but the inputs and the
    /// output, and the key loop stops at the diagonal (FLOPs about half of full attention's).
    func testRoPEAttentionFusesIntoOneCausalKernel() throws {
        let (_, full) = try Self.fused("attention", dims: ["BH": 4, "N": 512, "d": 64])
        let (_, rope) = try Self.fused("attention_rope", dims: ["B": 1, "H": 4, "N": 512, "d": 64])
        XCTAssertEqual(rope.kernels.count, 1, BlockPrinter.print(rope))
        XCTAssertFalse(rope.tensors.contains { $0.role == .temp && $0.viewOf == nil }, BlockPrinter.print(rope))
        let loop = Self.loops(rope.kernels[0]).first
        XCTAssertTrue(loop?.upper.variables.contains(IndexVar("i")) ?? false, "the key loop stops at the diagonal")
        let ratio =
            Double(CostReport.analyze(rope, localPeak: { _ in 0 }).total.flops)
            / Double(CostReport.analyze(full, localPeak: { _ in 0 }).total.flops)
        XCTAssertEqual(ratio, 0.5, accuracy: 0.15)
    }

    /// Dual chunk attention: three RoPE'd query variants' scores, chosen by chunk predicates, in
    /// one attention kernel whose key loop stops at the diagonal; only the positions mod C (an
    /// N × d/2 table through a reshape) stay a small kernel of their own. No N×N tensor.
    func testDualChunkAttentionFusesIntoOneAttentionKernel() throws {
        let n = 512
        let (_, dca) = try Self.fused("attention_dca", dims: ["B": 1, "H": 2, "C": 128, "NC": 4, "d": 64])
        let attention = dca.kernels.filter { !Self.loops($0).isEmpty }
        XCTAssertEqual(attention.count, 1, BlockPrinter.print(dca))
        XCTAssertLessThanOrEqual(dca.kernels.count, 2, BlockPrinter.print(dca))
        XCTAssertFalse(dca.tensors.contains { $0.elementCount >= n * n }, BlockPrinter.print(dca))
        let loop = attention.first.flatMap { Self.loops($0).first }
        XCTAssertTrue(loop?.upper.variables.contains(IndexVar("i")) ?? false, "the key loop stops at the diagonal")
    }

    /// In the transformer layer too, the causal attention's key loop stops at the diagonal, though
    /// hoisting has moved the running maximum's clamp constant out of the loop by then (and the
    /// attention runs inside the output projection's loop over the heads: R17 reads the merged
    /// heads from the attention's output, whose blocks R1 then inlines).
    func testTransformerLayerAttentionSkipsMaskedBlocks() throws {
        let (_, fused) = try Self.fused("transformer_layer", dims: ["S": 512, "H": 2, "dh": 64, "F": 256])
        var loops: [Loop] = []
        for kernel in fused.kernels {
            kernel.walk { inst in if case .loop(let l) = inst.op { loops.append(l) } }
        }
        let masked = loops.filter { loop in
            loop.body.contains { if case .mask = $0.op { return true } else { return false } }
        }
        XCTAssertEqual(masked.count, 1, BlockPrinter.print(fused))
        XCTAssertTrue(masked.first?.upper.variables.contains(IndexVar("i")) ?? false, BlockPrinter.print(fused))
    }

    /// Whether the fused program computes the unfused program's outputs (interpreter, seed 5)
    /// within `tolerance · max(1, max|reference|)`.
    static func assertSameOutputs(
        _ naive: Program, _ fused: Program, _ label: String, tolerance: Float = 1e-4
    ) throws {
        let inputs = DifferentialTests.inputs(naive, seed: 5)
        let reference = try BlockInterpreter.run(naive, inputs: inputs)
        let (err, scale) = DifferentialTests.maxError(reference, try BlockInterpreter.run(fused, inputs: inputs))
        XCTAssertLessThanOrEqual(err, tolerance * scale, label)
    }

    /// The kernels of a program that contain an instruction matching `test`.
    static func kernels(_ program: Program, containing test: (Op) -> Bool) -> [Kernel] {
        program.kernels.filter { kernel in
            var found = false
            kernel.walk { if test($0.op) { found = true } }
            return found
        }
    }

    /// The Llama prefill layer with heads two blocks wide (dh = 128) at odd prompt lengths: one
    /// kernel computes the scores, the causal mask, the softmax and P·V, and no S×S tensor reaches
    /// global memory. (The scores kernel used to be re-blocked over the keys for its load of the Q
    /// projection through a reshape view, which R1 cannot inline, leaving scores 1024 keys wide that
    /// the softmax could not take at its 64-key loads.)
    func testPrefillLayerAttentionFusesIntoOneKernel() throws {
        for s in [200, 77] {
            let dims = ["S": s, "D": 512, "H": 4, "Hkv": 2, "F": 96]
            let (naive, fused) = try Self.fused("llama_layer_prefill", dims: dims)
            let masked = Self.kernels(fused) { if case .mask = $0 { true } else { false } }
            XCTAssertEqual(masked.count, 1, "S=\(s): " + BlockPrinter.print(fused))
            let attention = masked.first.map {
                Self.kernels(Program(name: "attention", tensors: fused.tensors, kernels: [$0])) { op in
                    if case .unary(.exp, _) = op { true } else { false }
                }
            }
            XCTAssertEqual(attention?.count, 1, "S=\(s): the masked kernel also runs the softmax")
            XCTAssertFalse(
                fused.tensors.contains { $0.role == .temp && $0.shape.filter { $0 == s }.count >= 2 },
                "S=\(s): no S×S tensor in global memory: " + BlockPrinter.print(fused))
            try Self.assertSameOutputs(naive, fused, "S=\(s)")
        }
    }

    /// The prefill layer's FFN does the useful work (at S = 256 and the example's D and F; fused,
    /// not run) in one kernel, the normalisation, SwiGLU, the down projection and the residual:
    /// its dots do 2·3·S·D·F FLOPs (R4b gives a group of terms one product, where it gave each
    /// term its own and so doubled the gated products), it stores the output Y, and `X1 = X + A·Wo`
    /// (2·D FLOPs per element) is stored once for its readers instead of being recomputed by
    /// each of them: one kernel reads Wo. The attention is one kernel there too.
    func testPrefillLayerFFNDoesTheUsefulWork() throws {
        let (naive, fused) = try Self.fused("llama_layer_prefill", dims: ["S": 256])
        let wo = try XCTUnwrap(fused.tensorID(named: "Wo"))
        let w1 = try XCTUnwrap(fused.tensorID(named: "W1"))
        XCTAssertEqual(fused.kernels.filter { $0.body.loadedTensors.contains(wo) }.count, 1, BlockPrinter.print(fused))
        let ffn = fused.kernels.filter { $0.body.loadedTensors.contains(w1) }
        XCTAssertEqual(ffn.count, 1, BlockPrinter.print(fused))
        // At the pinned 16 cores the 4 row blocks do not fill them: R15 splits the hidden loop, and
        // its merge kernel adds the residual. Nothing else lies between the FFN and Y.
        try Self.assertResidualInEpilogue(of: ffn[0], fused)
        let useful = 2 * 3 * 256 * 2048 * 5632
        let ffnFlops = Self.dotFlops(Program(name: "ffn", tensors: fused.tensors, kernels: ffn))
        XCTAssertLessThanOrEqual(Double(ffnFlops), 1.1 * Double(useful), BlockPrinter.print(fused))
        // The normalisation's γ·W row products (R4b) add a little to the projections.
        XCTAssertLessThanOrEqual(Double(Self.dotFlops(fused)), 1.05 * Double(Self.dotFlops(naive)))
        XCTAssertEqual(Self.kernels(fused) { if case .mask = $0 { true } else { false } }.count, 1)
        XCTAssertFalse(fused.tensors.contains { $0.role == .temp && $0.shape.filter { $0 == 256 }.count >= 2 })
    }

    /// The FFN of the prefill layer and of the transformer layer at odd prompt lengths (D = 512;
    /// at D = 256 recomputing the normalised X1 costs more against the smaller products, and the
    /// gated kernel re-blocks over its hidden blocks instead) is one kernel with its residual: the down projection `G·W2`, re-blocked to read each block of `G`
    /// once, stores whole rows, and R11 widens the residual `X1 + G·W2` to those rows so R1
    /// inlines the product into it; the kernel that reads W1 stores the output Y, and the fused
    /// program gives the unfused one's outputs.
    func testFFNAndItsResidualAreOneKernel() throws {
        let cases: [(String, [String: Int])] = [
            ("llama_layer_prefill", ["S": 77, "D": 512, "H": 4, "Hkv": 2, "F": 200]),
            ("transformer_layer", ["S": 77, "H": 8, "dh": 64, "F": 200]),
        ]
        for (name, dims) in cases {
            let (naive, fused) = try Self.fused(name, dims: dims)
            let w1 = try XCTUnwrap(fused.tensorID(named: "W1"))
            let y = try XCTUnwrap(fused.tensorID(named: "Y"))
            let ffn = fused.kernels.filter { $0.body.loadedTensors.contains(w1) }
            XCTAssertEqual(ffn.count, 1, BlockPrinter.print(fused))
            XCTAssertEqual(ffn.first?.body.storedTensors, [y], "\(name): " + BlockPrinter.print(fused))
            XCTAssertEqual(fused.kernels.filter { $0.body.storedTensors.contains(y) }.count, 1)
            try Self.assertSameOutputs(naive, fused, name)
        }
    }

    /// The kernel that stores Y is `ffn`, or a merge of `ffn`'s partial states (R15) that reads no
    /// other temporary than X1 and those states: the residual is the FFN's epilogue.
    static func assertResidualInEpilogue(of ffn: Kernel, _ fused: Program) throws {
        let y = try XCTUnwrap(fused.tensorID(named: "Y"))
        let x1 = try XCTUnwrap(fused.tensorID(named: "X1"))
        let writers = fused.kernels.filter { $0.body.storedTensors.contains(y) }
        XCTAssertEqual(writers.count, 1, BlockPrinter.print(fused))
        guard let writer = writers.first, writer != ffn else { return }
        let temporaries = writer.body.loadedTensors.filter { fused[$0].role == .temp && $0 != x1 }
        XCTAssertFalse(temporaries.isEmpty, BlockPrinter.print(fused))
        XCTAssertTrue(temporaries.isSubset(of: ffn.body.storedTensors), BlockPrinter.print(fused))
    }

    /// At the example sizes and 2 cores the prefill layer is the four kernels of a Llama layer:
    /// the RMSNorm with the Q, K and V projections (R18: one loop over each row block of X,
    /// three accumulators, the statistics computed once), the attention, the output projection
    /// with its residual (reading the attention's output through the head merge's index map,
    /// R17), and the RMSNorm with SwiGLU and its residual. Its FLOPs do not exceed the 98.6
    /// GFLOP it took in nine kernels. The transformer layer (dh = 64) is three: its attention
    /// runs inside the output projection. Fused, not run (the interpreter checks the same rules
    /// at small sizes in `DifferentialTests.testLayersWithSiblingsAfterEveryStep`).
    func testLayersAreAtMostFourKernels() throws {
        let options = FusionOptions(cores: 2)
        let prefill = Fusion.fuse(try DifferentialTests.example("llama_layer_prefill", dims: [:]), options: options)
        let p = prefill.program
        XCTAssertEqual(p.kernels.count, 4, BlockPrinter.print(p))
        XCTAssertLessThanOrEqual(p.kernels.reduce(0) { $0 + $1.estimatedFlops }, 98_627_428_352)
        let wq = try XCTUnwrap(p.tensorID(named: "Wq"))
        let projections = p.kernels.filter { $0.body.loadedTensors.contains(wq) }
        XCTAssertEqual(projections.count, 1)
        for name in ["Wk", "Wv"] {
            XCTAssertTrue(
                projections.first?.body.loadedTensors.contains(try XCTUnwrap(p.tensorID(named: name))) ?? false)
        }
        // The statistics are computed once: one square of X per projection kernel.
        let squares = projections.first.map { kernel in
            var n = 0
            kernel.walk { if case .unary(.square, _) = $0.op { n += 1 } }
            return n
        }
        XCTAssertEqual(squares, 1, BlockPrinter.print(p))
        XCTAssertTrue(prefill.trace.contains { $0.ruleID == "R18" })
        let layer = Fusion.fuse(try DifferentialTests.example("transformer_layer", dims: [:]), options: options)
        XCTAssertEqual(layer.program.kernels.count, 3, BlockPrinter.print(layer.program))
    }

    /// A stack of four transformer layers (the transformer layer's graph, each layer reading the
    /// last one's output) is three kernels per layer at 2 cores, every layer alike: the later
    /// layers' RMSNorm, read by three projections, is no longer materialized once R18 has
    /// merged them into one reader.
    func testStackLayersAreAlike() throws {
        let layers = 4
        var text = "graph stack\ndim S = 256\ndim H = 4\ndim dh = 64\ndim D = H * dh\ndim F = 512\ninput X0: [S, D]\n"
        for l in 0..<layers {
            for (w, shape) in [
                ("g_attn", "[D]"), ("Wq", "[D, D]"), ("Wk", "[D, D]"), ("Wv", "[D, D]"), ("Wo", "[D, D]"),
                ("g_ffn", "[D]"), ("W1", "[D, F]"), ("W3", "[D, F]"), ("W2", "[F, D]"),
            ] {
                text += "input \(w)_\(l): \(shape)\n"
            }
        }
        for l in 0..<layers {
            let x = "X\(l)"
            text += """
                Xa_\(l) = rmsnorm(\(x), g_attn_\(l), eps=1e-6)
                Q_\(l) = transpose(reshape(matmul(Xa_\(l), Wq_\(l)), [S, H, dh]), perm=[1, 0, 2])
                K_\(l) = transpose(reshape(matmul(Xa_\(l), Wk_\(l)), [S, H, dh]), perm=[1, 0, 2])
                V_\(l) = transpose(reshape(matmul(Xa_\(l), Wv_\(l)), [S, H, dh]), perm=[1, 0, 2])
                P_\(l) = softmax(where(i >= j, matmul(Q_\(l), K_\(l), transpose_b=true) * rsqrt(dh), -inf), axis=-1)
                A_\(l) = reshape(transpose(matmul(P_\(l), V_\(l)), perm=[1, 0, 2]), [S, D])
                X1_\(l) = \(x) + matmul(A_\(l), Wo_\(l))
                Xf_\(l) = rmsnorm(X1_\(l), g_ffn_\(l), eps=1e-6)
                G_\(l) = silu(matmul(Xf_\(l), W1_\(l))) * matmul(Xf_\(l), W3_\(l))
                X\(l + 1) = X1_\(l) + matmul(G_\(l), W2_\(l))

                """
        }
        text += "output X\(layers)\n"
        let graph = try GraphParser.parse(text, defaultName: "stack")
        let program = try Lowering.lower(graph)
        let fused = Fusion.fuse(program, options: FusionOptions(cores: 2)).program
        // Each layer's kernels: those that load one of its weights (a kernel loads one layer's).
        let counts = (0..<layers).map { l in
            fused.kernels.filter { kernel in
                kernel.body.loadedTensors.contains { fused[$0].name.hasSuffix("_\(l)") }
            }.count
        }
        XCTAssertEqual(counts, Array(repeating: 3, count: layers), BlockPrinter.print(fused))
        XCTAssertEqual(fused.kernels.count, 3 * layers)
    }

    /// The decode layer with X1 = X + A·Wo stored: the FFN kernel runs the second RMSNorm's
    /// statistics loop before its loop over the hidden blocks, and R15 still splits that loop
    /// over the cores (each chunk runs the short statistics loop again).
    func testDecodeLayerSplitsTheFFNAfterItsStatistics() throws {
        let dims = ["D": 1024, "H": 8, "Hkv": 2, "N": 130, "F": 512]
        let (naive, fused) = try Self.fused("llama_layer_decode", dims: dims)
        let w1 = try XCTUnwrap(fused.tensorID(named: "W1"))
        let ffn = fused.kernels.filter { $0.body.loadedTensors.contains(w1) }
        XCTAssertEqual(ffn.count, 1, BlockPrinter.print(fused))
        XCTAssertGreaterThan(ffn.first?.instanceCount ?? 0, 1, BlockPrinter.print(fused))
        try Self.assertSameOutputs(naive, fused, "llama_layer_decode")
    }

    /// 2·m·n·k per executed dot (constant loop bounds).
    static func dotFlops(_ program: Program) -> Int {
        func flops(_ body: [Instruction], _ types: [ValueID: BlockType]) -> Int {
            var total = 0
            for inst in body {
                switch inst.op {
                case .dot(let a, _, let ta, _, _):
                    let k = types[a].map { ta ? $0.shape[0] : $0.shape[1] } ?? 0
                    total += 2 * inst.results[0].type.elementCount * k
                case .loop(let l):
                    total += max(0, l.upper.evaluate([:]) - l.lower.evaluate([:])) * flops(l.body, types)
                default: break
                }
            }
            return total
        }
        return program.kernels.reduce(0) { $0 + $1.instanceCount * flops($1.body, $1.valueTypes()) }
    }

    /// RMSNorm + SwiGLU: one kernel over row blocks; none of Xn, H1, H3, G in global memory; the
    /// matmuls do exactly the unfused work.
    func testRMSNormSwiGLUFusesIntoOneKernel() throws {
        let (naive, fused) = try Self.fused("rmsnorm_swiglu", dims: ["M": 256, "d": 256, "h": 384])
        XCTAssertEqual(fused.kernels.count, 1, BlockPrinter.print(fused))
        XCTAssertEqual(fused.kernels.first?.grid.map(\.variable.name), ["i"])
        XCTAssertEqual(fused.tensors.map(\.name), ["X", "g", "W1", "W3", "W2", "Y"])
        XCTAssertEqual(Self.dotFlops(fused), Self.dotFlops(naive))
        XCTAssertEqual(Self.dotFlops(naive), 2 * 256 * 256 * 384 * 3)
    }

    /// LayerNorm + matmul: one kernel, Xn never stored, the statistics in the matmul's loop over K
    /// (Σx, Σx², the count, Σ(x∘γ)W, ΣγW and ΣβW), the normalisation after it.
    func testLayerNormMatmulFusesIntoOneKernel() throws {
        let (_, fused) = try Self.fused("layernorm_matmul", dims: ["M": 256, "K": 256, "N": 128])
        XCTAssertEqual(fused.kernels.count, 1, BlockPrinter.print(fused))
        XCTAssertEqual(fused.tensors.map(\.name), ["X", "gamma", "beta", "W", "Y"])
        let loops = Self.loops(fused.kernels[0])
        XCTAssertEqual(loops.count, 1, "the statistics run in the matmul's loop")
        let r = TargetDescription.cpu.rowBlock
        XCTAssertEqual(loops.first?.carried.map(\.type.shape), [[r], [r, 64], [64], [64], [r], [r]])
    }

    func testFusingAFusedProgramChangesNothing() throws {
        for (name, dims) in [
            ("attention", ["BH": 1, "N": 128, "d": 32]), ("attention_causal", ["BH": 1, "N": 128, "d": 32]),
            ("attention_alibi", ["B": 1, "H": 2, "N": 128, "d": 32]),
            ("layernorm_matmul", ["M": 128, "K": 128, "N": 128]), ("rmsnorm_swiglu", ["M": 128, "d": 128, "h": 192]),
        ] {
            let (_, fused) = try Self.fused(name, dims: dims)
            let again = Fusion.fuse(fused, options: FusionOptions(cores: CLI.pinnedCores))
            XCTAssertEqual(again.trace.map(\.description), [], name)
            XCTAssertEqual(again.program, fused, name)
        }
    }

    func testNoFusionRuleLeavesTheProgram() throws {
        let program = try DifferentialTests.example("attention", dims: ["BH": 1, "N": 64, "d": 16])
        let only = Fusion.fuse(program, options: FusionOptions(onlyRule: "hoist", cores: CLI.pinnedCores))
        XCTAssertTrue(only.trace.allSatisfy { $0.rule == "hoist" })
    }

    /// Stick-breaking attention: one kernel, no N×N tensor, a key loop that walks backwards from
    /// the diagonal carrying the running sum (no running maximum), FLOPs within 1.5× of the
    /// unfused program's (causal skipping keeps them near half).
    func testStickBreakingFusesIntoOneReverseKernel() throws {
        let (naive, fused) = try Self.fused("stick_breaking_attention", dims: ["BH": 2, "N": 256, "d": 64])
        XCTAssertEqual(fused.kernels.count, 1, BlockPrinter.print(fused))
        XCTAssertFalse(fused.tensors.contains { $0.role == .temp }, "no intermediate in global memory")
        let loops = Self.loops(fused.kernels[0])
        // The prologue (blocks above the diagonal, shrunk to no step) and the fused key loop.
        let key = try XCTUnwrap(loops.last)
        XCTAssertEqual(key.carried.map(\.type.shape), [[64], [64, 64]], "running sum and output only")
        let loads = key.body.compactMap { inst -> [AxisAccess]? in
            if case .load(let t, let a) = inst.op, fused[t].name == "K" { return a } else { return nil }
        }
        XCTAssertEqual(loads.first?[1], .slice(start: .add(.mul(.v(key.variable.name), -64), .constant(192)), size: 64))
        XCTAssertFalse(key.body.contains { if case .reduce(.max, _, _) = $0.op { true } else { false } })
        for i in 0..<4 {
            let env = [IndexVar("i"): i]
            XCTAssertEqual(
                key.upper.evaluate(env) - key.lower.evaluate(env), i + 1, "diagonal and below, row block \(i)")
            if loops.count > 1 {
                XCTAssertLessThanOrEqual(loops[0].upper.evaluate(env) - loops[0].lower.evaluate(env), 0)
            }
        }
        let flops = CostReport.analyze(fused, localPeak: { _ in 0 }).total.flops
        let naiveFlops = CostReport.analyze(naive, localPeak: { _ in 0 }).total.flops
        XCTAssertLessThan(Double(flops), 1.5 * Double(naiveFlops))
    }

    /// Softmax along the first axis streams like softmax along the last: R6 merges the column
    /// maximum into the column sums (a factor per column), and the results stay exact.
    func testSoftmaxAlongTheFirstAxisStreams() throws {
        var b = GraphBuilder(name: "g")
        let x = try b.input("X", [300, 77])
        try b.output(try b.softmax(x, axis: 0), name: "Y")
        var options = LoweringOptions()
        try options.override([("i", 16), ("j", 32), ("k", 16)])
        let naive = try Lowering.lower(try b.build(), options: options)
        let result = Fusion.fuse(naive, options: FusionOptions(cores: CLI.pinnedCores))
        XCTAssertTrue(result.trace.contains { $0.rule == "streaming" }, result.trace.map(\.description).joined())
        let input = RandomInputs.standardNormal(shape: [300, 77], seed: 3, stream: 0)
        let expected = try BlockInterpreter.run(naive, inputs: ["X": input])["Y"]
        let got = try BlockInterpreter.run(result.program, inputs: ["X": input])["Y"]
        for (p, q) in zip(try XCTUnwrap(got).data, try XCTUnwrap(expected).data) {
            XCTAssertEqual(p, q, accuracy: 1e-5)
        }
    }
}
