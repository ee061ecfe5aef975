import BlockIR
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// Every transformation is checked by the interpreter against the unfused program on seeded
/// standard-normal inputs: after every single rule application, outputs agree within
/// `1e-4 · max(1, max |reference|)` (float reassociation only) and the verifier accepts the program.
final class DifferentialTests: XCTestCase {
    static func inputs(_ program: Program, seed: UInt64) -> [String: NDArray] {
        var out: [String: NDArray] = [:]
        let bounds = program.gatherIndexBounds()
        for (k, id) in program.inputs.enumerated() {
            out[program[id].name] = RandomInputs.values(
                shape: program[id].shape, type: program[id].elementType, seed: seed, stream: UInt64(k),
                bound: bounds[program[id].name], offsetsInto: program[id].offsetsInto,
                maxSegment: program[id].segmentMaxLength)
        }
        return out
    }

    static func maxError(_ a: [String: NDArray], _ b: [String: NDArray]) -> (error: Float, scale: Float) {
        var err: Float = 0
        var scale: Float = 1
        for (name, x) in a.sorted(by: { $0.key < $1.key }) {
            guard let y = b[name], y.shape == x.shape else { return (.infinity, 1) }
            for (p, q) in zip(x.data, y.data) {
                if p.isNaN != q.isNaN { return (.infinity, 1) }
                if p.isFinite || q.isFinite { err = max(err, abs(p - q)) }
                if p.isFinite { scale = max(scale, abs(p)) }
            }
        }
        return (err, scale)
    }

    /// The relative tolerance of a fused program against its naive one: `1e-4` (float
    /// reassociation) when every intermediate is f32; fusion keeps intermediates in f32 blocks, so
    /// one that the naive program rounds to f16 or bf16 is more exact after fusion: `2^-5` (a few
    /// bf16 roundings) then.
    static func tolerance(_ program: Program) -> Float {
        program.tensors.contains { $0.role == .temp && $0.elementType != .f32 } ? 0x1p-5 : 1e-4
    }

    /// Fuses `program`, checking the interpreter and the verifier after every step.
    static func checkEveryStep(
        _ program: Program, seed: UInt64, label: String, target: TargetDescription = .cpu,
        given: [String: NDArray] = [:], cores: Int = CLI.pinnedCores
    ) throws -> FusionResult {
        let inputs = inputs(program, seed: seed).merging(given) { _, g in g }
        let reference = try BlockInterpreter.run(program, inputs: inputs)
        let tolerance = tolerance(program)
        var failure: String?
        let result = Fusion.fuse(program, options: FusionOptions(target: target, cores: cores)) {
            step, entry in
            guard failure == nil else { return }
            let errors = Verifier.verify(step, target: target)
            if !errors.isEmpty {
                failure = "\(label): verifier after \(entry): \(errors.map(\.description).joined(separator: "; "))"
                return
            }
            do {
                let outputs = try BlockInterpreter.run(step, inputs: inputs)
                let (err, scale) = maxError(reference, outputs)
                if !(err <= tolerance * scale) {
                    failure = "\(label): error \(err) (scale \(scale)) after \(entry)"
                }
            } catch {
                failure = "\(label): interpreter failed after \(entry): \(error)"
            }
        }
        if let failure { XCTFail(failure) }
        XCTAssertFalse(result.hitStepCap, "\(label): fusion hit the step cap")
        return result
    }

    static func example(_ name: String, dims: [String: Int], blocks: [(key: String, value: Int)] = []) throws
        -> Program
    {
        let path = CLI.packageRoot + "/Examples/\(name).graph"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let graph = try GraphParser.parse(text, defaultName: name, dimOverrides: dims)
        var options = LoweringOptions()
        try options.override(blocks)
        return try Lowering.lower(graph, options: options)
    }

