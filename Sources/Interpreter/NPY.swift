import BlockIR
import Foundation

/// Reading and writing NumPy `.npy` files.
///
/// The element types map to NumPy dtypes: f32 `<f4`, f16 `<f2`, i32 `<i4`, bool `|b1`, and
/// bf16, which NumPy lacks, as `<u2`: each element's 16-bit bfloat16 pattern (the upper half of
/// its float32 bits; from NumPy, `(a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)`
/// truncates, rounding needs the usual `+ 0x7FFF + lsb` step; back: `(u.astype(np.uint32) << 16).view(np.float32)`).
///
/// Reading accepts format versions 1.0, 2.0 and 3.0 with one of those dtypes and
/// `'fortran_order': False`; anything else (other dtypes, Fortran order, malformed headers,
/// truncated data) is a `Diagnostic` naming the file and what to change. Writing produces
/// exactly what `numpy.save` writes for a C-ordered array of the dtype: version 1.0, the header
/// dictionary with NumPy's spare space for growing the first axis, padded with spaces to a
/// multiple of 64 bytes and ended by a newline.
public enum NPY {
    /// The magic string `\x93NUMPY`.
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    /// NumPy leaves room for the first axis to grow to this many digits.
    static let growthAxisMaxDigits = 21
    /// Header alignment (NumPy's `ARRAY_ALIGN`).
    static let alignment = 64

    /// Parses the bytes of a `.npy` file; `name` (usually the path) starts every message.
    public static func read(_ bytes: [UInt8], name: String) throws(Diagnostic) -> NDArray {
        let layout = try parseHeader(bytes, fileSize: bytes.count, name: name)
        return decode(bytes, from: layout.dataStart, layout)
    }

    /// What a `.npy` header says: the shape, its element count, the element type and where the
    /// data starts.
    struct Layout {
        var shape: [Int]
        var count: Int
        var elementType: ElementType
        var dataStart: Int
        /// The data's size in bytes.
        var byteCount: Int { count * elementType.byteSize }
    }

    /// The preamble's size: magic, version and header length (4 bytes in versions 2 and 3).
    static let maximumPreamble = 12

