import BlockIR
import BlockParser
import BlockTestSupport
import Foundation
import Fusion
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
    /// with the diagonal kept, and causal: every row keeps at least one key.
    static let masks: [(String, NDArray)] = {
        var generator = SplitMix64(seed: 7)
        let kept = (0..<36).map { _ in generator.next() % 3 == 0 }
        return [
            ("banded", mask { i, j in abs(i - j) < 20 }),
            ("block-diagonal", mask { i, j in i / 25 == j / 25 }),
            ("random blocks", mask { i, j in i == j || kept[(i / 16) * 6 + j / 16] }),
            ("causal", mask { i, j in i >= j }),
        ]
    }()

    func testFusedEqualsUnfusedOnStructuredMasks() throws {
        let program = try DifferentialTests.example("attention_block_mask", dims: Self.dims, blocks: Self.blocks)
        for (label, m) in Self.masks {
            let result = try DifferentialTests.checkEveryStep(
                program, seed: 4, label: "attention_block_mask, \(label) mask", given: ["M": m])
            XCTAssertEqual(result.program.kernels.count, 2, label)
            XCTAssertTrue(result.trace.contains { $0.ruleID == "R16" }, "\(label): R16 did not apply")
            var guarded = 0
            for kernel in result.program.kernels {
                kernel.walk { inst in
                    if case .loop(let loop) = inst.op, loop.condition != nil { guarded += 1 }
                }
            }
            XCTAssertEqual(guarded, 1, label)
            // No N×N tensor in global memory: the only temporary is the [row blocks, key blocks] summary.
            let temps = result.program.tensors.filter { $0.role == .temp }
            XCTAssertEqual(temps.map(\.shape), [[6, 6]], label)
        }
    }

    /// Packed documents at run time (Examples/attention_packed.graph): monotone offsets (one
    /// document empty, boundaries inside and on 16-blocks) and non-monotone ones; the fused
    /// program equals the unfused one after every step, and its key loop is guarded.
    func testPackedDocumentsFuseAndMatch() throws {
        let dims = ["BH": 2, "N": Self.n, "d": 16, "D": 4]
        let program = try DifferentialTests.example("attention_packed", dims: dims, blocks: Self.blocks)
        for offsets: [Float] in [[0, 20, 45, 45, 90], [0, 32, 48, 64, 90], [0, 70, 10, 80, 90]] {
            let given = ["offsets": NDArray(shape: [5], data: offsets, elementType: .i32)]
            let result = try DifferentialTests.checkEveryStep(
                program, seed: 6, label: "attention_packed, offsets \(offsets)", given: given)
            XCTAssertTrue(result.trace.contains { $0.ruleID == "R16" }, "\(offsets): R16 did not apply")
            // The documents' kernel, the block summary, the attention kernel; no N×N tensor.
            XCTAssertEqual(result.program.kernels.count, 3, "\(offsets)")
            let temps = result.program.tensors.filter { $0.role == .temp && $0.viewOf == nil }
            XCTAssertTrue(temps.allSatisfy { $0.elementCount <= Self.n }, "\(temps.map(\.shape))")
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
}
