import BlockIR
import Foundation
import Graph

/// A tensor of the imported graph that a model carries (an initializer, or a constant folded at
/// import that an op reads as data): it becomes a named input of the graph.
public struct ONNXWeight: Hashable, Sendable {
    /// The graph input's name.
    public var name: String
    /// The shape.
    public var shape: [Int]
    /// The element type (`int64` data becomes `i32`).
    public var elementType: ElementType
    /// The elements in row-major order.
    public var values: [Float]
}

/// An imported model: the graph, and the values of the inputs that hold its weights.
public struct ONNXImport: Hashable, Sendable {
    /// The graph; its inputs are the model's inputs, then the weights.
    public var graph: Graph
    /// The weights, in the order their inputs appear in the graph.
    public var weights: [ONNXWeight]
    /// The default domain's opset version.
    public var opset: Int64
}

/// Imports an ONNX model as a `Graph` through `GraphBuilder`: each ONNX op becomes graph
/// primitives (never a fused kernel), shape arithmetic on constants is folded at import, named
/// dimensions take the values `dims` binds, and initializers become named inputs.
///
/// ```
/// MatMul(X, W) + B  →  input X: [N, d]; input W: [d, f]; input B: [f]; t = matmul(X, W) + B
/// Where(Cast(Trilu(ConstantOfShape([N, N], 1))), S, -inf)  →  where(i - j >= 0, S, -inf)
/// ```
public struct ONNXImporter {
    enum Value {
        case node(NodeID)
        case constant(ConstantTensor, name: String)
    }

    /// The graph being built.
    var b: GraphBuilder
    var values: [String: Value] = [:]
    var usedNames: Set<String> = []
    var weights: [ONNXWeight] = []
    var materialized: [String: NodeID] = [:]
    var opset: Int64 = 0
    var foldedCount = 0
    /// The names of the model's initializers (kept as inputs even when uniform).
    var initializers: Set<String> = []
    let dims: [String: Int]

    /// An importer for a graph `name`, with named dimensions bound by `dims`.
    init(name: String, dims: [String: Int]) {
        self.b = GraphBuilder(name: name)
        self.dims = dims
    }

    /// Imports a model file; external data is read from the file's folder.
    public static func importFile(
        _ path: String, name: String? = nil, dims: [String: Int] = [:]
    ) throws(ONNXError) -> ONNXImport {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ONNXError("cannot read '\(path)': no such file")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let base = name ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        do {
            return try importModel([UInt8](data), name: base, folder: folder, dims: dims)
        } catch {
            throw ONNXError("\(path): \(error.message)")
        }
    }

    /// Imports a serialized model; `folder` is where external data lives (nil: none allowed).
    public static func importModel(
        _ bytes: [UInt8], name: String, folder: String?, dims: [String: Int] = [:]
    ) throws(ONNXError) -> ONNXImport {
        let model = try ONNXModel.decode(bytes)
        var importer = ONNXImporter(name: sanitizedGraphName(name), dims: dims)
        return try importer.run(model, folder: folder)
    }

    /// A valid graph name made from a file or model name.
    static func sanitizedGraphName(_ name: String) -> String {
        let s = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
        if let first = s.first, first.isNumber { return "g_" + s }
        return s.isEmpty ? "graph" : s
    }

