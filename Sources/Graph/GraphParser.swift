import BlockIR

/// Parses the `.graph` text form (Docs/IR.md) into a `Graph`, through `GraphBuilder`.
///
/// Every error is a `Diagnostic` at the offending token saying what is wrong and what to do. The
/// parser never traps: integer arithmetic reports overflow, nesting is capped, and shapes are
/// limited to 2^40 elements.
public enum GraphParser {
    /// Parses `.graph` text. `defaultName` names the graph when there is no `graph NAME` line;
    /// `dimOverrides` replace dim defaults (an override naming no `dim` is an error, location nil).
    public static func parse(
        _ source: String, defaultName: String, dimOverrides: [String: Int] = [:]
    ) throws(Diagnostic) -> Graph {
        var parser = GraphTextParser(
            tokens: try GraphLexer.tokenize(source), overrides: dimOverrides, name: defaultName)
        return try parser.parseGraph()
    }

    /// The deepest expression (parentheses, calls, operator chains) the parser accepts.
    public static let maximumDepth = 200

    /// The name the subscript sugar gives an omitted end bound (`x[..., 2:]`): no token spells it.
    static let endOfAxisName = "<end of axis>"

    /// The most elements a tensor (or a dimension) may have.
    public static let maximumElements = 1 << 40
}

/// An expression of the graph form, before it is built: a tree with the location of each node
/// and its depth (so that evaluating it cannot overflow the stack).
struct GraphExpr {
    /// The node's kind and children.
    indirect enum Kind {
        /// A numeric literal as written.
        case number(String)
        /// An identifier: a tensor, a dimension, `inf`, `nan`, `true`, `false`, or `i`/`j` in a mask.
        case name(String)
        /// `f(args)`.
        case call(String, [GraphArgument])
        /// `a op b` for `+ - * / >= > <= < == != &&`.
        case binary(String, GraphExpr, GraphExpr)
        /// `-a`.
        case negate(GraphExpr)
        /// `[a, b, ...]`.
        case list([GraphExpr])
    }

    /// The kind.
    var kind: Kind
    /// Where the node starts (for a binary node: the operator).
    var location: SourceLocation
    /// How deep evaluating the node recurses: 1 for a leaf, else 1 + the deepest child, except
    /// that a binary node whose left operand is binary continues that operand's chain
    /// (`a + b + c` is evaluated by a loop over `leftChain`, not by recursion), so a flat chain
    /// of any length stays shallow.
    var depth: Int

    /// One step of a left-associated chain: `op rhs` at `location`.
    struct ChainStep {
        var op: String
        var rhs: GraphExpr
        var location: SourceLocation
    }

    /// A left-associated chain of binary operators in `ops`, as its first operand and the
    /// steps after it, in source order: `a + b - c` is `(a, [+ b, - c])`. Walking it is a loop,
    /// so evaluating a chain of thousands of terms does not recurse once per term.
    func leftChain(through ops: Set<String>) -> (first: GraphExpr, steps: [ChainStep]) {
        var steps: [ChainStep] = []
        var e = self
        while case .binary(let op, let a, let b) = e.kind, ops.contains(op) {
            steps.append(ChainStep(op: op, rhs: b, location: e.location))
            e = a
        }
        return (e, steps.reversed())
    }
}

/// A call argument: positional or `key=value`.
struct GraphArgument {
    /// The keyword, for `key=value`.
    var key: String?
    /// The value.
    var value: GraphExpr
    /// Where the argument starts (the keyword, if any).
    var location: SourceLocation
}

/// The state of one parse: the tokens, the builder, and the names defined so far.
struct GraphTextParser {
    /// The tokens, ending with `.end`.
    var tokens: [GraphToken]
    /// The index of the current token.
    var position = 0
    /// `--dim` overrides.
    var overrides: [String: Int]
    /// The overrides that named a `dim`.
    var usedOverrides: Set<String> = []
    /// The builder of the graph.
    var builder: GraphBuilder
    /// Dimension values, by name.
    var dims: [String: Int] = [:]
    /// Dimension names in declaration order (for messages).
    var dimOrder: [String] = []
    /// Tensors, by name (an alias maps to the node it names).
    var symbols: [String: NodeID] = [:]
    /// The current nesting of the recursive-descent parse.
    var depth = 0
    /// Whether an `output` statement was seen.
    var sawOutput = false
    /// The shape `i` and `j` take as values in the current statement (the broadcast shape of its
    /// tensor operands), or why there is none.
    var positionShape: Result<[Int], GraphError> = .failure(GraphError("no statement"))

