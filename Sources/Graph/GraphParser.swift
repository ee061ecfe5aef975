import BlockIR

/// Parses the `.graph` text form (Docs/IR.md) into a `Graph`, through `GraphBuilder`.
///
/// Every error is a `Diagnostic` at the offending token saying what is wrong and what to do.
public enum GraphParser {
    /// Parses `.graph` text. `defaultName` names the graph when there is no `graph NAME` line;
    /// `dimOverrides` replace dim defaults (an override naming no `dim` is an error).
    public static func parse(
        _ source: String, defaultName: String, dimOverrides: [String: Int] = [:]
    ) throws(Diagnostic) -> Graph {
        var parser = Parser(tokens: try GraphLexer.tokenize(source), overrides: dimOverrides, name: defaultName)
        return try parser.parseGraph()
    }
}

/// An expression of the graph form, before it is built.
indirect enum GraphExpr {
    case number(String, SourceLocation)
    case name(String, SourceLocation)
    case call(String, [GraphArgument], SourceLocation)
    case binary(String, GraphExpr, GraphExpr, SourceLocation)
    case negate(GraphExpr, SourceLocation)
    case list([GraphExpr], SourceLocation)

    var location: SourceLocation {
        switch self {
        case .number(_, let l), .name(_, let l), .call(_, _, let l), .binary(_, _, _, let l), .negate(_, let l),
            .list(_, let l):
            return l
        }
    }
}

/// A call argument: positional or `key=value`.
struct GraphArgument {
    var key: String?
    var value: GraphExpr
    var location: SourceLocation
}

private struct Parser {
    var tokens: [GraphToken]
    var position = 0
    var overrides: [String: Int]
    var usedOverrides: Set<String> = []
    var graphName: String
    var builder: GraphBuilder
    var dims: [String: Int] = [:]
    var symbols: [String: NodeID] = [:]
    var depth = 0
    var sawOutput = false

    init(tokens: [GraphToken], overrides: [String: Int], name: String) {
        self.tokens = tokens
        self.overrides = overrides
        self.graphName = name
        self.builder = GraphBuilder(name: name)
    }

    var current: GraphToken { tokens[position] }

    mutating func advance() { if position < tokens.count - 1 { position += 1 } }

    func error(_ message: String, _ at: SourceLocation? = nil) -> Diagnostic {
        Diagnostic(message, at: at ?? current.location)
    }

    mutating func expectSymbol(_ s: String, _ context: String) throws(Diagnostic) {
        guard current.kind == .symbol(s) else { throw error("expected '\(s)' \(context), found \(current.spelling)") }
        advance()
    }

    mutating func expectIdentifier(_ context: String) throws(Diagnostic) -> (String, SourceLocation) {
        guard case .identifier(let name) = current.kind else {
            throw error("expected \(context), found \(current.spelling)")
        }
        let loc = current.location
        advance()
        return (name, loc)
    }

    mutating func endOfStatement() throws(Diagnostic) {
        switch current.kind {
        case .newline: advance()
        case .end: break
        default: throw error("unexpected \(current.spelling) after the statement; put one statement per line")
        }
    }

    // MARK: Statements

    mutating func parseGraph() throws(Diagnostic) -> Graph {
        var first = true
        while current.kind != .end {
            if current.kind == .newline {
                advance()
                continue
            }
            guard case .identifier(let word) = current.kind else {
                throw error("expected a statement (graph, dim, input, output or NAME = ...), found \(current.spelling)")
            }
            let next = tokens[min(position + 1, tokens.count - 1)].kind
            if next == .symbol("=") {
                try assignment()
            } else {
                switch word {
                case "graph":
                    guard first else { throw error("'graph NAME' must be the first statement") }
                    advance()
                    let (name, _) = try expectIdentifier("the graph's name after 'graph'")
                    graphName = name
                    builder = GraphBuilder(name: name)
                    try endOfStatement()
                case "dim": try dimension()
                case "input": try input()
                case "output": try output()
                default:
                    throw error("unknown statement '\(word)'; statements are graph, dim, input, output and NAME = EXPR")
                }
            }
            first = false
        }
        for key in overrides.keys.sorted() where !usedOverrides.contains(key) {
            let known = dims.keys.sorted().joined(separator: ", ")
            throw Diagnostic("--dim \(key)=...: the graph has no dimension '\(key)'; its dimensions are: \(known)")
        }
        guard sawOutput else { throw error("the graph has no output; add 'output NAME'") }
        do {
            return try builder.build()
        } catch {
            throw Diagnostic(error.message)
        }
    }

