import BlockIR

/// A token of the `.graph` text form.
struct GraphToken: Equatable {
    /// What kind of token.
    enum Kind: Equatable {
        case identifier(String)
        case number(String)
        case symbol(String)
        case newline
        case end
    }

    /// The kind.
    var kind: Kind
    /// Where it starts.
    var location: SourceLocation

    /// How the token reads in a message.
    var spelling: String {
        switch kind {
        case .identifier(let s), .number(let s): return "'\(s)'"
        case .symbol(let s): return "'\(s)'"
        case .newline: return "end of line"
        case .end: return "end of file"
        }
    }
}

/// Splits `.graph` text into tokens; `#` starts a comment to the end of the line.
enum GraphLexer {
    static let symbols = [
        "&&", ">=", "<=", "==", "!=", "(", ")", "[", "]", ",", "=", ":", "+", "-", "*", "/", ">", "<",
    ]

    /// The tokens of a text, ending with `.end`.
    static func tokenize(_ source: String) throws(Diagnostic) -> [GraphToken] {
        var tokens: [GraphToken] = []
        let scalars = Array(source.unicodeScalars)
        var index = 0
        var line = 1
        var column = 1
        func advance(_ n: Int = 1) {
            index += n
            column += n
        }
        while index < scalars.count {
            let c = scalars[index]
            let here = SourceLocation(line: line, column: column)
            if c == "\n" {
                tokens.append(GraphToken(kind: .newline, location: here))
                index += 1
                line += 1
                column = 1
            } else if c == " " || c == "\t" || c == "\r" {
                advance()
            } else if c == "#" {
                while index < scalars.count && scalars[index] != "\n" { advance() }
            } else if c.properties.isAlphabetic || c == "_" {
                var text = ""
                while index < scalars.count,
                    scalars[index].properties.isAlphabetic || scalars[index] == "_"
                        || ("0"..."9").contains(scalars[index])
                {
                    text.unicodeScalars.append(scalars[index])
                    advance()
                }
                tokens.append(GraphToken(kind: .identifier(text), location: here))
            } else if ("0"..."9").contains(c)
                || (c == "." && index + 1 < scalars.count && ("0"..."9").contains(scalars[index + 1]))
            {
                var text = ""
                while index < scalars.count, ("0"..."9").contains(scalars[index]) || scalars[index] == "." {
                    text.unicodeScalars.append(scalars[index])
                    advance()
                }
                if index < scalars.count, scalars[index] == "e" || scalars[index] == "E" {
                    var exponent = String(scalars[index])
                    var k = index + 1
                    if k < scalars.count, scalars[k] == "+" || scalars[k] == "-" {
                        exponent.unicodeScalars.append(scalars[k])
                        k += 1
                    }
                    if k < scalars.count, ("0"..."9").contains(scalars[k]) {
                        while k < scalars.count, ("0"..."9").contains(scalars[k]) {
                            exponent.unicodeScalars.append(scalars[k])
                            k += 1
                        }
                        text += exponent
                        advance(k - index)
                    }
                }
                tokens.append(GraphToken(kind: .number(text), location: here))
            } else {
                var matched: String?
                for s in symbols {
                    let n = s.unicodeScalars.count
                    if index + n <= scalars.count, String(String.UnicodeScalarView(scalars[index..<(index + n)])) == s {
                        matched = s
                        break
                    }
                }
                guard let symbol = matched else {
                    throw Diagnostic("unexpected character '\(Character(c))'", at: here)
                }
                tokens.append(GraphToken(kind: .symbol(symbol), location: here))
                advance(symbol.unicodeScalars.count)
            }
        }
        tokens.append(GraphToken(kind: .end, location: SourceLocation(line: line, column: column)))
        return tokens
    }
}
