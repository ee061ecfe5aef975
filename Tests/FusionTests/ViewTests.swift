import BlockIR
import BlockParser
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// Slices and concatenations are views: a slice is a window of its operand's storage (no
/// kernel), a concatenation's computed parts store straight into windows of it, and only inputs,
/// views and outputs are copied. Each graph runs in the graph interpreter, lowered and fused, and
/// the three agree (on random inputs and on a ramp, whose every element is distinct, so a
/// shifted window shows).
final class ViewTests: XCTestCase {
    static func graph(_ body: String) throws -> Graph {
        try GraphParser.parse("graph views\n" + body, defaultName: "views")
    }

    /// Runs `graph` at every level and returns the lowered program.
    @discardableResult
    func checkLevels(_ graph: Graph, label: String, blocks: [(key: String, value: Int)] = []) throws -> Program {
        var options = LoweringOptions()
        try options.override(blocks)
        let program = try Lowering.lower(graph, options: options)
        XCTAssertEqual(Verifier.verify(program, target: .cpu), [], "\(label): lowered program")
        for (name, inputs) in [
            ("random", DifferentialTests.inputs(program, seed: 7)), ("ramp", RuleTests.ramp(program)),
        ] {
            let expected = try GraphInterpreter.run(graph, inputs: inputs)
            let lowered = try BlockInterpreter.run(program, inputs: inputs)
            let fused = try BlockInterpreter.run(
                Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program, inputs: inputs)
            for (output, want) in expected.sorted(by: { $0.key < $1.key }) {
                XCTAssertEqual(lowered[output]?.shape, want.shape, "\(label) \(name): \(output)")
                XCTAssertEqual(fused[output]?.shape, want.shape, "\(label) \(name): \(output)")
            }
            // Sums may associate differently by level: 1e-5 relative to max(1, max |reference|).
            for (level, got) in [("lowered", lowered), ("fused", fused)] {
                let (err, scale) = DifferentialTests.maxError(expected, got)
                XCTAssertLessThanOrEqual(err, 1e-5 * scale, "\(label) \(name): \(level)")
            }
        }
        _ = try DifferentialTests.checkEveryStep(program, seed: 3, label: label)
        return program
    }

    func testSliceOfAnInputIsAWindowWithoutAKernel() throws {
        let g = try Self.graph(
            """
            input X: [3, 50, 40]
            Y = exp(X[:, 3:25, 8:30]) + X[:, 1:23, 0:22]
            output Y
            """)
        XCTAssertEqual(g[g.outputs[0]].shape, [3, 22, 22])
        let program = try checkLevels(g, label: "input slices")
        let windows = program.tensors.filter { $0.window != nil }
        // Each subscript slices two axes: the first slice's window, then the composed one.
        XCTAssertEqual(windows.map(\.window), [[0, 3, 0], [0, 3, 8], [0, 1, 0], [0, 1, 0]])
        XCTAssertTrue(windows.allSatisfy { $0.viewOf == TensorID(0) })
        XCTAssertFalse(program.kernels.contains { $0.name.contains("copy") })
        try checkLevels(g, label: "input slices, small blocks", blocks: [("i", 16), ("j", 8), ("k", 8)])
    }

    func testSliceOfASliceComposesAndAReshapeOfASliceCopies() throws {
        let g = try Self.graph(
            """
            input X: [6, 40]
            A = X[1:5, 4:36]
            B = A[..., 2:10] * 2
            C = reshape(A, [2, 2, 32])
            D = reduce_sum(C, axis=-1)
            output B
            output D
            """)
        let program = try checkLevels(g, label: "slice of slice")
        XCTAssertTrue(
            program.tensors.contains { $0.window == [1, 6] && $0.viewOf == TensorID(0) }, BlockPrinter.print(program))
        XCTAssertEqual(program.kernels.filter { $0.name.contains("copy") }.count, 1, "the reshape copies its window")
    }

    func testConcatOfComputedPartsStoresIntoWindows() throws {
        let g = try Self.graph(
            """
            input Q: [2, 70, 16]
            input C: [70, 16]
            input S: [70, 16]
            R = concat(-Q[..., 8:], Q[..., :8], axis=-1)
            Y = Q * C + R * S
            output Y
            """)
        let program = try checkLevels(g, label: "rotate half")
        // -Q[..., 8:] is stored into R's first half by its own kernel; Q[..., :8] (a view of an
        // input) is copied into the second half.
        let r = try XCTUnwrap(program.tensors.firstIndex { $0.name == "R" })
        let windows = program.tensors.filter { $0.viewOf == TensorID(r) }.compactMap(\.window)
        XCTAssertEqual(windows, [[0, 0, 0], [0, 0, 8]])
        XCTAssertEqual(program.kernels.filter { $0.name.contains("copy") }.count, 1)
        try checkLevels(g, label: "rotate half, small blocks", blocks: [("i", 16), ("j", 4), ("k", 4)])
    }

