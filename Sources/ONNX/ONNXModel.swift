/// The subset of `onnx.proto` (ONNX IR) that importing a model needs, decoded from the wire
/// format by `ONNXModel.decode`. Field numbers are the official ones; fields not listed are
/// skipped by their wire type.
public struct ONNXModel: Hashable, Sendable {
    /// `ModelProto.ir_version` (1).
    public var irVersion: Int64 = 0
    /// `ModelProto.opset_import` (8): the operator sets the graph uses.
    public var opsetImports: [OperatorSetID] = []
    /// `ModelProto.graph` (7).
    public var graph = GraphProto()

    /// Makes an empty model.
    public init() {}

    /// The opset version of a domain (`""` and `"ai.onnx"` are the default domain), if imported.
    public func opset(_ domain: String) -> Int64? {
        let wanted = domain == "ai.onnx" ? "" : domain
        return opsetImports.last { ($0.domain == "ai.onnx" ? "" : $0.domain) == wanted }?.version
    }

    /// Decodes a serialized `ModelProto`.
    public static func decode(_ bytes: [UInt8]) throws(ONNXError) -> ONNXModel {
        var r = ProtobufReader(bytes)
        var model = ONNXModel()
        var sawGraph = false
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            switch field {
            case 1: model.irVersion = try r.int64(wire, field: field, in: "ModelProto")
            case 7:
                var sub = try r.message(wire, field: field, in: "ModelProto")
                model.graph = try GraphProto.decode(&sub)
                sawGraph = true
            case 8:
                var sub = try r.message(wire, field: field, in: "ModelProto")
                model.opsetImports.append(try OperatorSetID.decode(&sub))
            default: try r.skip(wire)
            }
        }
        guard sawGraph else {
            throw ONNXError(
                "the file has no graph (ModelProto field 7); it is not an ONNX model, or it is empty")
        }
        return model
    }
}

/// `OperatorSetIdProto`: a domain and its version.
public struct OperatorSetID: Hashable, Sendable {
    /// `domain` (1); empty for the default `ai.onnx` domain.
    public var domain: String = ""
    /// `version` (2).
    public var version: Int64 = 0

    /// Decodes the message a reader spans.
    static func decode(_ r: inout ProtobufReader) throws(ONNXError) -> OperatorSetID {
        var o = OperatorSetID()
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            switch field {
            case 1: o.domain = try r.string(wire, field: field, in: "OperatorSetIdProto")
            case 2: o.version = try r.int64(wire, field: field, in: "OperatorSetIdProto")
            default: try r.skip(wire)
            }
        }
        return o
    }
}

/// `GraphProto`: nodes in topological order, initializers, inputs, outputs.
public struct GraphProto: Hashable, Sendable {
    /// `node` (1).
    public var nodes: [NodeProto] = []
    /// `name` (2).
    public var name: String = ""
    /// `initializer` (5).
    public var initializers: [TensorProto] = []
    /// `input` (11).
    public var inputs: [ValueInfo] = []
    /// `output` (12).
    public var outputs: [ValueInfo] = []
    /// `value_info` (13).
    public var valueInfo: [ValueInfo] = []

    /// Makes an empty graph.
    public init() {}

    /// Decodes the message a reader spans.
    static func decode(_ r: inout ProtobufReader) throws(ONNXError) -> GraphProto {
        var g = GraphProto()
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            switch field {
            case 1:
                var sub = try r.message(wire, field: field, in: "GraphProto")
                g.nodes.append(try NodeProto.decode(&sub))
            case 2: g.name = try r.string(wire, field: field, in: "GraphProto")
            case 5:
                var sub = try r.message(wire, field: field, in: "GraphProto")
                g.initializers.append(try TensorProto.decode(&sub))
            case 11, 12, 13:
                var sub = try r.message(wire, field: field, in: "GraphProto")
                let v = try ValueInfo.decode(&sub)
                if field == 11 {
                    g.inputs.append(v)
                } else if field == 12 {
                    g.outputs.append(v)
                } else {
                    g.valueInfo.append(v)
                }
            default: try r.skip(wire)
            }
        }
        return g
    }
}

/// `NodeProto`: one operator application.
public struct NodeProto: Hashable, Sendable {
    /// `input` (1); an empty name is an omitted optional input.
    public var inputs: [String] = []
    /// `output` (2).
    public var outputs: [String] = []
    /// `name` (3).
    public var name: String = ""
    /// `op_type` (4).
    public var opType: String = ""
    /// `domain` (7).
    public var domain: String = ""
    /// `attribute` (5).
    public var attributes: [AttributeProto] = []

    /// Makes an empty node.
    public init() {}

    /// The attribute with a name.
    public func attribute(_ name: String) -> AttributeProto? { attributes.first { $0.name == name } }