    func testExamplesAfterEveryStep() throws {
        let cases: [(String, [String: Int], [(key: String, value: Int)])] = [
            ("attention", ["BH": 2, "N": 80, "d": 16], [("i", 16), ("j", 16), ("k", 16)]),
            ("attention_causal", ["BH": 2, "N": 72, "d": 16], [("i", 16), ("j", 16), ("k", 16)]),
            ("attention_sliding_window", ["BH": 1, "N": 100, "d": 8, "W": 24], [("i", 16), ("j", 16), ("k", 16)]),
            ("attention_documents", ["BH": 1, "N": 800, "d": 8], [("i", 64), ("j", 64), ("k", 64)]),
            ("embedding_rmsnorm", ["T": 40, "V": 30, "D": 24, "F": 20], [("i", 16), ("j", 16), ("k", 16)]),
            (
                "attention_gqa", ["B": 1, "Hkv": 2, "g": 2, "H": 4, "N": 40, "d": 8],
                [("i", 16), ("j", 16), ("k", 16)]
            ),
            ("decode_attention", ["BH": 2, "N": 90, "d": 16], [("i", 16), ("j", 16), ("k", 16)]),
            // A random mask here; structured ones in DataMaskTests.
            ("attention_block_mask", ["BH": 2, "N": 72, "d": 16], [("i", 16), ("j", 16), ("k", 16)]),
            ("attention_packed", ["BH": 2, "N": 72, "d": 16, "D": 4], [("i", 16), ("j", 16), ("k", 16)]),
            (
                "attention_jagged", ["H": 2, "T": 90, "d": 16, "B": 4, "max_len": 40],
                [("i", 16), ("j", 16), ("k", 16)]
            ),
            // A random block mask; structured ones in BlockMaskTests.
            (
                "attention_block_mask_blocks", ["BH": 2, "N": 96, "d": 16, "bs": 32],
                [("i", 16), ("j", 16), ("k", 16)]
            ),
            ("attention_alibi", ["B": 1, "H": 2, "N": 72, "d": 16], [("i", 16), ("j", 16), ("k", 16)]),
            ("attention_chunked", ["BH": 1, "N": 100, "C": 24, "d": 8], [("i", 16), ("j", 16), ("k", 16)]),
            ("attention_rope", ["B": 1, "H": 2, "N": 72, "d": 16], [("i", 16), ("j", 16), ("k", 16)]),
            ("attention_dca", ["B": 1, "H": 1, "C": 24, "NC": 3, "d": 8], [("i", 16), ("j", 16), ("k", 16)]),
            ("stick_breaking_attention", ["BH": 1, "N": 90, "d": 8], [("i", 16), ("j", 32), ("k", 8)]),
            ("layernorm_matmul", ["M": 40, "K": 48, "N": 24], [("i", 16), ("j", 16), ("k", 16)]),
            ("rmsnorm_swiglu", ["M": 24, "d": 40, "h": 56], [("i", 16), ("j", 16), ("k", 16)]),
            ("transformer_layer", ["S": 24, "H": 2, "dh": 8, "F": 40], [("i", 16), ("j", 16), ("k", 16)]),
            (
                "llama_layer_prefill", ["S": 24, "D": 32, "H": 4, "Hkv": 2, "F": 40],
                [("i", 16), ("j", 16), ("k", 16)]
            ),
            // N = 301: 19 key blocks of 16, split by R15 at the pinned 16 cores.
            (
                "llama_layer_decode", ["D": 64, "H": 4, "Hkv": 2, "N": 301, "F": 40],
                [("i", 16), ("j", 16), ("k", 16)]
            ),
            ("attention_bf16", ["BH": 2, "N": 80, "d": 16], [("i", 16), ("j", 16), ("k", 16)]),
            ("rmsnorm_swiglu_bf16", ["M": 24, "d": 40, "h": 56], [("i", 16), ("j", 16), ("k", 16)]),
        ]
        Examples.assertCovered(by: cases.map(\.0), in: "DifferentialTests.testExamplesAfterEveryStep")
        for (name, dims, blocks) in cases {
            let program = try Self.example(name, dims: dims, blocks: blocks)
            let result = try Self.checkEveryStep(program, seed: 3, label: name)
            XCTAssertGreaterThan(result.trace.count, 0, "\(name): no rule applied")
        }
    }

    /// The layers at 2 cores, where their row blocks fill the cores: R17 reads the head merge
    /// through its index map, R11 widens the residuals, and R18 merges the Q, K and V projections
    /// (one pass over each normalised row block); the interpreter agrees with the unfused program
    /// after every step, at odd prompt lengths.
    func testLayersWithSiblingsAfterEveryStep() throws {
        let cases: [(String, [String: Int])] = [
            ("llama_layer_prefill", ["S": 77, "D": 64, "H": 4, "Hkv": 2, "F": 40]),
            ("transformer_layer", ["S": 77, "H": 2, "dh": 16, "F": 40]),
        ]
        for (name, dims) in cases {
            let program = try Self.example(name, dims: dims, blocks: [("i", 16), ("j", 16), ("k", 16)])
            let result = try Self.checkEveryStep(program, seed: 4, label: name, cores: 2)
            let rules = Set(result.trace.map(\.ruleID))
            XCTAssertTrue(rules.isSuperset(of: ["R17", "R18"]), "\(name): \(rules.sorted())")
            XCTAssertLessThanOrEqual(result.program.kernels.count, 4, BlockPrinter.print(result.program))
        }
    }