    func testConcatOnLeadingAxesAndOfOutputs() throws {
        let g = try Self.graph(
            """
            input A: [2, 5, 7]
            input B: [3, 5, 7]
            X = sigmoid(A)
            Y = concat([X, B, X], axis=0)
            Z = concat(Y[:, 1:3], Y[:, 0:1], axis=1)
            output X
            output Z
            """)
        try checkLevels(g, label: "leading axes")
    }

    func testOutputSliceCopiesIntoTheCallersBuffer() throws {
        let g = try Self.graph(
            """
            input X: [4, 30]
            Y = X[:, 3:17]
            output Y
            """)
        let program = try checkLevels(g, label: "output slice")
        XCTAssertEqual(program.kernels.count, 1)
        XCTAssertEqual(program.tensors.filter { $0.role == .output }.map(\.window), [nil])
    }

    /// A window's offsets print and parse back; the verifier and the interpreter refuse a window
    /// that leaves the viewed tensor.
    func testWindowViewsInTheBlockForm() throws {
        let text = """
            program w

            tensor X: f32[4,10] @global input
            tensor V: f32[2,5] @global temp view X at [1, 3]
            tensor Y: f32[2,5] @global output

            kernel k0 grid(i < 1) {
              %0 = load V[0 +: 2, 0 +: 5] : f32[2,5] @local
              store %0 -> Y[0 +: 2, 0 +: 5]
            }

            """
        let program = try BlockParser.parse(text)
        XCTAssertEqual(BlockPrinter.print(program), text)
        XCTAssertEqual(Verifier.verify(program, target: .cpu), [])
        let x = NDArray(shape: [4, 10], data: (0..<40).map(Float.init))
        let y = try BlockInterpreter.run(program, inputs: ["X": x])["Y"]
        XCTAssertEqual(y?.data, [13, 14, 15, 16, 17, 23, 24, 25, 26, 27])
        let outside = try BlockParser.parse(text.replacingOccurrences(of: "at [1, 3]", with: "at [3, 6]"))
        XCTAssertTrue(
            Verifier.verify(outside, target: .cpu).contains { $0.description.contains("a window must lie inside") })
        XCTAssertThrowsError(try BlockInterpreter.run(outside, inputs: ["X": x]))
        let rank = try BlockParser.parse(text.replacingOccurrences(of: "at [1, 3]", with: "at [1]"))
        XCTAssertTrue(Verifier.verify(rank, target: .cpu).contains { $0.description.contains("one offset per axis") })
        XCTAssertThrowsError(try BlockInterpreter.run(rank, inputs: ["X": x]))
    }

    /// The generated C reads and writes through windows (offsets and the viewed tensor's
    /// strides) as the interpreter does, fused and unfused, at two block sizes.
    func testGeneratedCGoesThroughWindows() throws {
        let dir = CLI.temporaryDirectory("views")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/views.graph"
        try """
        graph views
        input Q: [2, 70, 16]
        input C: [70, 16]
        input S: [70, 16]
        R = concat(-Q[..., 8:], Q[..., :8], axis=-1)
        Y = Q * C + R * S
        T = concat([Y[:, 5:40], sigmoid(Q[:, 0:3])], axis=1)
        Z = reduce_sum(reshape(T[:, 2:34], [2, 4, 128]), axis=-1)
        output T
        output Z
        """.write(toFile: path, atomically: true, encoding: .utf8)
        for extra in [[], ["--no-fusion"], ["--block", "i=16,j=4,k=8"]] {
            let result = CLI.blockc(["verify", path, "--seed", "2"] + extra)
            XCTAssertEqual(result.status, 0, "\(extra): \(result.stdout)\(result.stderr)")
            XCTAssertEqual(result.stdout.components(separatedBy: " ok").count - 1, 2, result.stdout)
        }
    }

    /// A head merge (`reshape(transpose(O))`) read by a product is an index map, not a kernel:
    /// R17 reads O through the transpose's permutation and the reshape's split of the columns
    /// (heads of 24 features read in blocks of 8 and of 24, odd positions), and no transpose
    /// kernel remains after fusion. `checkLevels` runs the interpreter after every step.
    func testHeadMergeIsReadThroughItsIndexMap() throws {
        for (block, label) in [(8, "blocks of 8"), (24, "blocks of 24")] {
            let g = try Self.graph(
                """
                input O: [3, 37, 24]
                input W: [72, 40]
                A = reshape(transpose(exp(O), perm=[1, 0, 2]), [37, 72])
                Y = matmul(A, W)
                output Y
                """)
            let blocks = [("i", 16), ("j", 16), ("k", block)]
            let program = try checkLevels(g, label: "head merge, \(label)", blocks: blocks)
            let fused = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program
            let copies = fused.kernels.filter { kernel in
                var found = false
                kernel.walk { inst in if case .store(_, let t, _) = inst.op, fused[t].name != "Y" { found = true } }
                return found
            }
            XCTAssertEqual(copies.map(\.name), ["k0_exp_t2"], "\(label): " + BlockPrinter.print(fused))
        }
    }
}