    /// The statement keywords (for "did you mean" hints).
    static let keywords = ["graph", "dim", "input", "output"]

    /// Starts a parse.
    init(tokens: [GraphToken], overrides: [String: Int], name: String) {
        self.tokens = tokens
        self.overrides = overrides
        self.builder = GraphBuilder(name: name)
    }

    /// The current token.
    var current: GraphToken { tokens[position] }

    /// The token after the current one (the end token at the end).
    var next: GraphToken { tokens[min(position + 1, tokens.count - 1)] }

    /// Moves to the next token (staying on the end token).
    mutating func advance() { if position < tokens.count - 1 { position += 1 } }

    /// A diagnostic at a location, by default the current token's.
    func error(_ message: String, _ at: SourceLocation? = nil) -> Diagnostic {
        Diagnostic(message, at: at ?? current.location)
    }

    /// Consumes the symbol `s` or fails with "expected 's' CONTEXT".
    mutating func expectSymbol(_ s: String, _ context: String) throws(Diagnostic) {
        guard current.kind == .symbol(s) else { throw error("expected '\(s)' \(context), found \(current.spelling)") }
        advance()
    }

    /// Consumes an identifier or fails with "expected CONTEXT".
    mutating func expectIdentifier(_ context: String) throws(Diagnostic) -> (String, SourceLocation) {
        guard case .identifier(let name) = current.kind else {
            throw error("expected \(context), found \(current.spelling)")
        }
        let loc = current.location
        advance()
        return (name, loc)
    }

    /// Consumes the end of a line (or accepts the end of the text).
    mutating func endOfStatement() throws(Diagnostic) {
        switch current.kind {
        case .newline: advance()
        case .end: break
        case .identifier, .number, .symbol:
            throw error("unexpected \(current.spelling) after the statement; put one statement per line")
        }
    }

    // MARK: Statements

    /// Parses every statement and builds the graph.
    mutating func parseGraph() throws(Diagnostic) -> Graph {
        var first = true
        while current.kind != .end {
            if current.kind == .newline {
                advance()
                continue
            }
            guard case .identifier(let word) = current.kind else {
                throw error(
                    "expected a statement (graph, dim, input, output or NAME = EXPR), found \(current.spelling)")
            }
            if next.kind == .symbol("=") {
                try assignment()
            } else {
                switch word {
                case "graph":
                    guard first else {
                        throw error("'graph NAME' must be the first statement; move it to the top of the file")
                    }
                    advance()
                    let (name, _) = try expectIdentifier("the graph's name after 'graph'")
                    builder = GraphBuilder(name: name)
                    try endOfStatement()
                case "dim": try dimension()
                case "input": try input()
                case "output": try output()
                default:
                    var hint = "; statements are graph, dim, input, output and NAME = EXPR"
                    if let k = closest(word, among: Self.keywords) {
                        hint = "; did you mean '\(k)'?"
                    } else if symbols[word] != nil {
                        hint = "; a tensor name alone does nothing: write 'output \(word)' to make it an output"
                    } else if next.kind == .newline || next.kind == .end {
                        hint = "; to name a tensor write '\(word) = EXPR'"
                    } else if next.kind == .symbol(":") {
                        hint = "; declare an input with 'input \(word): [...]'"
                    }
                    throw error("unknown statement '\(word)'\(hint)")
                }
            }
            first = false
        }
        for key in overrides.keys.sorted() where !usedOverrides.contains(key) {
            let known = dimOrder.isEmpty ? "it declares none" : "its dimensions are " + dimOrder.joined(separator: ", ")
            throw Diagnostic("--dim \(key)=...: the graph has no dimension '\(key)'; \(known)")
        }
        guard sawOutput else { throw error("the graph has no output; add 'output NAME'") }
        do {
            return try builder.build()
        } catch {
            throw Diagnostic(error.message)
        }
    }