    /// Checks the preamble and header in `prefix` (the file's first bytes: at least the
    /// preamble and header where the file has them) against a file of `fileSize` bytes, including
    /// that exactly the data the shape needs follows the header.
    static func parseHeader(_ prefix: [UInt8], fileSize: Int, name: String) throws(Diagnostic) -> Layout {
        func fail(_ message: String) -> Diagnostic { Diagnostic("\(name): \(message)") }
        let bytes = prefix
        guard bytes.count >= 8, Array(bytes[0..<6]) == magic else {
            throw fail("not a .npy file (it does not start with the \\x93NUMPY magic string)")
        }
        let major = bytes[6]
        let minor = bytes[7]
        let lengthSize: Int
        switch major {
        case 1: lengthSize = 2
        case 2, 3: lengthSize = 4
        default:
            throw fail("unsupported .npy format version \(major).\(minor); save with numpy's default format (1.0)")
        }
        guard bytes.count >= 8 + lengthSize else { throw fail("truncated header (the file ends after the version)") }
        var headerLength = 0
        for k in 0..<lengthSize { headerLength |= Int(bytes[8 + k]) << (8 * k) }
        let headerStart = 8 + lengthSize
        guard headerLength <= fileSize - headerStart, headerLength <= bytes.count - headerStart else {
            throw fail(
                "truncated header (the header claims \(headerLength) bytes, the file has \(fileSize - headerStart) "
                    + "after the preamble)")
        }
        let dataStart = headerStart + headerLength
        let header = Array(bytes[headerStart..<dataStart])
        let shape: [Int]
        let type: ElementType
        do {
            (shape, type) = try HeaderParser.parse(header)
        } catch {
            throw fail(error.isMalformed ? "malformed header: \(error.message)" : error.message)
        }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("the shape \(shape) has too many elements") }
            count = product
        }
        let size = type.byteSize
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
        let available = fileSize - dataStart
        let what = "\(type) (\(type.numpyDescr))"
        guard !overflow, byteCount <= available else {
            throw fail(
                "truncated data: the shape \(shape) needs \(count) \(what) elements (\(count) × \(size) bytes) but "
                    + "only \(available) bytes follow the header")
        }
        guard byteCount == available else {
            throw fail(
                "\(available - byteCount) unexpected bytes after the \(count) \(what) elements of shape \(shape)")
        }
        return Layout(shape: shape, count: count, elementType: type, dataStart: dataStart)
    }

    /// The little-endian values at `dataStart` of `bytes`, as f32 values of the layout's type.
    static func decode(_ bytes: [UInt8], from dataStart: Int, _ layout: Layout) -> NDArray {
        let count = layout.count
        var data = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            data.withUnsafeMutableBufferPointer { out in
                switch layout.elementType {
                case .f32:
                    for k in 0..<count {
                        let bits = raw.loadUnaligned(fromByteOffset: dataStart + 4 * k, as: UInt32.self)
                        out[k] = Float(bitPattern: UInt32(littleEndian: bits))
                    }
                case .f16:
                    for k in 0..<count {
                        let bits = raw.loadUnaligned(fromByteOffset: dataStart + 2 * k, as: UInt16.self)
                        out[k] = Float(Float16(bitPattern: UInt16(littleEndian: bits)))
                    }
                case .bf16:
                    for k in 0..<count {
                        let bits = raw.loadUnaligned(fromByteOffset: dataStart + 2 * k, as: UInt16.self)
                        out[k] = Float(bitPattern: UInt32(UInt16(littleEndian: bits)) << 16)
                    }
                case .i32:
                    for k in 0..<count {
                        let bits = raw.loadUnaligned(fromByteOffset: dataStart + 4 * k, as: UInt32.self)
                        out[k] = Float(Int32(bitPattern: UInt32(littleEndian: bits)))
                    }
                case .bool:
                    for k in 0..<count { out[k] = raw[dataStart + k] != 0 ? 1 : 0 }
                }
            }
        }
        return NDArray(shape: layout.shape, data: data, elementType: layout.elementType)
    }

    /// The bytes of a `.npy` file (format 1.0, as `numpy.save` writes them) holding `array` in
    /// its element type (its values are stored as that type stores them).
    public static func write(_ array: NDArray) -> [UInt8] {
        let type = array.elementType
        var header =
            "{'descr': '\(type.numpyDescr)', 'fortran_order': False, 'shape': \(shapeText(array.shape)), }"
        if let first = array.shape.first {
            header += String(repeating: " ", count: max(0, growthAxisMaxDigits - String(first).utf8.count))
        }
        var version: UInt8 = 1
        var lengthSize = 2
        // NumPy pads even an aligned header by a full 64 bytes; keep its arithmetic.
        var headerLength = header.utf8.count + 1
        var padding = alignment - ((magic.count + 2 + lengthSize + headerLength) % alignment)
        if headerLength + padding > Int(UInt16.max) {
            version = 2
            lengthSize = 4
            padding = alignment - ((magic.count + 2 + lengthSize + headerLength) % alignment)
        }
        headerLength += padding
        var bytes = magic + [version, 0]
        for k in 0..<lengthSize { bytes.append(UInt8(truncatingIfNeeded: headerLength >> (8 * k))) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: [UInt8](repeating: 0x20, count: padding))
        bytes.append(0x0A)
        let dataStart = bytes.count
        bytes.append(contentsOf: [UInt8](repeating: 0, count: type.byteSize * array.data.count))
        bytes.withUnsafeMutableBytes { raw in
            switch type {
            case .f32:
                for (k, x) in array.data.enumerated() {
                    raw.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: dataStart + 4 * k, as: UInt32.self)
                }
            case .f16:
                for (k, x) in array.data.enumerated() {
                    raw.storeBytes(
                        of: Float16(x).bitPattern.littleEndian, toByteOffset: dataStart + 2 * k, as: UInt16.self)
                }
            case .bf16:
                for (k, x) in array.data.enumerated() {
                    raw.storeBytes(
                        of: ElementType.bf16Bits(x).littleEndian, toByteOffset: dataStart + 2 * k, as: UInt16.self)
                }
            case .i32:
                for (k, x) in array.data.enumerated() {
                    let v = Int32(ElementType.i32.stored(x))
                    raw.storeBytes(
                        of: UInt32(bitPattern: v).littleEndian, toByteOffset: dataStart + 4 * k, as: UInt32.self)
                }
            case .bool:
                for (k, x) in array.data.enumerated() { raw[dataStart + k] = x != 0 ? 1 : 0 }
            }
        }
        return bytes
    }

    /// Python's `repr` of a shape tuple: `()`, `(5,)`, `(8, 1024, 64)`.
    static func shapeText(_ shape: [Int]) -> String {
        switch shape.count {
        case 0: return "()"
        case 1: return "(\(shape[0]),)"
        default: return "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
    }

    /// Reads and parses a `.npy` file; messages start with `path`. Only the preamble and header
    /// are read before they are checked, then exactly the data the shape needs (checked
    /// against the file's size first), so a large file that is not a `.npy`, or whose header
    /// promises more than it holds, fails fast. A file whose size is unknown (a FIFO) is read
    /// whole.
    public static func readFile(_ path: String) throws(Diagnostic) -> NDArray {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
            let handle = FileHandle(forReadingAtPath: path)
        else {
            throw Diagnostic("\(path): cannot read the file; check that it exists, is a file and is readable")
        }
        defer { try? handle.close() }
        func failure(_ error: Error) -> Diagnostic {
            Diagnostic("\(path): cannot read the file (\(error.localizedDescription))")
        }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard (attributes?[.type] as? FileAttributeType) == .typeRegular,
            let size = (attributes?[.size] as? NSNumber)?.intValue
        else {
            do {
                return try read([UInt8](try handle.readToEnd() ?? Data()), name: path)
            } catch let error as Diagnostic {
                throw error
            } catch {
                throw failure(error)
            }
        }
        do {
            var prefix = [UInt8](try handle.read(upToCount: min(size, maximumPreamble)) ?? Data())
            if prefix.count >= 8, Array(prefix[0..<6]) == magic, prefix[6] >= 1, prefix[6] <= 3 {
                let lengthSize = prefix[6] == 1 ? 2 : 4
                var headerLength = 0
                for k in 0..<min(lengthSize, prefix.count - 8) { headerLength |= Int(prefix[8 + k]) << (8 * k) }
                let headerEnd = 8 + lengthSize + headerLength
                if headerEnd <= size, headerEnd > prefix.count {
                    prefix += try handle.read(upToCount: headerEnd - prefix.count) ?? Data()
                }
            }
            let layout = try parseHeader(prefix, fileSize: size, name: path)
            try handle.seek(toOffset: UInt64(layout.dataStart))
            let data = [UInt8](try handle.read(upToCount: layout.byteCount) ?? Data())
            guard data.count == layout.byteCount else {
                throw Diagnostic(
                    "\(path): truncated data: the file shrank while it was read (\(data.count) of "
                        + "\(layout.byteCount) bytes)")
            }
            return decode(data, from: 0, layout)
        } catch let error as Diagnostic {
            throw error
        } catch {
            throw failure(error)
        }
    }

    /// Writes `array` as a `.npy` file at `path` (replacing it).
    public static func writeFile(_ array: NDArray, to path: String) throws(Diagnostic) {
        do {
            try Data(write(array)).write(to: URL(fileURLWithPath: path))
        } catch {
            throw Diagnostic("\(path): cannot write the file (\(error.localizedDescription))")
        }
    }
}

