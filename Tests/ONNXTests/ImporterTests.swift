import BlockTestSupport
import Foundation
import Graph
import Interpreter
import XCTest

@testable import ONNX

/// Small models written byte by byte: errors that name the node, and external data.
final class ImporterTests: XCTestCase {
    struct TestNode {
        var op: String
        var inputs: [String]
        var outputs: [String]
        var name: String
    }

    static func valueInfo(_ w: inout ProtobufWriter, field: Int, _ name: String, _ dims: [Int64]) {
        w.message(field) { v in
            v.string(1, name)
            v.message(2) { type in
                type.message(1) { tensor in
                    tensor.int(1, 1)
                    tensor.message(2) { shape in
                        for d in dims { shape.message(1) { dim in dim.int(1, d) } }
                    }
                }
            }
        }
    }

    /// A model with f32 inputs and outputs; `initializers` are written as given.
    static func model(
        nodes: [TestNode], inputs: [(String, [Int64])], outputs: [(String, [Int64])],
        initializers: [(inout ProtobufWriter) -> Void] = [], opset: Int64 = 17
    ) -> [UInt8] {
        var m = ProtobufWriter()
        m.int(1, 8)
        m.message(7) { g in
            for n in nodes {
                g.message(1) { node in
                    for i in n.inputs { node.string(1, i) }
                    for o in n.outputs { node.string(2, o) }
                    node.string(3, n.name)
                    node.string(4, n.op)
                }
            }
            g.string(2, "test")
            for i in initializers { g.message(5, i) }
            for (name, dims) in inputs { valueInfo(&g, field: 11, name, dims) }
            for (name, dims) in outputs { valueInfo(&g, field: 12, name, dims) }
        }
        m.message(8) { o in o.int(2, opset) }
        return m.bytes
    }

