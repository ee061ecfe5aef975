import BlockIR
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import ONNX
import XCTest

/// The fixtures of `Tests/ONNX/make_fixtures.py` (tiny transformer blocks with ONNX Runtime's
/// outputs beside them) imported, interpreted and fused.
final class FixtureTests: XCTestCase {
    static let folder = CLI.packageRoot + "/Tests/ONNX/fixtures"

    /// The imported fixture and its inputs: the stored `.npy` inputs and the model's weights.
    static func load(_ name: String, dims: [String: Int] = [:]) throws -> (ONNXImport, [String: NDArray]) {
        let imported = try ONNXImporter.importFile(folder + "/\(name).onnx", dims: dims)
        var inputs: [String: NDArray] = [:]
        for w in imported.weights {
            inputs[w.name] = NDArray(shape: w.shape, data: w.values, elementType: w.elementType)
        }
        for id in imported.graph.inputs where inputs[imported.graph[id].name] == nil {
            let input = imported.graph[id].name
            inputs[input] = try NPY.readFile(folder + "/\(name).input.\(input).npy")
        }
        return (imported, inputs)
    }

    /// The largest absolute difference of two arrays of one shape.
    static func maxError(_ a: NDArray, _ b: NDArray) -> Float {
        zip(a.data, b.data).map { Swift.abs($0 - $1) }.max() ?? .infinity
    }

    /// Runs a fixture through the graph interpreter and the fused block program and compares
    /// every output with ONNX Runtime's at an absolute tolerance of 1e-4 (f32 everywhere; the
    /// outputs are of order 1).
    func check(_ name: String, dims: [String: Int] = [:]) throws -> Program {
        let (imported, inputs) = try Self.load(name, dims: dims)
        let graph = imported.graph
        let fused = Fusion.fuse(try Lowering.lower(graph)).program
        let viaGraph = try GraphInterpreter.run(graph, inputs: inputs)
        let viaBlocks = try BlockInterpreter.run(fused, inputs: inputs)
        for output in graph.outputs {
            let o = graph[output].name
            let expected = try NPY.readFile(Self.folder + "/\(name).output.\(o).npy")
            let g = try XCTUnwrap(viaGraph[o])
            let f = try XCTUnwrap(viaBlocks[o])
            XCTAssertEqual(g.shape, expected.shape)
            XCTAssertEqual(f.shape, expected.shape)
            XCTAssertLessThan(Self.maxError(g, expected), 1e-4, "\(name).\(o) graph interpreter vs ONNX Runtime")
            XCTAssertLessThan(Self.maxError(f, expected), 1e-4, "\(name).\(o) fused program vs ONNX Runtime")
        }
        return fused
    }

    /// The attention is one kernel: exactly one kernel computes `exp` (the softmax; the blocks'
    /// other functions are erf, tanh or sigmoid), and it holds both products, `Q·Kᵀ` and `P·V`;
    /// and no tensor in global memory has `seq × seq` trailing axes: the scores and
    /// probabilities never leave that kernel.
    func assertNoScoresInGlobalMemory(_ fused: Program, seq: Int, file: StaticString = #filePath, line: UInt = #line) {
        let square = fused.tensors.filter { $0.shape.count >= 2 && Array($0.shape.suffix(2)) == [seq, seq] }
        XCTAssertEqual(square.map(\.name), [], BlockPrinter.print(fused), file: file, line: line)
        var softmaxKernels: [String] = []
        for kernel in fused.kernels {
            var exps = 0
            var dots = 0
            kernel.walk { inst in
                if case .unary(.exp, _) = inst.op { exps += 1 }
                if case .dot = inst.op { dots += 1 }
            }
            if exps > 0 {
                softmaxKernels.append(kernel.name)
                XCTAssertGreaterThanOrEqual(
                    dots, 2, "\(kernel.name) computes exp but not both products", file: file, line: line)
            }
        }
        XCTAssertEqual(softmaxKernels.count, 1, "\(softmaxKernels)", file: file, line: line)
    }

    func testGPT2BlockMatchesONNXRuntimeAndFusesAttention() throws {
        let fused = try check("gpt2_block", dims: ["seq": 16])
        assertNoScoresInGlobalMemory(fused, seq: 16)
    }

    func testLlamaBlockMatchesONNXRuntimeAndFusesAttention() throws {
        let fused = try check("llama_block")
        assertNoScoresInGlobalMemory(fused, seq: 16)
    }

