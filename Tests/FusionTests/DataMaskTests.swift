import BlockIR
import BlockParser
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// Masks given as data (R16, Examples/attention_block_mask.graph): the fused program equals the
/// unfused one after every step on structured masks (tolerance `1e-4·max(1, max|reference|)`),
/// fuses to the block-summary kernel and one attention kernel whose key loop is guarded, and
/// really skips the blocks whose mask block is all false.
final class DataMaskTests: XCTestCase {
    static let n = 90
    static let dims = ["BH": 2, "N": n, "d": 16]
    static let blocks: [(key: String, value: Int)] = [("i", 16), ("j", 16), ("k", 16)]

    /// A `[1, N, N]` bool mask from a predicate on (query, key).
    static func mask(_ keep: (Int, Int) -> Bool) -> NDArray {
        var data: [Float] = []
        for i in 0..<n { for j in 0..<n { data.append(keep(i, j) ? 1 : 0) } }
        return NDArray(shape: [1, n, n], data: data, elementType: .bool)
    }

    /// Banded, block-diagonal (documents of 25, crossing the 16-blocks), random 16×16 blocks
    /// with the diagonal kept, causal, and the edge rows: row block 0 keeps one key block (3,
    /// partly), row block 1 every key, row block 2 none (its rows are NaN in every stage: the
    /// summary's empty range `K ..< 0`), the rest a band.
    static let masks: [(String, NDArray)] = {
        var generator = SplitMix64(seed: 7)
        let kept = (0..<36).map { _ in generator.next() % 3 == 0 }
        return [
            ("banded", mask { i, j in abs(i - j) < 20 }),
            ("block-diagonal", mask { i, j in i / 25 == j / 25 }),
            ("random blocks", mask { i, j in i == j || kept[(i / 16) * 6 + j / 16] }),
            ("causal", mask { i, j in i >= j }),
            (
                "one kept block, an all-kept row, an empty row",
                mask { i, j in
                    switch i / 16 {
                    case 0: return j / 16 == 3 && (i + j) % 3 != 0
                    case 1: return true
                    case 2: return false
                    default: return abs(i - j) < 12
                    }
                }
            ),
        ]
    }()

    func testFusedEqualsUnfusedOnStructuredMasks() throws {
        let program = try DifferentialTests.example("attention_block_mask", dims: Self.dims, blocks: Self.blocks)
        for (label, m) in Self.masks {
            let result = try DifferentialTests.checkEveryStep(
                program, seed: 4, label: "attention_block_mask, \(label) mask", given: ["M": m])
            // The summary kernel (bits, range and links in one pass), the attention kernel.
            XCTAssertEqual(result.program.kernels.count, 2, label)
            XCTAssertTrue(result.trace.contains { $0.ruleID == "R16" }, "\(label): R16 did not apply")
            var guarded = 0
            for kernel in result.program.kernels {
                kernel.walk { inst in
                    if case .loop(let loop) = inst.op, loop.condition != nil { guarded += 1 }
                }
            }
            XCTAssertEqual(guarded, 1, label)
            // The guarded loop also reads the all bit, vouching for the select's condition.
            XCTAssertEqual(Self.fullLoops(result.program).count, 1, label)
            // No N×N tensor in global memory: the only temporaries are the [row blocks, key blocks]
            // any and all bits, each row's first and last kept block and links mode, and the links.
            let temps = result.program.tensors.filter { $0.role == .temp }
            XCTAssertEqual(temps.map(\.shape), [[6, 6], [6, 6], [6, 3], [6, 6]], label)
        }
    }