    func testAnUnsupportedOpNamesTheOpTheNodeAndTheOpset() {
        let bytes = Self.model(
            nodes: [TestNode(op: "Einsum", inputs: ["x"], outputs: ["y"], name: "mix")],
            inputs: [("x", [2, 2])], outputs: [("y", [2, 2])], opset: 17)
        XCTAssertThrowsError(try ONNXImporter.importModel(bytes, name: "m", folder: nil)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("node 'mix' (Einsum, opset 17)"), text)
            XCTAssertTrue(text.contains("the op Einsum is not supported"), text)
        }
    }

    func testASimpleModelImports() throws {
        let bytes = Self.model(
            nodes: [
                TestNode(op: "Tanh", inputs: ["x"], outputs: ["t"], name: "a"),
                TestNode(op: "Add", inputs: ["t", "x"], outputs: ["y"], name: "b"),
            ],
            inputs: [("x", [2, 3])], outputs: [("y", [2, 3])])
        let imported = try ONNXImporter.importModel(bytes, name: "simple model", folder: nil)
        XCTAssertEqual(
            GraphPrinter.print(imported.graph),
            "graph simple_model\ninput x: [2, 3]\nt1 = tanh(x)\ny = add(t1, x)\noutput y\n")
    }

    /// A `[2]` f32 initializer `w` stored in `location` at `offset`.
    static func external(_ location: String, offset: Int) -> (inout ProtobufWriter) -> Void {
        { t in
            t.int(1, 2)
            t.int(2, 1)
            t.string(8, "w")
            t.message(13) { e in
                e.string(1, "location")
                e.string(2, location)
            }
            t.message(13) { e in
                e.string(1, "offset")
                e.string(2, "\(offset)")
            }
            t.message(13) { e in
                e.string(1, "length")
                e.string(2, "8")
            }
            t.int(14, 1)
        }
    }

    func testExternalDataIsReadFromTheModelsFolderOnly() throws {
        let dir = CLI.temporaryDirectory("onnx-external")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/model/data", withIntermediateDirectories: true)
        var payload: [UInt8] = [9, 9, 9, 9]
        for x: Float in [1.5, -2] { withUnsafeBytes(of: x.bitPattern.littleEndian) { payload += $0 } }
        FileManager.default.createFile(atPath: dir + "/model/data/w.bin", contents: Data(payload))
        FileManager.default.createFile(atPath: dir + "/outside.bin", contents: Data(payload))
        let nodes = [TestNode(op: "Mul", inputs: ["x", "w"], outputs: ["y"], name: "scale")]
        let inside = Self.model(
            nodes: nodes, inputs: [("x", [2])], outputs: [("y", [2])],
            initializers: [Self.external("data/w.bin", offset: 4)])
        let imported = try ONNXImporter.importModel(inside, name: "m", folder: dir + "/model")
        XCTAssertEqual(imported.weights.map(\.values), [[1.5, -2]])
        for escaping in ["../outside.bin", "/etc/passwd", "data/../../outside.bin"] {
            let bytes = Self.model(
                nodes: nodes, inputs: [("x", [2])], outputs: [("y", [2])],
                initializers: [Self.external(escaping, offset: 4)])
            XCTAssertThrowsError(try ONNXImporter.importModel(bytes, name: "m", folder: dir + "/model")) { e in
                XCTAssertTrue("\(e)".contains("outside the model's folder"), "\(escaping): \(e)")
            }
        }
        // A link inside the folder that points out of it.
        try FileManager.default.createSymbolicLink(
            atPath: dir + "/model/link.bin", withDestinationPath: dir + "/outside.bin")
        let linked = Self.model(
            nodes: nodes, inputs: [("x", [2])], outputs: [("y", [2])],
            initializers: [Self.external("link.bin", offset: 4)])
        XCTAssertThrowsError(try ONNXImporter.importModel(linked, name: "m", folder: dir + "/model")) { e in
            XCTAssertTrue("\(e)".contains("outside the model's folder"), "\(e)")
        }
        // Past the end of the file.
        let long = Self.model(
            nodes: nodes, inputs: [("x", [2])], outputs: [("y", [2])],
            initializers: [Self.external("data/w.bin", offset: 8)])
        XCTAssertThrowsError(try ONNXImporter.importModel(long, name: "m", folder: dir + "/model")) { e in
            XCTAssertTrue("\(e)".contains("past the end"), "\(e)")
        }
    }

    /// An initializer of `dims` holding `values` (float, or int64 when `int64`).
    static func initializer(_ name: String, _ dims: [Int64], _ values: [Double], int64: Bool = false)
        -> (inout ProtobufWriter) -> Void
    {
        { t in
            for d in dims { t.int(1, d) }
            t.int(2, int64 ? 7 : 1)
            t.string(8, name)
            if int64 {
                var packed = ProtobufWriter()
                for v in values { packed.varint(UInt64(bitPattern: Int64(v))) }
                t.bytes(7, packed.bytes)
            } else {
                for v in values { t.fixed32(4, Float(v).bitPattern) }
            }
        }
    }

    func testConstantPartsOfAConcatAndNegativeGatherIndicesKeepTheirValues() throws {
        let bytes = Self.model(
            nodes: [
                TestNode(op: "Concat", inputs: ["x", "a", "b"], outputs: ["c"], name: "join"),
                TestNode(op: "Gather", inputs: ["c", "idx"], outputs: ["y"], name: "pick"),
            ],
            inputs: [("x", [1, 2])], outputs: [("y", [2, 2])],
            initializers: [
                Self.initializer("a", [1, 2], [1, 2]), Self.initializer("b", [1, 2], [3, 4]),
                Self.initializer("idx", [2], [-1, 0], int64: true),
            ])
        // Concat's axis attribute: patch it in by hand (the helper writes none).
        var patched = try ONNXModel.decode(bytes)
        var axis = AttributeProto()
        axis.name = "axis"
        axis.type = 2
        patched.graph.nodes[0].attributes = [axis]
        var importer = ONNXImporter(name: "m", dims: [:])
        let imported = try importer.run(patched, folder: nil)
        var inputs: [String: NDArray] = ["x": NDArray(shape: [1, 2], data: [5, 6])]
        for w in imported.weights {
            inputs[w.name] = NDArray(shape: w.shape, data: w.values, elementType: w.elementType)
        }
        let y = try XCTUnwrap(GraphInterpreter.run(imported.graph, inputs: inputs)["y"])
        XCTAssertEqual(y.data, [3, 4, 5, 6], "rows -1 and 0 of [x; a; b]")
        XCTAssertEqual(imported.weights.map(\.name), ["a", "b", "const1"])
        XCTAssertEqual(imported.weights.last?.values, [2, 0])
    }

    func testBandPredicatesAreDerivedFromTheMatrix() {
        func matrix(_ n: Int, _ keep: (Int, Int) -> Bool) -> ConstantTensor {
            var values: [Double] = []
            for i in 0..<n { for j in 0..<n { values.append(keep(i, j) ? 1 : 0) } }
            return ConstantTensor(.bool, shape: [1, n, n], values: values)
        }
        XCTAssertEqual(ONNXImporter.band(matrix(5) { i, j in j <= i }, rows: 5, columns: 5)?.description, "i - j >= 0")
        XCTAssertEqual(
            ONNXImporter.band(matrix(6) { i, j in j <= i && i - j < 3 }, rows: 6, columns: 6)?.description,
            "i - j >= 0 && -i + j + 2 >= 0")
        XCTAssertEqual(ONNXImporter.band(matrix(4) { _, _ in true }, rows: 4, columns: 4)?.atoms, [])
        XCTAssertNil(ONNXImporter.band(matrix(4) { i, j in (i + j) % 2 == 0 }, rows: 4, columns: 4))
        XCTAssertNil(ONNXImporter.band(matrix(4) { _, _ in true }, rows: 2, columns: 4))
    }
}