    /// Decodes the message a reader spans.
    static func decode(_ r: inout ProtobufReader) throws(ONNXError) -> NodeProto {
        var n = NodeProto()
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            switch field {
            case 1: n.inputs.append(try r.string(wire, field: field, in: "NodeProto"))
            case 2: n.outputs.append(try r.string(wire, field: field, in: "NodeProto"))
            case 3: n.name = try r.string(wire, field: field, in: "NodeProto")
            case 4: n.opType = try r.string(wire, field: field, in: "NodeProto")
            case 7: n.domain = try r.string(wire, field: field, in: "NodeProto")
            case 5:
                var sub = try r.message(wire, field: field, in: "NodeProto")
                n.attributes.append(try AttributeProto.decode(&sub))
            default: try r.skip(wire)
            }
        }
        return n
    }
}

/// `AttributeProto`: a named attribute of a node.
public struct AttributeProto: Hashable, Sendable {
    /// `name` (1).
    public var name: String = ""
    /// `type` (20): 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 5 GRAPH, 6 FLOATS, 7 INTS, 8 STRINGS.
    public var type: Int64 = 0
    /// `f` (2).
    public var f: Float = 0
    /// `i` (3).
    public var i: Int64 = 0
    /// `s` (4).
    public var s: [UInt8] = []
    /// `t` (5).
    public var t: TensorProto?
    /// `g` (6): a subgraph (kept so nesting is checked; the importer refuses ops that need one).
    public var g: GraphProto?
    /// `floats` (7).
    public var floats: [Float] = []
    /// `ints` (8).
    public var ints: [Int64] = []
    /// `strings` (9).
    public var strings: [[UInt8]] = []

    /// Makes an empty attribute.
    public init() {}

    /// `s` as UTF-8 text.
    public var string: String { String(decoding: s, as: UTF8.self) }

    /// Decodes the message a reader spans.
    static func decode(_ r: inout ProtobufReader) throws(ONNXError) -> AttributeProto {
        var a = AttributeProto()
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            switch field {
            case 1: a.name = try r.string(wire, field: field, in: "AttributeProto")
            case 20: a.type = try r.int64(wire, field: field, in: "AttributeProto")
            case 2: a.f = try r.float(wire, field: field, in: "AttributeProto")
            case 3: a.i = try r.int64(wire, field: field, in: "AttributeProto")
            case 4:
                try r.expect(wire, .lengthDelimited, field: field, in: "AttributeProto")
                a.s = try r.readBytes()
            case 5:
                var sub = try r.message(wire, field: field, in: "AttributeProto")
                a.t = try TensorProto.decode(&sub)
            case 6:
                var sub = try r.message(wire, field: field, in: "AttributeProto")
                a.g = try GraphProto.decode(&sub)
            case 7: a.floats += try r.repeatedFloat(wire, field: field, in: "AttributeProto")
            case 8: a.ints += try r.repeatedInt64(wire, field: field, in: "AttributeProto")
            case 9:
                try r.expect(wire, .lengthDelimited, field: field, in: "AttributeProto")
                a.strings.append(try r.readBytes())
            default: try r.skip(wire)
            }
        }
        return a
    }
}

/// `TensorProto`: a constant tensor (an initializer, or a `Constant`'s value).
public struct TensorProto: Hashable, Sendable {
    /// `dims` (1).
    public var dims: [Int64] = []
    /// `data_type` (2): 1 FLOAT, 6 INT32, 7 INT64, 9 BOOL, 10 FLOAT16, 11 DOUBLE, 16 BFLOAT16, …
    public var dataType: Int64 = 0
    /// `name` (8).
    public var name: String = ""
    /// `float_data` (4).
    public var floatData: [Float] = []
    /// `int32_data` (5) (also holds bool, int8/16, uint8/16, float16 and bfloat16 bits).
    public var int32Data: [Int64] = []
    /// `int64_data` (7).
    public var int64Data: [Int64] = []
    /// `double_data` (10).
    public var doubleData: [Double] = []
    /// `raw_data` (9): little-endian elements.
    public var rawData: [UInt8]?
    /// `data_location` (14): 1 means the data is in an external file.
    public var dataLocation: Int64 = 0
    /// `external_data` (13): `location`, `offset`, `length` (and others), in order.
    public var externalData: [(key: String, value: String)] = []
    /// The byte offset of the tensor in the model file (for error messages).
    public var offset: Int = 0

    /// Makes an empty tensor.
    public init() {}

    /// Field-by-field equality (the external-data entries in order).
    public static func == (a: TensorProto, b: TensorProto) -> Bool {
        a.dims == b.dims && a.dataType == b.dataType && a.name == b.name && a.floatData == b.floatData
            && a.int32Data == b.int32Data && a.int64Data == b.int64Data && a.doubleData == b.doubleData
            && a.rawData == b.rawData && a.dataLocation == b.dataLocation
            && a.externalData.map(\.key) == b.externalData.map(\.key)
            && a.externalData.map(\.value) == b.externalData.map(\.value)
    }

