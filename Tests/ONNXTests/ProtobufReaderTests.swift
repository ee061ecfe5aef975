import XCTest

@testable import ONNX

/// A minimal protocol-buffer writer for building test messages.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wire: WireType) { varint(UInt64(field) << 3 | UInt64(wire.rawValue)) }

    mutating func int(_ field: Int, _ v: Int64) {
        key(field, .varint)
        varint(UInt64(bitPattern: v))
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(b.count))
        bytes += b
    }

    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }

    mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var sub = ProtobufWriter()
        build(&sub)
        bytes(field, sub.bytes)
    }

    mutating func fixed32(_ field: Int, _ v: UInt32) {
        key(field, .fixed32)
        for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) }
    }
}

final class ProtobufReaderTests: XCTestCase {
    func testVarintsUpTo64Bits() throws {
        for v: UInt64 in [0, 1, 127, 128, 300, 1 << 35, UInt64.max, UInt64(bitPattern: -1), 1 << 63] {
            var w = ProtobufWriter()
            w.varint(v)
            var r = ProtobufReader(w.bytes)
            XCTAssertEqual(try r.readVarint(), v)
            XCTAssertTrue(r.isAtEnd)
        }
    }

    func testOverlongVarintsAreErrorsWithTheirOffset() {
        // Ten bytes whose last carries more than bit 63, and eleven bytes.
        let tooBig: [UInt8] = Array(repeating: 0xff, count: 9) + [0x02]
        let tooLong: [UInt8] = Array(repeating: 0x80, count: 10) + [0x00]
        for bytes in [tooBig, tooLong] {
            var r = ProtobufReader([0x08] + bytes)
            XCTAssertEqual(try r.readVarint(), 8)
            XCTAssertThrowsError(try r.readVarint()) { e in
                XCTAssertTrue("\(e)".contains("at byte 1"), "\(e)")
                XCTAssertTrue("\(e)".contains("varint"), "\(e)")
            }
        }
    }

    func testTruncatedVarintSaysWhatWasExpected() {
        var r = ProtobufReader([0x80, 0x80])
        XCTAssertThrowsError(try r.readVarint()) { e in
            XCTAssertEqual("\(e)", "malformed protobuf at byte 2: expected a varint byte, found the end of the message")
        }
    }

    func testFixedAndLengthDelimitedAndPacked() throws {
        var w = ProtobufWriter()
        w.fixed32(1, Float(1.5).bitPattern)
        w.string(2, "héllo")
        var packed = ProtobufWriter()
        for v in [3, 300, 70000] { packed.varint(UInt64(v)) }
        w.bytes(3, packed.bytes)
        w.int(3, -2)
        var r = ProtobufReader(w.bytes)
        var (f, wire) = try r.readKey()
        XCTAssertEqual(f, 1)
        XCTAssertEqual(try r.float(wire, field: f, in: "T"), 1.5)
        (f, wire) = try r.readKey()
        XCTAssertEqual(try r.string(wire, field: f, in: "T"), "héllo")
        (f, wire) = try r.readKey()
        XCTAssertEqual(try r.repeatedInt64(wire, field: f, in: "T"), [3, 300, 70000])
        (f, wire) = try r.readKey()
        XCTAssertEqual(try r.repeatedInt64(wire, field: f, in: "T"), [-2])
        XCTAssertTrue(r.isAtEnd)
    }

    func testUnknownFieldsAreSkippedByWireType() throws {
        var w = ProtobufWriter()
        w.int(99, 12345)
        w.fixed32(98, 7)
        w.key(97, .fixed64)
        w.bytes += Array(repeating: 1, count: 8)
        w.string(96, "ignored")
        w.string(3, "kept")
        var r = ProtobufReader(w.bytes)
        let node = try NodeProto.decode(&r)
        XCTAssertEqual(node.name, "kept")
    }

    func testGroupsAreRefused() {
        var w = ProtobufWriter()
        w.key(5, .startGroup)
        var r = ProtobufReader(w.bytes)
        XCTAssertThrowsError(try NodeProto.decode(&r)) { e in
            XCTAssertTrue("\(e)".contains("group wire type 3"), "\(e)")
            XCTAssertTrue("\(e)".contains("at byte 0"), "\(e)")
        }
        var bad = ProtobufReader([0x2e])  // field 5, wire type 6
        XCTAssertThrowsError(try bad.readKey()) { e in XCTAssertTrue("\(e)".contains("wire type 6"), "\(e)") }
    }

    func testWrongWireTypeForAKnownFieldIsAnError() {
        var w = ProtobufWriter()
        w.int(4, 3)  // op_type is a string
        var r = ProtobufReader(w.bytes)
        XCTAssertThrowsError(try NodeProto.decode(&r)) { e in
            XCTAssertTrue("\(e)".contains("NodeProto field 4 should have wire type lengthDelimited"), "\(e)")
        }
    }

    func testHugeLengthsAreErrorsNotAllocations() {
        for length: UInt64 in [1 << 62, UInt64(Int.max), 1 << 31, 5] {
            var w = ProtobufWriter()
            w.key(7, .lengthDelimited)
            w.varint(length)
            w.bytes += [0, 0]
            XCTAssertThrowsError(try ONNXModel.decode(w.bytes)) { e in
                XCTAssertTrue("\(e)".contains("only 2 remain"), "\(e)")
                XCTAssertTrue("\(e)".contains("at byte 1"), "\(e)")
            }
        }
    }

    func testDeepNestingIsRefused() {
        // A graph whose node has a graph attribute whose node has a graph attribute, … 10000 deep.
        var inner: [UInt8] = []
        for _ in 0..<10000 {
            var attribute = ProtobufWriter()
            attribute.bytes(6, inner)
            var node = ProtobufWriter()
            node.bytes(5, attribute.bytes)
            var graph = ProtobufWriter()
            graph.bytes(1, node.bytes)
            inner = graph.bytes
            if inner.count > 200_000 { break }
        }
        var model = ProtobufWriter()
        model.bytes(7, inner)
        XCTAssertThrowsError(try ONNXModel.decode(model.bytes)) { e in
            XCTAssertTrue("\(e)".contains("nested more than 64 deep"), "\(e)")
        }
    }

    func testPackedFloatsOfTheWrongLength() {
        var w = ProtobufWriter()
        w.bytes(4, [0, 0, 0])
        var r = ProtobufReader(w.bytes)
        XCTAssertThrowsError(try TensorProto.decode(&r)) { e in
            XCTAssertTrue("\(e)".contains("not a multiple of 4"), "\(e)")
        }
    }

    func testAModelWithoutAGraphIsAnError() {
        XCTAssertThrowsError(try ONNXModel.decode([])) { e in XCTAssertTrue("\(e)".contains("no graph"), "\(e)") }
    }
}
