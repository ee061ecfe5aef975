import BlockIR

/// The kind of a `.block` token.
enum BlockTokenKind: Hashable, Sendable {
    /// A name or keyword: letters, digits and `_`, not starting with a digit.
    case identifier
    /// Decimal digits only.
    case integer
    /// A number with a fraction or an exponent (`0.5`, `1e-06`).
    case float
    /// `%N`; the token's text is the digits.
    case value
    /// Punctuation (`:`, `..<`, `+:`, `->`, ...); the token's text is the symbol.
    case symbol
    /// The end of a line (comments are skipped).
    case newline
    /// The end of the text.
    case end
}

/// One token with its 1-based position.
struct BlockToken: Sendable {
    /// What kind of token it is.
    var kind: BlockTokenKind
    /// The token's text (for a value, its digits).
    var text: String
    /// Where the token starts.
    var location: SourceLocation

    /// How the token reads in a message: `'foo'`, `end of line`, `end of file`.
    var quoted: String {
        switch kind {
        case .newline: return "end of line"
        case .end: return "end of file"
        case .value: return "'%\(text)'"
        case .identifier, .integer, .float, .symbol: return "'\(text)'"
        }
    }
}

/// Splits `.block` text into tokens. Columns count Unicode scalars.
enum BlockLexer {
    /// Multi-character symbols, longest first.
    private static let longSymbols: [String] = ["..<", "+:", "->", ">=", "==", "&&"]
    private static let shortSymbols: Set<Unicode.Scalar> = [
        ":", "[", "]", ",", "(", ")", "{", "}", "@", "=", "+", "*", "/", "-", "<",
    ]

    /// Tokenizes the text; the last token is `.end`.
    static func tokenize(_ source: String) throws(Diagnostic) -> [BlockToken] {
        let scalars = Array(source.unicodeScalars)
        var tokens: [BlockToken] = []
        var i = 0
        var line = 1
        var column = 1

        func at(_ k: Int) -> Unicode.Scalar? { k < scalars.count ? scalars[k] : nil }

        while i < scalars.count {
            let c = scalars[i]
            let here = SourceLocation(line: line, column: column)
            if c == "\n" {
                tokens.append(BlockToken(kind: .newline, text: "\n", location: here))
                i += 1
                line += 1
                column = 1
                continue
            }
            if c == " " || c == "\t" || c == "\r" {
                i += 1
                column += 1
                continue
            }
            if c == "/" && at(i + 1) == "/" {
                while i < scalars.count && scalars[i] != "\n" {
                    i += 1
                    column += 1
                }
                continue
            }
            if isIdentifierStart(c) {
                var text = ""
                while let s = at(i), isIdentifierContinue(s) {
                    text.unicodeScalars.append(s)
                    i += 1
                    column += 1
                }
                tokens.append(BlockToken(kind: .identifier, text: text, location: here))
                continue
            }
            if isDigit(c) {
                var text = ""
                var isFloat = false
                while let s = at(i), isDigit(s) {
                    text.unicodeScalars.append(s)
                    i += 1
                    column += 1
                }
                if at(i) == ".", let next = at(i + 1), isDigit(next) {
                    isFloat = true
                    text += "."
                    i += 1
                    column += 1
                    while let s = at(i), isDigit(s) {
                        text.unicodeScalars.append(s)
                        i += 1
                        column += 1
                    }
                }
                if let e = at(i), e == "e" || e == "E" {
                    var k = i + 1
                    var exponent = String(e)
                    if let sign = at(k), sign == "+" || sign == "-" {
                        exponent.unicodeScalars.append(sign)
                        k += 1
                    }
                    if let d = at(k), isDigit(d) {
                        while let s = at(k), isDigit(s) {
                            exponent.unicodeScalars.append(s)
                            k += 1
                        }
                        isFloat = true
                        text += exponent
                        column += k - i
                        i = k
                    }
                }
                tokens.append(BlockToken(kind: isFloat ? .float : .integer, text: text, location: here))
                continue
            }
            if c == "%" {
                var text = ""
                var k = i + 1
                while let s = at(k), isDigit(s) {
                    text.unicodeScalars.append(s)
                    k += 1
                }
                guard !text.isEmpty else {
                    throw Diagnostic("expected a value number after '%', as in '%3'", at: here)
                }
                tokens.append(BlockToken(kind: .value, text: text, location: here))
                column += k - i
                i = k
                continue
            }
            var matched: String?
            for symbol in longSymbols where matches(symbol, scalars, i) {
                matched = symbol
                break
            }
            if matched == nil && shortSymbols.contains(c) { matched = String(c) }
            guard let symbol = matched else {
                throw Diagnostic("unexpected character '\(printable(c))'; remove it", at: here)
            }
            tokens.append(BlockToken(kind: .symbol, text: symbol, location: here))
            let length = symbol.unicodeScalars.count
            i += length
            column += length
        }
        tokens.append(BlockToken(kind: .end, text: "", location: SourceLocation(line: line, column: column)))
        return tokens
    }

    private static func matches(_ symbol: String, _ scalars: [Unicode.Scalar], _ i: Int) -> Bool {
        var k = i
        for s in symbol.unicodeScalars {
            guard k < scalars.count, scalars[k] == s else { return false }
            k += 1
        }
        return true
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }

    private static func isIdentifierStart(_ c: Unicode.Scalar) -> Bool {
        c == "_" || (c.properties.isAlphabetic && !c.properties.isWhitespace)
    }

    private static func isIdentifierContinue(_ c: Unicode.Scalar) -> Bool {
        isIdentifierStart(c) || isDigit(c) || c.properties.numericType != nil
    }

    private static func printable(_ c: Unicode.Scalar) -> String {
        c.properties.generalCategory == .control || c.properties.isWhitespace
            ? "\\u{" + String(c.value, radix: 16) + "}" : String(c)
    }
}