    /// Packed documents at run time (Examples/attention_packed.graph): monotone offsets (one
    /// document empty, boundaries inside and on 16-blocks, documents shorter than a block); the
    /// fused program equals the unfused one after every step, and its key loop is guarded.
    func testPackedDocumentsFuseAndMatch() throws {
        let dims = ["BH": 2, "N": Self.n, "d": 16, "D": 4]
        let program = try DifferentialTests.example("attention_packed", dims: dims, blocks: Self.blocks)
        for offsets: [Float] in [[0, 20, 45, 45, 90], [0, 32, 48, 64, 90], [0, 3, 10, 80, 90]] {
            let given = ["offsets": NDArray(shape: [5], data: offsets, elementType: .i32)]
            let result = try DifferentialTests.checkEveryStep(
                program, seed: 6, label: "attention_packed, offsets \(offsets)", given: given)
            XCTAssertTrue(result.trace.contains { $0.ruleID == "R16" }, "\(offsets): R16 did not apply")
            // The block summary (bits, range and links; each position's document computed from the
            // offsets where it is read, R1 through the [N,1]/[1,N] views) and the attention kernel;
            // no N×N tensor.
            XCTAssertEqual(result.program.kernels.count, 2, "\(offsets)")
            let temps = result.program.tensors.filter { $0.role == .temp && $0.viewOf == nil }
            XCTAssertTrue(temps.allSatisfy { $0.elementCount <= Self.n }, "\(temps.map(\.shape))")
        }
    }

    /// Each data-mask example — an element mask (the edge rows: one kept block, an all-kept row,
    /// an empty row; and random blocks), packed documents (an empty one), a jagged batch (empty
    /// sequences at the start, inside and at the end) — fuses to ONE summary kernel, which alone
    /// stores the any bits, the all bits, the ranges and the links (one pass over each row's
    /// blocks), and one attention kernel whose key loop reads them: two kernels for each (the
    /// offsets' examples compute each position's segment where the summary and the attention
    /// kernel read it, from the offsets, not in a kernel of their own). No Nq × Nk tensor reaches global
    /// memory (every global temporary holds at most max(N, blocks²) elements), and the
    /// interpreter matches the unfused program after every step (`1e-4·max(1, max|ref|)`, NaN
    /// only where the reference is NaN: the empty row).
    func testEachExampleFusesToOneSummaryAndOneAttentionKernel() throws {
        let element = try DifferentialTests.example("attention_block_mask", dims: Self.dims, blocks: Self.blocks)
        let packed = try DifferentialTests.example(
            "attention_packed", dims: ["BH": 2, "N": Self.n, "d": 16, "D": 4], blocks: Self.blocks)
        let jagged = [0, 0, 40, 40, 100, 150, 150]
        let cases: [(label: String, program: Program, given: [String: NDArray], rows: Int, kernels: Int)] = [
            ("attention_block_mask, edge rows", element, ["M": Self.masks[4].1], Self.n, 2),
            ("attention_block_mask, random blocks", element, ["M": Self.masks[2].1], Self.n, 2),
            (
                "attention_packed", packed,
                ["offsets": NDArray(shape: [5], data: [0, 3, 45, 45, 90], elementType: .i32)], Self.n, 2
            ),
            (
                "attention_jagged", try JaggedTests.program(segments: jagged.count - 1),
                ["offsets": JaggedTests.offsets(jagged)], JaggedTests.t, 2
            ),
        ]
        for c in cases {
            let result = try DifferentialTests.checkEveryStep(c.program, seed: 8, label: c.label, given: c.given)
            let fused = result.program
            XCTAssertEqual(fused.kernels.count, c.kernels, c.label)
            // The guarded loops and the summary tensors they read.
            var guarded: [String] = []
            var read: [TensorID] = []
            for kernel in fused.kernels {
                kernel.walk { inst in
                    guard case .loop(let loop) = inst.op, let any = loop.condition else { return }
                    guarded.append(kernel.name)
                    read += [any.tensor, loop.full?.element.tensor, loop.bounds?.lower.tensor, loop.links?.next.tensor]
                        .compactMap { $0 }
                }
            }
            XCTAssertEqual(guarded, fused.kernels.last.map { [$0.name] }, "\(c.label): one guarded attention kernel")
            let summary = Set(read)
            XCTAssertEqual(
                Set(summary.map { fused[$0].name.split(separator: "_").last.map(String.init) ?? "" }),
                ["any", "all", "range", "next"], c.label)
            let writers = fused.kernels.filter { !$0.body.storedTensors.isDisjoint(with: summary) }
            XCTAssertEqual(writers.map(\.name), [fused.kernels[fused.kernels.count - 2].name], c.label)
            XCTAssertEqual(
                writers.first?.body.storedTensors, summary, "\(c.label): one kernel stores the whole summary")
            let blocks = (c.rows + 15) / 16
            for t in fused.tensors where t.role == .temp && t.viewOf == nil {
                XCTAssertLessThanOrEqual(
                    t.elementCount, max(c.rows, blocks * blocks), "\(c.label): \(t.name) \(t.shape)")
            }
        }
    }