    mutating func dimension() throws(Diagnostic) {
        advance()
        let (name, loc) = try expectIdentifier("a dimension name after 'dim'")
        guard dims[name] == nil else { throw error("dimension '\(name)' is declared twice", loc) }
        try expectSymbol("=", "after the dimension name")
        let expr = try expression()
        var value = try integer(expr)
        if let o = overrides[name] {
            value = o
            usedOverrides.insert(name)
        }
        guard value > 0 else { throw error("dimension '\(name)' must be positive, got \(value)", expr.location) }
        guard value <= 1 << 24 else {
            throw error("dimension '\(name)' = \(value) is too large (at most \(1 << 24))", expr.location)
        }
        dims[name] = value
        builder.addDim(name, value)
        try endOfStatement()
    }

    mutating func input() throws(Diagnostic) {
        advance()
        let (name, loc) = try expectIdentifier("an input name after 'input'")
        guard symbols[name] == nil else { throw error("'\(name)' is already defined; choose another name", loc) }
        try expectSymbol(":", "after the input name (input NAME: [D, ...])")
        let shapeExpr = try primary()
        let shape = try shapeList(shapeExpr, what: "input '\(name)'")
        do {
            symbols[name] = try builder.input(name, shape)
        } catch {
            throw self.error(error.message, loc)
        }
        try endOfStatement()
    }

    mutating func output() throws(Diagnostic) {
        advance()
        repeat {
            if current.kind == .symbol(",") { advance() }
            let (name, loc) = try expectIdentifier("a tensor name after 'output'")
            guard let node = symbols[name] else {
                throw error("unknown tensor '\(name)'; assign it ('\(name) = ...') before 'output'", loc)
            }
            do {
                try builder.output(node, name: builder.hasUserName(node) ? nil : name)
            } catch {
                throw self.error(error.message, loc)
            }
            sawOutput = true
        } while current.kind == .symbol(",")
        try endOfStatement()
    }

    mutating func assignment() throws(Diagnostic) {
        let (name, loc) = try expectIdentifier("a tensor name")
        guard symbols[name] == nil else {
            throw error("'\(name)' is already defined; tensors are assigned once, choose another name", loc)
        }
        guard dims[name] == nil, name != "i", name != "j" else {
            throw error("'\(name)' names a dimension or a mask index; choose another tensor name", loc)
        }
        advance()  // '='
        let expr = try expression()
        let node = try build(expr)
        if !builder.hasUserName(node) && builder.constantValue(of: node) == nil {
            do {
                try builder.setName(node, name)
            } catch {
                throw self.error(error.message, loc)
            }
        }
        if builder.constantValue(of: node) != nil {
            throw error("'\(name)' is a constant; assign tensors computed from inputs (use the number directly)", loc)
        }
        symbols[name] = node
        try endOfStatement()
    }

    // MARK: Expressions

    mutating func nest() throws(Diagnostic) {
        depth += 1
        guard depth <= 200 else { throw error("expression nested too deeply (more than 200 levels)") }
    }

    mutating func expression() throws(Diagnostic) -> GraphExpr {
        try nest()
        defer { depth -= 1 }
        var lhs = try comparison()
        while current.kind == .symbol("&&") {
            let loc = current.location
            advance()
            lhs = .binary("&&", lhs, try comparison(), loc)
        }
        return lhs
    }

    mutating func comparison() throws(Diagnostic) -> GraphExpr {
        let lhs = try sum()
        for op in [">=", ">", "<=", "<", "==", "!="] where current.kind == .symbol(op) {
            let loc = current.location
            advance()
            return .binary(op, lhs, try sum(), loc)
        }
        return lhs
    }

    mutating func sum() throws(Diagnostic) -> GraphExpr {
        var lhs = try term()
        while current.kind == .symbol("+") || current.kind == .symbol("-") {
            guard case .symbol(let op) = current.kind else { break }
            let loc = current.location
            advance()
            lhs = .binary(op, lhs, try term(), loc)
        }
        return lhs
    }