    /// Hashes the name, dims and data type.
    public func hash(into h: inout Hasher) {
        h.combine(name)
        h.combine(dims)
        h.combine(dataType)
    }

    /// Decodes the message a reader spans; the tensor remembers its offset for messages.
    static func decode(_ r: inout ProtobufReader) throws(ONNXError) -> TensorProto {
        var t = TensorProto()
        t.offset = r.offset
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            switch field {
            case 1: t.dims += try r.repeatedInt64(wire, field: field, in: "TensorProto")
            case 2: t.dataType = try r.int64(wire, field: field, in: "TensorProto")
            case 4: t.floatData += try r.repeatedFloat(wire, field: field, in: "TensorProto")
            case 5: t.int32Data += try r.repeatedInt64(wire, field: field, in: "TensorProto")
            case 7: t.int64Data += try r.repeatedInt64(wire, field: field, in: "TensorProto")
            case 8: t.name = try r.string(wire, field: field, in: "TensorProto")
            case 9:
                try r.expect(wire, .lengthDelimited, field: field, in: "TensorProto")
                t.rawData = try r.readBytes()
            case 10: t.doubleData += try r.repeatedDouble(wire, field: field, in: "TensorProto")
            case 13:
                var sub = try r.message(wire, field: field, in: "TensorProto")
                var key = ""
                var value = ""
                while !sub.isAtEnd {
                    let (f, w) = try sub.readKey()
                    switch f {
                    case 1: key = try sub.string(w, field: f, in: "StringStringEntryProto")
                    case 2: value = try sub.string(w, field: f, in: "StringStringEntryProto")
                    default: try sub.skip(w)
                    }
                }
                t.externalData.append((key, value))
            case 14: t.dataLocation = try r.int64(wire, field: field, in: "TensorProto")
            default: try r.skip(wire)
            }
        }
        return t
    }
}

/// One dimension of a declared shape: a number, a named (symbolic) dimension, or unknown.
public enum DimensionProto: Hashable, Sendable {
    /// `dim_value` (1).
    case value(Int64)
    /// `dim_param` (2).
    case param(String)
    /// Neither is set.
    case unknown
}

/// `ValueInfoProto` with a `TypeProto.Tensor`: a name, an element type and a shape.
public struct ValueInfo: Hashable, Sendable {
    /// `name` (1).
    public var name: String = ""
    /// `type.tensor_type.elem_type`; 0 when absent or not a tensor type.
    public var elementType: Int64 = 0
    /// `type.tensor_type.shape.dim`; nil when the shape is absent.
    public var shape: [DimensionProto]?

    /// Makes an empty value info.
    public init() {}

    /// Decodes the message a reader spans (a tensor type; other types leave the element type 0).
    static func decode(_ r: inout ProtobufReader) throws(ONNXError) -> ValueInfo {
        var v = ValueInfo()
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            switch field {
            case 1: v.name = try r.string(wire, field: field, in: "ValueInfoProto")
            case 2:
                var type = try r.message(wire, field: field, in: "ValueInfoProto")
                while !type.isAtEnd {
                    let (f, w) = try type.readKey()
                    guard f == 1 else {
                        try type.skip(w)
                        continue
                    }
                    var tensor = try type.message(w, field: f, in: "TypeProto")
                    while !tensor.isAtEnd {
                        let (tf, tw) = try tensor.readKey()
                        switch tf {
                        case 1: v.elementType = try tensor.int64(tw, field: tf, in: "TypeProto.Tensor")
                        case 2:
                            var shape = try tensor.message(tw, field: tf, in: "TypeProto.Tensor")
                            v.shape = try decodeShape(&shape)
                        default: try tensor.skip(tw)
                        }
                    }
                }
            default: try r.skip(wire)
            }
        }
        return v
    }

    /// The dimensions of a `TensorShapeProto`.
    static func decodeShape(_ r: inout ProtobufReader) throws(ONNXError) -> [DimensionProto] {
        var dims: [DimensionProto] = []
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            guard field == 1 else {
                try r.skip(wire)
                continue
            }
            var d = try r.message(wire, field: field, in: "TensorShapeProto")
            var dim = DimensionProto.unknown
            while !d.isAtEnd {
                let (f, w) = try d.readKey()
                switch f {
                case 1: dim = .value(try d.int64(w, field: f, in: "TensorShapeProto.Dimension"))
                case 2: dim = .param(try d.string(w, field: f, in: "TensorShapeProto.Dimension"))
                default: try d.skip(w)
                }
            }
            dims.append(dim)
        }
        return dims
    }
}
