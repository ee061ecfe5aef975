import BlockIR

/// `a·i + b·j + p·⌊i/m⌋ + q·⌊j/m⌋ + c` with `|a|, |b|, |p|, |q| < 2^20` and `|c| < 2^40`, so
/// that building it never traps and evaluating it at any index of a tensor (below 2^40) stays far
/// from `Int` overflow.
struct AffineIndex: Equatable {
    /// The coefficient of `i` (the row index).
    var row: Int
    /// The coefficient of `j` (the column index).
    var column: Int
    /// The constant term.
    var constant: Int
    /// The coefficient of `⌊i/m⌋`.
    var rowQuotient = 0
    /// The coefficient of `⌊j/m⌋`.
    var columnQuotient = 0
    /// The divisor `m` of the quotients, once one occurs.
    var divisor: Int?

    /// The bound on the magnitude of the constant term.
    static let limit = 1 << 40
    /// The bound on the magnitude of the coefficients of `i` and `j`.
    static let coefficientLimit = 1 << 20

    /// Whether `i` and `j` do not occur.
    var isConstant: Bool { row == 0 && column == 0 && rowQuotient == 0 && columnQuotient == 0 }

    /// The sum with another, or nil on overflow past the limit (the divisors must agree).
    func adding(_ o: AffineIndex) -> AffineIndex? {
        Self.make(
            [
                row.addingReportingOverflow(o.row), column.addingReportingOverflow(o.column),
                rowQuotient.addingReportingOverflow(o.rowQuotient),
                columnQuotient.addingReportingOverflow(o.columnQuotient),
            ], constant.addingReportingOverflow(o.constant), divisor ?? o.divisor)
    }

    /// The difference with another, or nil on overflow past the limit (the divisors must agree).
    func subtracting(_ o: AffineIndex) -> AffineIndex? {
        Self.make(
            [
                row.subtractingReportingOverflow(o.row), column.subtractingReportingOverflow(o.column),
                rowQuotient.subtractingReportingOverflow(o.rowQuotient),
                columnQuotient.subtractingReportingOverflow(o.columnQuotient),
            ], constant.subtractingReportingOverflow(o.constant), divisor ?? o.divisor)
    }

    /// The product with a constant, or nil on overflow past the limit.
    func scaled(by k: Int) -> AffineIndex? {
        Self.make(
            [
                row.multipliedReportingOverflow(by: k), column.multipliedReportingOverflow(by: k),
                rowQuotient.multipliedReportingOverflow(by: k), columnQuotient.multipliedReportingOverflow(by: k),
            ], constant.multipliedReportingOverflow(by: k), divisor)
    }

    private static func make(
        _ coefficients: [(partialValue: Int, overflow: Bool)], _ c: (partialValue: Int, overflow: Bool),
        _ divisor: Int?
    ) -> AffineIndex? {
        for (r, bound) in coefficients.map({ ($0, coefficientLimit) }) + [(c, limit)]
        where r.overflow || r.partialValue <= -bound || r.partialValue >= bound {
            return nil
        }
        let v = coefficients.map(\.partialValue)
        return AffineIndex(
            row: v[0], column: v[1], constant: c.partialValue, rowQuotient: v[2], columnQuotient: v[3],
            divisor: v[2] == 0 && v[3] == 0 ? nil : divisor)
    }
}