    mutating func term() throws(Diagnostic) -> GraphExpr {
        var lhs = try unary()
        while current.kind == .symbol("*") || current.kind == .symbol("/") {
            guard case .symbol(let op) = current.kind else { break }
            let loc = current.location
            advance()
            lhs = .binary(op, lhs, try unary(), loc)
        }
        return lhs
    }

    mutating func unary() throws(Diagnostic) -> GraphExpr {
        if current.kind == .symbol("-") {
            let loc = current.location
            advance()
            try nest()
            defer { depth -= 1 }
            return .negate(try unary(), loc)
        }
        return try primary()
    }

    mutating func primary() throws(Diagnostic) -> GraphExpr {
        let loc = current.location
        switch current.kind {
        case .number(let text):
            advance()
            return .number(text, loc)
        case .identifier(let name):
            advance()
            guard current.kind == .symbol("(") else { return .name(name, loc) }
            advance()
            var args: [GraphArgument] = []
            while current.kind != .symbol(")") {
                let argLoc = current.location
                var key: String?
                if case .identifier(let k) = current.kind,
                    tokens[min(position + 1, tokens.count - 1)].kind == .symbol("=")
                {
                    key = k
                    advance()
                    advance()
                }
                args.append(GraphArgument(key: key, value: try expression(), location: argLoc))
                if current.kind == .symbol(",") {
                    advance()
                } else if current.kind != .symbol(")") {
                    throw error("expected ',' or ')' in the arguments of '\(name)', found \(current.spelling)")
                }
            }
            advance()
            return .call(name, args, loc)
        case .symbol("("):
            advance()
            let e = try expression()
            try expectSymbol(")", "to close '('")
            return e
        case .symbol("["):
            advance()
            var items: [GraphExpr] = []
            while current.kind != .symbol("]") {
                items.append(try expression())
                if current.kind == .symbol(",") {
                    advance()
                } else if current.kind != .symbol("]") {
                    throw error("expected ',' or ']' in a list, found \(current.spelling)")
                }
            }
            advance()
            return .list(items, loc)
        default:
            throw error("expected an expression, found \(current.spelling)")
        }
    }

    // MARK: Integer expressions (dims, shapes, axes)

    func integer(_ e: GraphExpr) throws(Diagnostic) -> Int {
        switch e {
        case .number(let text, let loc):
            guard let v = Int(text) else { throw error("expected an integer, found '\(text)'", loc) }
            return v
        case .name(let n, let loc):
            guard let v = dims[n] else {
                throw error("unknown dimension '\(n)'; declare it with 'dim \(n) = ...'", loc)
            }
            return v
        case .negate(let x, let loc):
            let (v, o) = (0).subtractingReportingOverflow(try integer(x))
            guard !o else { throw error("integer overflow", loc) }
            return v
        case .binary(let op, let a, let b, let loc):
            let (x, y) = (try integer(a), try integer(b))
            let r: (Int, Bool)
            switch op {
            case "+": r = x.addingReportingOverflow(y)
            case "-": r = x.subtractingReportingOverflow(y)
            case "*": r = x.multipliedReportingOverflow(by: y)
            case "/":
                guard y != 0 else { throw error("division by zero", loc) }
                r = x.dividedReportingOverflow(by: y)
            default: throw error("'\(op)' is not allowed in an integer expression", loc)
            }
            guard !r.1 else { throw error("integer overflow", loc) }
            return r.0
        case .call(let n, _, let loc): throw error("expected an integer, found a call to '\(n)'", loc)
        case .list(_, let loc): throw error("expected an integer, found a list", loc)
        }
    }

    func shapeList(_ e: GraphExpr, what: String) throws(Diagnostic) -> [Int] {
        guard case .list(let items, let loc) = e else {
            throw error("expected a shape like [N, d] for \(what)", e.location)
        }
        guard items.count <= 6 else { throw error("\(what) has rank \(items.count); at most 6 is supported", loc) }
        var shape: [Int] = []
        var count = 1
        for item in items {
            let v = try integer(item)
            guard v > 0 else { throw error("dimensions must be positive, got \(v)", item.location) }
            let (c, o) = count.multipliedReportingOverflow(by: v)
            guard !o, c <= 1 << 40 else { throw error("\(what) has too many elements (more than 2^40)", item.location) }
            count = c
            shape.append(v)
        }
        return shape
    }

