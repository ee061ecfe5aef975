import BlockIR
import BlockParser
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Schedule
import XCTest

/// An accumulator's row rescale computed by the product that accumulates onto it
/// (`RowScaledAccumulation`): where it applies, that the C still matches the interpreter, and what
/// the storage rule leaves alone.
final class RowScaledAccumulationTests: XCTestCase {
    private func fused(_ file: String, _ dims: [String: Int]) throws -> Program {
        try FusedCodegenTests.fused(file, dims: dims, i: 32, j: 16, k: 16)
    }

    /// The folds of every kernel of a program scheduled for a target.
    private func folds(_ p: Program, target: TargetDescription = .cpu) -> [RowScaledAccumulation] {
        Scheduler.scheduleKeepingBlocks(p, target: target).kernels.flatMap { $0.rowScaledAccumulations.values }
    }

    /// Attention's output rescale (`O·α` before `P·V` adds onto it) runs in the product, for full,
    /// causal and block-mask attention at sizes with partial blocks (so the tiles' row offsets into
    /// `α` vary), and the C at 1 and 3 threads matches the interpreter; likewise bf16 attention
    /// (`blk_gemm_bf16p_rs`), checked by `blockc verify` with AVX512_BF16 and without it (a compiler
    /// that adds `-mno-avx512bf16`: the runtime scales the rows first). GPU targets keep the rescale
    /// as an op.
    func testAttentionRescalesInTheProduct() throws {
        for (file, dims) in [
            ("attention.graph", ["BH": 2, "N": 75, "d": 16]), ("attention_causal.graph", ["BH": 2, "N": 75, "d": 16]),
            ("attention.graph", ["BH": 1, "N": 50, "d": 40]), ("attention_bf16.graph", ["BH": 2, "N": 75, "d": 16]),
        ] {
            let program = try fused(file, dims)
            XCTAssertEqual(folds(program).count, 1, file)
            // The product called with the row scales (a call in a kernel, not in the runtime's
            // definitions, whose arguments are named m, n, kk), and no loop of its own for the rescale.
            let source = CEmitter.emit(Scheduler.scheduleKeepingBlocks(program, target: .cpu)).source
            let names =
                ["blk_gemm_pf_rs(", "blk_gemm_rs(", "blk_gemm_bf16_pf_rs(", "blk_gemm_bf16_rs("]
                + ["blk_gemm_bf16p_rs("]
            let lines = source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            let calls = lines.filter { line in !line.contains("(m, n, kk,") && names.contains { line.hasPrefix($0) } }
            XCTAssertEqual(calls.count, 1, file)
            XCTAssertEqual(folds(program, target: .sm90).count, 0, file)
            guard !file.contains("bf16") else { continue }
            for threads in [1, 3] { _ = try CodegenHarness.check(program, seed: 4, threads: threads) }
        }
        let dir = CodegenHarness.scratch("rs-bf16")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let wrapper = dir + "/gcc-no-bf16"
        try "#!/bin/sh\nexec gcc \"$@\" -mno-avx512bf16\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
        // 16 columns (the runtime's 32-column tiles) and 40 (its 64-column tiles, masked).
        for (dims, blocks) in [("BH=2,N=75,d=16", "i=32,j=16,k=16"), ("BH=2,N=75,d=40", "i=64,j=64,k=64")] {
            for environment in [[:], ["BLOCKC_CC": wrapper]] {
                let verify = CLI.blockc(
                    ["verify", "Examples/attention_bf16.graph", "--dim", dims, "--block", blocks],
                    environment: environment)
                XCTAssertEqual(verify.status, 0, "\(dims) \(environment): \(verify.stdout)\(verify.stderr)")
                XCTAssertTrue(verify.stdout.contains(" ok"), verify.stdout)
            }
        }
    }