/// Mask predicates: `&&` of affine comparisons in `i`, `j`, `i / m`, `j / m`, `i % m`, `j % m` and
/// `same_segment(i, j, [...])`.
extension GraphTextParser {
    /// The predicate of a `where`.
    func predicate(_ e: GraphExpr) throws(Diagnostic) -> Predicate {
        switch e.kind {
        case .binary("&&", _, _):
            let chain = e.leftChain(through: ["&&"])
            var atoms = try predicate(chain.first).atoms
            for step in chain.steps { atoms += try predicate(step.rhs).atoms }
            return Predicate(atoms)
        case .binary("!=", _, _):
            throw error("'!=' is not supported in masks; combine two comparisons, e.g. 'i < j' or 'i > j'", e.location)
        case .binary(let op, let a, let b) where [">=", ">", "<=", "<", "=="].contains(op):
            let x = try affine(a)
            let y = try affine(b)
            try sameDivisor(x, y, e.location)
            guard let d = x.subtracting(y) else { throw overflow(e.location) }
            // `L op R` ⇔ `d op 0` with `d = L − R`; every form is made `≥ 0` or `= 0`.
            let (a, b, c) = (d.row, d.column, d.constant)
            if let m = d.divisor {
                let q = QuotientAffine(
                    divisor: m, row: a, column: b, rowQuotient: d.rowQuotient, columnQuotient: d.columnQuotient,
                    constant: c, isEquality: op == "==")
                switch op {
                case ">": return Predicate([.quotient(QuotientAffine(copying: q, constant: c - 1))])
                case "<=": return Predicate([.quotient(q.negated)])
                case "<": return Predicate([.quotient(QuotientAffine(copying: q.negated, constant: -c - 1))])
                default: return Predicate([.quotient(q)])
                }
            }
            switch op {
            case ">=": return Predicate([.affineNonNegative(rowCoefficient: a, columnCoefficient: b, constant: c)])
            case ">": return Predicate([.affineNonNegative(rowCoefficient: a, columnCoefficient: b, constant: c - 1)])
            case "<=": return Predicate([.affineNonNegative(rowCoefficient: -a, columnCoefficient: -b, constant: -c)])
            case "<":
                return Predicate([.affineNonNegative(rowCoefficient: -a, columnCoefficient: -b, constant: -c - 1)])
            default: return Predicate([.affineZero(rowCoefficient: a, columnCoefficient: b, constant: c)])
            }
        case .call("same_segment", let args):
            return Predicate([try sameSegment(args, e.location)])
        case .number, .name, .call, .binary, .negate, .list:
            throw error(
                "expected a mask predicate such as 'i >= j', 'i - j < 256' or 'same_segment(i, j, [300, 700])'",
                e.location)
        }
    }

    /// `same_segment(i, j, [b0, b1, ...])`.
    private func sameSegment(_ args: [GraphArgument], _ loc: SourceLocation) throws(Diagnostic) -> PredicateAtom {
        guard args.count == 3 else {
            throw error("same_segment takes 3 arguments (i, j, [boundary, ...]), got \(args.count)", loc)
        }
        for a in args where a.key != nil {
            throw error("same_segment takes no keyword arguments; write same_segment(i, j, [300, 700])", a.location)
        }
        guard case .name("i") = args[0].value.kind, case .name("j") = args[1].value.kind else {
            throw error("same_segment's first two arguments must be i and j: same_segment(i, j, [...])", loc)
        }
        guard case .list(let items) = args[2].value.kind else {
            throw error("same_segment's boundaries must be a list like [300, 700]", args[2].value.location)
        }
        var bounds: [Int] = []
        for item in items {
            let b = try integer(item)
            guard b > (bounds.last ?? 0), b < AffineIndex.limit else {
                throw error(
                    "segment boundaries must be positive, increasing and below 2^40, got \(b)", item.location)
            }
            bounds.append(b)
        }
        return .sameSegment(boundaries: bounds)
    }

    private func overflow(_ loc: SourceLocation) -> Diagnostic {
        error(
            "mask index arithmetic is too large (coefficients of i and j must stay below 2^20, constants below "
                + "2^40); use smaller numbers", loc)
    }

    /// Rejects a sum of quotients by different divisors (`i / 256 - j / 128`).
    private func sameDivisor(_ x: AffineIndex, _ y: AffineIndex, _ loc: SourceLocation) throws(Diagnostic) {
        if let m = x.divisor, let n = y.divisor, m != n {
            throw error(
                "a mask condition may divide by one number only, found \(m) and \(n); compare quotients by the "
                    + "same divisor, e.g. 'i / \(m) == j / \(m)'", loc)
        }
    }