    func bool(_ e: GraphExpr) throws(Diagnostic) -> Bool {
        if case .name(let n, _) = e, n == "true" || n == "false" { return n == "true" }
        throw error("expected true or false", e.location)
    }

    // MARK: Building tensors

    mutating func build(_ e: GraphExpr) throws(Diagnostic) -> NodeID {
        switch e {
        case .number(let text, let loc):
            guard let v = Float(text) else { throw error("'\(text)' is not a number", loc) }
            return builder.constant(v)
        case .name(let n, let loc):
            if let node = symbols[n] { return node }
            if let d = dims[n] { return builder.constant(Float(d)) }
            if n == "inf" { return builder.constant(.infinity) }
            if n == "nan" { return builder.constant(.nan) }
            throw error("unknown tensor '\(n)'; declare it with 'input \(n): [...]' or assign it before use", loc)
        case .negate(let x, let loc):
            let v = try build(x)
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.unary(.neg, v) }
        case .binary(let op, let a, let b, let loc):
            let ops: [String: BinaryOp] = ["+": .add, "-": .sub, "*": .mul, "/": .div]
            guard let bop = ops[op] else {
                throw error("'\(op)' compares indices; it is allowed only in the predicate of where(...)", loc)
            }
            let x = try build(a)
            let y = try build(b)
            return try guarded(loc) { (g: inout GraphBuilder) throws(GraphError) in try g.binary(bop, x, y) }
        case .list(_, let loc):
            throw error("a list is not a tensor; lists are for shapes and permutations", loc)
        case .call(let name, let args, let loc):
            return try call(name, args, loc)
        }
    }

    mutating func guarded(
        _ loc: SourceLocation, _ body: (inout GraphBuilder) throws(GraphError) -> NodeID
    ) throws(Diagnostic) -> NodeID {
        do {
            return try body(&builder)
        } catch {
            throw self.error(error.message, loc)
        }
    }

    static let functions: [String] =
        UnaryOp.allCases.map(\.rawValue) + BinaryOp.allCases.map(\.rawValue) + [
            "matmul", "reduce_sum", "reduce_max", "reduce_mean", "transpose", "reshape", "where", "softmax",
            "layernorm", "rmsnorm",
        ]

    /// Splits arguments into positional values and keywords, checking the keywords.
    func arguments(
        _ name: String, _ args: [GraphArgument], positional: ClosedRange<Int>, keys: [String], _ loc: SourceLocation
    ) throws(Diagnostic) -> ([GraphExpr], [String: GraphExpr]) {
        var values: [GraphExpr] = []
        var keyed: [String: GraphExpr] = [:]
        for a in args {
            if let k = a.key {
                guard keys.contains(k) else {
                    let allowed = keys.isEmpty ? "it takes none" : "it takes " + keys.joined(separator: ", ")
                    throw error("'\(name)' has no argument '\(k)'; \(allowed)", a.location)
                }
                guard keyed[k] == nil else { throw error("argument '\(k)' is given twice", a.location) }
                keyed[k] = a.value
            } else {
                guard keyed.isEmpty else {
                    throw error("positional arguments must come before keyword arguments", a.location)
                }
                values.append(a.value)
            }
        }
        guard positional.contains(values.count) else {
            let count =
                positional.lowerBound == positional.upperBound
                ? "\(positional.lowerBound)" : "\(positional.lowerBound) to \(positional.upperBound)"
            throw error(
                "'\(name)' takes \(count) positional argument\(positional.upperBound == 1 ? "" : "s"), got \(values.count)",
                loc)
        }
        return (values, keyed)
    }

    mutating func call(_ name: String, _ args: [GraphArgument], _ loc: SourceLocation) throws(Diagnostic) -> NodeID {
        if let op = UnaryOp(rawValue: name) {
            let (v, _) = try arguments(name, args, positional: 1...1, keys: [], loc)
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.unary(op, x) }
        }
        if let op = BinaryOp(rawValue: name) {
            let (v, _) = try arguments(name, args, positional: 2...2, keys: [], loc)
            let x = try build(v[0])
            let y = try build(v[1])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.binary(op, x, y) }
        }
        switch name {
        case "matmul":
            let (v, k) = try arguments(name, args, positional: 2...2, keys: ["transpose_a", "transpose_b"], loc)
            let ta = try k["transpose_a"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e) } ?? false
            let tb = try k["transpose_b"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e) } ?? false
            let x = try build(v[0])
            let y = try build(v[1])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.matmul(x, y, transposeA: ta, transposeB: tb)
            }
        case "reduce_sum", "reduce_max", "reduce_mean":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["axis", "keepdims"], loc)
            guard !(v.count == 2 && k["axis"] != nil) else { throw error("axis is given twice", loc) }
            let axis =
                try (v.count == 2 ? v[1] : k["axis"]).map { (e: GraphExpr) throws(Diagnostic) in try integer(e) }
                ?? -1
            let keep = try k["keepdims"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e) } ?? false
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                switch name {
                case "reduce_sum": return try b.reduce(.sum, x, axis: axis, keepDims: keep)
                case "reduce_max": return try b.reduce(.max, x, axis: axis, keepDims: keep)
                default: return try b.mean(x, axis: axis, keepDims: keep)
                }
            }
        case "transpose":
            let (v, k) = try arguments(name, args, positional: 1...1, keys: ["perm"], loc)
            let x = try build(v[0])
            if let p = k["perm"] {
                guard case .list(let items, _) = p else {
                    throw error("perm must be a list like [0, 2, 1]", p.location)
                }
                var perm: [Int] = []
                for item in items { perm.append(try integer(item)) }
                return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                    try b.transpose(x, permutation: perm)
                }
            }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.transposeLast(x) }
        case "reshape":
            let (v, _) = try arguments(name, args, positional: 2...2, keys: [], loc)
            let x = try build(v[0])
            let shape = try shapeList(v[1], what: "reshape")
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.reshape(x, shape) }
        case "where":
            let (v, _) = try arguments(name, args, positional: 3...3, keys: [], loc)
            let predicate = try self.predicate(v[0])
            let x = try build(v[1])
            let fillNode = try build(v[2])
            guard let fill = builder.constantValue(of: fillNode) else {
                throw error("the fill value of where(...) must be a constant such as -inf or 0", v[2].location)
            }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.mask(x, predicate, fill: fill)
            }
        case "softmax":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["axis"], loc)
            let axis =
                try (v.count == 2 ? v[1] : k["axis"]).map { (e: GraphExpr) throws(Diagnostic) in try integer(e) }
                ?? -1
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.softmax(x, axis: axis) }
        case "layernorm":
            let (v, k) = try arguments(name, args, positional: 1...3, keys: ["eps"], loc)
            let eps = try k["eps"].map { (e: GraphExpr) throws(Diagnostic) in try float(e) } ?? 1e-5
            let x = try build(v[0])
            let gamma = v.count > 1 ? try build(v[1]) : nil
            let beta = v.count > 2 ? try build(v[2]) : nil
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.layerNorm(x, gamma: gamma, beta: beta, epsilon: eps)
            }
        case "rmsnorm":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["eps"], loc)
            let eps = try k["eps"].map { (e: GraphExpr) throws(Diagnostic) in try float(e) } ?? 1e-6
            let x = try build(v[0])
            let gamma = v.count > 1 ? try build(v[1]) : nil
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.rmsNorm(x, gamma: gamma, epsilon: eps)
            }
        default:
            let suggestion = Self.functions.min { editDistance($0, name) < editDistance($1, name) }
            let hint = suggestion.flatMap { editDistance($0, name) <= 2 ? "; did you mean '\($0)'?" : nil } ?? ""
            throw error("unknown function '\(name)'\(hint)", loc)
        }
    }

    mutating func float(_ e: GraphExpr) throws(Diagnostic) -> Float {
        let node = try build(e)
        guard let v = builder.constantValue(of: node) else { throw error("expected a number", e.location) }
        return v
    }

    // MARK: Mask predicates

    func predicate(_ e: GraphExpr) throws(Diagnostic) -> Predicate {
        switch e {
        case .binary("&&", let a, let b, _):
            return Predicate(try predicate(a).atoms + predicate(b).atoms)
        case .binary(let op, let a, let b, let loc) where [">=", ">", "<=", "<", "=="].contains(op):
            let (x, y) = (try affine(a), try affine(b))
            guard let d = subtract(x, y) else { throw error("index expression overflows", loc) }
            let (ai, bj, c) = d
            let atom: PredicateAtom
            switch op {
            case ">=": atom = .affineNonNegative(rowCoefficient: ai, columnCoefficient: bj, constant: c)
            case ">": atom = .affineNonNegative(rowCoefficient: ai, columnCoefficient: bj, constant: c - 1)
            case "<=": atom = .affineNonNegative(rowCoefficient: -ai, columnCoefficient: -bj, constant: -c)
            case "<": atom = .affineNonNegative(rowCoefficient: -ai, columnCoefficient: -bj, constant: -c - 1)
            default: atom = .affineZero(rowCoefficient: ai, columnCoefficient: bj, constant: c)
            }
            return Predicate([atom])
        case .binary("!=", _, _, let loc):
            throw error("'!=' is not supported in masks; use two comparisons or same_segment", loc)
        case .call("same_segment", let args, let loc):
            guard args.count == 3, args.allSatisfy({ $0.key == nil }),
                case .name("i", _) = args[0].value, case .name("j", _) = args[1].value,
                case .list(let items, _) = args[2].value
            else { throw error("same_segment takes (i, j, [boundary, ...])", loc) }
            var bounds: [Int] = []
            for item in items {
                let b = try integer(item)
                guard b > (bounds.last ?? 0) else {
                    throw error("segment boundaries must be positive and increasing", item.location)
                }
                bounds.append(b)
            }
            return Predicate([.sameSegment(boundaries: bounds)])
        default:
            throw error("expected a mask predicate such as 'i >= j' or 'i - j < 256'", e.location)
        }
    }

    func subtract(_ x: (Int, Int, Int), _ y: (Int, Int, Int)) -> (Int, Int, Int)? {
        let a = x.0.subtractingReportingOverflow(y.0)
        let b = x.1.subtractingReportingOverflow(y.1)
        let c = x.2.subtractingReportingOverflow(y.2)
        guard !a.1, !b.1, !c.1, abs(a.0) < 1 << 40, abs(b.0) < 1 << 40, abs(c.0) < 1 << 40 else { return nil }
        return (a.0, b.0, c.0)
    }

    /// `(a, b, c)` for `a·i + b·j + c`.
    func affine(_ e: GraphExpr) throws(Diagnostic) -> (Int, Int, Int) {
        switch e {
        case .name("i", _): return (1, 0, 0)
        case .name("j", _): return (0, 1, 0)
        case .number, .name: return (0, 0, try integer(e))
        case .negate(let x, let loc):
            guard let r = subtract((0, 0, 0), try affine(x)) else { throw error("index expression overflows", loc) }
            return r
        case .binary("+", let a, let b, let loc):
            guard let r = subtract(try affine(a), try subtract((0, 0, 0), affine(b)) ?? (0, 0, 0)) else {
                throw error("index expression overflows", loc)
            }
            return r
        case .binary("-", let a, let b, let loc):
            guard let r = subtract(try affine(a), try affine(b)) else { throw error("index expression overflows", loc) }
            return r
        case .binary("*", let a, let b, let loc):
            let (x, y) = (try affine(a), try affine(b))
            let (k, v): (Int, (Int, Int, Int))
            if x.0 == 0 && x.1 == 0 {
                (k, v) = (x.2, y)
            } else if y.0 == 0 && y.1 == 0 {
                (k, v) = (y.2, x)
            } else {
                throw error("masks are affine in i and j; a product needs a constant side", loc)
            }
            let p = [v.0, v.1, v.2].map { $0.multipliedReportingOverflow(by: k) }
            guard p.allSatisfy({ !$0.overflow && abs($0.partialValue) < 1 << 40 }) else {
                throw error("index expression overflows", loc)
            }
            return (p[0].partialValue, p[1].partialValue, p[2].partialValue)
        default:
            throw error("expected an affine expression in i and j", e.location)
        }
    }
}

/// The Levenshtein distance of two short strings (for "did you mean" hints).
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a)
    let y = Array(b)
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
