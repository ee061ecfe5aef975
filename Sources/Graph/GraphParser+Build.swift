import BlockIR

extension GraphExpr {
    /// The operators of integer and tensor arithmetic.
    static let arithmetic: Set<String> = ["+", "-", "*", "/"]
    /// Every binary operator.
    static let operators: Set<String> = arithmetic.union(["%", ">=", ">", "<=", "<", "==", "!=", "&&"])
}

/// Evaluating parsed expressions: integers (dims, shapes, axes) and tensors (through the builder).
extension GraphTextParser {
    // MARK: Integer expressions (dims, shapes, axes)

    /// The value of an integer expression over literals and dimension names.
    func integer(_ e: GraphExpr) throws(Diagnostic) -> Int {
        switch e.kind {
        case .number(let text):
            if let v = Int(text) { return v }
            if text.allSatisfy(\.isNumber) {
                throw error("the integer \(text) is too large; use a value below 2^40", e.location)
            }
            throw error("expected an integer, found '\(text)'", e.location)
        case .name(let n):
            if let v = dims[n] { return v }
            if symbols[n] != nil {
                throw error("'\(n)' is a tensor; integer expressions use numbers and dimensions", e.location)
            }
            throw error("unknown dimension '\(n)'; declare it before use with 'dim \(n) = ...'", e.location)
        case .negate(let x):
            return try checked(0.subtractingReportingOverflow(try integer(x)), e.location)
        case .binary:
            let chain = e.leftChain(through: GraphExpr.arithmetic)
            guard !chain.steps.isEmpty else {
                guard case .binary(let op, _, _) = e.kind else { return try integer(e) }
                throw error("'\(op)' is not allowed in an integer expression; use + - * / and parentheses", e.location)
            }
            var x = try integer(chain.first)
            for step in chain.steps {
                let y = try integer(step.rhs)
                switch step.op {
                case "+": x = try checked(x.addingReportingOverflow(y), step.location)
                case "-": x = try checked(x.subtractingReportingOverflow(y), step.location)
                case "*": x = try checked(x.multipliedReportingOverflow(by: y), step.location)
                default:
                    guard y != 0 else { throw error("division by zero in an integer expression", step.location) }
                    x = try checked(x.dividedReportingOverflow(by: y), step.location)
                }
            }
            return x
        case .call(let n, _):
            throw error("expected an integer, found a call to '\(n)'; sizes are numbers and dimensions", e.location)
        case .list:
            throw error("expected an integer, found a list", e.location)
        }
    }

    private func checked(_ r: (partialValue: Int, overflow: Bool), _ loc: SourceLocation) throws(Diagnostic) -> Int {
        guard !r.overflow else { throw error("integer overflow; use smaller sizes", loc) }
        return r.partialValue
    }

    /// A shape `[D, ...]`: positive integers, rank at most 6, at most 2^40 elements.
    func shapeList(_ e: GraphExpr, what: String) throws(Diagnostic) -> [Int] {
        guard case .list(let items) = e.kind else {
            throw error("expected a shape like [N, d] for \(what)", e.location)
        }
        guard items.count <= 6 else {
            throw error("\(what) has rank \(items.count); at most 6 axes are supported", e.location)
        }
        var shape: [Int] = []
        var count = 1
        for item in items {
            let v = try integer(item)
            guard v > 0 else { throw error("dimensions must be positive, got \(v) for \(what)", item.location) }
            let (c, o) = count.multipliedReportingOverflow(by: v)
            guard !o, c <= GraphParser.maximumElements else {
                throw error("\(what) has too many elements (more than 2^40); use smaller dimensions", item.location)
            }
            count = c
            shape.append(v)
        }
        return shape
    }

    /// `true` or `false`.
    func bool(_ e: GraphExpr, _ key: String) throws(Diagnostic) -> Bool {
        if case .name(let n) = e.kind, n == "true" || n == "false" { return n == "true" }
        throw error("'\(key)' takes true or false", e.location)
    }

    /// An optional integer argument given positionally or by keyword (not both).
    func integerArgument(
        _ positional: GraphExpr?, _ keyed: GraphExpr?, key: String, default value: Int, _ loc: SourceLocation
    ) throws(Diagnostic) -> Int {
        if let positional, keyed != nil {
            throw error("'\(key)' is given twice (positionally and as \(key)=); keep one", positional.location)
        }
        guard let e = positional ?? keyed else { return value }
        return try integer(e)
    }