    /// `dim NAME = EXPR`
    mutating func dimension() throws(Diagnostic) {
        advance()
        let (name, loc) = try expectIdentifier("a dimension name after 'dim'")
        guard dims[name] == nil else {
            throw error("dimension '\(name)' is declared twice; remove one of the declarations", loc)
        }
        guard symbols[name] == nil else {
            throw error("'\(name)' is already a tensor; choose another dimension name", loc)
        }
        try expectSymbol("=", "after the dimension name (dim \(name) = VALUE)")
        let expr = try expression()
        try endOfStatement()
        // The default is checked even when overridden, so a typo in it is reported.
        var value = try integer(expr)
        if let o = overrides[name] {
            usedOverrides.insert(name)
            guard o > 0 else {
                throw error("dimension '\(name)' must be positive, got \(o) (from the override \(name)=\(o))", loc)
            }
            value = o
        }
        guard value > 0 else {
            throw error("dimension '\(name)' must be positive, got \(value)", expr.location)
        }
        guard value <= GraphParser.maximumElements else {
            throw error(
                "dimension '\(name)' = \(value) is too large (at most 2^40 = \(GraphParser.maximumElements))",
                overrides[name] == nil ? expr.location : loc)
        }
        dims[name] = value
        dimOrder.append(name)
        builder.addDim(name, value)
    }

    /// `input NAME: [D, ...]` or `input NAME: TYPE[D, ...]` (TYPE: f32, f16, bf16, i32, bool).
    mutating func input() throws(Diagnostic) {
        advance()
        let (name, loc) = try expectIdentifier("an input name after 'input'")
        try checkFreshTensorName(name, loc)
        try expectSymbol(":", "after the input name (input \(name): [D, ...])")
        var type = ElementType.f32
        if case .identifier(let word) = current.kind {
            guard let t = ElementType(rawValue: word) else {
                let types = ElementType.allCases.map(\.rawValue).joined(separator: ", ")
                throw error("unknown element type '\(word)'; use one of \(types) (or none for f32)")
            }
            type = t
            advance()
        }
        guard current.kind == .symbol("[") else {
            throw error("expected a shape like [N, d] after 'input \(name):', found \(current.spelling)")
        }
        let shapeExpr = try primary()
        try endOfStatement()
        let shape = try shapeList(shapeExpr, what: "input '\(name)'")
        do {
            symbols[name] = try builder.input(name, shape, type)
        } catch {
            throw self.error(error.message, loc)
        }
    }

    /// `output NAME, ...`
    mutating func output() throws(Diagnostic) {
        advance()
        while true {
            let (name, loc) = try expectIdentifier("a tensor name after 'output'")
            guard let node = symbols[name] else {
                throw error("unknown tensor '\(name)'; assign it ('\(name) = ...') before 'output'", loc)
            }
            do {
                try builder.output(node)
            } catch {
                let actual = builder.name(of: node)
                let alias = actual == name ? "" : " ('\(name)' is another name for '\(actual)')"
                throw self.error(error.message + alias, loc)
            }
            sawOutput = true
            guard current.kind == .symbol(",") else { break }
            advance()
        }
        try endOfStatement()
    }

    /// `NAME = EXPR`
    mutating func assignment() throws(Diagnostic) {
        let (name, loc) = try expectIdentifier("a tensor name")
        try checkFreshTensorName(name, loc)
        advance()  // '='
        let expr = try expression()
        try endOfStatement()
        positionShape = operandShape(expr)
        let node = try build(expr)
        if builder.constantValue(of: node) != nil {
            throw error(
                "'\(name)' is a constant; only tensors computed from inputs are named (write the number "
                    + "where it is used, or declare a 'dim')", loc)
        }
        if !builder.hasUserName(node) {
            do {
                try builder.setName(node, name)
            } catch {
                throw self.error(error.message, loc)
            }
        }
        symbols[name] = node
    }

    /// Fails when a tensor name is already a tensor or a dimension, or is a reserved constant.
    func checkFreshTensorName(_ name: String, _ loc: SourceLocation) throws(Diagnostic) {
        guard symbols[name] == nil else {
            throw error("'\(name)' is already defined; tensors are assigned once, choose another name", loc)
        }
        guard dims[name] == nil else {
            throw error("'\(name)' is already a dimension; choose another tensor name", loc)
        }
        guard !["inf", "nan", "true", "false"].contains(name) else {
            throw error("'\(name)' is a constant (inf, nan, true, false are reserved); choose another name", loc)
        }
    }

    // MARK: Expressions

    /// Enters one level of recursive descent, failing past the cap.
    mutating func nest() throws(Diagnostic) {
        depth += 1
        guard depth <= GraphParser.maximumDepth else {
            throw error(
                "expression nested too deeply (more than \(GraphParser.maximumDepth) levels); "
                    + "split it into several statements")
        }
    }