    /// A valid, unused tensor name made from an ONNX name.
    mutating func freshName(_ onnx: String) -> String {
        var s = String(onnx.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
        while s.hasPrefix("_") && s.count > 1 { s.removeFirst() }
        if s.isEmpty || s == "_" { s = "v" }
        if s.first!.isNumber { s = "v_" + s }
        var candidate = s
        var k = 2
        while usedNames.contains(candidate) {
            candidate = "\(s)_\(k)"
            k += 1
        }
        usedNames.insert(candidate)
        return candidate
    }

    /// The graph element type of an ONNX data type (integers become i32).
    static func elementType(ofDataType type: Int64, what: String) throws(ONNXError) -> ElementType {
        switch type {
        case 1, 11: return .f32
        case 10: return .f16
        case 16: return .bf16
        case 2, 3, 4, 5, 6, 7, 12, 13: return .i32
        case 9: return .bool
        default:
            throw ONNXError(
                "\(what) has element type \(ConstantTensor.dataTypeName(type)), which blockc does not import")
        }
    }

    /// Imports a decoded model: inputs, initializers as constants, nodes in order, outputs.
    mutating func run(_ model: ONNXModel, folder: String?) throws(ONNXError) -> ONNXImport {
        guard let version = model.opset("") else {
            throw ONNXError("the model imports no opset of the default domain (ai.onnx); it cannot be imported")
        }
        opset = version
        let g = model.graph
        let initializerNames = Set(g.initializers.map(\.name))
        var boundDims: [String] = []
        for input in g.inputs where !initializerNames.contains(input.name) {
            let what = "graph input '\(input.name)'"
            guard let dimsProto = input.shape else {
                throw ONNXError("\(what) has no shape; blockc needs static shapes (re-export with shapes)")
            }
            var shape: [Int] = []
            for (axis, d) in dimsProto.enumerated() {
                switch d {
                case .value(let v):
                    guard v > 0, v <= 1 << 31 else { throw ONNXError("\(what) has size \(v) on axis \(axis)") }
                    shape.append(Int(v))
                case .param(let p):
                    guard let v = dims[p] else {
                        throw ONNXError(
                            "\(what) has the symbolic dimension '\(p)' on axis \(axis); bind it with --dim \(p)=VALUE")
                    }
                    if !boundDims.contains(p) {
                        boundDims.append(p)
                        b.addDim(Self.sanitizedGraphName(p), v)
                    }
                    shape.append(v)
                case .unknown:
                    throw ONNXError(
                        "\(what) has no size on axis \(axis) (neither a number nor a name); "
                            + "re-export the model with static or named dimensions")
                }
            }
            guard shape.reduce(1.0, { $0 * Double($1) }) <= Double(1 << 40) else {
                throw ONNXError("\(what) has shape \(shape), too many elements")
            }
            let type = try Self.elementType(ofDataType: input.elementType, what: what)
            let name = freshName(input.name)
            do {
                values[input.name] = .node(try b.input(name, shape, type))
            } catch {
                throw ONNXError("\(what): \(error.message)")
            }
        }
        for name in dims.keys.sorted() where !boundDims.contains(name) {
            let names = boundDims.isEmpty ? "none" : boundDims.joined(separator: ", ")
            throw ONNXError(
                "--dim \(name): the model's inputs have no dimension '\(name)'; its named dimensions: \(names)")
        }
        // Initializers stay constants until an op reads one as data: then it becomes a named
        // input (in the order the graph first reads them); shape arithmetic folds them.
        for t in g.initializers {
            let c = try ConstantTensor.decode(t, folder: folder)
            values[t.name] = .constant(c, name: t.name)
            initializers.insert(t.name)
        }
        for (k, node) in g.nodes.enumerated() {
            let label = node.name.isEmpty ? "#\(k)" : "'\(node.name)'"
            let domainNote = node.domain.isEmpty ? "" : " of domain \(node.domain)"
            let context = "node \(label) (\(node.opType)\(domainNote), opset \(opset))"
            do {
                try importNode(node)
            } catch let e as ONNXError {
                throw ONNXError("\(context): \(e.message)")
            } catch let e as GraphError {
                throw ONNXError("\(context): \(e.message)")
            } catch {
                throw ONNXError("\(context): \(error)")
            }
        }
        for output in g.outputs {
            guard let v = values[output.name] else {
                throw ONNXError("graph output '\(output.name)' is computed by no node")
            }
            guard case .node(let id) = v else {
                throw ONNXError(
                    "graph output '\(output.name)' is a constant (it does not depend on any input); blockc needs "
                        + "outputs computed from inputs")
            }
            if b.hasUserName(id) {
                throw ONNXError(
                    "graph output '\(output.name)' is also an input or another output; outputs must be computed tensors"
                )
            }
            do {
                try b.output(id, name: freshName(output.name))
            } catch {
                throw ONNXError("graph output '\(output.name)': \(error.message)")
            }
        }
        let graph: Graph
        do {
            graph = try b.build()
        } catch {
            throw ONNXError(error.message)
        }
        let inputOrder = graph.inputs.map { graph[$0].name }
        let ordered = weights.sorted {
            (inputOrder.firstIndex(of: $0.name) ?? 0) < (inputOrder.firstIndex(of: $1.name) ?? 0)
        }
        return ONNXImport(graph: graph, weights: ordered, opset: opset)
    }

    /// A graph input holding a constant's values (a scalar becomes a number).
    mutating func materialize(_ c: ConstantTensor, name: String, type: ElementType) throws -> NodeID {
        if c.shape.isEmpty { return b.constant(Float(c.values[0])) }
        if let id = materialized[name + "/\(type)"] { return id }
        let graphName = freshName(name)
        let id = try b.input(graphName, c.shape, type)
        let values = c.values.map { type.stored(Float($0)) }
        weights.append(ONNXWeight(name: graphName, shape: c.shape, elementType: type, values: values))
        materialized[name + "/\(type)"] = id
        return id
    }

    /// The element type a constant of a kind becomes.
    static func type(of kind: ConstantTensor.Kind) -> ElementType {
        switch kind {
        case .float: return .f32
        case .int: return .i32
        case .bool: return .bool
        }
    }

    /// The kind of constant that holds values of an element type.
    static func kind(of type: ElementType) -> ConstantTensor.Kind {
        switch type {
        case .f32, .f16, .bf16: return .float
        case .i32: return .int
        case .bool: return .bool
        }
    }

    /// A value's shape.
    func shape(_ v: Value) -> [Int] {
        switch v {
        case .node(let id): return b.shape(of: id)
        case .constant(let c, _): return c.shape
        }
    }

    /// A value's kind (float, integer, bool).
    func kind(_ v: Value) -> ConstantTensor.Kind {
        switch v {
        case .node(let id): return Self.kind(of: b.elementType(of: id))
        case .constant(let c, _): return c.kind
        }
    }

    /// A node for a value: a folded constant becomes a number when it is uniform and does not
    /// widen the shape of the op it meets (`within`); otherwise (and for an initializer of more
    /// than one element) an input holding its values.
    mutating func node(_ v: Value, within target: [Int]? = nil, like type: ElementType? = nil) throws -> NodeID {
        switch v {
        case .node(let id): return id
        case .constant(let c, let name):
            if c.count == 1 && c.shape.isEmpty { return b.constant(Float(c.values[0])) }
            if let target, c.isUniform, c.count > 0, !initializers.contains(name) || c.count == 1,
                ConstantTensor.broadcast([target, c.shape]) == target
            {
                return b.constant(Float(c.values[0]))
            }
            var t = Self.type(of: c.kind)
            if let type, Self.kind(of: type) == c.kind { t = type }
            return try materialize(c, name: name, type: t)
        }
    }

    /// A folded constant with a fresh name.
    mutating func folded(_ c: ConstantTensor) -> Value {
        foldedCount += 1
        return .constant(c, name: "const\(foldedCount)")
    }

    /// A value that must be constant at import (a shape, axes, bounds), or an error saying why.
    func constant(_ v: Value?, _ what: String) throws -> ConstantTensor {
        guard let v else { throw ONNXError("\(what) is missing") }
        guard case .constant(let c, _) = v else {
            throw ONNXError(
                "\(what) is computed from the graph's inputs; blockc needs it constant at import "
                    + "(static shapes): export the model with fixed shapes or bind its dims with --dim")
        }
        return c
    }

    /// A non-negative axis (negative ones count from the end).
    static func normalize(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw ONNXError("axis \(axis) is out of range for rank \(rank)") }
        return a
    }

