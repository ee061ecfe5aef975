import BlockIR
import BlockParser
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// Block masks given as data (Examples/attention_block_mask_blocks.graph: `B: bool[1, N/bs, N/bs]`
/// used through `block_broadcast(B, [bs, bs])`), and the compacted lists of kept key blocks R16
/// follows in sparse rows. Structured patterns of blocks (banded, block-diagonal, random blocks
/// with the diagonal, a row with one kept block, an all-kept row among sparse ones); the fused
/// program equals the unfused one after every step (tolerance `1e-4·max(1, max|reference|)`), and
/// both equal the element-mask program (Examples/attention_block_mask.graph) given the element
/// mask B stands for.
final class BlockMaskTests: XCTestCase {
    /// 10 mask blocks of 16 per side at 16-blocks (aligned, one kernel block per mask element),
    /// or 5 of 32 (two kernel blocks per mask element).
    static let n = 160
    static let kernelBlocks: [(key: String, value: Int)] = [("i", 16), ("j", 16), ("k", 16)]

    static func dims(_ bs: Int) -> [String: Int] { ["BH": 2, "N": n, "d": 16, "bs": bs] }

    /// A `[1, r, r]` block mask from a predicate on (query block, key block).
    static func blockMask(_ r: Int, _ keep: (Int, Int) -> Bool) -> NDArray {
        var data: [Float] = []
        for i in 0..<r { for j in 0..<r { data.append(keep(i, j) ? 1 : 0) } }
        return NDArray(shape: [1, r, r], data: data, elementType: .bool)
    }

    /// The element mask `[1, N, N]` a block mask stands for.
    static func elementMask(_ b: NDArray, _ bs: Int) -> NDArray {
        let r = b.shape[1]
        var data: [Float] = []
        for i in 0..<(r * bs) { for j in 0..<(r * bs) { data.append(b.data[(i / bs) * r + j / bs]) } }
        return NDArray(shape: [1, r * bs, r * bs], data: data, elementType: .bool)
    }

    /// Structured block patterns over `r × r` blocks; every row keeps at least one block.
    static func patterns(_ r: Int) -> [(String, NDArray)] {
        var generator = SplitMix64(seed: 21)
        let kept = (0..<(r * r)).map { _ in generator.next() % 4 == 0 }
        return [
            ("banded", blockMask(r) { i, j in abs(i - j) <= 1 }),
            ("block-diagonal", blockMask(r) { i, j in i / 3 == j / 3 }),
            ("random blocks", blockMask(r) { i, j in i == j || kept[i * r + j] }),
            // Row 1 keeps only its last block; row 2 keeps all; the others a diagonal and the two ends.
            (
                "one kept block, an all-kept row",
                blockMask(r) { i, j in
                    i == 1 ? j == r - 1 : i == 2 || i == j || j == 0 || j == r - 1
                }
            ),
        ]
    }

    func testBlockMaskFusesWithoutASummaryOverElements() throws {
        for bs in [16, 32] {
            let r = Self.n / bs
            let program = try DifferentialTests.example(
                "attention_block_mask_blocks", dims: Self.dims(bs), blocks: Self.kernelBlocks)
            let element = try DifferentialTests.example(
                "attention_block_mask", dims: ["BH": 2, "N": Self.n, "d": 16], blocks: Self.kernelBlocks)
            for (label, b) in Self.patterns(r) {
                let what = "bs \(bs), \(label)"
                let result = try DifferentialTests.checkEveryStep(
                    program, seed: 3, label: what, given: ["B": b])
                // The summary kernel (range and links) over B, then the attention kernel: no bits computed.
                XCTAssertEqual(result.program.kernels.count, 2, what)
                let found = try XCTUnwrap(DataMaskTests.fullLoops(result.program).first, what)
                let guardTensor = result.program[try XCTUnwrap(found.loop.condition).tensor]
                XCTAssertEqual(guardTensor.name, "B", "\(what): the guard reads B itself")
                XCTAssertEqual(found.loop.full?.element, found.loop.condition, "\(what): B is the all bit too")
                XCTAssertNotNil(found.loop.links, what)
                // The fast body (B set) takes the select's kept operand and reads no B: no element test.
                let (fast, chosen) = found.loop.bodyWhereTrue()
                XCTAssertFalse(chosen.isEmpty, what)
                let mask = try XCTUnwrap(found.loop.condition).tensor
                XCTAssertFalse(fast.contains { if case .load(mask, _) = $0.op { true } else { false } }, what)
                XCTAssertTrue(found.loop.body.contains { if case .load(mask, _) = $0.op { true } else { false } }, what)
                let temps = result.program.tensors.filter { $0.role == .temp }
                XCTAssertEqual(temps.map(\.shape), [[10, 3], [10, 10]], "\(what): the range and the links only")
                // The same output as the element mask B stands for, in the unfused element-mask program.
                var inputs = DifferentialTests.inputs(program, seed: 3)
                inputs["B"] = b
                let got = try BlockInterpreter.run(result.program, inputs: inputs)
                inputs["B"] = nil
                inputs["M"] = Self.elementMask(b, bs)
                let expected = try BlockInterpreter.run(element, inputs: inputs)
                XCTAssertLessThanOrEqual(try DataMaskTests.error(expected, got), 1e-4, what)
            }
        }
    }

