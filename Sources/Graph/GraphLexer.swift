import BlockIR

/// A token of the `.graph` text form.
struct GraphToken: Equatable {
    /// What kind of token.
    enum Kind: Equatable {
        /// A name: letters, digits and `_`, not starting with a digit.
        case identifier(String)
        /// A numeric literal as written (`2`, `0.5`, `1e-5`); converted where it is used.
        case number(String)
        /// Punctuation or an operator (`(`, `,`, `>=`, `&&`, …).
        case symbol(String)
        /// The end of a line (statements are one per line).
        case newline
        /// The end of the text.
        case end
    }

    /// The kind.
    var kind: Kind
    /// Where it starts (1-based line and column, in Unicode scalars).
    var location: SourceLocation

    /// How the token reads in a message.
    var spelling: String {
        switch kind {
        case .identifier(let s), .number(let s), .symbol(let s): return "'\(s)'"
        case .newline: return "end of line"
        case .end: return "end of file"
        }
    }
}

/// Splits `.graph` text into tokens; `#` starts a comment to the end of the line.
enum GraphLexer {
    /// The operators and punctuation, longest first so `>=` wins over `>`.
    static let symbols: [[Unicode.Scalar]] = [
        "...", "&&", ">=", "<=", "==", "!=", "(", ")", "[", "]", ",", "=", ":", "+", "-", "*", "/", "%", ">", "<",
    ].map { Array($0.unicodeScalars) }

    /// The tokens of a text, ending with `.end`.
    static func tokenize(_ source: String) throws(Diagnostic) -> [GraphToken] {
        var tokens: [GraphToken] = []
        let scalars = Array(source.unicodeScalars)
        var index = 0
        var line = 1
        var column = 1
        func at(_ k: Int) -> Unicode.Scalar? { k < scalars.count ? scalars[k] : nil }
        func isDigit(_ c: Unicode.Scalar?) -> Bool { c.map { ("0"..."9").contains($0) } ?? false }
        func isIdentifierStart(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || c == "_" }
        func take(while predicate: (Unicode.Scalar) -> Bool) -> String {
            var text = ""
            while let c = at(index), predicate(c) {
                text.unicodeScalars.append(c)
                index += 1
                column += 1
            }
            return text
        }
        while let c = at(index) {
            let here = SourceLocation(line: line, column: column)
            if c == "\n" {
                tokens.append(GraphToken(kind: .newline, location: here))
                index += 1
                line += 1
                column = 1
            } else if c == " " || c == "\t" || c == "\r" {
                index += 1
                column += 1
            } else if c == "#" {
                _ = take { $0 != "\n" }
            } else if isIdentifierStart(c) {
                let text = take { isIdentifierStart($0) || isDigit($0) }
                tokens.append(GraphToken(kind: .identifier(text), location: here))
            } else if isDigit(c) || (c == "." && isDigit(at(index + 1))) {
                var text = take { isDigit($0) || $0 == "." }
                // An exponent only when digits follow (`1e-5`); otherwise `e` starts a name.
                if let e = at(index), e == "e" || e == "E" {
                    var k = index + 1
                    if let sign = at(k), sign == "+" || sign == "-" { k += 1 }
                    if isDigit(at(k)) {
                        while isDigit(at(k)) { k += 1 }
                        text.unicodeScalars.append(contentsOf: scalars[index..<k])
                        column += k - index
                        index = k
                    }
                }
                tokens.append(GraphToken(kind: .number(text), location: here))
            } else if let symbol = symbols.first(where: { matches($0, scalars, at: index) }) {
                tokens.append(GraphToken(kind: .symbol(String(String.UnicodeScalarView(symbol))), location: here))
                index += symbol.count
                column += symbol.count
            } else {
                throw Diagnostic(unexpectedCharacterMessage(c), at: here)
            }
        }
        tokens.append(GraphToken(kind: .end, location: SourceLocation(line: line, column: column)))
        return tokens
    }

    private static func matches(_ symbol: [Unicode.Scalar], _ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        guard index + symbol.count <= scalars.count else { return false }
        for (k, s) in symbol.enumerated() where scalars[index + k] != s { return false }
        return true
    }

    private static func unexpectedCharacterMessage(_ c: Unicode.Scalar) -> String {
        let hex = String(c.value, radix: 16, uppercase: true)
        let invisible = c.properties.generalCategory == .control || c.properties.isWhitespace
        let shown = invisible ? "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex : "'\(c)'"
        switch c {
        case "&": return "unexpected character \(shown); mask conditions are joined with '&&'"
        case "|": return "unexpected character \(shown); masks are conjunctions: join conditions with '&&'"
        case "!": return "unexpected character \(shown); masks compare with >=, >, <=, < and =="
        case ";": return "unexpected character \(shown); put one statement per line instead of using ';'"
        case "{", "}": return "unexpected character \(shown); use '[...]' for shapes and lists, '(...)' for grouping"
        default:
            return "unexpected character \(shown); names are letters, digits and '_', operators are + - * / % "
                + "and comments start with '#'"
        }
    }
}
