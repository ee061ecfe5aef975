import BlockIR
import BlockParser
import BlockTestSupport
import Foundation
import Interpreter
import XCTest

/// A `dot` of bf16 precision (`dot %a, %b bf16`): the text form round-trips; the interpreter
/// rounds each operand element to bf16 before the product (checked against a double-precision
/// product of rounded operands, and against the f32 dot, which differs); lowering gives it to a
/// matmul of two bf16 tensors only, fusion keeps it on the dots it rewrites; and the compiled C
/// (`blk_gemm_bf16`: AVX512_BF16 pairs where the compiler has them, rounded f32 elsewhere) matches
/// the interpreter on operands that are not bf16 numbers, at odd sizes and in both layouts of B.
final class DotPrecisionTests: XCTestCase {
    /// C = A·Bᵀ (B's rows contiguous along k: the transposed layout) and D = A·W (W's rows
    /// contiguous along j), both bf16, at sizes that leave partial blocks.
    static let program = """
        program dot_precision

        tensor A: f32[100,130] @global input
        tensor B: f32[90,130] @global input
        tensor W: f32[130,75] @global input
        tensor C: f32[100,90] @global output
        tensor D: f32[100,75] @global output

        kernel k0_abt grid(i < 2, j < 2) {
          %0 = fill 0.0 : f32[64,64] @local
          %1 = for k in 0 ..< 3 iter(%2 = %0) : f32[64,64] @local {
            %3 = load A[i * 64 +: 64, k * 64 +: 64] : f32[64,64] @local
            %4 = load B[j * 64 +: 64, k * 64 +: 64] : f32[64,64] @local
            %5 = dot %3, %4 transpose_b bf16 : f32[64,64] @local
            %6 = add %2, %5 : f32[64,64] @local
            yield %6
          }
          store %1 -> C[i * 64 +: 64, j * 64 +: 64]
        }

        kernel k1_aw grid(i < 2) {
          %0 = fill 0.0 : f32[64,75] @local
          %1 = for k in 0 ..< 3 iter(%2 = %0) : f32[64,75] @local {
            %3 = load A[i * 64 +: 64, k * 64 +: 64] : f32[64,64] @local
            %4 = load W[k * 64 +: 64, 0 +: 75] : f32[64,75] @local
            %5 = dot %3, %4 bf16 : f32[64,75] @local
            %6 = add %2, %5 : f32[64,75] @local
            yield %6
          }
          store %1 -> D[i * 64 +: 64, 0 +: 75]
        }

        """

    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 400_000
        }
    }

    func testTextFormRoundTrips() throws {
        let program = try BlockParser.parse(Self.program)
        XCTAssertEqual(BlockPrinter.print(program), Self.program)
        guard case .loop(let loop) = program.kernels[0].body[1].op,
            case .dot(_, _, false, true, let precision) = loop.body[2].op
        else { return XCTFail("expected the dot in the loop") }
        XCTAssertEqual(precision, .bf16)
        let f32 = try BlockParser.parse(Self.program.replacingOccurrences(of: " bf16", with: ""))
        XCTAssertFalse(BlockPrinter.print(f32).contains("bf16"))
    }

    func testInterpreterRoundsTheOperands() throws {
        let program = try BlockParser.parse(Self.program)
        let f32 = try BlockParser.parse(Self.program.replacingOccurrences(of: " bf16", with: ""))
        let a = Self.random(100 * 130, seed: 1)
        let b = Self.random(90 * 130, seed: 2)
        let w = Self.random(130 * 75, seed: 3)
        let inputs = [
            "A": NDArray(shape: [100, 130], data: a), "B": NDArray(shape: [90, 130], data: b),
            "W": NDArray(shape: [130, 75], data: w),
        ]
        XCTAssertTrue(a.contains { ElementType.bf16.stored($0) != $0 }, "the operands must not all be bf16 numbers")
        let got = try BlockInterpreter.run(program, inputs: inputs)
        let plain = try BlockInterpreter.run(f32, inputs: inputs)
        func r(_ x: Float) -> Double { Double(ElementType.bf16.stored(x)) }
        var worst = 0.0
        var apart = 0.0
        for i in 0..<100 {
            for j in 0..<90 {
                var sum = 0.0
                var size = 0.0
                for k in 0..<130 {
                    sum += r(a[i * 130 + k]) * r(b[j * 130 + k])
                    size += abs(r(a[i * 130 + k]) * r(b[j * 130 + k]))
                }
                let c = Double(got["C"]!.data[i * 90 + j])
                worst = max(worst, abs(c - sum) / (size + 1e-30))
                apart = max(apart, abs(Double(plain["C"]!.data[i * 90 + j]) - c))
            }
            for j in 0..<75 {
                var sum = 0.0
                var size = 0.0
                for k in 0..<130 {
                    sum += r(a[i * 130 + k]) * r(w[k * 75 + j])
                    size += abs(r(a[i * 130 + k]) * r(w[k * 75 + j]))
                }
                worst = max(worst, abs(Double(got["D"]!.data[i * 75 + j]) - sum) / (size + 1e-30))
            }
        }
        XCTAssertLessThan(worst, 1e-5, "the bf16 dot is the f32 sum of the rounded operands' products")
        XCTAssertGreaterThan(apart, 1e-3, "rounding the operands must change the product of these inputs")
    }

    func testCompiledMatchesTheInterpreter() throws {
        let dir = CLI.temporaryDirectory("dot-precision")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/dot_precision.block"
        try Self.program.write(toFile: path, atomically: true, encoding: .utf8)
        let verify = CLI.blockc(["verify", path, "--seed", "5"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertEqual(verify.stdout.components(separatedBy: " ok").count - 1, 2, verify.stdout)
        let c = CLI.blockc(["emit-c", path])
        // The kernels' calls (not the runtime's own call, which passes its parameters on).
        let calls = c.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            ($0.hasPrefix("blk_gemm_bf16(") || $0.hasPrefix("blk_gemm_bf16_pf(")) && $0.hasSuffix(");")
                && !$0.contains("kk, A, a16")
        }
        XCTAssertEqual(calls.count, 2, "one call per dot: \(calls)")
        let cuda = CLI.blockc(["emit-cuda", path, "--target", "sm_90"])
        XCTAssertEqual(cuda.status, 0, cuda.stderr)
        XCTAssertTrue(cuda.stdout.contains("blk_gemm_bf16("), "the CUDA product rounds its operands too")
    }

    func testLoweringAndFusionKeepThePrecision() throws {
        // A product of two bf16 tensors is a bf16 dot; the fused kernels keep it on every dot.
        for (example, dims) in [("attention_bf16", "N=128,d=64"), ("rmsnorm_swiglu_bf16", "M=128,h=256,d=64")] {
            let lowered = CLI.blockc(["lower", "Examples/\(example).graph", "--dim", dims])
            XCTAssertEqual(lowered.status, 0, lowered.stderr)
            let dots = lowered.stdout.split(separator: "\n").filter { $0.contains(" = dot ") }
            XCTAssertFalse(dots.isEmpty)
            XCTAssertTrue(dots.allSatisfy { $0.contains(" bf16 :") }, "\(example): \(dots)")
            let fused = CLI.blockc(["fuse", "Examples/\(example).graph", "--dim", dims])
            let fusedDots = fused.stdout.split(separator: "\n").filter { $0.contains(" = dot ") }
            XCTAssertFalse(fusedDots.isEmpty)
            XCTAssertTrue(fusedDots.allSatisfy { $0.contains(" bf16 :") }, "\(example): \(fusedDots)")
        }
        // A bf16 tensor cast to f32 first, or one f32 operand: an f32 dot.
        let dir = CLI.temporaryDirectory("dot-precision-lower")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graph = """
            graph mixed
            input A: bf16[64, 32]
            input B: bf16[32, 48]
            input F: f32[32, 48]
            C = matmul(cast(A, f32), cast(B, f32))
            D = matmul(cast(A, f32), F)
            output C
            output D
            """
        try graph.write(toFile: dir + "/mixed.graph", atomically: true, encoding: .utf8)
        let lowered = CLI.blockc(["lower", dir + "/mixed.graph"])
        XCTAssertEqual(lowered.status, 0, lowered.stderr)
        let dots = lowered.stdout.split(separator: "\n").filter { $0.contains(" = dot ") }
        XCTAssertEqual(dots.count, 2, lowered.stdout)
        XCTAssertFalse(dots.contains { $0.contains("bf16") }, "\(dots)")
    }
}
