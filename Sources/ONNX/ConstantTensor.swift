import Foundation

/// A tensor known at import time: an initializer, a `Constant`, or the folded result of shape
/// arithmetic (`Shape → Gather → Concat`, `Range`, `ConstantOfShape`, `Trilu` of constants).
///
/// Values are held as `Double`: exact for `int64` up to 2^53 and for every `f32`.
public struct ConstantTensor: Hashable, Sendable {
    /// What the values are.
    public enum Kind: Hashable, Sendable {
        /// Floating point (float, double, float16, bfloat16), held rounded to `f32`.
        case float
        /// Integers (int8 to int64, uint8 to uint64).
        case int
        /// Booleans (`0` or `1`).
        case bool
    }

    /// What the values are.
    public var kind: Kind
    /// The shape.
    public var shape: [Int]
    /// The elements in row-major order.
    public var values: [Double]

    /// Makes a tensor; `values.count` is the product of `shape`.
    public init(_ kind: Kind, shape: [Int], values: [Double]) {
        self.kind = kind
        self.shape = shape
        self.values = values
    }

    /// A tensor of one element.
    public static func scalar(_ kind: Kind, _ value: Double) -> ConstantTensor {
        ConstantTensor(kind, shape: [], values: [value])
    }

    /// A 1-D integer tensor.
    public static func ints(_ values: [Int]) -> ConstantTensor {
        ConstantTensor(.int, shape: [values.count], values: values.map(Double.init))
    }

    /// The values as integers.
    public var intValues: [Int] { values.map { Int(exactly: $0.rounded(.towardZero)) ?? 0 } }

    /// The kind of an ONNX `TensorProto.DataType`, or nil when it is not supported.
    public static func kind(ofDataType type: Int64) -> Kind? {
        switch type {
        case 1, 10, 11, 16: return .float
        case 2, 3, 4, 5, 6, 7, 12, 13: return .int
        case 9: return .bool
        default: return nil
        }
    }

    /// The name of an ONNX data type, for messages.
    public static func dataTypeName(_ type: Int64) -> String {
        let names: [Int64: String] = [
            0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
            8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
            15: "COMPLEX128", 16: "BFLOAT16",
        ]
        return names[type] ?? "data type \(type)"
    }

    /// The values of a `TensorProto`, reading external data relative to `folder` (the model's
    /// folder); a location that leaves the folder is refused.
    public static func decode(_ t: TensorProto, folder: String?) throws(ONNXError) -> ConstantTensor {
        let what = "tensor '\(t.name)' (at byte \(t.offset))"
        guard let kind = kind(ofDataType: t.dataType) else {
            throw ONNXError("\(what) has data type \(dataTypeName(t.dataType)), which blockc does not import")
        }
        var shape: [Int] = []
        var count = 1
        for d in t.dims {
            guard d >= 0, d <= Int64(Int32.max) else { throw ONNXError("\(what) has a dimension of \(d)") }
            shape.append(Int(d))
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= 1 << 31 else {
                throw ONNXError("\(what) has shape \(shape), more than 2^31 elements")
            }
            count = product
        }
        var raw = t.rawData
        if t.dataLocation == 1 { raw = try readExternal(t, folder: folder, what: what) }
        let values: [Double]
        if let raw {
            values = try decodeRaw(raw, dataType: t.dataType, count: count, what: what)
        } else {
            switch t.dataType {
            case 1: values = t.floatData.map(Double.init)
            case 11: values = t.doubleData.map { Double(Float($0)) }
            case 7: values = t.int64Data.map(Double.init)
            case 10: values = t.int32Data.map { Double(Float(Float16(bitPattern: UInt16(truncatingIfNeeded: $0)))) }
            case 16: values = t.int32Data.map { Double(Float(bitPattern: UInt32(truncatingIfNeeded: $0) << 16)) }
            case 9: values = t.int32Data.map { $0 != 0 ? 1 : 0 }
            case 12, 13: values = t.int64Data.map(Double.init)
            default: values = t.int32Data.map(Double.init)
            }
        }
        guard values.count == count else {
            throw ONNXError("\(what) has shape \(shape) (\(count) elements) but holds \(values.count) values")
        }
        return ConstantTensor(kind, shape: shape, values: values)
    }