    /// PyTorch's exports: weights as external data, the causal mask as a constant (GPT-2's
    /// `masked_fill` folded to `Where`, Llama's SDPA as an additive float32-lowest mask), grouped
    /// heads by `Expand`.
    func testPyTorchExportsMatchONNXRuntimeAndFuseAttention() throws {
        assertNoScoresInGlobalMemory(try check("gpt2_torch"), seq: 16)
        assertNoScoresInGlobalMemory(try check("llama_torch"), seq: 16)
        let (imported, _) = try Self.load("llama_torch")
        let masks = imported.graph.nodes.compactMap { n -> String? in
            if case .mask(_, let p, let fill) = n.op { return "\(p) fill \(fill)" }
            return nil
        }
        XCTAssertEqual(masks, ["i - j >= 0 fill \(-Float.greatestFiniteMagnitude)"])
    }

    /// A BERT encoder layer exported four ways (dynamo at opsets 18 and 20, TorchScript at 14 and
    /// 17), `seq` a named dim: the padding mask is a model input, `(1 - mask) · float32 lowest`
    /// broadcast over heads and queries; its last 5 tokens are padded. Each export's attention
    /// with that computed additive mask fuses to one kernel.
    func testBERTExportsMatchONNXRuntimeAndFuseAttention() throws {
        for name in ["bert_dynamo18", "bert_dynamo20", "bert_ts14", "bert_ts17"] {
            let fused = try check(name, dims: ["seq": 16])
            assertNoScoresInGlobalMemory(fused, seq: 16)
            let (imported, inputs) = try Self.load(name, dims: ["seq": 16])
            let graph = imported.graph
            XCTAssertEqual(graph.inputs.prefix(2).map { graph[$0].name }, ["x", "mask"], name)
            XCTAssertEqual(inputs["mask"]?.data.suffix(6), [1, 0, 0, 0, 0, 0], name)
        }
    }

    func testOpsMixMatchesONNXRuntime() throws {
        let fused = try check("ops_mix")
        XCTAssertEqual(
            fused.outputs.map { fused[$0].name },
            [
                "gemm", "reduce_sum", "reduce_max", "reduce_mean", "expand", "where", "gelu", "cast", "embedding",
                "attention", "trilu", "slice", "reciprocal",
            ])
        // int64 token ids are imported as i32.
        let (imported, _) = try Self.load("ops_mix")
        let tokens = try XCTUnwrap(imported.graph.node(named: "tokens"))
        XCTAssertEqual(tokens.elementType, .i32)
    }

    func testOpsMix2MatchesONNXRuntime() throws {
        let fused = try check("ops_mix2")
        XCTAssertEqual(fused.outputs.count, 11)
    }

    func testTheCausalTriluMaskBecomesAPredicate() throws {
        let (imported, _) = try Self.load("gpt2_block", dims: ["seq": 16])
        let masks = imported.graph.nodes.compactMap { n -> String? in
            if case .mask(_, let p, let fill) = n.op { return "\(p) fill \(fill)" }
            return nil
        }
        XCTAssertEqual(masks, ["i - j >= 0 fill -inf"])
        // No 16×16 constant became an input.
        XCTAssertFalse(imported.weights.contains { $0.shape.suffix(2) == [16, 16] })
    }

    func testInitializersBecomeInputsInOrder() throws {
        let (imported, _) = try Self.load("gpt2_block", dims: ["seq": 16])
        let names = imported.graph.inputs.map { imported.graph[$0].name }
        XCTAssertEqual(names.first, "x")
        // In the order the graph first reads them.
        XCTAssertEqual(Array(names.dropFirst().prefix(3)), ["ln1_weight", "ln1_bias", "attn_c_attn_weight"])
        XCTAssertEqual(imported.weights.map(\.name), Array(names.dropFirst()))
    }

    func testAMissingDimBindingNamesTheDim() {
        XCTAssertThrowsError(try Self.load("gpt2_block")) { error in
            XCTAssertTrue("\(error)".contains("'seq'"), "\(error)")
            XCTAssertTrue("\(error)".contains("--dim seq="), "\(error)")
        }
    }

    func testAnotherBindingOfTheDimRunsAtThatLength() throws {
        let (imported, _) = try Self.load("gpt2_block", dims: ["seq": 8])
        let graph = imported.graph
        XCTAssertEqual(graph[graph.outputs[0]].shape, [1, 8, 32])
    }
}