    /// A node with children, failing when the tree gets too deep (see `GraphExpr.depth`).
    func node(_ kind: GraphExpr.Kind, _ loc: SourceLocation, children: [GraphExpr]) throws(Diagnostic) -> GraphExpr {
        var d = 1 + children.reduce(0) { max($0, $1.depth) }
        if case .binary(_, let lhs, let rhs) = kind, case .binary = lhs.kind {
            d = max(lhs.depth, 1 + rhs.depth)
        }
        guard d <= GraphParser.maximumDepth else {
            throw error(
                "expression nested too deeply (more than \(GraphParser.maximumDepth) levels); "
                    + "split it into several statements", loc)
        }
        return GraphExpr(kind: kind, location: loc, depth: d)
    }

    /// A full expression: `&&` of comparisons of sums.
    mutating func expression() throws(Diagnostic) -> GraphExpr {
        try nest()
        defer { depth -= 1 }
        var lhs = try comparison()
        while current.kind == .symbol("&&") {
            let loc = current.location
            advance()
            let rhs = try comparison()
            lhs = try node(.binary("&&", lhs, rhs), loc, children: [lhs, rhs])
        }
        return lhs
    }

    /// `sum (>= | > | <= | < | == | !=) sum`, or a sum.
    mutating func comparison() throws(Diagnostic) -> GraphExpr {
        let lhs = try sum()
        for op in [">=", ">", "<=", "<", "==", "!="] where current.kind == .symbol(op) {
            let loc = current.location
            advance()
            let rhs = try sum()
            return try node(.binary(op, lhs, rhs), loc, children: [lhs, rhs])
        }
        return lhs
    }

    /// Terms joined by `+` and `-`.
    mutating func sum() throws(Diagnostic) -> GraphExpr {
        var lhs = try term()
        while case .symbol(let op) = current.kind, op == "+" || op == "-" {
            let loc = current.location
            advance()
            let rhs = try term()
            lhs = try node(.binary(op, lhs, rhs), loc, children: [lhs, rhs])
        }
        return lhs
    }

    /// Factors joined by `*` and `/`.
    mutating func term() throws(Diagnostic) -> GraphExpr {
        var lhs = try unary()
        while case .symbol(let op) = current.kind, op == "*" || op == "/" || op == "%" {
            let loc = current.location
            advance()
            let rhs = try unary()
            lhs = try node(.binary(op, lhs, rhs), loc, children: [lhs, rhs])
        }
        return lhs
    }

    /// `-factor` or a primary.
    mutating func unary() throws(Diagnostic) -> GraphExpr {
        guard current.kind == .symbol("-") else { return try primary() }
        let loc = current.location
        advance()
        try nest()
        defer { depth -= 1 }
        let x = try unary()
        return try node(.negate(x), loc, children: [x])
    }

    /// A number, a name, a call, `( expr )` or `[ list ]`.
    mutating func primary() throws(Diagnostic) -> GraphExpr {
        let loc = current.location
        switch current.kind {
        case .number(let text):
            advance()
            return GraphExpr(kind: .number(text), location: loc, depth: 1)
        case .identifier(let name):
            advance()
            if current.kind == .symbol("[") {
                return try subscripted(GraphExpr(kind: .name(name), location: loc, depth: 1))
            }
            guard current.kind == .symbol("(") else { return GraphExpr(kind: .name(name), location: loc, depth: 1) }
            advance()
            var args: [GraphArgument] = []
            while current.kind != .symbol(")") {
                let argLoc = current.location
                var key: String?
                if case .identifier(let k) = current.kind, next.kind == .symbol("=") {
                    key = k
                    advance()
                    advance()
                }
                args.append(GraphArgument(key: key, value: try expression(), location: argLoc))
                if current.kind == .symbol(",") {
                    advance()
                } else if current.kind != .symbol(")") {
                    throw error(
                        "expected ',' or ')' after argument \(args.count) of '\(name)', found \(current.spelling); "
                            + "close the call with ')'")
                }
            }
            advance()
            return try node(.call(name, args), loc, children: args.map(\.value))
        case .symbol("("):
            advance()
            let e = try expression()
            try expectSymbol(")", "to close the '(' at \(loc)")
            return e
        case .symbol("["):
            advance()
            var items: [GraphExpr] = []
            while current.kind != .symbol("]") {
                items.append(try expression())
                if current.kind == .symbol(",") {
                    advance()
                } else if current.kind != .symbol("]") {
                    throw error("expected ',' or ']' in the list started at \(loc), found \(current.spelling)")
                }
            }
            advance()
            return try node(.list(items), loc, children: items)
        case .symbol, .newline, .end:
            throw error("expected an expression (a number, a tensor, a call or '('), found \(current.spelling)")
        }
    }
}

