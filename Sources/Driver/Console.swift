import Foundation

/// Where the driver writes: standard output and standard error, or buffers in tests.
final class Console {
    private let writeOut: (String) -> Void
    private let writeErr: (String) -> Void

    /// A console over the process's standard streams.
    static func standard() -> Console {
        Console(
            out: { FileHandle.standardOutput.write(Data($0.utf8)) },
            err: { FileHandle.standardError.write(Data($0.utf8)) })
    }

    /// A console that discards everything (for inner pipelines whose notes would repeat).
    static func silent() -> Console { Console(out: { _ in }, err: { _ in }) }

    /// A console over two sinks.
    init(out: @escaping (String) -> Void, err: @escaping (String) -> Void) {
        self.writeOut = out
        self.writeErr = err
    }

    /// Writes text to standard output.
    func out(_ text: String) { writeOut(text) }
    /// Writes text to standard error.
    func err(_ text: String) { writeErr(text) }
}