    /// Little-endian `raw_data` of `count` elements of an ONNX data type, checked for its length.
    static func decodeRaw(_ raw: [UInt8], dataType: Int64, count: Int, what: String) throws(ONNXError) -> [Double] {
        let size: Int
        switch dataType {
        case 1, 6, 12: size = 4
        case 7, 11, 13: size = 8
        case 10, 16, 4, 5: size = 2
        default: size = 1
        }
        guard raw.count == count * size else {
            throw ONNXError(
                "\(what): raw_data has \(raw.count) bytes, but \(count) elements of "
                    + "\(dataTypeName(dataType)) need \(count * size)")
        }
        var out: [Double] = []
        out.reserveCapacity(count)
        for e in 0..<count {
            var bits: UInt64 = 0
            for k in 0..<size { bits |= UInt64(raw[e * size + k]) << (8 * UInt64(k)) }
            switch dataType {
            case 1: out.append(Double(Float(bitPattern: UInt32(bits))))
            case 11: out.append(Double(Float(Double(bitPattern: bits))))
            case 10: out.append(Double(Float(Float16(bitPattern: UInt16(bits)))))
            case 16: out.append(Double(Float(bitPattern: UInt32(bits) << 16)))
            case 6: out.append(Double(Int32(bitPattern: UInt32(bits))))
            case 7: out.append(Double(Int64(bitPattern: bits)))
            case 5: out.append(Double(Int16(bitPattern: UInt16(bits))))
            case 3: out.append(Double(Int8(bitPattern: UInt8(bits))))
            case 9: out.append(bits != 0 ? 1 : 0)
            default: out.append(Double(bits))
            }
        }
        return out
    }

    /// The bytes of an externally stored tensor: `location` (inside `folder`), `offset`, `length`.
    static func readExternal(_ t: TensorProto, folder: String?, what: String) throws(ONNXError) -> [UInt8] {
        var location: String?
        var offset = 0
        var length: Int?
        for (key, value) in t.externalData {
            switch key {
            case "location": location = value
            case "offset":
                guard let v = Int(value), v >= 0 else { throw ONNXError("\(what): external offset '\(value)'") }
                offset = v
            case "length":
                guard let v = Int(value), v >= 0 else { throw ONNXError("\(what): external length '\(value)'") }
                length = v
            default: continue
            }
        }
        guard let location, !location.isEmpty else {
            throw ONNXError("\(what) is stored externally but names no location")
        }
        guard let folder else {
            throw ONNXError("\(what) is stored externally in '\(location)', but the model was not read from a file")
        }
        let parts = location.split(separator: "/", omittingEmptySubsequences: true)
        guard !location.hasPrefix("/"), !parts.contains(".."), !location.contains("\\"), !location.contains("\0")
        else {
            throw ONNXError(
                "\(what) is stored in '\(location)', outside the model's folder; "
                    + "external data must lie in the model's folder or below it")
        }
        let path = (folder as NSString).appendingPathComponent(location)
        let base = URL(fileURLWithPath: folder).resolvingSymlinksInPath().path
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard resolved == base || resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
            throw ONNXError(
                "\(what) is stored in '\(location)', which leads outside the model's folder (through a link); "
                    + "external data must lie in the model's folder")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ONNXError("\(what) is stored in '\(path)', which cannot be read; put the file beside the model")
        }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map(Int.init) ?? 0
        let count = length ?? (size - offset)
        guard offset <= size, count >= 0, count <= size - offset else {
            throw ONNXError(
                "\(what): external data at offset \(offset), length \(count) lies past the end of '\(location)' "
                    + "(\(size) bytes)")
        }
        do {
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: count) ?? Data()
            guard data.count == count else { throw ONNXError("\(what): '\(location)' ended early") }
            return [UInt8](data)
        } catch let e as ONNXError {
            throw e
        } catch {
            throw ONNXError("\(what): cannot read '\(location)': \(error.localizedDescription)")
        }
    }
}