    /// The divisor of `i / m` or `i % m` in a mask: a positive compile-time integer (a number,
    /// a dim or integer arithmetic on them).
    private func divisor(_ e: GraphExpr, _ op: String) throws(Diagnostic) -> Int {
        var variable = false
        func mentionsIndex(_ x: GraphExpr) {
            switch x.kind {
            case .name("i"), .name("j"): variable = true
            case .negate(let y): mentionsIndex(y)
            case .binary(_, let l, let r):
                mentionsIndex(l)
                mentionsIndex(r)
            case .number, .name, .call, .list: break
            }
        }
        mentionsIndex(e)
        let m: Int
        do throws(Diagnostic) {
            guard !variable else { throw error("", e.location) }
            m = try integer(e)
        } catch {
            throw self.error(
                "the divisor of '\(op)' in a mask must be a positive integer constant or a dim, e.g. 'i \(op) 256' or "
                    + "'i \(op) C'; dividing by an index or a tensor is not supported", e.location)
        }
        guard m != 0 else {
            throw error("division by zero in a mask ('\(op) 0'); divide by a positive integer such as 256", e.location)
        }
        guard m > 0, m < AffineIndex.limit else {
            throw error("the divisor of '\(op)' in a mask must be positive and below 2^40, got \(m)", e.location)
        }
        return m
    }

    /// `i / m` (⌊i/m⌋) or `i % m` (`i − m·⌊i/m⌋`), and the same for `j`.
    private func quotient(_ op: String, _ a: GraphExpr, _ b: GraphExpr, _ loc: SourceLocation) throws(Diagnostic)
        -> AffineIndex
    {
        let onRows: Bool
        switch a.kind {
        case .name("i"): onRows = true
        case .name("j"): onRows = false
        case .number, .name, .call, .list, .negate, .binary:
            throw error(
                "in a mask, '\(op)' applies to i or j alone, e.g. 'i \(op) 256'; the '\(op)' of an expression such "
                    + "as '(i + 1) \(op) 2' is not supported", a.location)
        }
        let m = try divisor(b, op)
        let q = op == "/" ? 1 : -m
        let x = op == "/" ? 0 : 1
        return onRows
            ? AffineIndex(row: x, column: 0, constant: 0, rowQuotient: q, columnQuotient: 0, divisor: m)
            : AffineIndex(row: 0, column: x, constant: 0, rowQuotient: 0, columnQuotient: q, divisor: m)
    }

    /// An affine expression of `i` and `j` and their quotients `i / m`, `j / m` (and `i % m`).
    func affine(_ e: GraphExpr) throws(Diagnostic) -> AffineIndex {
        switch e.kind {
        case .name("i"): return AffineIndex(row: 1, column: 0, constant: 0)
        case .name("j"): return AffineIndex(row: 0, column: 1, constant: 0)
        case .number, .name:
            let v = try integer(e)
            guard v > -AffineIndex.limit && v < AffineIndex.limit else { throw overflow(e.location) }
            return AffineIndex(row: 0, column: 0, constant: v)
        case .negate(let x):
            guard let r = try affine(x).scaled(by: -1) else { throw overflow(e.location) }
            return r
        case .binary("+", _, _), .binary("-", _, _), .binary("*", _, _):
            let chain = e.leftChain(through: ["+", "-", "*"])
            var x = try affine(chain.first)
            for step in chain.steps {
                let y = try affine(step.rhs)
                try sameDivisor(x, y, step.location)
                let r: AffineIndex?
                switch step.op {
                case "+": r = x.adding(y)
                case "-": r = x.subtracting(y)
                default:
                    if x.isConstant {
                        r = y.scaled(by: x.constant)
                    } else if y.isConstant {
                        r = x.scaled(by: y.constant)
                    } else {
                        throw error(
                            "masks are affine in i and j; one side of a product must be a constant", step.location)
                    }
                }
                guard let r else { throw overflow(step.location) }
                x = r
            }
            return x
        case .binary(let op, let a, let b) where op == "/" || op == "%":
            return try quotient(op, a, b, e.location)
        case .binary, .call, .list:
            throw error("expected an affine expression of i and j such as 'i - j + 4'", e.location)
        }
    }
}