    /// Documents [0, 32), [32, 48), [48, 90) with V NaN at keys 32 ..< 48: the unfused program is
    /// NaN everywhere (zero weights times NaN); the fused one visits key block 2 only for its own
    /// document's queries, so the other rows equal the unfused rows with those values zeroed.
    func testPackedDocumentsSkipOtherDocumentsBlocks() throws {
        let dims = ["BH": 2, "N": Self.n, "d": 16, "D": 3]
        let program = try DifferentialTests.example("attention_packed", dims: dims, blocks: Self.blocks)
        var inputs = DifferentialTests.inputs(program, seed: 10)
        inputs["offsets"] = NDArray(shape: [4], data: [0, 32, 48, 90], elementType: .i32)
        var poisoned = inputs["V"]!
        var zeroed = poisoned
        for b in 0..<2 {
            for key in 32..<48 {
                for e in 0..<16 {
                    poisoned.data[(b * Self.n + key) * 16 + e] = .nan
                    zeroed.data[(b * Self.n + key) * 16 + e] = 0
                }
            }
        }
        let fused = Fusion.fuse(program).program
        inputs["V"] = poisoned
        XCTAssertTrue(try BlockInterpreter.run(program, inputs: inputs)["O"]!.data.contains { $0.isNaN })
        let got = try BlockInterpreter.run(fused, inputs: inputs)["O"]!
        inputs["V"] = zeroed
        let expected = try BlockInterpreter.run(program, inputs: inputs)["O"]!
        var worst: Float = 0
        var scale: Float = 1
        for b in 0..<2 {
            for row in 0..<Self.n where !(32..<48).contains(row) {
                for e in 0..<16 {
                    let (x, y) = (got.data[(b * Self.n + row) * 16 + e], expected.data[(b * Self.n + row) * 16 + e])
                    XCTAssertFalse(x.isNaN, "row \(row): the fused program visited another document's block")
                    worst = max(worst, abs(x - y))
                    scale = max(scale, abs(y))
                }
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale)
    }

    /// The interpreter skips a guarded iteration whose element is 0 (the carried value passes
    /// on), and a guard outside its tensor is an error that names the tensor, not a trap.
    func testGuardedLoopInTheInterpreter() throws {
        func text(_ guardIndex: String) -> String {
            """
            program p

            tensor X: f32[4,8] @global input
            tensor B: bool[2] @global input
            tensor Y: f32[4] @global output

            kernel k grid(i < 1) {
              %0 = fill 0.0 : f32[4] @local
              %1 = for k in 0 ..< 2 if B[\(guardIndex)] iter(%2 = %0) : f32[4] @local {
                %3 = load X[0 +: 4, k * 4 +: 4] : f32[4,4] @local
                %4 = reduce_sum %3 axis 1 : f32[4] @local
                %5 = add %2, %4 : f32[4] @local
                yield %5
              }
              store %1 -> Y[0 +: 4]
            }

            """
        }
        let x = NDArray(shape: [4, 8], data: (0..<32).map(Float.init))
        let inputs = ["X": x, "B": NDArray(shape: [2], data: [0, 1], elementType: .bool)]
        let y = try BlockInterpreter.run(try BlockParser.parse(text("k")), inputs: inputs)["Y"]!
        // Only columns 4 ..< 8 count: row r sums 8r + 4 … 8r + 7.
        XCTAssertEqual(y.data, (0..<4).map { r in Float(32 * r + 22) })
        XCTAssertThrowsError(try BlockInterpreter.run(try BlockParser.parse(text("k + 1")), inputs: inputs)) { error in
            XCTAssertTrue("\(error)".contains("'B'") && "\(error)".contains("out of range"), "\(error)")
        }
    }

    /// Keys 32 ..< 48 (key block 2) are masked for every query and their values are NaN: the
    /// unfused program multiplies the zero weights by NaN (NaN everywhere), the fused one never
    /// visits the block and gives what the unfused program gives with those values zeroed.
    func testFullyMaskedBlocksAreNeverVisited() throws {
        let program = try DifferentialTests.example("attention_block_mask", dims: Self.dims, blocks: Self.blocks)
        let m = Self.mask { i, j in !(32..<48).contains(j) && (abs(i - j) < 20 || j == 0) }
        var inputs = DifferentialTests.inputs(program, seed: 9)
        inputs["M"] = m
        var poisoned = inputs["V"]!
        var zeroed = poisoned
        let d = 16
        for b in 0..<2 {
            for key in 32..<48 {
                for e in 0..<d {
                    poisoned.data[(b * Self.n + key) * d + e] = .nan
                    zeroed.data[(b * Self.n + key) * d + e] = 0
                }
            }
        }
        let fused = Fusion.fuse(program).program
        inputs["V"] = poisoned
        let naivePoisoned = try BlockInterpreter.run(program, inputs: inputs)
        XCTAssertTrue(naivePoisoned["O"]!.data.contains { $0.isNaN }, "the poison does not reach the unfused output")
        let got = try BlockInterpreter.run(fused, inputs: inputs)
        inputs["V"] = zeroed
        let expected = try BlockInterpreter.run(program, inputs: inputs)
        XCTAssertFalse(got["O"]!.data.contains { $0.isNaN }, "the fused program visited a fully masked block")
        let (err, scale) = DifferentialTests.maxError(expected, got)
        XCTAssertLessThanOrEqual(err, 1e-4 * scale)
    }

    /// R16's all bit drops the condition from a select, so the select's valid elements then come
    /// from its other operands: only sound where the condition's block has at least their valid
    /// elements. Here the mask `M: bool[4, 40]` is narrower than `X: f32[4, 48]`: at k = 2 the
    /// mask's block has 8 valid columns, X's 16. R16 still bounds and guards the loop but
    /// records no all bit, and the fused program equals the unfused one (all-true M: the sum of
    /// the first 40 columns); the same loop given the all bit anyway would sum 48 columns. With
    /// `M: bool[4, 48]` (covering) the all bit is recorded.
    func testAllBitNeedsTheConditionToCoverTheSelectedBlocks() throws {
        func text(maskColumns: Int) -> String {
            """
            program p

            tensor X: f32[4,48] @global input
            tensor M: bool[4,\(maskColumns)] @global input
            tensor Y: f32[4] @global output

            kernel k grid(i < 1) {
              %0 = fill 0.0 : f32[4] @local
              %1 = fill 0.0 : f32[] @reg
              %2 = for k in 0 ..< 3 iter(%3 = %0) : f32[4] @local {
                %4 = load M[0 +: 4, k * 16 +: 16] : f32[4,16] @local
                %5 = load X[0 +: 4, k * 16 +: 16] : f32[4,16] @local
                %6 = select %4, %5, %1 : f32[4,16] @local
                %7 = reduce_sum %6 axis 1 : f32[4] @local
                %8 = add %3, %7 : f32[4] @local
                yield %8
              }
              store %2 -> Y[0 +: 4]
            }

            """
        }
        let x = NDArray(shape: [4, 48], data: (0..<192).map { Float($0 % 48) })
        for columns in [40, 48] {
            let program = try BlockParser.parse(text(maskColumns: columns))
            let inputs = [
                "X": x,
                "M": NDArray(shape: [4, columns], data: Array(repeating: 1, count: 4 * columns), elementType: .bool),
            ]
            let fused = Fusion.fuse(
                program, options: FusionOptions(onlyRule: "data-mask-skipping", cores: CLI.pinnedCores)
            ).program
            XCTAssertEqual(fused.kernels.count, 2, "\(columns): R16 did not apply")
            let loops = fused.kernels[1].body.compactMap { inst -> Loop? in
                if case .loop(let loop) = inst.op { return loop }
                return nil
            }
            XCTAssertEqual(loops.count, 1)
            XCTAssertNotNil(loops.first?.condition, "\(columns)")
            let expected = try BlockInterpreter.run(program, inputs: inputs)["Y"]!.data
            // Row sums of 0 ..< columns.
            XCTAssertEqual(expected, Array(repeating: Float(columns * (columns - 1) / 2), count: 4))
            XCTAssertEqual(try BlockInterpreter.run(fused, inputs: inputs)["Y"]!.data, expected, "\(columns)")
            if columns == 48 {
                XCTAssertNotNil(loops.first?.full, "a covering mask keeps the all bit")
                continue
            }
            XCTAssertNil(loops.first?.full, "a mask narrower than X must not get the all bit")
            // The all bit forced onto the same loop (the any bit stands in: all true here) changes Y.
            var forced = fused
            guard case .loop(var loop) = forced.kernels[1].body[2].op, let c = loop.condition else {
                return XCTFail("the guarded loop is not where expected: \(forced.kernels[1].body.map(\.op))")
            }
            guard
                case .select(let condition, _, _)? = loop.body.first(where: {
                    if case .select = $0.op { return true } else { return false }
                })?.op
            else { return XCTFail("no select in the loop") }
            loop.full = LoopFullBlocks(element: c, trueValues: [condition])
            forced.kernels[1].body[2].op = .loop(loop)
            XCTAssertEqual(
                try BlockInterpreter.run(forced, inputs: inputs)["Y"]!.data,
                Array(repeating: Float(48 * 47 / 2), count: 4), "the forced all bit reads the 8 columns M lacks")
        }
    }

    /// The top-level loops with a full element, by kernel index and position.
    static func fullLoops(_ program: Program) -> [(kernel: Int, position: Int, loop: Loop)] {
        var out: [(Int, Int, Loop)] = []
        for (k, kernel) in program.kernels.enumerated() {
            for (n, inst) in kernel.body.enumerated() {
                if case .loop(let loop) = inst.op, loop.full != nil { out.append((k, n, loop)) }
            }
        }
        return out
    }

    /// The fused program with its loop's full element read from a new input `F: bool[6, 6]` and
    /// its bounds from a new input `R: i32[6, 2]` instead of the summary's (the summary still
    /// writes them; nothing reads them).
    static func readingSummaryFromInputs(_ fused: Program) throws -> Program {
        var out = fused
        let found = try XCTUnwrap(fullLoops(fused).first)
        let f = TensorID(out.tensors.count)
        out.tensors.append(GlobalTensor(name: "F", shape: [6, 6], role: .input, elementType: .bool))
        let r = TensorID(out.tensors.count)
        out.tensors.append(GlobalTensor(name: "R", shape: [6, 2], role: .input, elementType: .i32))
        var loop = found.loop
        loop.full!.element.tensor = f
        loop.bounds!.lower.tensor = r
        loop.bounds!.upper.tensor = r
        out.kernels[found.kernel].body[found.position].op = .loop(loop)
        return out
    }

    /// The all bit decides whether the element test runs, and the bounds which key blocks are
    /// visited: with them read from inputs F and R, F all 1 makes every visited block (any bit 1)
    /// attend to all its keys, so the output is the unfused program's under the mask widened to
    /// whole kept blocks (the mask is not read there); F all 0 gives the masked output; R = [1, 6)
    /// drops key block 0 (the output is the unfused one under the mask without keys 0 ..< 16);
    /// the fused program's own bits and bounds give the masked output. Interpreter, and the
    /// compiled C under the sanitizers (it matches the interpreter on the same inputs, so it
    /// took the same path). Tolerance 1e-4·max(1, max|reference|).
    func testFullBlocksSkipTheElementTestAndBoundsTheLoop() throws {
        let program = try DifferentialTests.example("attention_block_mask", dims: Self.dims, blocks: Self.blocks)
        let fused = Fusion.fuse(program).program
        let lying = try Self.readingSummaryFromInputs(fused)
        XCTAssertEqual(Verifier.verify(lying, target: .cpu), [])
        let m = Self.masks[0].1  // banded: partial blocks near the band's edges, some full ones
        // The mask widened to whole 16×16 blocks that hold a kept element.
        let n = Self.n
        var kept = Set<Int>()
        for i in 0..<n { for j in 0..<n where m.data[i * n + j] != 0 { kept.insert((i / 16) * 6 + j / 16) } }
        let widened = Self.mask { i, j in kept.contains((i / 16) * 6 + j / 16) }
        XCTAssertNotEqual(widened.data, m.data, "the band must leave partial blocks")
        var inputs = DifferentialTests.inputs(program, seed: 11)
        inputs["M"] = m
        let masked = try BlockInterpreter.run(program, inputs: inputs)
        XCTAssertLessThanOrEqual(try Self.error(masked, BlockInterpreter.run(fused, inputs: inputs)), 1e-4)
        func unfused(_ mask: NDArray) throws -> [String: NDArray] {
            var given = inputs
            given["M"] = mask
            return try BlockInterpreter.run(program, inputs: given)
        }
        let unmasked = try unfused(widened)
        let dropped = try unfused(Self.mask { i, j in m.data[i * n + j] != 0 && j >= 16 })
        XCTAssertGreaterThan(try Self.error(masked, unmasked), 1e-2, "the widened mask must change the output")
        XCTAssertGreaterThan(try Self.error(masked, dropped), 1e-2, "dropping key block 0 must change the output")
        func bits(_ bit: Float) -> NDArray {
            NDArray(shape: [6, 6], data: Array(repeating: bit, count: 36), elementType: .bool)
        }
        func bounds(_ first: Float) -> NDArray {
            NDArray(shape: [6, 2], data: (0..<6).flatMap { _ in [first, 6] }, elementType: .i32)
        }
        for (bit, first, expected) in [(Float(1), Float(0), unmasked), (0, 0, masked), (0, 1, dropped)] {
            var given = inputs
            given["F"] = bits(bit)
            given["R"] = bounds(first)
            let got = try BlockInterpreter.run(lying, inputs: given)
            XCTAssertLessThanOrEqual(try Self.error(expected, got), 1e-4, "F = \(bit), R from \(first)")
        }
        // The compiled C of the same program, F all 1 and R = [1, 6), agrees with the interpreter.
        let dir = CLI.temporaryDirectory("fullbits")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try BlockPrinter.print(lying).write(toFile: dir + "/p.block", atomically: true, encoding: String.Encoding.utf8)
        var arguments = ["verify", dir + "/p.block", "--sanitize", "--seed", "3"]
        for (name, array) in [("M", m), ("F", bits(1)), ("R", bounds(1))] {
            try NPY.writeFile(array, to: "\(dir)/\(name).npy")
            arguments += ["--input", "\(name)=\(dir)/\(name).npy"]
        }
        let result = CLI.blockc(arguments)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
    }

    /// A query row whose mask keeps no key has nothing to attend to: its softmax is 0/0, NaN in
    /// every element of its output row, in the unfused program, the fused one and the compiled C
    /// (`blockc verify` matches NaN only with NaN); every other row stays finite.
    func testFullyMaskedRowsAreNaNInEveryStage() throws {
        let program = try DifferentialTests.example("attention_block_mask", dims: Self.dims, blocks: Self.blocks)
        let fused = Fusion.fuse(program).program
        let empty = 37  // inside a 16-row block whose other rows keep keys
        let m = Self.mask { i, j in i != empty && abs(i - j) <= 20 }
        var inputs = DifferentialTests.inputs(program, seed: 5)
        inputs["M"] = m
        for (stage, run) in [("unfused", program), ("fused", fused)] {
            let o = try BlockInterpreter.run(run, inputs: inputs)["O"]!
            let d = o.shape.last!
            for row in 0..<(o.data.count / d) {
                let values = o.data[row * d..<(row + 1) * d]
                if row % Self.n == empty {
                    XCTAssertTrue(values.allSatisfy(\.isNaN), "\(stage): row \(row) keeps no key")
                } else {
                    XCTAssertTrue(values.allSatisfy(\.isFinite), "\(stage): row \(row)")
                }
            }
        }
        let dir = CLI.temporaryDirectory("maskedrow")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try NPY.writeFile(m, to: dir + "/M.npy")
        let result = CLI.blockc([
            "verify", CLI.packageRoot + "/Examples/attention_block_mask.graph", "--dim", "BH=2,N=\(Self.n),d=16",
            "--block", "i=16,j=16,k=16", "--input", "M=\(dir)/M.npy", "--sanitize",
        ])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
    }

    /// The largest difference between two runs' `O`, relative to `max(1, max|a|)`.
    static func error(_ a: [String: NDArray], _ b: [String: NDArray]) throws -> Float {
        let (err, scale) = DifferentialTests.maxError(a, b)
        return err / scale
    }

    /// `within` and `full … true(…)` print as they parse; the verifier rejects a full element
    /// without a guard, a `true` value the body does not define, and bounds of a non-i32 tensor;
    /// the parser, bounds that name the counter; bounds narrow the interpreter's range.
    func testBoundsAndFullElementsRoundTrip() throws {
        func text(_ header: String) -> String {
            """
            program p

            tensor X: f32[4,8] @global input
            tensor B: bool[2] @global input
            tensor R: i32[2] @global input
            tensor Y: f32[4] @global output

            kernel k grid(i < 1) {
              %0 = fill 0.0 : f32[4] @local
              %1 = fill -inf : f32[] @reg
              %2 = for k in 0 ..< 2\(header) iter(%3 = %0) : f32[4] @local {
                %4 = load X[0 +: 4, k * 4 +: 4] : f32[4,4] @local
                %5 = load X[0 +: 4, k * 4 +: 4] : f32[4,4] @local
                %6 = select %5, %4, %1 : f32[4,4] @local
                %7 = reduce_sum %6 axis 1 : f32[4] @local
                %8 = add %3, %7 : f32[4] @local
                yield %8
              }
              store %2 -> Y[0 +: 4]
            }

            """
        }
        let good = text(" within R[0] ..< R[1] if B[k] full B[k] true(%5)")
        let program = try BlockParser.parse(good)
        XCTAssertEqual(BlockPrinter.print(program), good)
        XCTAssertEqual(Verifier.verify(program, target: .cpu), [])
        // The body where B[k] is set reads X once: the select's condition load is dropped.
        guard case .loop(let loop) = program.kernels[0].body[2].op else { return XCTFail("no loop") }
        let (fast, chosen) = loop.bodyWhereTrue()
        XCTAssertEqual(chosen, [ValueID(6)])
        XCTAssertEqual(fast.count, loop.body.count - 1)
        XCTAssertFalse(fast.contains { $0.result?.id == ValueID(5) })
        for (header, message) in [
            (" full B[k] true(%5)", "come with its guard"),
            (" if B[k] full B[k] true(%9)", "does not define"),
            (" within X[0, 0] ..< X[0, 1] if B[k]", "i32"),
        ] {
            let errors = Verifier.verify(try BlockParser.parse(text(header)), target: .cpu)
            XCTAssertTrue(errors.contains { $0.message.contains(message) }, "\(header): \(errors)")
        }
        // Bounds are read before the iterations: the counter is not in scope there.
        XCTAssertThrowsError(try BlockParser.parse(text(" within R[k] ..< R[1] if B[k]"))) { error in
            XCTAssertTrue("\(error)".contains("unknown index variable 'k'"), "\(error)")
        }
        // Run-time bounds narrow the range: R = [1, 2] runs iteration 1 only, R = [1, 1] none.
        let x = NDArray(shape: [4, 8], data: (0..<32).map { Float(1 + $0 % 5) })
        for (r, columns) in [([Float(1), 2], 4..<8), ([1, 1], 0..<0), ([-3, 9], 0..<8)] {
            let inputs = [
                "X": x, "B": NDArray(shape: [2], data: [1, 1], elementType: .bool),
                "R": NDArray(shape: [2], data: r, elementType: .i32),
            ]
            let y = try BlockInterpreter.run(
                try BlockParser.parse(text(" within R[0] ..< R[1] if B[k]")), inputs: inputs)
            let expected = (0..<4).map { row in columns.reduce(Float(0)) { $0 + x.data[row * 8 + $1] } }
            XCTAssertEqual(y["Y"]!.data, expected, "\(r)")
        }
    }

    /// Offsets that are not non-decreasing, or lie outside `0 ... N`, are a clear error of the
    /// graph interpreter and of the block interpreter, unfused and fused (the C harness's is in
    /// VerifyTests.testBadOffsetsAreARunTimeError); offsets ending before N are fine.
    func testBadOffsetsAreAnError() throws {
        let dims = ["BH": 1, "N": Self.n, "d": 8, "D": 4]
        let text = try String(contentsOfFile: CLI.packageRoot + "/Examples/attention_packed.graph", encoding: .utf8)
        let graph = try GraphParser.parse(text, defaultName: "attention_packed", dimOverrides: dims)
        XCTAssertEqual(graph.offsetInputs, ["offsets": Self.n])
        let program = try DifferentialTests.example("attention_packed", dims: dims, blocks: Self.blocks)
        let fused = Fusion.fuse(program).program
        XCTAssertEqual(fused.segmentOffsetInputs, ["offsets": Self.n])
        var inputs = DifferentialTests.inputs(program, seed: 2)
        let cases: [([Float], String)] = [
            ([0, 70, 10, 80, 90], "element 2 (10) is below element 1 (70)"),
            ([0, 20, 40, 60, 95], "element 4 is 95, outside 0 ... 90"),
            ([-1, 20, 40, 60, 90], "element 0 is -1, outside 0 ... 90"),
        ]
        for (offsets, message) in cases {
            inputs["offsets"] = NDArray(shape: [5], data: offsets, elementType: .i32)
            XCTAssertThrowsError(try GraphInterpreter.run(graph, inputs: inputs), "graph \(offsets)") { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
            for (label, p) in [("unfused", program), ("fused", fused)] {
                XCTAssertThrowsError(try BlockInterpreter.run(p, inputs: inputs), "\(label) \(offsets)") { error in
                    XCTAssertTrue("\(error)".contains(message), "\(label): \(error)")
                }
            }
        }
        inputs["offsets"] = NDArray(shape: [5], data: [0, 20, 40, 60, 70], elementType: .i32)
        XCTAssertNoThrow(try BlockInterpreter.run(fused, inputs: inputs))
    }

    /// `same_segment(i, j, offsets)` alone (no causal mask), documents [0, 32), [32, 48), [48, 90):
    /// the fused program equals the unfused one after every step; its key loop is bounded by the
    /// summary's range and has full blocks; with V NaN at keys 0 ..< 32 (document 0, key blocks 0
    /// and 1), the rows of the other documents stay finite (their loops start at key block 2 or 3).
    func testRuntimeSegmentsAloneBoundTheKeyLoop() throws {
        let path = CLI.packageRoot + "/Examples/attention_packed.graph"
        let text = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "same_segment(i, j, offsets) && i >= j", with: "same_segment(i, j, offsets)")
        XCTAssertTrue(text.contains("where(same_segment(i, j, offsets), S, -inf)"))
        let dims = ["BH": 2, "N": Self.n, "d": 16, "D": 3]
        let graph = try GraphParser.parse(text, defaultName: "segments", dimOverrides: dims)
        var options = LoweringOptions()
        try options.override(Self.blocks)
        let program = try Lowering.lower(graph, options: options)
        let offsets = NDArray(shape: [4], data: [0, 32, 48, 90], elementType: .i32)
        let result = try DifferentialTests.checkEveryStep(
            program, seed: 12, label: "same_segment alone", given: ["offsets": offsets])
        let loops = Self.fullLoops(result.program)
        XCTAssertEqual(loops.count, 1)
        XCTAssertNotNil(loops.first?.loop.bounds)
        var inputs = DifferentialTests.inputs(program, seed: 13)
        inputs["offsets"] = offsets
        for b in 0..<2 {
            for key in 0..<32 { for e in 0..<16 { inputs["V"]!.data[(b * Self.n + key) * 16 + e] = .nan } }
        }
        let got = try BlockInterpreter.run(result.program, inputs: inputs)["O"]!
        for b in 0..<2 {
            for row in 32..<Self.n {
                for e in 0..<16 {
                    XCTAssertFalse(got.data[(b * Self.n + row) * 16 + e].isNaN, "row \(row) read document 0's values")
                }
            }
        }
    }
}