    /// A block mask per head (`B: bool[BH, N/bs, N/bs]`, heads with different patterns): the
    /// summary kernel (range and links) runs per (head, row block), and the fused program matches the
    /// unfused one after every step.
    func testPerHeadBlockMask() throws {
        let path = CLI.packageRoot + "/Examples/attention_block_mask_blocks.graph"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
            of: "input B: bool[1, N / bs, N / bs]", with: "input B: bool[BH, N / bs, N / bs]")
        XCTAssertTrue(text.contains("bool[BH, N / bs, N / bs]"))
        let graph = try GraphParser.parse(text, defaultName: "g", dimOverrides: Self.dims(32))
        var options = LoweringOptions()
        try options.override(Self.kernelBlocks)
        let program = try Lowering.lower(graph, options: options)
        let patterns = Self.patterns(5)
        let b = NDArray(
            shape: [2, 5, 5], data: patterns[0].1.data + patterns[3].1.data, elementType: .bool)
        let result = try DifferentialTests.checkEveryStep(program, seed: 8, label: "per-head", given: ["B": b])
        XCTAssertEqual(result.program.kernels.count, 2)
        XCTAssertEqual(result.program.kernels[0].grid.map(\.extent), [2, 10], "one instance per (head, row block)")
        XCTAssertEqual(
            result.program[try XCTUnwrap(DataMaskTests.fullLoops(result.program).first?.loop.condition).tensor].name,
            "B")
    }

    /// The graph interpreter's `block_broadcast` is NumPy's `repeat` on each blocked axis.
    func testGraphInterpreterRepeatsEachElementOverItsBlock() throws {
        let text = """
            graph g
            input B: bool[2, 3]
            E = block_broadcast(B, [2, 3])
            output E

            """
        let graph = try GraphParser.parse(text, defaultName: "g", dimOverrides: [:])
        XCTAssertEqual(graph.node(named: "E")?.shape, [4, 9])
        XCTAssertEqual(GraphPrinter.print(graph).contains("block_broadcast(B, [2, 3])"), true)
        let b = NDArray(shape: [2, 3], data: [1, 0, 1, 0, 0, 1], elementType: .bool)
        let e = try XCTUnwrap(GraphInterpreter.run(graph, inputs: ["B": b])["E"])
        for i in 0..<4 {
            for j in 0..<9 { XCTAssertEqual(e.data[i * 9 + j], b.data[(i / 2) * 3 + j / 3], "(\(i), \(j))") }
        }
        // Lowered and run at blocks that do not divide the repetition (the lowering picks 2 and 3).
        var options = LoweringOptions()
        try options.override([("i", 16), ("j", 16)])
        let lowered = try Lowering.lower(graph, options: options)
        XCTAssertEqual(Verifier.verify(lowered, target: .cpu), [])
        XCTAssertEqual(try BlockInterpreter.run(lowered, inputs: ["B": b])["E"]?.data, e.data)
        for bad in ["block_broadcast(B, [2, 3, 4])", "block_broadcast(B, [0, 2])", "block_broadcast(2, [2])"] {
            let wrong = text.replacingOccurrences(of: "block_broadcast(B, [2, 3])", with: bad)
            XCTAssertThrowsError(try GraphParser.parse(wrong, defaultName: "g", dimOverrides: [:]), bad)
        }
    }

    /// Blocks of the kernel that do not lie inside one block of the mask (bs = 24 and 8 at
    /// 16-blocks): the broadcast reads the mask elements a block overlaps and repeats them (a
    /// product with a 0/1 expansion matrix), R1 inlines it, and R16 builds the bits from B's
    /// elements (the OR and AND of those a block covers): two kernels (the summary, bits
    /// included, and the attention kernel), no N × N tensor, the output matching after every step
    /// and equal to the element-mask program's.
    func testUnalignedBlockMaskReducesB() throws {
        let n = 96
        let element = try DifferentialTests.example(
            "attention_block_mask", dims: ["BH": 2, "N": n, "d": 16], blocks: Self.kernelBlocks)
        for bs in [24, 8] {
            let program = try DifferentialTests.example(
                "attention_block_mask_blocks", dims: ["BH": 2, "N": n, "d": 16, "bs": bs], blocks: Self.kernelBlocks)
            for (label, b) in Self.patterns(n / bs) {
                let what = "bs \(bs), \(label)"
                let result = try DifferentialTests.checkEveryStep(program, seed: 5, label: what, given: ["B": b])
                XCTAssertTrue(result.trace.contains { $0.ruleID == "R16" }, what)
                XCTAssertEqual(result.program.kernels.count, 2, what)
                let temps = result.program.tensors.filter { $0.role == .temp }
                XCTAssertTrue(temps.allSatisfy { $0.elementCount <= 6 * 6 * 3 }, "\(what): \(temps.map(\.shape))")
                var inputs = DifferentialTests.inputs(program, seed: 5)
                inputs["B"] = b
                let got = try BlockInterpreter.run(result.program, inputs: inputs)
                inputs["B"] = nil
                inputs["M"] = Self.elementMask(b, bs)
                let expected = try BlockInterpreter.run(element, inputs: inputs)
                XCTAssertLessThanOrEqual(try DataMaskTests.error(expected, got), 1e-4, what)
            }
        }
    }

    /// The summary's range, links and mode, read back (made outputs): first and end of each
    /// row's kept blocks, each block's link to the next kept one (or K), and the links followed
    /// exactly where the kept blocks fill at most half the range.
    func testRangeLinksAndModeFromTheSummary() throws {
        let bs = 16
        let r = Self.n / bs
        let program = try DifferentialTests.example(
            "attention_block_mask_blocks", dims: Self.dims(bs), blocks: Self.kernelBlocks)
        var fused = Fusion.fuse(program).program
        for k in fused.tensors.indices where fused.tensors[k].name == "B_range" || fused.tensors[k].name == "B_next" {
            fused.tensors[k].role = .output
        }
        var followed = 0
        var ranged = 0
        for (label, b) in Self.patterns(r) {
            var inputs = DifferentialTests.inputs(program, seed: 1)
            inputs["B"] = b
            let out = try BlockInterpreter.run(fused, inputs: inputs)
            let range = try XCTUnwrap(out["B_range"])
            let next = try XCTUnwrap(out["B_next"])
            for i in 0..<r {
                let kept = (0..<r).filter { b.data[i * r + $0] != 0 }
                let first = kept.first ?? r
                let end = (kept.last ?? -1) + 1
                let follow = kept.count * 2 <= end - first
                XCTAssertEqual(range.data[i * 3], Float(first), "\(label) row \(i)")
                XCTAssertEqual(range.data[i * 3 + 1], Float(end), "\(label) row \(i)")
                XCTAssertEqual(range.data[i * 3 + 2], follow ? 1 : 0, "\(label) row \(i)")
                if follow { followed += 1 } else { ranged += 1 }
                for k in 0..<r {
                    let expected = kept.first { $0 > k } ?? r
                    XCTAssertEqual(next.data[i * r + k], Float(expected), "\(label) row \(i) block \(k)")
                }
            }
        }
        XCTAssertGreaterThan(followed, 0, "no row followed the links")
        XCTAssertGreaterThan(ranged, 0, "no row ran the range")
    }

    /// A mutation the checks must catch: the fused program with its links and mode read from
    /// inputs `L` and `R` instead of the summary's. The true links give the unfused output; links
    /// that jump over one kept block (row 4's link from its first kept block goes one block too
    /// far) change it by more than the tolerance, in the interpreter and in the compiled C.
    func testALinkThatSkipsAKeptBlockIsCaught() throws {
        let bs = 16
        let r = Self.n / bs
        let program = try DifferentialTests.example(
            "attention_block_mask_blocks", dims: Self.dims(bs), blocks: Self.kernelBlocks)
        let fused = Fusion.fuse(program).program
        let found = try XCTUnwrap(DataMaskTests.fullLoops(fused).first)
        var lying = fused
        let l = TensorID(lying.tensors.count)
        lying.tensors.append(GlobalTensor(name: "L", shape: [r, r], role: .input, elementType: .i32))
        let m = TensorID(lying.tensors.count)
        lying.tensors.append(GlobalTensor(name: "R", shape: [r, 3], role: .input, elementType: .i32))
        var loop = found.loop
        loop.links!.next.tensor = l
        loop.links!.mode.tensor = m
        lying.kernels[found.kernel].body[found.position].op = .loop(loop)
        XCTAssertEqual(Verifier.verify(lying, target: .cpu), [])
        // Row 4 keeps blocks 0, 4, 6 and 9: sparse, its links followed.
        let b = Self.blockMask(r) { i, j in i == j || j == 0 || (i == 4 && (j == 6 || j == 9)) }
        var inputs = DifferentialTests.inputs(program, seed: 2)
        inputs["B"] = b
        let expected = try BlockInterpreter.run(program, inputs: inputs)
        func links(skipping: Bool) -> NDArray {
            var data: [Float] = []
            for i in 0..<r {
                let kept = (0..<r).filter { b.data[i * r + $0] != 0 }
                for k in 0..<r {
                    var next = kept.first { $0 > k } ?? r
                    if skipping && i == 4 && k == 0 { next = 6 }  // jumps over kept block 4
                    data.append(Float(next))
                }
            }
            return NDArray(shape: [r, r], data: data, elementType: .i32)
        }
        let mode = NDArray(shape: [r, 3], data: (0..<r).flatMap { _ in [Float(0), 0, 1] }, elementType: .i32)
        inputs["R"] = mode
        inputs["L"] = links(skipping: false)
        XCTAssertLessThanOrEqual(try DataMaskTests.error(expected, BlockInterpreter.run(lying, inputs: inputs)), 1e-4)
        inputs["L"] = links(skipping: true)
        let skipped = try BlockInterpreter.run(lying, inputs: inputs)
        XCTAssertGreaterThan(try DataMaskTests.error(expected, skipped), 1e-2, "skipping a kept block went unnoticed")
        // The compiled C, under the sanitizers, takes the same (wrong) path as the interpreter.
        let dir = CLI.temporaryDirectory("skiplink")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try BlockPrinter.print(lying).write(toFile: dir + "/p.block", atomically: true, encoding: .utf8)
        var arguments = ["verify", dir + "/p.block", "--sanitize", "--seed", "2"]
        for (name, array) in [("B", b), ("L", links(skipping: true)), ("R", mode)] {
            try NPY.writeFile(array, to: "\(dir)/\(name).npy")
            arguments += ["--input", "\(name)=\(dir)/\(name).npy"]
        }
        let result = CLI.blockc(arguments)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
    }

    /// The compiled C at odd shapes (N = 105, d = 24, 15-blocks of the mask and of the kernel;
    /// N = 90 with 30-blocks of the mask at 15-blocks; N = 100 with 20-blocks of the mask at
    /// 15-blocks, which do not align: B's elements expanded, a partial last block) on the
    /// structured patterns, under the sanitizers, against the interpreter (`blockc verify --input B=…`).
    func testCompiledCOnStructuredBlockMasksAtOddShapes() throws {
        let dir = CLI.temporaryDirectory("blockmask-c")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (n, bs) in [(105, 15), (90, 30), (100, 20)] {
            for (k, (label, b)) in Self.patterns(n / bs).enumerated() {
                let path = "\(dir)/B\(n)_\(k).npy"
                try NPY.writeFile(b, to: path)
                let result = CLI.blockc([
                    "verify", CLI.packageRoot + "/Examples/attention_block_mask_blocks.graph", "--dim",
                    "BH=2,N=\(n),d=24,bs=\(bs)", "--block", "i=15,j=15,k=15", "--input", "B=\(path)", "--sanitize",
                ])
                XCTAssertEqual(result.status, 0, "N \(n), bs \(bs), \(label): \(result.stdout)\(result.stderr)")
                XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
            }
        }
    }

    /// In the compacted traversal the product prefetches the block of the iteration the links give
    /// next, not of the one after (which a sparse row skips).
    func testPrefetchFollowsTheLinks() throws {
        let result = CLI.blockc([
            "emit-c", CLI.packageRoot + "/Examples/attention_block_mask_blocks.graph", "--dim", "BH=2,N=256,d=16,bs=32",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        // The kernels' calls (the runtime's own calls of blk_gemm_pf read no global tensor).
        let prefetches = result.stdout.split(separator: "\n").filter {
            ($0.contains("blk_gemm_pf(") || $0.contains("blk_gemm_pf_rs(")) && $0.contains("blk_g_")
        }
        XCTAssertFalse(prefetches.isEmpty)
        for line in prefetches {
            XCTAssertTrue(line.contains("blk_v_blk_following_"), String(line))
        }
        XCTAssertTrue(result.stdout.contains("const long blk_v_blk_following_"))
    }

    /// `next … when …` prints as it parses; the verifier rejects links without bounds and links
    /// of a non-i32 tensor; the parser, a mode element that names the counter.
    func testLinksRoundTripAndAreChecked() throws {
        func text(_ header: String) -> String {
            """
            program p

            tensor X: f32[4,8] @global input
            tensor G: bool[4] @global input
            tensor R: i32[3] @global input
            tensor L: i32[4] @global input
            tensor Y: f32[8] @global output

            kernel k grid(j < 1) {
              %0 = fill 0.0 : f32[8] @local
              %1 = for k \(header) iter(%2 = %0) : f32[8] @local {
                %3 = load X[k, 0 +: 8] : f32[8] @local
                %4 = add %2, %3 : f32[8] @local
                yield %4
              }
              store %1 -> Y[0 +: 8]
            }

            """
        }
        let good = try BlockParser.parse(text("in 0 ..< 4 within R[0] ..< R[1] next L[k] when R[2] if G[k]"))
        XCTAssertEqual(Verifier.verify(good, target: .cpu), [])
        XCTAssertEqual(try BlockParser.parse(BlockPrinter.print(good)), good)
        // Rows 0 ..< 4 of X = row k holds k + 1; links 0 → 2 → 3 (1 jumped over), followed.
        var x = [Float]()
        for k in 0..<4 { x += Array(repeating: Float(k + 1), count: 8) }
        var inputs: [String: NDArray] = [
            "X": NDArray(shape: [4, 8], data: x),
            "G": NDArray(shape: [4], data: [1, 1, 1, 1], elementType: .bool),
            "R": NDArray(shape: [3], data: [0, 4, 1], elementType: .i32),
            "L": NDArray(shape: [4], data: [2, 2, 3, 4], elementType: .i32),
        ]
        XCTAssertEqual(try BlockInterpreter.run(good, inputs: inputs)["Y"]?.data.first, 1 + 3 + 4)
        inputs["R"] = NDArray(shape: [3], data: [0, 4, 0], elementType: .i32)  // mode 0: every iteration
        XCTAssertEqual(try BlockInterpreter.run(good, inputs: inputs)["Y"]?.data.first, 1 + 2 + 3 + 4)
        // A link backwards (or to itself) still moves one step: never a hang.
        inputs["R"] = NDArray(shape: [3], data: [0, 4, 1], elementType: .i32)
        inputs["L"] = NDArray(shape: [4], data: [0, 0, 1, 0], elementType: .i32)
        XCTAssertEqual(try BlockInterpreter.run(good, inputs: inputs)["Y"]?.data.first, 1 + 2 + 3 + 4)
        let noBounds = try BlockParser.parse(text("in 0 ..< 4 next L[k] when R[2] if G[k]"))
        XCTAssertTrue(Verifier.verify(noBounds, target: .cpu).contains { $0.description.contains("'within'") })
        let boolLinks = try BlockParser.parse(text("in 0 ..< 4 within R[0] ..< R[1] next G[k] when R[2] if G[k]"))
        XCTAssertTrue(Verifier.verify(boolLinks, target: .cpu).contains { $0.description.contains("link") })
        XCTAssertThrowsError(try BlockParser.parse(text("in 0 ..< 4 within R[0] ..< R[1] next L[k] when L[k] if G[k]")))
    }
}
