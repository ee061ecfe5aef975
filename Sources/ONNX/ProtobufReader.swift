/// The wire types of the protocol-buffer encoding (the low three bits of a field's key).
public enum WireType: UInt8, Sendable {
    /// A base-128 varint.
    case varint = 0
    /// Eight little-endian bytes.
    case fixed64 = 1
    /// A varint length, then that many bytes (strings, bytes, messages, packed repeated fields).
    case lengthDelimited = 2
    /// The start of a group (deprecated; not in onnx.proto, refused).
    case startGroup = 3
    /// The end of a group (refused).
    case endGroup = 4
    /// Four little-endian bytes.
    case fixed32 = 5
}

/// A decoder of the protocol-buffer wire format over a byte range: it reads keys and values in
/// order and throws, with the byte offset and what it expected, on any malformed input (never
/// reading past the range it was given).
///
/// Offsets are absolute in the file, so an error deep in a nested message still says where.
public struct ProtobufReader: Sendable {
    /// The whole buffer (shared with nested readers).
    let bytes: [UInt8]
    /// The next byte to read.
    public private(set) var offset: Int
    /// One past the last byte of this message.
    public let end: Int
    /// How deep this message is nested (the top-level message is 0).
    public let depth: Int
    /// The deepest nesting a model may have before it is refused as malformed.
    public static let maximumDepth = 64