    // MARK: Building tensors

    /// Builds the node an expression computes.
    mutating func build(_ e: GraphExpr) throws(Diagnostic) -> NodeID {
        switch e.kind {
        case .number(let text):
            guard let v = Float(text) else { throw error("'\(text)' is not a number", e.location) }
            return builder.constant(v)
        case .name(let n):
            if let node = symbols[n] { return node }
            if let d = dims[n] { return builder.constant(Float(d)) }
            if n == "inf" { return builder.constant(.infinity) }
            if n == "nan" { return builder.constant(.nan) }
            if n == "i" || n == "j" { return try positionValue(n, e.location) }
            var hint = "declare it with 'input \(n): [...]' or assign it before use"
            if n == "true" || n == "false" {
                hint = "true and false are values of options such as transpose_b=true"
            }
            throw error("unknown tensor '\(n)'; \(hint)", e.location)
        case .negate(let x):
            let v = try build(x)
            return try guarded(e.location) { (b: inout GraphBuilder) throws(GraphError) in try b.unary(.neg, v) }
        case .binary(let op, _, _):
            let chain = e.leftChain(through: GraphExpr.arithmetic)
            guard op != "%" else {
                throw error(
                    "'%' (remainder) is allowed only on the mask indices in the predicate of where(...), e.g. "
                        + "where(i % 2 == 0, X, 0)", e.location)
            }
            if chain.steps.isEmpty { return try truth(e) }
            var x = try build(chain.first)
            for step in chain.steps {
                let bop: BinaryOp
                switch step.op {
                case "+": bop = .add
                case "-": bop = .sub
                case "*": bop = .mul
                default: bop = .div
                }
                let y = try build(step.rhs)
                let lhs = x
                x = try guarded(step.location) { (g: inout GraphBuilder) throws(GraphError) in
                    try g.binary(bop, lhs, y)
                }
            }
            return x
        case .list:
            throw error("a list is not a tensor; lists are for shapes, permutations and segment bounds", e.location)
        case .call(let name, let args):
            return try call(name, args, e.location)
        }
    }

    /// The comparison operators of the graph form and their ops.
    static let comparisons: [String: BinaryOp] = ["<": .lt, "<=": .le, ">": .gt, ">=": .ge, "==": .eq, "!=": .ne]

    /// A comparison (`a < b`, a `bool` tensor) or a conjunction of bool tensors (`&&`, iterated
    /// along its left chain) outside a mask predicate.
    mutating func truth(_ e: GraphExpr) throws(Diagnostic) -> NodeID {
        guard case .binary(let op, let a, let b) = e.kind else { return try build(e) }
        if op == "&&" {
            let chain = e.leftChain(through: ["&&"])
            var x = try build(chain.first)
            for step in chain.steps {
                let y = try build(step.rhs)
                let lhs = x
                x = try guarded(step.location) { (g: inout GraphBuilder) throws(GraphError) in
                    try g.binary(.logicalAnd, lhs, y)
                }
            }
            return x
        }
        guard let cmp = Self.comparisons[op] else { return try build(e) }
        let x = try build(a)
        let y = try build(b)
        return try guarded(e.location) { (g: inout GraphBuilder) throws(GraphError) in try g.binary(cmp, x, y) }
    }

    /// Whether an expression names a tensor (an input or an assigned name other than `i` and `j`,
    /// or a call other than `same_segment`): the first argument of `where` is then a `bool`
    /// tensor and `where` selects; otherwise it is a mask predicate on `i`, `j` and dims.
    func namesTensor(_ e: GraphExpr) -> Bool {
        switch e.kind {
        case .name(let n):
            // `i` and `j` in a condition are the mask indices even where a tensor has that name.
            guard n != "i" && n != "j" else { return false }
            return symbols[n].map { builder.constantValue(of: $0) == nil } ?? false
        case .number, .list: return false
        case .negate(let x): return namesTensor(x)
        case .binary:
            let chain = e.leftChain(through: GraphExpr.operators)
            return namesTensor(chain.first) || chain.steps.contains { namesTensor($0.rhs) }
        case .call(let name, _): return name != "same_segment"
        }
    }

