import BlockIR
import XCTest

@testable import Interpreter

/// `.npy` reading and writing.
final class NPYTests: XCTestCase {
    /// What `np.save` writes for `np.arange(6, dtype=np.float32).reshape(2, 3)` (NumPy 2.4).
    static let numpyArange: [UInt8] = {
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, 0x76, 0]
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
        bytes += Array(dict.utf8) + [UInt8](repeating: 0x20, count: 128 - 10 - dict.utf8.count - 1) + [0x0A]
        let data: [UInt8] = [
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40,
            0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xA0, 0x40,
        ]
        return bytes + data
    }()

    func testWriteMatchesNumPyByteForByte() {
        let array = NDArray(shape: [2, 3], data: [0, 1, 2, 3, 4, 5])
        let bytes = NPY.write(array)
        XCTAssertEqual(bytes, Self.numpyArange)
        XCTAssertEqual(bytes.count, 128 + 24)
    }

    func testReadNumPyFile() throws {
        let array = try NPY.read(Self.numpyArange, name: "x.npy")
        XCTAssertEqual(array, NDArray(shape: [2, 3], data: [0, 1, 2, 3, 4, 5]))
    }

    func testRoundTrips() throws {
        let arrays = [
            NDArray.scalar(3.5),
            NDArray(shape: [5], data: [1, -2, 0.25, .infinity, -0.0]),
            NDArray(shape: [2, 3, 4], data: (0..<24).map { Float($0) * 0.5 - 3 }),
            NDArray(shape: [0, 3], data: []),
        ]
        for array in arrays {
            let bytes = NPY.write(array)
            XCTAssertEqual((bytes.count - array.data.count * 4) % 64, 0, "header of \(array.shape) is aligned")
            XCTAssertEqual(bytes[bytes.count - array.data.count * 4 - 1], 0x0A)
            XCTAssertEqual(try NPY.read(bytes, name: "a.npy"), array)
        }
        // Shape tuples are written as Python writes them.
        XCTAssertTrue(String(decoding: NPY.write(.scalar(1)), as: UTF8.self).contains("'shape': (), }"))
        XCTAssertTrue(
            String(decoding: NPY.write(NDArray(shape: [5], repeating: 0)), as: UTF8.self).contains("'shape': (5,), }"))
        XCTAssertEqual(NPY.shapeText([8, 1024, 64]), "(8, 1024, 64)")
    }

    func testFiles() throws {
        let path = NSTemporaryDirectory() + "/npy-test-\(getpid()).npy"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let array = NDArray(shape: [3, 2], data: [1, 2, 3, 4, 5, 6])
        try NPY.writeFile(array, to: path)
        XCTAssertEqual(try NPY.readFile(path), array)
        XCTAssertThrowsError(try NPY.readFile(path + ".missing"))
        XCTAssertThrowsError(try NPY.writeFile(array, to: "/nonexistent-dir/x.npy"))
    }

    /// Reading a file checks the header before reading the data: a huge file that is not a
    /// `.npy`, or whose header disagrees with its size, fails at once without reading it.
    func testLargeFilesFailBeforeTheirDataIsRead() throws {
        let dir = NSTemporaryDirectory() + "/npy-large-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func sparse(_ name: String, _ prefix: [UInt8], size: UInt64) throws -> String {
            let path = dir + "/" + name
            FileManager.default.createFile(atPath: path, contents: Data(prefix))
            let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
            try handle.truncate(atOffset: size)
            try handle.close()
            return path
        }
        func readMessage(_ path: String) -> String {
            do {
                _ = try NPY.readFile(path)
                return "accepted"
            } catch {
                return error.message
            }
        }
        let gigabytes: UInt64 = 4 << 30
        let start = Date()
        let notNPY = try sparse("big.bin", Array("not numpy".utf8), size: gigabytes)
        XCTAssertTrue(readMessage(notNPY).contains("big.bin: not a .npy file"), readMessage(notNPY))
        // A valid header for 10 floats, then gigabytes: the size disagrees with the shape.
        let tooLong = try sparse(
            "long.npy", file("{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }", data: []), size: gigabytes)
        XCTAssertTrue(
            readMessage(tooLong).contains("unexpected bytes after the 10 f32 (<f4) elements"), readMessage(tooLong))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the data was not read")
        // A header promising far more data than the file holds.
        let promised = file("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 8), }", data: [1, 2, 3, 4])
        let promise = try sparse("short.npy", promised, size: UInt64(promised.count))
        XCTAssertTrue(
            readMessage(promise).contains(
                "truncated data: the shape [1000000000, 8] needs 8000000000 f32 (<f4) elements"),
            readMessage(promise))
        // A header that claims to be longer than the file.
        var longHeader = file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: [])
        longHeader[8] = 0xFF
        longHeader[9] = 0xFF
        let shortHeader = try sparse("header.npy", longHeader, size: UInt64(longHeader.count))
        XCTAssertTrue(readMessage(shortHeader).contains("truncated header"), readMessage(shortHeader))
    }

    /// A header with the given dictionary text (v1.0, aligned) followed by `data`.
    func file(_ dict: String, data: [UInt8], version: UInt8 = 1) -> [UInt8] {
        var header = Array(dict.utf8)
        let prefix = version == 1 ? 10 : 12
        while (prefix + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let n = header.count
        bytes += version == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8(n >> 8), 0, 0]
        return bytes + header + data
    }

    func message(_ bytes: [UInt8], name: String = "Q.npy") -> String {
        do {
            _ = try NPY.read(bytes, name: name)
            return "accepted"
        } catch {
            return error.message
        }
    }

    func testVersions2And3AndKeyOrder() throws {
        let data = [UInt8](repeating: 0, count: 8)
        for version: UInt8 in [2, 3] {
            let array = try NPY.read(
                file("{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", data: data, version: version), name: "a"
            )
            XCTAssertEqual(array, NDArray(shape: [2], data: [0, 0]))
        }
    }

    func testRejectsOtherDtypes() {
        let f8 = file(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", data: [UInt8](repeating: 0, count: 8))
        XCTAssertEqual(
            message(f8),
            "Q.npy: dtype '<f8' is not supported; save '<f4' (f32), '<f2' (f16), '<u2' (bf16 bit patterns), "
                + "'<i4' (i32) or '|b1' (bool)")
        for dtype in [">f4", "|u1", "<i8", ">f2"] {
            let bytes = file(
                "{'descr': '\(dtype)', 'fortran_order': False, 'shape': (1,), }", data: [UInt8](repeating: 0, count: 4))
            let text = message(bytes)
            XCTAssertTrue(text.contains("dtype '\(dtype)'") && text.contains("is not supported"), text)
        }
        let structured = file(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", data: [UInt8](repeating: 0, count: 4))
        XCTAssertTrue(message(structured).contains("is not supported"), message(structured))
    }

    func testRejectsFortranOrder() {
        let bytes = file(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data: [UInt8](repeating: 0, count: 16))
        XCTAssertTrue(message(bytes).contains("Fortran-ordered arrays are not supported"), message(bytes))
    }

    func testRejectsTruncatedAndExtraData() {
        let short = file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data: [UInt8](repeating: 0, count: 20))
        XCTAssertTrue(message(short).contains("truncated data"), message(short))
        let long = file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: [UInt8](repeating: 0, count: 12))
        XCTAssertTrue(message(long).contains("unexpected bytes"), message(long))
        var cut = Self.numpyArange
        cut.removeLast(100 + 24)
        XCTAssertTrue(message(cut).contains("truncated header"), message(cut))
        let huge = file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (9999999999, 9999999999), }", data: [])
        XCTAssertTrue(message(huge).hasPrefix("Q.npy: "), message(huge))
    }

    func testRejectsGarbageWithoutTrapping() {
        XCTAssertTrue(message([]).contains("not a .npy file"))
        XCTAssertTrue(message(Array("hello world, not numpy".utf8)).contains("not a .npy file"))
        XCTAssertTrue(message([0x93] + Array("NUMPY".utf8) + [9, 0, 0, 0]).contains("unsupported .npy format version"))
        for dict in [
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
            "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
            "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
            "['descr', '<f4']",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing",
            String(repeating: "(", count: 200),
            "",
        ] {
            let bytes = file(dict, data: [UInt8](repeating: 0, count: 8))
            XCTAssertTrue(message(bytes).hasPrefix("Q.npy: "), "\(dict): \(message(bytes))")
            XCTAssertNotEqual(message(bytes), "accepted", dict)
        }
        // Every prefix and many corruptions of a valid file are rejected or read, never trap.
        var generator = RandomInputs.SplitMix64(seed: 1, stream: 2)
        for length in 0..<Self.numpyArange.count { _ = message(Array(Self.numpyArange.prefix(length))) }
        for _ in 0..<2000 {
            var bytes = Self.numpyArange
            let k = Int(generator.next() % UInt64(bytes.count))
            bytes[k] = UInt8(truncatingIfNeeded: generator.next())
            _ = message(bytes)
        }
    }

    /// Every element type round-trips through its dtype, with the values its storage holds:
    /// f16 and bf16 round to nearest even, i32 truncates toward zero, bool is non-zero.
    func testElementTypesRoundTrip() throws {
        let values: [Float] = [0, 1, -2.5, 1 + 1.0 / 256, 1 + 3.0 / 512, 65504, 1e-3, -7.9]
        let expected: [ElementType: [Float]] = [
            .f32: values,
            .f16: [0, 1, -2.5, 1 + 1.0 / 256, 1 + 3.0 / 512, 65504, Float(Float16(1e-3)), Float(Float16(-7.9))],
            // bf16 keeps 8 significant bits: 1 + 2^-8 is a tie and rounds to the even 1; 1 + 3·2^-9
            // rounds up to 1 + 2^-7.
            .bf16: [0, 1, -2.5, 1, 1 + 1.0 / 128, 65536, Float(bitPattern: 0x3A83_0000), -7.90625],
            .i32: [0, 1, -2, 1, 1, 65504, 0, -7],
            .bool: [0, 1, 1, 1, 1, 1, 1, 1],
        ]
        for type in ElementType.allCases {
            let stored = values.map(type.stored)
            XCTAssertEqual(stored, expected[type], "\(type)")
            let array = NDArray(shape: [2, 4], data: stored, elementType: type)
            let bytes = NPY.write(array)
            let header = String(decoding: bytes[10..<70], as: UTF8.self)
            XCTAssertTrue(header.contains("'descr': '\(type.numpyDescr)'"), header)
            XCTAssertEqual(bytes.count % type.byteSize, 0)
            XCTAssertEqual(try NPY.read(bytes, name: "a"), array, "\(type)")
        }
        // bf16 files hold the upper 16 bits of each float32 pattern.
        let bf16 = NPY.write(NDArray(shape: [1], data: [-2.5], elementType: .bf16))
        XCTAssertEqual(Array(bf16.suffix(2)), [0x20, 0xC0])
    }
}