extension GraphTextParser {
    /// `x[items]`: NumPy-style basic slicing, sugar for nested `slice(x, axis=…, start=…,
    /// end=…)` calls. Items are `a:b`, `a:`, `:b` or `:` (the whole axis), and at most one `...`
    /// standing for the axes not named; without `...` the items name the leading axes. Bounds
    /// are integer expressions of numbers and dims (negative ones count from the end).
    mutating func subscripted(_ base: GraphExpr) throws(Diagnostic) -> GraphExpr {
        let open = current.location
        advance()
        // Each item: nil for `...`, else the optional bounds.
        var items: [(start: GraphExpr?, end: GraphExpr?, location: SourceLocation)?] = []
        var ellipsis = false
        while current.kind != .symbol("]") {
            let itemLoc = current.location
            if current.kind == .symbol("...") {
                guard !ellipsis else { throw error("a subscript may hold only one '...'") }
                ellipsis = true
                advance()
                items.append(nil)
            } else {
                var start: GraphExpr?
                if current.kind != .symbol(":") {
                    if current.kind == .symbol(",") || current.kind == .symbol("]") {
                        throw error(
                            "expected a slice like a:b, ':' or '...' in the subscript, found \(current.spelling)")
                    }
                    start = try sum()
                }
                guard current.kind == .symbol(":") else {
                    throw error(
                        "indexing with a single position is not supported (it would drop the axis); "
                            + "slice one element with a:a+1", itemLoc)
                }
                advance()
                var end: GraphExpr?
                if current.kind != .symbol(",") && current.kind != .symbol("]") && current.kind != .symbol(":") {
                    end = try sum()
                }
                if current.kind == .symbol(":") {
                    throw error("slicing with a step is not supported; slice contiguous elements (a:b)")
                }
                items.append((start, end, itemLoc))
            }
            if current.kind == .symbol(",") {
                advance()
            } else if current.kind != .symbol("]") {
                throw error("expected ',' or ']' in the subscript started at \(open), found \(current.spelling)")
            }
        }
        advance()
        // Axis of each item: leading items count from 0, those after `...` from the end.
        let split = items.firstIndex { $0 == nil } ?? items.count
        var result = base
        for (k, item) in items.enumerated() {
            guard let item, item.start != nil || item.end != nil else { continue }
            let axis = k < split ? k : -(items.count - k)
            let loc = item.location
            func number(_ n: Int) -> GraphExpr { GraphExpr(kind: .number(String(n)), location: loc, depth: 1) }
            var args = [
                GraphArgument(key: nil, value: result, location: loc),
                GraphArgument(key: "axis", value: axis < 0 ? negative(number(-axis)) : number(axis), location: loc),
                GraphArgument(key: "start", value: item.start ?? number(0), location: loc),
            ]
            // `a:` runs to the end: the slice's end defaults to the axis size (end=None below).
            args.append(GraphArgument(key: "end", value: item.end ?? endOfAxis(loc), location: loc))
            result = try node(.call("slice", args), loc, children: args.map(\.value))
        }
        return result
    }

    private func negative(_ e: GraphExpr) -> GraphExpr {
        GraphExpr(kind: .negate(e), location: e.location, depth: e.depth + 1)
    }

    /// The marker for an omitted end bound (`a:`): the axis's size.
    private func endOfAxis(_ loc: SourceLocation) -> GraphExpr {
        GraphExpr(kind: .name(GraphParser.endOfAxisName), location: loc, depth: 1)
    }
}

/// The candidate closest to `word` by edit distance, if it is within 2 edits (for hints).
func closest(_ word: String, among candidates: [String]) -> String? {
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(c, word)
        if d <= 2 && d < (best?.1 ?? Int.max) { best = (c, d) }
    }
    return best?.0
}

/// The Levenshtein distance of two short strings (for "did you mean" hints).
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.prefix(64))
    let y = Array(b.prefix(64))
    guard !x.isEmpty else { return y.count }
    guard !y.isEmpty else { return x.count }
    var row = Array(0...y.count)
    for i in 1...x.count {
        var previous = row[0]
        row[0] = i
        for j in 1...y.count {
            let old = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (x[i - 1] == y[j - 1] ? 0 : 1))
            previous = old
        }
    }
    return row[y.count]
}
