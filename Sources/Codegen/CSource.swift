/// A generated C translation unit: the source and the header it includes by name.
public struct CSource: Hashable, Sendable {
    /// The `.c` text: runtime helpers, one function per kernel, and the entry point.
    public var source: String
    /// The `.h` text: the entry point's declaration with each parameter's shape and layout.
    public var header: String
    /// The C name of the entry point (`blk_u_attention`; for CUDA, the host launcher's).
    public var name: String
    /// The file stem: the source includes `headerName.h`; `blockc build` writes `headerName.c`
    /// and `libheaderName.so` (default: the program's name, `attention`).
    public var headerName: String

    /// Makes a translation unit.
    public init(source: String, header: String, name: String, headerName: String? = nil) {
        self.source = source
        self.header = header
        self.name = name
        self.headerName = headerName ?? name
    }
}
