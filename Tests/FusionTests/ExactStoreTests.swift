import BlockIR
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// A store into an `i32` tensor truncates, and into a `bool` tensor makes 0 or 1: fusion keeps
/// those conversions (no rule uses the stored value in place of what a load reads back), while
/// f16/bf16 intermediates may stay in f32 (Docs/IR.md) and a comparison stored as bool, already
/// 0 or 1, fuses.
final class ExactStoreTests: XCTestCase {
    func testIntegerAndBoolConversionsSurviveFusion() throws {
        let graph = try GraphParser.parse(
            """
            graph conversions
            dim N = 40
            input x: f32[N, 24]
            T = cast(cast(x * 4, i32), f32) + 1
            U = cast(cast(x, bool), f32) * 3
            V = where(x > 0.25, x, 0) + 1
            output T, U, V
            """, defaultName: "conversions")
        let program = try Lowering.lower(graph)
        // Values with fractions and zeros: truncation and `!= 0` both show.
        var x = NDArray(shape: [40, 24], data: [Float](repeating: 0, count: 960))
        for k in 0..<960 { x.data[k] = k % 7 == 0 ? 0 : Float(k % 23) * 0.37 - 3.1 }
        let inputs = ["x": x]
        let expected = try GraphInterpreter.run(graph, inputs: inputs)
        var steps = 0
        let result = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)) { p, entry in
            steps += 1
            guard let got = try? BlockInterpreter.run(p, inputs: inputs) else {
                return XCTFail("step \(entry.step) \(entry.ruleID) does not run")
            }
            for name in ["T", "U", "V"] {
                XCTAssertEqual(
                    got[name]?.data, expected[name]?.data, "\(name) after step \(entry.step) \(entry.ruleID)")
            }
        }
        XCTAssertGreaterThan(steps, 0)
        let fused = try BlockInterpreter.run(result.program, inputs: inputs)
        XCTAssertEqual(fused["T"]?.data, expected["T"]?.data)
        XCTAssertEqual(fused["U"]?.data, expected["U"]?.data)
        // By hand: truncation toward zero, and any non-zero is true.
        for k in [1, 2, 8, 700] {
            XCTAssertEqual(fused["T"]?.data[k], (x.data[k] * 4).rounded(.towardZero) + 1, "T[\(k)]")
            XCTAssertEqual(fused["U"]?.data[k], x.data[k] != 0 ? 3 : 0, "U[\(k)]")
        }
        // The i32 and the non-truth bool intermediates stay in memory; the comparison fuses.
        let temps = result.program.tensors.filter { $0.role == .temp }.map(\.elementType)
        XCTAssertTrue(temps.contains(.i32), "\(temps)")
        XCTAssertEqual(temps.filter { $0 == .bool }.count, 1, "\(temps)")
    }
}
