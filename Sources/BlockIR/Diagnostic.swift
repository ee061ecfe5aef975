/// A position in a source text, 1-based.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    /// 1-based line number.
    public var line: Int
    /// 1-based column number (in Unicode scalars).
    public var column: Int

    /// Makes a location.
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A user-facing error: what went wrong, where, and what to do about it.
///
/// Every stage that reads user input (the `.graph` and `.block` parsers, `.npy` reading, the
/// command line) reports problems as a `Diagnostic`; the driver renders it as
/// `file:line:col: error: message` followed by the source line and a caret.
public struct Diagnostic: Error, Hashable, Sendable, CustomStringConvertible {
    /// Where the problem is; `nil` when it has no position in a source text.
    public var location: SourceLocation?
    /// The message: what is wrong and what to change.
    public var message: String

    /// Makes a diagnostic.
    public init(_ message: String, at location: SourceLocation? = nil) {
        self.message = message
        self.location = location
    }

    public var description: String {
        if let location { return "\(location): error: \(message)" }
        return "error: \(message)"
    }

    /// Renders the diagnostic as `file:line:col: error: message`, the source line and a caret.
    public func rendered(file: String, source: String?) -> String {
        guard let location else { return "\(file): error: \(message)" }
        var text = "\(file):\(location.line):\(location.column): error: \(message)"
        if let source {
            let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
            if location.line >= 1 && location.line <= lines.count {
                let line = String(lines[location.line - 1]).replacingTabs()
                text += "\n" + line + "\n" + String(repeating: " ", count: max(0, location.column - 1)) + "^"
            }
        }
        return text
    }
}

extension String {
    fileprivate func replacingTabs() -> String {
        String(self.map { $0 == "\t" ? " " : $0 })
    }
}