    /// A hand-written loop: an accumulator rescaled by a vector the loop computes, then a product
    /// added onto it. Folded when the rescale has no other reader and nothing before the add
    /// overwrites the accumulator or the scale; each variant's C matches the interpreter.
    func testWhatIsLeftAlone() throws {
        // α from the row maxima of X's block and the instance's block (so the vector sum %23 depends on i).
        let alphaOfBoth = """
                %30 = add %4, %1 : f32[8,8] @local
                %5 = reduce_max %30 axis 1 : f32[8] @local
            """
        func program(_ body: String, alpha: String = alphaOfBoth) throws -> Program {
            try BlockParser.parse(
                """
                program p

                tensor X: f32[24,8] @global input
                tensor Y: f32[24,8] @global output
                tensor Z: f32[24] @global output

                kernel k grid(i < 3) {
                  %0 = fill 0.0 : f32[8,8] @local
                  %1 = load X[i * 8 +: 8, 0 +: 8] : f32[8,8] @local
                  %20 = fill 0.0 : f32[8] @local
                  %2, %21 = for k2 in 0 ..< 3 iter(%3 = %0, %22 = %20) : f32[8,8] @local, f32[8] @local {
                    %4 = load X[k2 * 8 +: 8, 0 +: 8] : f32[8,8] @local
                \(alpha)
                    %6 = exp %5 : f32[8] @local
                    %7 = broadcast %6 axis 1 : f32[8,8] @local
                \(body)
                  }
                  store %2 -> Y[i * 8 +: 8, 0 +: 8]
                  store %21 -> Z[i * 8 +: 8]
                }

                """)
        }
        let folded = try program(
            """
                %8 = mul %3, %7 : f32[8,8] @local
                %9 = dot %1, %4 : f32[8,8] @local
                %10 = add %8, %9 : f32[8,8] @local
                %23 = add %22, %6 : f32[8] @local
                yield %10, %23
            """)
        // The rescale read again: it must be computed on its own.
        let readTwice = try program(
            """
                %8 = mul %3, %7 : f32[8,8] @local
                %9 = dot %1, %4 : f32[8,8] @local
                %10 = add %8, %9 : f32[8,8] @local
                %11 = reduce_sum %8 axis 1 : f32[8] @local
                %23 = add %22, %11 : f32[8] @local
                yield %10, %23
            """)
        // The scale's last reader before the add overwrites it in place (%23 = exp %6 takes %6's
        // buffer): computed at the add, the rescale would read exp(α) instead of α.
        let scaleOverwritten = try program(
            """
                %8 = mul %3, %7 : f32[8,8] @local
                %23 = exp %6 : f32[8] @local
                %9 = dot %1, %4 : f32[8,8] @local
                %10 = add %8, %9 : f32[8,8] @local
                yield %10, %23
            """)
        // A product that packs its right operand (transposed) into the buffer the scale leaves free
        // after the rescale: the packing would overwrite α before the tiles read it. (α from X's
        // block alone: the scheduler computes the vector sum once per thread, and the buffer plan
        // then gives the pack buffer α's.)
        let packedOverScale = try program(
            """
                %8 = mul %3, %7 : f32[8,8] @local
                %9 = dot %1, %4 transpose_b : f32[8,8] @local
                %10 = add %8, %9 : f32[8,8] @local
                %23 = add %22, %6 : f32[8] @local
                yield %10, %23
            """, alpha: "    %5 = reduce_max %4 axis 1 : f32[8] @local")
        for (name, p, expected) in [
            ("folded", folded, 1), ("readTwice", readTwice, 0), ("scaleOverwritten", scaleOverwritten, 0),
            ("packedOverScale", packedOverScale, 0),
        ] {
            XCTAssertEqual(folds(p).count, expected, name)
            _ = try CodegenHarness.check(p, seed: 9, threads: 2)
        }
        // The two cases the storage rule guards are what they say: the buffer plan puts %23 in %6's
        // buffer, and the product's pack buffer in the scale's.
        let overwritten = Scheduler.scheduleKeepingBlocks(scaleOverwritten, target: .cpu).kernels[0].buffers
        XCTAssertEqual(overwritten.bufferOf[ValueID(23)], overwritten.bufferOf[ValueID(6)])
        let packed = Scheduler.scheduleKeepingBlocks(packedOverScale, target: .cpu).kernels[0]
        var dot: ValueID?
        var alpha: ValueID?
        packed.kernel.walk { inst in
            if case .dot = inst.op { dot = inst.result?.id }
            if case .broadcast(let a, 1) = inst.op, packed.analysis.types[a]?.shape.count == 1 { alpha = a }
        }
        XCTAssertNotNil(packed.buffers.packBufferOf[dot!])
        XCTAssertEqual(packed.buffers.packBufferOf[dot!], packed.buffers.bufferOf[alpha!])
    }
}