    /// A `where` condition's `same_segment(i, j, T)` atoms whose boundaries are a tensor `T`
    /// (offsets given at run time) and its other atoms; nil when it has none.
    func runtimeSegments(_ e: GraphExpr) -> (segments: [GraphExpr], rest: [GraphExpr])? {
        let chain = e.leftChain(through: ["&&"])
        var segments: [GraphExpr] = []
        var rest: [GraphExpr] = []
        for atom in [chain.first] + chain.steps.map(\.rhs) {
            if case .call("same_segment", let all) = atom.kind, case let args = all.filter({ $0.key == nil }),
                args.count == 3, case .name(let n) = args[2].value.kind, symbols[n] != nil
            {
                segments.append(atom)
            } else {
                rest.append(atom)
            }
        }
        return segments.isEmpty ? nil : (segments, rest)
    }

    /// `where(same_segment(i, j, offsets), x, fill)` with `offsets` an `i32` tensor of `D + 1`
    /// document boundaries (cu_seqlens: document `s` holds positions `offsets[s] ..< offsets[s+1]`):
    /// position `p`'s document is the number of starts `offsets[1 ..< D]` at or before `p`, and
    /// `x` is kept where the row's and the column's documents agree. Nothing is read at a position
    /// taken from the offsets, so no offsets (unsorted, past the end) can make a read leave a tensor.
    ///
    /// With `max_len=L` (jagged batches: no segment holds more than `L` positions, checked at run
    /// time with the offsets), two positions of one segment are less than `L` apart, so the band
    /// `i - j < L && j - i < L` is returned as mask atoms to add: they keep every element the
    /// segments keep (given the check) and let R9 bound the loops by the band.
    mutating func segmentSelect(
        _ x: NodeID, _ atom: GraphExpr, fill: Float
    ) throws(Diagnostic) -> (NodeID, [PredicateAtom]) {
        guard case .call(_, let allArguments) = atom.kind else { return (x, []) }
        var maxLength: Int?
        var args: [GraphArgument] = []
        for a in allArguments {
            guard let key = a.key else {
                args.append(a)
                continue
            }
            guard key == "max_len", maxLength == nil else {
                throw error(
                    "same_segment takes one keyword argument, max_len (the most positions of one segment); write "
                        + "same_segment(i, j, offsets) or same_segment(i, j, offsets, max_len=L)", a.location)
            }
            let m = try integer(a.value)
            guard m >= 1 else {
                throw error(
                    "same_segment's max_len is the most positions of one segment; it must be at least 1, got \(m)",
                    a.value.location)
            }
            maxLength = m
        }
        guard args.count == 3 else {
            throw error(
                "same_segment takes 3 arguments (i, j, offsets) and an optional max_len=L, got \(args.count)",
                atom.location)
        }
        guard case .name("i") = args[0].value.kind, case .name("j") = args[1].value.kind,
            case .name(let name) = args[2].value.kind, let offsets = symbols[name]
        else {
            throw error(
                "same_segment's first two arguments must be i and j: same_segment(i, j, offsets)", atom.location)
        }
        let shape = builder.shape(of: offsets)
        guard builder.elementType(of: offsets) == .i32, shape.count == 1, shape[0] >= 2 else {
            throw error(
                "same_segment(i, j, \(name)) takes its document boundaries from an i32 tensor of D + 1 offsets "
                    + "(cu_seqlens), but '\(name)' is \(builder.elementType(of: offsets))\(shape)",
                args[2].value.location)
        }
        let xShape = builder.shape(of: x)
        guard xShape.count >= 2 else {
            throw error(
                "same_segment(i, j, \(name)) masks the last two axes, but the tensor has shape \(xShape)", atom.location
            )
        }
        let documents = shape[0] - 1
        let (rows, columns) = (xShape[xShape.count - 2], xShape[xShape.count - 1])
        var band: [PredicateAtom] = []
        if let m = maxLength {
            guard rows == columns else {
                throw error(
                    "same_segment(i, j, \(name), max_len=\(m)) bounds the segments of one sequence of positions, but "
                        + "the masked axes have \(rows) rows and \(columns) columns; drop max_len or mask a square "
                        + "tensor", atom.location)
            }
            guard documents * m >= rows else {
                throw error(
                    "same_segment(i, j, \(name), max_len=\(m)): \(documents) segments of at most \(m) positions "
                        + "cannot cover the \(rows) positions; give max_len at least \((rows + documents - 1) / documents) "
                        + "or more offsets", atom.location)
            }
            // |i - j| < m, as two affine atoms, only where the band is narrower than the axes.
            if m < rows {
                band = [
                    .affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: m - 1),
                    .affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: m - 1),
                ]
            }
        }
        builder.markSegmentOffsets(offsets, length: Swift.min(rows, columns), maxLength: maxLength)
        guard documents > 1 else { return (x, band) }
        let selected = try guarded(atom.location) { (b: inout GraphBuilder) throws(GraphError) in
            let starts = try b.cast(try b.slice(offsets, axis: 0, start: 1, end: documents), to: .f32)
            func document(_ n: Int) throws(GraphError) -> NodeID {
                let p = try b.position(shape: [n, documents - 1], axis: 0)
                let counted = try b.cast(try b.binary(.ge, p, starts), to: .f32)
                return try b.reduce(.sum, counted, axis: -1)
            }
            let rowDocument = try document(rows)
            let columnDocument = rows == columns ? rowDocument : try document(columns)
            let same = try b.binary(
                .eq, try b.reshape(rowDocument, [rows, 1]), try b.reshape(columnDocument, [1, columns]))
            return try b.select(same, x, b.constant(fill))
        }
        return (selected, band)
    }

    /// The location of the first `i / m`, `j / m`, `i % m` or `j % m` in an expression, if any.
    func indexQuotient(_ e: GraphExpr) -> SourceLocation? {
        switch e.kind {
        case .name, .number, .list: return nil
        case .negate(let x): return indexQuotient(x)
        case .call(_, let args):
            for a in args { if let site = indexQuotient(a.value) { return site } }
            return nil
        case .binary:
            let chain = e.leftChain(through: GraphExpr.operators)
            var previous = chain.first
            if let site = indexQuotient(chain.first) { return site }
            for step in chain.steps {
                if step.op == "/" || step.op == "%", case .name(let n) = previous.kind, n == "i" || n == "j" {
                    return step.location
                }
                if let site = indexQuotient(step.rhs) { return site }
                previous = step.rhs
            }
            return nil
        }
    }

    /// `i` or `j` as a value: the position along the second-to-last or last axis of the
    /// statement's operand shape.
    mutating func positionValue(_ n: String, _ loc: SourceLocation) throws(Diagnostic) -> NodeID {
        let axis = n == "i" ? -2 : -1
        switch positionShape {
        case .failure(let why):
            throw error(
                "'\(n)' as a value takes its shape from the tensors of its statement, but \(why.message); "
                    + "write pos(x, axis=\(axis)) with a tensor x of the shape you want", loc)
        case .success(let shape):
            guard shape.count >= 2 || (n == "j" && shape.count == 1) else {
                throw error(
                    "'\(n)' is the position along axis \(axis), but the statement's tensors have shape \(shape); "
                        + "write pos(x, axis=…) with a tensor x that has that axis", loc)
            }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.position(shape: shape, axis: axis)
            }
        }
    }

    /// The broadcast shape of the tensors an expression names (not counting mask predicates,
    /// shape lists or dimensions): the shape `i` and `j` take as values.
    func operandShape(_ e: GraphExpr) -> Result<[Int], GraphError> {
        var shapes: [[Int]] = []
        func collect(_ e: GraphExpr) {
            switch e.kind {
            case .name(let n):
                if let node = symbols[n], builder.constantValue(of: node) == nil {
                    shapes.append(builder.shape(of: node))
                }
            case .number, .list: break
            case .negate(let x): collect(x)
            case .binary(_, let a, let b):
                // Left chains are iterated (they may be long); right operands recurse.
                let chain = e.leftChain(through: GraphExpr.operators)
                guard !chain.steps.isEmpty else {
                    collect(a)
                    collect(b)
                    return
                }
                collect(chain.first)
                for step in chain.steps { collect(step.rhs) }
            case .call(let name, let args):
                if name == "pos", let first = args.first, case .list = first.value.kind,
                    let shape = try? shapeList(first.value, what: "pos")
                {
                    shapes.append(shape)
                }
                for (k, a) in args.enumerated() where !(name == "where" && k == 0 && !namesTensor(a.value)) {
                    collect(a.value)
                }
            }
        }
        collect(e)
        guard var shape = shapes.first else {
            return .failure(GraphError("it names no tensor"))
        }
        for s in shapes.dropFirst() {
            do {
                shape = try GraphBuilder.broadcastShape(shape, s, op: "the operands")
            } catch {
                return .failure(GraphError("its tensors' shapes do not broadcast (\(error.message))"))
            }
        }
        return .success(shape)
    }

    /// Runs a builder operation, turning its error into a diagnostic at `loc` and checking the
    /// result's element count.
    mutating func guarded(
        _ loc: SourceLocation, _ body: (inout GraphBuilder) throws(GraphError) -> NodeID
    ) throws(Diagnostic) -> NodeID {
        let node: NodeID
        do {
            node = try body(&builder)
        } catch {
            throw self.error(error.message, loc)
        }
        let shape = builder.shape(of: node)
        var count = 1
        for d in shape {
            let (c, o) = count.multipliedReportingOverflow(by: d)
            guard !o, c <= GraphParser.maximumElements else {
                throw error("the result has shape \(shape), more than 2^40 elements; use smaller dimensions", loc)
            }
            count = c
        }
        return node
    }

    /// The functions a call may name (for hints).
    static let functions: [String] =
        UnaryOp.allCases.map(\.rawValue) + BinaryOp.allCases.map(\.rawValue) + [
            "matmul", "reduce_sum", "reduce_max", "reduce_mean", "transpose", "reshape", "where", "softmax",
            "layernorm", "rmsnorm", "cast", "slice", "concat", "pos", "gather", "logical_not", "cumsum",
            "block_broadcast",
        ]

    /// Splits arguments into positional values and keywords, checking the keywords and the count.
    func arguments(
        _ name: String, _ args: [GraphArgument], positional: ClosedRange<Int>, keys: [String], _ loc: SourceLocation
    ) throws(Diagnostic) -> ([GraphExpr], [String: GraphExpr]) {
        var values: [GraphExpr] = []
        var keyed: [String: GraphExpr] = [:]
        for a in args {
            if let k = a.key {
                guard keys.contains(k) else {
                    let allowed = keys.isEmpty ? "it takes none" : "it takes " + keys.joined(separator: ", ")
                    let hint = closest(k, among: keys).map { "; did you mean '\($0)'?" } ?? ""
                    throw error("'\(name)' has no argument '\(k)' (\(allowed))\(hint)", a.location)
                }
                guard keyed[k] == nil else { throw error("argument '\(k)' is given twice; keep one", a.location) }
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
            let plural = positional.upperBound == 1 ? "" : "s"
            throw error("'\(name)' takes \(count) positional argument\(plural), got \(values.count)", loc)
        }
        return (values, keyed)
    }

    /// Builds a call.
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
            let ta = try k["transpose_a"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e, "transpose_a") }
            let tb = try k["transpose_b"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e, "transpose_b") }
            let x = try build(v[0])
            let y = try build(v[1])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.matmul(x, y, transposeA: ta ?? false, transposeB: tb ?? false)
            }
        case "reduce_sum", "reduce_max", "reduce_mean":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["axis", "keepdims"], loc)
            let axis = try integerArgument(v.count > 1 ? v[1] : nil, k["axis"], key: "axis", default: -1, loc)
            let keep = try k["keepdims"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e, "keepdims") }
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                switch name {
                case "reduce_sum": return try b.reduce(.sum, x, axis: axis, keepDims: keep ?? false)
                case "reduce_max": return try b.reduce(.max, x, axis: axis, keepDims: keep ?? false)
                default: return try b.mean(x, axis: axis, keepDims: keep ?? false)
                }
            }
        case "cumsum":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["axis", "reverse", "exclusive"], loc)
            let axis = try integerArgument(v.count > 1 ? v[1] : nil, k["axis"], key: "axis", default: -1, loc)
            let reverse = try k["reverse"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e, "reverse") }
            let exclusive = try k["exclusive"].map { (e: GraphExpr) throws(Diagnostic) in try bool(e, "exclusive") }
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.cumsum(x, axis: axis, reverse: reverse ?? false, exclusive: exclusive ?? false)
            }
        case "transpose":
            let (v, k) = try arguments(name, args, positional: 1...1, keys: ["perm"], loc)
            var perm: [Int]?
            if let p = k["perm"] {
                guard case .list(let items) = p.kind else {
                    throw error("perm must be a list of axes like [0, 2, 1]", p.location)
                }
                var axes: [Int] = []
                for item in items { axes.append(try integer(item)) }
                perm = axes
            }
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                if let perm { return try b.transpose(x, permutation: perm) }
                return try b.transposeLast(x)
            }
        case "cast":
            let (v, _) = try arguments(name, args, positional: 2...2, keys: [], loc)
            guard case .name(let typeName) = v[1].kind, let type = ElementType(rawValue: typeName) else {
                let types = ElementType.allCases.map(\.rawValue).joined(separator: ", ")
                throw error("cast takes an element type as its second argument (\(types))", v[1].location)
            }
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.cast(x, to: type) }
        case "block_broadcast":
            // block_broadcast(B, [128, 128]): each element of B repeated over a 128 x 128 block.
            let (v, _) = try arguments(name, args, positional: 2...2, keys: [], loc)
            let blocks = try shapeList(v[1], what: "block_broadcast's block sizes")
            let x = try build(v[0])
            guard builder.constantValue(of: x) == nil else {
                throw error("block_broadcast needs a tensor (a block mask), got a number", v[0].location)
            }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.blockBroadcast(x, blocks: blocks)
            }
        case "reshape":
            let (v, _) = try arguments(name, args, positional: 2...2, keys: [], loc)
            let shape = try shapeList(v[1], what: "reshape")
            let x = try build(v[0])
            guard builder.constantValue(of: x) == nil else {
                throw error("reshape needs a tensor, got a number; numbers broadcast without a reshape", v[0].location)
            }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.reshape(x, shape) }
        case "slice":
            // slice(x, axis=-1, start=0, end=32); `x[..., 0:32]` is sugar for it.
            let (v, k) = try arguments(name, args, positional: 1...1, keys: ["axis", "start", "end", "step"], loc)
            if let step = k["step"] {
                throw error("slicing with a step is not supported; slice contiguous elements", step.location)
            }
            guard let startExpr = k["start"], let endExpr = k["end"] else {
                throw error("slice needs start= and end= (e.g. slice(x, axis=-1, start=0, end=32))", loc)
            }
            let axis = try integerArgument(nil, k["axis"], key: "axis", default: -1, loc)
            let start = try integer(startExpr)
            let x = try build(v[0])
            var end: Int
            if case .name(GraphParser.endOfAxisName) = endExpr.kind {
                // `x[a:]`: to the end of the axis (an out-of-range axis is the builder's error).
                let s = builder.shape(of: x)
                end = axis < 0 ? (s.count + axis >= 0 ? s[s.count + axis] : 0) : (axis < s.count ? s[axis] : 0)
            } else {
                end = try integer(endExpr)
            }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.slice(x, axis: axis, start: start, end: end)
            }
        case "concat":
            // concat([a, b], axis=-1) or concat(a, b, axis=-1).
            let (v, k) = try arguments(name, args, positional: 1...64, keys: ["axis"], loc)
            let axis = try integerArgument(nil, k["axis"], key: "axis", default: -1, loc)
            var items = v
            if v.count == 1, case .list(let listed) = v[0].kind { items = listed }
            var parts: [NodeID] = []
            for item in items { parts.append(try build(item)) }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.concat(parts, axis: axis) }
        case "where":
            let (v, _) = try arguments(name, args, positional: 3...3, keys: [], loc)
            if let (segments, rest) = runtimeSegments(v[0]) {
                // Documents whose boundaries are data: a select by the documents' equality, then
                // the rest of the predicate as a mask.
                var x = try build(v[1])
                let fill = try float(v[2], "the fill value of where(...) (e.g. -inf or 0)")
                var atoms: [PredicateAtom] = []
                for s in segments {
                    let (kept, band) = try segmentSelect(x, s, fill: fill)
                    x = kept
                    atoms += band
                }
                for r in rest { atoms += try predicate(r).atoms }
                guard !atoms.isEmpty else { return x }
                let kept = x
                return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                    try b.mask(kept, Predicate(atoms), fill: fill)
                }
            }
            if namesTensor(v[0]) {
                // A bool tensor condition: an elementwise choice between two tensors or numbers.
                if let site = indexQuotient(v[0]) {
                    // `i / m` is a floor division in a mask and a division of numbers in a value:
                    // refuse to guess (the predicate's own error when it is not one).
                    let chain = v[0].leftChain(through: ["&&"])
                    for atom in [chain.first] + chain.steps.map(\.rhs) where indexQuotient(atom) == site {
                        _ = try predicate(atom)
                    }
                    throw error(
                        "'/' and '%' on i or j are mask predicates (floor division), but this condition names a "
                            + "tensor, where i and j are values; split it: where(PRED, where(COND, a, b), fill), "
                            + "or divide pos(x, axis=…) explicitly", site)
                }
                let c = try truth(v[0])
                do {
                    try builder.checkCondition(c)
                } catch {
                    throw self.error(error.message, v[0].location)
                }
                let x = try build(v[1])
                let y = try build(v[2])
                return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.select(c, x, y) }
            }
            let predicate = try self.predicate(v[0])
            let x = try build(v[1])
            let fill = try float(v[2], "the fill value of where(...) (e.g. -inf or 0)")
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.mask(x, predicate, fill: fill)
            }
        case "gather":
            let (v, k) = try arguments(name, args, positional: 2...3, keys: ["axis"], loc)
            let axis = try integerArgument(v.count > 2 ? v[2] : nil, k["axis"], key: "axis", default: 0, loc)
            let table = try build(v[0])
            let index = try build(v[1])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.gather(table, index, axis: axis)
            }
        case "logical_not":
            let (v, _) = try arguments(name, args, positional: 1...1, keys: [], loc)
            let x = try truth(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.logicalNot(x) }
        case "pos":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["axis"], loc)
            let axis = try integerArgument(v.count > 1 ? v[1] : nil, k["axis"], key: "axis", default: -1, loc)
            if case .list = v[0].kind {
                let shape = try shapeList(v[0], what: "pos")
                return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                    try b.position(shape: shape, axis: axis)
                }
            }
            let x = try build(v[0])
            guard builder.constantValue(of: x) == nil else {
                throw error(
                    "pos needs a tensor (or a shape like [N, d]) to take its shape from, got a number", v[0].location)
            }
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.position(of: x, axis: axis) }
        case "softmax":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["axis"], loc)
            let axis = try integerArgument(v.count > 1 ? v[1] : nil, k["axis"], key: "axis", default: -1, loc)
            let x = try build(v[0])
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in try b.softmax(x, axis: axis) }
        case "layernorm":
            let (v, k) = try arguments(name, args, positional: 1...3, keys: ["gamma", "beta", "eps"], loc)
            let eps = try k["eps"].map { (e: GraphExpr) throws(Diagnostic) in try float(e, "eps") } ?? 1e-5
            let x = try build(v[0])
            let gamma = try optionalTensor(v.count > 1 ? v[1] : nil, k["gamma"], key: "gamma")
            let beta = try optionalTensor(v.count > 2 ? v[2] : nil, k["beta"], key: "beta")
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.layerNorm(x, gamma: gamma, beta: beta, epsilon: eps)
            }
        case "rmsnorm":
            let (v, k) = try arguments(name, args, positional: 1...2, keys: ["gamma", "eps"], loc)
            let eps = try k["eps"].map { (e: GraphExpr) throws(Diagnostic) in try float(e, "eps") } ?? 1e-6
            let x = try build(v[0])
            let gamma = try optionalTensor(v.count > 1 ? v[1] : nil, k["gamma"], key: "gamma")
            return try guarded(loc) { (b: inout GraphBuilder) throws(GraphError) in
                try b.rmsNorm(x, gamma: gamma, epsilon: eps)
            }
        case "same_segment":
            throw error(
                "same_segment(i, j, [...]) is a mask predicate; use it as where(same_segment(...), x, fill)", loc)
        default:
            var hint = closest(name, among: Self.functions).map { "; did you mean '\($0)'?" } ?? ""
            if symbols[name] != nil {
                hint = "; '\(name)' is a tensor, not a function"
            } else if hint.isEmpty {
                hint = "; see Docs/IR.md for the functions of the graph form"
            }
            throw error("unknown function '\(name)'\(hint)", loc)
        }
    }

    /// An optional tensor argument given positionally or by keyword (not both).
    mutating func optionalTensor(_ positional: GraphExpr?, _ keyed: GraphExpr?, key: String) throws(Diagnostic)
        -> NodeID?
    {
        if let positional, keyed != nil {
            throw error("'\(key)' is given twice (positionally and as \(key)=); keep one", positional.location)
        }
        guard let e = positional ?? keyed else { return nil }
        return try build(e)
    }

    /// A numeric constant (a literal, `-inf`, a dimension, or arithmetic over them).
    mutating func float(_ e: GraphExpr, _ what: String) throws(Diagnostic) -> Float {
        let node = try build(e)
        guard let v = builder.constantValue(of: node) else {
            throw error("\(what) must be a constant number, not a tensor", e.location)
        }
        return v
    }
}
