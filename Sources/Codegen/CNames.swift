import BlockIR

/// The C identifiers of a program: entry, launchers, kernels, parameters, storage pointers.
///
/// Every identifier derived from a user's name lives in a namespace reserved for it, so no
/// keyword, header macro (`EOF`, `HUGE_VAL`, `errno`), libc or CUDA name (`printf`,
/// `threadIdx`), runtime helper (`blk_alloc`, `blk_gemm`) or emitter temporary (`v12`, `e_`,
/// `blk_smem`) can be hit, whatever the name:
///
/// | derived from | C name | example (`graph attention`, `input Q`) |
/// |---|---|---|
/// | the program | entry point (C), host launcher (CUDA) | `blk_u_attention` |
/// | the program | device launcher (CUDA) | `blk_u_attention_device` |
/// | the program | kernel `k` | `blk_u_attention_k0` |
/// | the program | header guard | `BLK_U_attention_H` |
/// | a tensor | entry parameter, harness array | `blk_t_Q` |
/// | a tensor | storage pointer (entry, kernels) | `blk_g_Q` |
/// | a tensor | device copy (CUDA host launcher, harness) | `blk_d_Q` |
///
/// Why it is sound: a macro or a declaration must match a whole identifier, and no header
/// declares anything starting with `blk_` (blockc's own prefix). Inside it, the runtime and the
/// emitter name their helpers and temporaries `blk_WORD` with a word of two or more letters
/// (`blk_alloc`, `blk_scratch0`); the one-letter tags `blk_u_`, `blk_t_`, `blk_g_`, `blk_d_` are
/// reserved for user names. Program-derived names differ from each other by their suffix
/// (none, `_device`, `_k` and digits) and from tensor-derived ones by their tag; tensor names
/// are made distinct first (a name is C-identifier text: other characters become `_`, then `_`
/// is appended until it is new), so no two tensors share an identifier.
///
/// The file stem (`attention.c`, `attention.h`, `libattention.so`) stays the program's name.
struct CNames {
    /// The entry point's name (C), the host launcher's (CUDA): `blk_u_NAME`.
    let entry: String
    /// The program's name as identifier text, without the tag: the default file stem.
    let stem: String
    private let tensors: [String]
    private let dialect: Dialect

    /// The prefix of program-derived names (entry, launchers, kernels).
    static let programTag = "blk_u_"
    /// The prefix of entry parameters and harness arrays.
    static let parameterTag = "blk_t_"
    /// The prefix of storage pointers.
    static let storageTag = "blk_g_"
    /// The prefix of device copies in the CUDA host launcher and harness.
    static let deviceTag = "blk_d_"

    /// The program's name as identifier text: the default stem of the generated files.
    static func stem(_ program: Program) -> String { identifierText(program.name, fallback: "program") }

    init(program: Program, dialect: Dialect) {
        self.dialect = dialect
        stem = CNames.stem(program)
        entry = CNames.programTag + stem
        var used: Set<String> = []
        var names: [String] = []
        for t in program.tensors {
            var name = CNames.identifierText(t.name, fallback: "t")
            while used.contains(name) { name += "_" }
            used.insert(name)
            names.append(name)
        }
        tensors = names
    }

    /// Text that can follow a tag in an identifier: ASCII letters, digits and `_` kept, every
    /// other character `_`.
    static func identifierText(_ s: String, fallback: String) -> String {
        let out = String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") ? $0 : "_" })
        return out.isEmpty ? fallback : out
    }

    /// A user's name as it may appear inside a C comment (`*/` would end it).
    static func comment(_ s: String) -> String {
        s.replacingOccurrences(of: "*/", with: "* /")
    }

    /// A user's name as the contents of a C string literal.
    static func stringLiteral(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case " "..."~": out.unicodeScalars.append(u)
            default:
                for byte in String(u).utf8 { out += "\\" + String(byte, radix: 8).leftPadded(to: 3) }
            }
        }
        return out
    }

    /// The header's include guard: `BLK_U_NAME_H` (the name's case kept, so `a` and `A` differ).
    var headerGuard: String { "BLK_U_" + stem + "_H" }

    /// The CUDA launcher that takes device pointers: `blk_u_NAME_device`.
    var deviceEntry: String { entry + "_device" }

    /// The entry parameter of a tensor (also the harness's host array): `blk_t_NAME`.
    func parameter(_ t: TensorID) -> String { CNames.parameterTag + tensors[t.index] }

    /// The pointer to a storage tensor inside the entry and the kernels: `blk_g_NAME`.
    func storage(_ t: TensorID) -> String { CNames.storageTag + tensors[t.index] }

    /// A tensor's device copy in the CUDA host launcher and harness: `blk_d_NAME`.
    func device(_ t: TensorID) -> String { CNames.deviceTag + tensors[t.index] }

    /// The function of kernel number `k`: `blk_u_NAME_kK`.
    func kernel(_ k: Int) -> String { "\(entry)_k\(k)" }

    /// The C name of an index variable: kept when it is one lowercase letter and digits (`i`,
    /// `k2`, `b0`: what lowering and fusion write; no C or CUDA header defines such a name), else
    /// `blk_v_` and the name, so a `.block` file's `EOF` or `errno` cannot meet a macro.
    func index(_ v: IndexVar) -> String {
        let name = CNames.identifierText(v.name, fallback: "x")
        let lowercaseFirst = name.first.map { $0.isASCII && $0.isLowercase } == true
        let short = lowercaseFirst && name.dropFirst().allSatisfy { $0.isASCII && $0.isNumber }
        return short && !CNames.isReserved(name) ? name : "blk_v_" + name
    }

    /// Whether an index variable's name could clash with the emitter's own identifiers (`v12`,
    /// `s3`, `e4_0`, `B0`, `blk_…`, loop counters ending in `_`).
    static func isReserved(_ name: String) -> Bool {
        if name.hasPrefix("blk_") || name.hasPrefix("g_") || name.hasSuffix("_") { return true }
        guard let first = name.first, "vseBt".contains(first) else { return false }
        let rest = name.dropFirst()
        return !rest.isEmpty && rest.allSatisfy { $0.isNumber || $0 == "_" }
    }
}

extension String {
    /// The string with `0` prepended up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: Swift.max(0, width - count)) + self
    }
}