    /// A reader over `bytes[range]`.
    public init(_ bytes: [UInt8], range: Range<Int>? = nil, depth: Int = 0) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        self.offset = r.lowerBound
        self.end = r.upperBound
        self.depth = depth
    }

    /// Whether every byte of the message was read.
    public var isAtEnd: Bool { offset >= end }

    /// An error at a byte offset (the current one by default).
    func error(_ what: String, at position: Int? = nil) -> ONNXError {
        ONNXError("malformed protobuf at byte \(position ?? offset): \(what)")
    }

    /// A base-128 varint of at most ten bytes whose value fits in 64 bits.
    public mutating func readVarint() throws(ONNXError) -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else {
                throw error("expected a varint byte, found the end of the message", at: offset)
            }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 {
                throw error("a varint longer than 64 bits (overlong encoding)", at: start)
            }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 { throw error("a varint longer than ten bytes", at: start) }
        }
    }

    /// A field key: the field number and the wire type.
    public mutating func readKey() throws(ONNXError) -> (field: Int, wire: WireType) {
        let start = offset
        let key = try readVarint()
        let field = key >> 3
        guard field >= 1, field <= (1 << 29) - 1 else {
            throw error("expected a field key, found field number \(field) (valid: 1 to 2^29-1)", at: start)
        }
        guard let wire = WireType(rawValue: UInt8(key & 7)) else {
            throw error("field \(field) has wire type \(key & 7), which does not exist (0-5)", at: start)
        }
        if wire == .startGroup || wire == .endGroup {
            throw error(
                "field \(field) uses the group wire type \(wire.rawValue), which ONNX models never use", at: start)
        }
        return (Int(field), wire)
    }

    /// Four little-endian bytes.
    public mutating func readFixed32() throws(ONNXError) -> UInt32 {
        guard end - offset >= 4 else { throw error("expected 4 bytes of a fixed32, found \(end - offset)") }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(bytes[offset + k]) << (8 * UInt32(k)) }
        offset += 4
        return v
    }

    /// Eight little-endian bytes.
    public mutating func readFixed64() throws(ONNXError) -> UInt64 {
        guard end - offset >= 8 else { throw error("expected 8 bytes of a fixed64, found \(end - offset)") }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(bytes[offset + k]) << (8 * UInt64(k)) }
        offset += 8
        return v
    }

    /// The byte range of a length-delimited value (the reader moves past it).
    public mutating func readLengthDelimited() throws(ONNXError) -> Range<Int> {
        let start = offset
        let length = try readVarint()
        guard length <= UInt64(end - offset) else {
            throw error(
                "a length-delimited field of \(length) bytes, but only \(end - offset) remain in the message", at: start
            )
        }
        let range = offset..<(offset + Int(length))
        offset = range.upperBound
        return range
    }

    /// A length-delimited value as bytes.
    public mutating func readBytes() throws(ONNXError) -> [UInt8] {
        Array(bytes[try readLengthDelimited()])
    }

    /// A length-delimited value as UTF-8 text.
    public mutating func readString() throws(ONNXError) -> String {
        let start = offset
        let range = try readLengthDelimited()
        guard let s = String(validating: bytes[range], as: UTF8.self) else {
            throw error("expected a UTF-8 string", at: start)
        }
        return s
    }

    /// A reader over a nested message (the reader moves past it).
    public mutating func readMessage() throws(ONNXError) -> ProtobufReader {
        let start = offset
        let range = try readLengthDelimited()
        guard depth + 1 <= Self.maximumDepth else {
            throw error("messages nested more than \(Self.maximumDepth) deep", at: start)
        }
        return ProtobufReader(bytes, range: range, depth: depth + 1)
    }

    /// Skips the value of a field nobody asked for, by its wire type.
    public mutating func skip(_ wire: WireType) throws(ONNXError) {
        switch wire {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .fixed32: _ = try readFixed32()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .startGroup, .endGroup: throw error("a group (wire type \(wire.rawValue)), which ONNX models never use")
        }
    }

    /// Checks that a field has the wire type its declaration gives it.
    public func expect(_ wire: WireType, _ wanted: WireType, field: Int, in message: String) throws(ONNXError) {
        guard wire == wanted else {
            throw error("\(message) field \(field) should have wire type \(wanted) (\(wanted.rawValue)), found \(wire)")
        }
    }

    /// A varint field, checked for its wire type.
    public mutating func varint(_ wire: WireType, field: Int, in message: String) throws(ONNXError) -> UInt64 {
        try expect(wire, .varint, field: field, in: message)
        return try readVarint()
    }

    /// A signed 64-bit integer (`int64`, two's complement in a varint).
    public mutating func int64(_ wire: WireType, field: Int, in message: String) throws(ONNXError) -> Int64 {
        Int64(bitPattern: try varint(wire, field: field, in: message))
    }

    /// A string field, checked for its wire type.
    public mutating func string(_ wire: WireType, field: Int, in message: String) throws(ONNXError) -> String {
        try expect(wire, .lengthDelimited, field: field, in: message)
        return try readString()
    }

    /// A nested message field, checked for its wire type.
    public mutating func message(_ wire: WireType, field: Int, in message: String) throws(ONNXError)
        -> ProtobufReader
    {
        try expect(wire, .lengthDelimited, field: field, in: message)
        return try readMessage()
    }

    /// A float field (fixed32).
    public mutating func float(_ wire: WireType, field: Int, in message: String) throws(ONNXError) -> Float {
        try expect(wire, .fixed32, field: field, in: message)
        return Float(bitPattern: try readFixed32())
    }

    /// One or more values of a repeated varint field: packed (length-delimited) or one unpacked.
    public mutating func repeatedVarint(_ wire: WireType, field: Int, in message: String) throws(ONNXError)
        -> [UInt64]
    {
        if wire == .varint { return [try readVarint()] }
        try expect(wire, .lengthDelimited, field: field, in: message)
        let range = try readLengthDelimited()
        var sub = ProtobufReader(bytes, range: range, depth: depth)
        var out: [UInt64] = []
        while !sub.isAtEnd { out.append(try sub.readVarint()) }
        return out
    }

    /// One or more values of a repeated `int64` field.
    public mutating func repeatedInt64(_ wire: WireType, field: Int, in message: String) throws(ONNXError)
        -> [Int64]
    {
        try repeatedVarint(wire, field: field, in: message).map { Int64(bitPattern: $0) }
    }

    /// One or more values of a repeated float field: packed or one unpacked fixed32.
    public mutating func repeatedFloat(_ wire: WireType, field: Int, in message: String) throws(ONNXError)
        -> [Float]
    {
        if wire == .fixed32 { return [Float(bitPattern: try readFixed32())] }
        try expect(wire, .lengthDelimited, field: field, in: message)
        let start = offset
        let range = try readLengthDelimited()
        guard range.count % 4 == 0 else {
            throw error("packed floats of \(range.count) bytes, not a multiple of 4", at: start)
        }
        var sub = ProtobufReader(bytes, range: range, depth: depth)
        var out: [Float] = []
        out.reserveCapacity(range.count / 4)
        while !sub.isAtEnd { out.append(Float(bitPattern: try sub.readFixed32())) }
        return out
    }

    /// One or more values of a repeated double field: packed or one unpacked fixed64.
    public mutating func repeatedDouble(_ wire: WireType, field: Int, in message: String) throws(ONNXError)
        -> [Double]
    {
        if wire == .fixed64 { return [Double(bitPattern: try readFixed64())] }
        try expect(wire, .lengthDelimited, field: field, in: message)
        let start = offset
        let range = try readLengthDelimited()
        guard range.count % 8 == 0 else {
            throw error("packed doubles of \(range.count) bytes, not a multiple of 8", at: start)
        }
        var sub = ProtobufReader(bytes, range: range, depth: depth)
        var out: [Double] = []
        while !sub.isAtEnd { out.append(Double(bitPattern: try sub.readFixed64())) }
        return out
    }
}