    /// Reshapes a result to the shape ONNX gives it, when numbers stood in for wider constants.
    mutating func fit(_ id: NodeID, _ target: [Int]) throws -> Value {
        if b.shape(of: id) == target { return .node(id) }
        return .node(try b.reshape(id, target))
    }

    /// An elementwise binary op with broadcasting: folded on constants, an additive band mask as a predicate.
    mutating func binary(_ op: BinaryOp, _ x: Value, _ y: Value) throws -> Value {
        if case .constant(let a, _) = x, case .constant(let c, _) = y {
            return folded(try ConstantTensor.binary(op, a, c))
        }
        guard let target = ConstantTensor.broadcast([shape(x), shape(y)]) else {
            throw ONNXError("shapes \(shape(x)) and \(shape(y)) do not broadcast")
        }
        if op == .add, let masked = try additiveMask(x, y, target) ?? additiveMask(y, x, target) { return masked }
        let tx: ElementType? = if case .node(let id) = y { b.elementType(of: id) } else { nil }
        let ty: ElementType? = if case .node(let id) = x { b.elementType(of: id) } else { nil }
        let a = try node(x, within: shape(y), like: tx)
        let c = try node(y, within: shape(x), like: ty)
        return try fit(b.binary(op, a, c), target)
    }

    /// `x + M` for a constant `M` of zeros and one very negative value `f` (`-inf`, or at most
    /// -2^100 such as float32's lowest, which exporters use) whose zeros form a band of the last
    /// two axes (an additive causal or sliding-window mask) as `where(band, x, f)`. Exact: `x + f`
    /// rounds to `f` for every `|x| < 2^76`; fusion computes the band in the attention kernel
    /// instead of reading `M` (and skips masked blocks when `f` is `-inf`).
    mutating func additiveMask(_ x: Value, _ m: Value, _ target: [Int]) throws -> Value? {
        guard case .node(let id) = x, case .constant(let c, _) = m, b.shape(of: id) == target,
            b.elementType(of: id).isFloat, target.count >= 2, c.shape.count >= 2,
            let fill = c.values.first(where: { $0 != 0 }), fill <= -0x1p100,
            c.values.allSatisfy({ $0 == 0 || $0 == fill }), c.values.contains(0)
        else { return nil }
        let keep = ConstantTensor(.bool, shape: c.shape, values: c.values.map { $0 == 0 ? 1 : 0 })
        guard let band = Self.band(keep, rows: target[target.count - 2], columns: target[target.count - 1]),
            !band.atoms.isEmpty
        else { return nil }
        return .node(try b.mask(id, band, fill: Float(fill)))
    }

    /// An elementwise unary op (folded on constants).
    mutating func unary(_ op: UnaryOp, _ x: Value) throws -> Value {
        if case .constant(let c, _) = x { return folded(c.unary(op)) }
        return .node(try b.unary(op, node(x)))
    }

    /// A reshape (folded on constants).
    mutating func reshape(_ x: Value, _ newShape: [Int]) throws -> Value {
        if case .constant(let c, _) = x { return folded(c.reshaped(newShape)) }
        return .node(try b.reshape(node(x), newShape))
    }
}