/// A problem with a `.npy` header: a syntax error (malformed) or an unsupported array layout.
private struct HeaderError: Error {
    var message: String
    var isMalformed = true

    init(_ message: String, malformed: Bool = true) {
        self.message = message
        self.isMalformed = malformed
    }
}

/// A Python literal as it appears in a `.npy` header.
private enum PyLiteral {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case none
    case sequence([PyLiteral])
    case dictionary([(String, PyLiteral)])

    /// Python-like text for messages.
    var text: String {
        switch self {
        case .string(let s): return "'\(s)'"
        case .integer(let i): return String(i)
        case .boolean(let b): return b ? "True" : "False"
        case .none: return "None"
        case .sequence(let items): return "(" + items.map(\.text).joined(separator: ", ") + ")"
        case .dictionary(let items): return "{" + items.map { "'\($0.0)': \($0.1.text)" }.joined(separator: ", ") + "}"
        }
    }
}

/// A small recursive-descent parser for the Python dictionary literal of a `.npy` header.
private struct HeaderParser {
    let bytes: [UInt8]
    var position = 0
    /// Nesting depth, bounded so that hostile headers cannot exhaust the stack.
    var depth = 0

    static func parse(_ header: [UInt8]) throws(HeaderError) -> (shape: [Int], type: ElementType) {
        var parser = HeaderParser(bytes: header)
        parser.skipSpace()
        let literal = try parser.value()
        parser.skipSpace()
        guard parser.position == header.count else {
            throw HeaderError("unexpected text after the header dictionary at byte \(parser.position)")
        }
        guard case .dictionary(let entries) = literal else {
            throw HeaderError("the header is not a dictionary")
        }
        var descr: PyLiteral?
        var fortran: PyLiteral?
        var shape: PyLiteral?
        for (key, value) in entries {
            switch key {
            case "descr": descr = value
            case "fortran_order": fortran = value
            case "shape": shape = value
            default: throw HeaderError("unexpected key '\(key)'; expected 'descr', 'fortran_order' and 'shape'")
            }
        }
        guard let descr, let fortran, let shape else {
            throw HeaderError("the header needs the keys 'descr', 'fortran_order' and 'shape'")
        }
        // Dtype and order problems are not "malformed": report them plainly.
        let supported = "'<f4' (f32), '<f2' (f16), '<u2' (bf16 bit patterns), '<i4' (i32) or '|b1' (bool)"
        guard case .string(let dtype) = descr else {
            throw HeaderError("dtype \(descr.text) is not supported; save \(supported)", malformed: false)
        }
        let type = dtype == "<b1" ? ElementType.bool : ElementType.allCases.first { $0.numpyDescr == dtype }
        guard let type else {
            if dtype.hasPrefix(">") {
                throw HeaderError(
                    "dtype '\(dtype)' (big-endian) is not supported; save little-endian (numpy: a.astype('<\(dtype.dropFirst())'))",
                    malformed: false)
            }
            throw HeaderError("dtype '\(dtype)' is not supported; save \(supported)", malformed: false)
        }
        guard case .boolean(let isFortran) = fortran else {
            throw HeaderError("'fortran_order' is \(fortran.text); expected False")
        }
        guard !isFortran else {
            throw HeaderError(
                "Fortran-ordered arrays are not supported; save a C-ordered array (numpy: np.ascontiguousarray(a))",
                malformed: false)
        }
        guard case .sequence(let dims) = shape else {
            throw HeaderError("'shape' is \(shape.text); expected a tuple of integers")
        }
        var out: [Int] = []
        for d in dims {
            guard case .integer(let n) = d, n >= 0 else {
                throw HeaderError("'shape' is \(shape.text); expected a tuple of non-negative integers")
            }
            out.append(n)
        }
        return (out, type)
    }

    mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) { position += 1 }
    }

    func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func expect(_ c: Character) throws(HeaderError) {
        skipSpace()
        guard let b = peek(), b == c.asciiValue else {
            throw HeaderError("expected '\(c)' at byte \(position)")
        }
        position += 1
    }

    mutating func value() throws(HeaderError) -> PyLiteral {
        skipSpace()
        guard let b = peek() else { throw HeaderError("the header ends too early") }
        depth += 1
        defer { depth -= 1 }
        guard depth < 32 else { throw HeaderError("the header nests too deeply") }
        switch b {
        case UInt8(ascii: "{"):
            position += 1
            var entries: [(String, PyLiteral)] = []
            while true {
                skipSpace()
                if peek() == UInt8(ascii: "}") {
                    position += 1
                    return .dictionary(entries)
                }
                guard case .string(let key) = try value() else {
                    throw HeaderError("dictionary keys must be strings (byte \(position))")
                }
                try expect(":")
                let v = try value()
                entries.append((key, v))
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    position += 1
                } else {
                    try expect("}")
                    return .dictionary(entries)
                }
            }
        case UInt8(ascii: "("), UInt8(ascii: "["):
            let close = b == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "]")
            position += 1
            var items: [PyLiteral] = []
            while true {
                skipSpace()
                if peek() == close {
                    position += 1
                    return .sequence(items)
                }
                items.append(try value())
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    position += 1
                } else {
                    guard peek() == close else {
                        throw HeaderError("expected ',' or a closing bracket at byte \(position)")
                    }
                    position += 1
                    return .sequence(items)
                }
            }
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            position += 1
            var text: [UInt8] = []
            while let c = peek(), c != b {
                guard c != UInt8(ascii: "\\") else { throw HeaderError("escapes in strings are not supported") }
                text.append(c)
                position += 1
            }
            guard peek() == b else { throw HeaderError("unterminated string") }
            position += 1
            return .string(String(decoding: text, as: UTF8.self))
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
            let start = position
            position += 1
            while let c = peek(), c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { position += 1 }
            let digits = String(decoding: bytes[start..<position], as: UTF8.self)
            if peek() == UInt8(ascii: "L") { position += 1 }  // Python 2 longs
            guard let n = Int(digits) else { throw HeaderError("bad integer '\(digits)'") }
            return .integer(n)
        default:
            for (word, literal) in [("True", PyLiteral.boolean(true)), ("False", .boolean(false)), ("None", .none)] {
                let w = Array(word.utf8)
                if position + w.count <= bytes.count && Array(bytes[position..<position + w.count]) == w {
                    position += w.count
                    return literal
                }
            }
            throw HeaderError("unexpected character at byte \(position)")
        }
    }
}
