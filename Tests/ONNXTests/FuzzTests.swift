import BlockTestSupport
import Foundation
import XCTest

@testable import ONNX

/// Malformed models are thrown errors, never traps: every prefix of a real model, bit flips,
/// and random bytes, each through the decoder and the importer.
final class FuzzTests: XCTestCase {
    static let model: [UInt8] = {
        let path = CLI.packageRoot + "/Tests/ONNX/fixtures/gpt2_block.onnx"
        return [UInt8](FileManager.default.contents(atPath: path) ?? Data())
    }()

    /// Decodes and imports; returns whether it succeeded (any thrown error is fine).
    @discardableResult
    static func attempt(_ bytes: [UInt8]) -> Bool {
        (try? ONNXImporter.importModel(bytes, name: "fuzz", folder: nil, dims: ["seq": 4])) != nil
    }

    func testEveryProperPrefixOfARealModelIsRefused() throws {
        let model = Self.model
        XCTAssertGreaterThan(model.count, 1000)
        XCTAssertTrue(Self.attempt(model), "the whole model imports")
        // A cut inside a field is a decoding error; a cut between fields decodes but lacks a
        // part the importer needs (the opset, or the graph's tail).
        for n in 0..<model.count {
            XCTAssertFalse(Self.attempt(Array(model[..<n])), "prefix of \(n) bytes")
        }
    }

    func testEveryPrefixOfTheGraphMessageDecodesOrThrows() throws {
        // The graph message itself cut at every 13th byte: exercises truncation inside nodes,
        // attributes and tensors (the model's outer length would catch it first otherwise).
        var r = ProtobufReader(Self.model)
        var graph: Range<Int>?
        while !r.isAtEnd {
            let (field, wire) = try r.readKey()
            if field == 7 { graph = try r.readLengthDelimited() } else { try r.skip(wire) }
        }
        let range = try XCTUnwrap(graph)
        var failures = 0
        for end in stride(from: range.lowerBound, to: range.upperBound, by: 13) {
            var sub = ProtobufReader(Self.model, range: range.lowerBound..<end)
            do { _ = try GraphProto.decode(&sub) } catch { failures += 1 }
        }
        XCTAssertGreaterThan(failures, 0)
    }

    func testBitFlipsNeverTrap() {
        var rng = SplitMix(seed: 15)
        var imported = 0
        for _ in 0..<300 {
            var bytes = Self.model
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes[at] ^= UInt8(1 << (rng.next() % 8))
            }
            if Self.attempt(bytes) { imported += 1 }
        }
        // Most flips land in weights and still import; the rest are errors. Neither traps.
        XCTAssertGreaterThan(imported, 0)
    }

    /// Bit flips and byte rewrites in models with many kinds of ops (attributes, shapes and
    /// constants the op handlers read), including a PyTorch export with external data.
    func testMutatedOpMixesNeverTrap() {
        let folder = CLI.packageRoot + "/Tests/ONNX/fixtures"
        var rng = SplitMix(seed: 23)
        var outcomes: [Bool] = []
        for name in ["ops_mix", "ops_mix2", "llama_torch"] {
            let model = [UInt8](FileManager.default.contents(atPath: folder + "/\(name).onnx") ?? Data())
            XCTAssertGreaterThan(model.count, 1000, name)
            for k in 0..<200 {
                var bytes = model
                let at = Int(rng.next() % UInt64(bytes.count))
                if k % 2 == 0 {
                    bytes[at] ^= UInt8(1 << (rng.next() % 8))
                } else {
                    // Small integers where varints and lengths live: sizes, axes, attribute values.
                    bytes[at] = [0, 1, 2, 0x7f, 0x80, 0xff][Int(rng.next() % 6)]
                }
                outcomes.append(
                    (try? ONNXImporter.importModel(bytes, name: "fuzz", folder: folder, dims: [:])) != nil)
            }
        }
        XCTAssertTrue(outcomes.contains(true), "some mutations still import")
        XCTAssertTrue(outcomes.contains(false), "some mutations are errors")
    }

    func testWrongWireTypesAtEveryKeyNeverTrap() throws {
        // Rewrites the wire type of every top-level and graph-level key in turn.
        var keys: [Int] = []
        var r = ProtobufReader(Self.model)
        while !r.isAtEnd {
            keys.append(r.offset)
            let (_, wire) = try r.readKey()
            try r.skip(wire)
        }
        var bytes = Self.model
        var errors = 0
        for at in keys {
            for wire: UInt8 in [0, 1, 2, 5] where bytes[at] & 7 != wire {
                let saved = bytes[at]
                bytes[at] = saved & ~7 | wire
                if !Self.attempt(bytes) { errors += 1 }
                bytes[at] = saved
            }
        }
        XCTAssertGreaterThan(errors, 0)
    }

    func testRandomBytesAreErrors() {
        var rng = SplitMix(seed: 7)
        for length in [1, 2, 5, 17, 100, 1000] {
            for _ in 0..<50 {
                let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                XCTAssertFalse(Self.attempt(bytes))
            }
        }
    }
}

/// A small seeded generator (SplitMix64), so fuzz runs are reproducible.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
