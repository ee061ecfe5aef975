/// An indentation-aware line writer for generated source text.
///
/// Lines are appended with the current indentation; `block` opens a brace-delimited scope and
/// indents its body. Blank lines carry no trailing spaces, so the output is stable text.
public struct CodeWriter: Sendable {
    /// The text written so far.
    public private(set) var text = ""
    /// The current indentation depth, in levels.
    public private(set) var depth = 0
    /// Spaces per indentation level.
    public let indentWidth: Int

    /// Makes an empty writer.
    public init(indentWidth: Int = 4) { self.indentWidth = indentWidth }

    /// Appends one line at the current indentation (a blank line when empty).
    public mutating func line(_ s: String = "") {
        if s.isEmpty {
            text += "\n"
        } else {
            text += String(repeating: " ", count: depth * indentWidth) + s + "\n"
        }
    }

    /// Appends several lines, each at the current indentation.
    public mutating func lines(_ s: String) {
        for l in s.split(separator: "\n", omittingEmptySubsequences: false) { line(String(l)) }
    }

    /// Replaces all the text written (a pass over it, as `BarrierPlan.resolve`).
    public mutating func replaceText(_ s: String) { text = s }

    /// Appends text verbatim (no indentation added).
    public mutating func raw(_ s: String) { text += s }

    /// Appends a line without indentation (preprocessor directives and pragmas).
    public mutating func flushLeft(_ s: String) { text += s + "\n" }

    /// Increases the indentation.
    public mutating func indent() { depth += 1 }

    /// Decreases the indentation.
    public mutating func dedent() { depth = Swift.max(0, depth - 1) }

    /// Writes `header {`, the body indented, then `}` followed by `trailer`.
    public mutating func block(_ header: String, trailer: String = "", _ body: (inout CodeWriter) -> Void) {
        line(header.isEmpty ? "{" : header + " {")
        indent()
        body(&self)
        dedent()
        line("}" + trailer)
    }
}