    /// R15 on decode shapes: a few query rows (1 to 4 tokens times the query heads of a GQA group,
    /// packed as rows against their one K/V head) over odd KV lengths, at the pinned 16 cores; the
    /// interpreter agrees with the unfused program after every step (split included), and the
    /// key loop splits where it is long enough.
    func testDecodeShapesSplitTheKeyLoop() throws {
        var generator = SplitMix64(seed: 16)
        var split = 0
        for round in 0..<6 {
            let hkv = 1 + Int(generator.next() % 2)
            let group = [1, 2, 4][Int(generator.next() % 3)]
            let tokens = 1 + Int(generator.next() % 4)
            let length = 97 + 2 * Int(generator.next() % 150)
            let d = [8, 16, 24][Int(generator.next() % 3)]
            let text = """
                graph decode_gqa
                dim Hkv = \(hkv)
                dim R = \(group * tokens)
                dim N = \(length)
                dim d = \(d)
                input Q: [1, Hkv, R, d]
                input K: [1, Hkv, N, d]
                input V: [1, Hkv, N, d]
                S = matmul(Q, K, transpose_b=true) * rsqrt(d)
                P = softmax(S, axis=-1)
                O = matmul(P, V)
                output O
                """
            let graph = try GraphParser.parse(text, defaultName: "decode_gqa", dimOverrides: [:])
            var options = LoweringOptions()
            try options.override([("i", 16), ("j", 16), ("k", 16)])
            let program = try Lowering.lower(graph, options: options)
            let label = "decode Hkv=\(hkv) R=\(group * tokens) N=\(length) d=\(d)"
            for seed in [UInt64(round), 100 + UInt64(round)] {
                let result = try Self.checkEveryStep(program, seed: seed, label: label)
                if result.trace.contains(where: { $0.rule == "split-reduction" }) { split += 1 }
            }
        }
        XCTAssertGreaterThan(split, 0, "no decode shape split its key loop")
        // The example itself, at an odd KV length: one kernel pair, the key loop split.
        let program = try Self.example(
            "decode_attention", dims: ["BH": 2, "N": 301, "d": 16], blocks: [("i", 16), ("j", 16), ("k", 16)])
        let result = try Self.checkEveryStep(program, seed: 7, label: "decode_attention N=301")
        XCTAssertEqual(result.trace.filter { $0.rule == "split-reduction" }.count, 1, "\(result.trace)")
        XCTAssertEqual(result.program.kernels.count, 2, BlockPrinter.print(result.program))
    }

    /// R15 on random programs: at 4 × 4 blocks their loops are long enough to split at the pinned
    /// 16 cores; the programs that split are checked after every step (the split included).
    func testRandomProgramsSplitCorrectly() throws {
        var split = 0
        for seed in 0..<300 as Range<UInt64> {
            let graph = RandomGraphs.make(seed: seed)
            var options = LoweringOptions()
            try options.override([("i", 4), ("j", 4), ("k", 4)])
            let program = try Lowering.lower(graph, options: options)
            let result = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores))
            guard result.trace.contains(where: { $0.rule == "split-reduction" }) else { continue }
            split += 1
            _ = try Self.checkEveryStep(program, seed: seed, label: "random program \(seed)")
        }
        XCTAssertGreaterThan(split, 10, "too few random programs had a reduction split")
    }

    /// Lowering keeps the graph's meaning: the naive block program of each random graph (windows
    /// of slices, concatenations stored in place, positions as index blocks included) computes
    /// what the graph interpreter computes.
    func testRandomGraphsLowerCorrectly() throws {
        for seed in 0..<300 as Range<UInt64> {
            let graph = RandomGraphs.make(seed: seed)
            var options = LoweringOptions()
            try options.override([("i", 8), ("j", 16), ("k", 8)])
            let program = try Lowering.lower(graph, options: options)
            XCTAssertEqual(Verifier.verify(program, target: .cpu), [], "seed \(seed)")
            let inputs = Self.inputs(program, seed: seed)
            let expected = try GraphInterpreter.run(graph, inputs: inputs)
            let lowered = try BlockInterpreter.run(program, inputs: inputs)
            let (err, scale) = Self.maxError(expected, lowered)
            XCTAssertLessThanOrEqual(err, 1e-4 * scale, "random graph \(seed): \(GraphPrinter.print(graph))")
        }
    }

    func testRandomProgramsFuseCorrectly() throws {
        var applied = 0
        for seed in 0..<300 as Range<UInt64> {
            let graph = RandomGraphs.make(seed: seed)
            var options = LoweringOptions()
            try options.override([("i", 8), ("j", 16), ("k", 8)])
            let program = try Lowering.lower(graph, options: options)
            let inputs = Self.inputs(program, seed: seed)
            let reference = try BlockInterpreter.run(program, inputs: inputs)
            let result = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores))
            applied += result.trace.count
            XCTAssertEqual(Verifier.verify(result.program, target: .cpu), [], "seed \(seed)")
            let fused = try BlockInterpreter.run(result.program, inputs: inputs)
            let (err, scale) = Self.maxError(reference, fused)
            XCTAssertLessThanOrEqual(err, 1e-4 * scale, "random program \(seed): \(result.trace.map(\.description))")
        }
        XCTAssertGreaterThan(applied, 300, "fusion should do work on random programs")
    }
}
