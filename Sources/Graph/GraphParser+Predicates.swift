import BlockIR

/// `a·i + b·j + c` with `|a|, |b| < 2^20` and `|c| < 2^40`, so that building it never traps and
/// evaluating it at any index of a tensor (below 2^40) stays far from `Int` overflow.
struct AffineIndex: Equatable {
    /// The coefficient of `i` (the row index).
    var row: Int
    /// The coefficient of `j` (the column index).
    var column: Int
    /// The constant term.
    var constant: Int

    /// The bound on the magnitude of the constant term.
    static let limit = 1 << 40
    /// The bound on the magnitude of the coefficients of `i` and `j`.
    static let coefficientLimit = 1 << 20

    /// Whether `i` and `j` do not occur.
    var isConstant: Bool { row == 0 && column == 0 }

    /// The sum with another, or nil on overflow past the limit.
    func adding(_ o: AffineIndex) -> AffineIndex? {
        Self.make(
            row.addingReportingOverflow(o.row), column.addingReportingOverflow(o.column),
            constant.addingReportingOverflow(o.constant))
    }

    /// The difference with another, or nil on overflow past the limit.
    func subtracting(_ o: AffineIndex) -> AffineIndex? {
        Self.make(
            row.subtractingReportingOverflow(o.row), column.subtractingReportingOverflow(o.column),
            constant.subtractingReportingOverflow(o.constant))
    }

    /// The product with a constant, or nil on overflow past the limit.
    func scaled(by k: Int) -> AffineIndex? {
        Self.make(
            row.multipliedReportingOverflow(by: k), column.multipliedReportingOverflow(by: k),
            constant.multipliedReportingOverflow(by: k))
    }

    private static func make(
        _ a: (partialValue: Int, overflow: Bool), _ b: (partialValue: Int, overflow: Bool),
        _ c: (partialValue: Int, overflow: Bool)
    ) -> AffineIndex? {
        for (r, bound) in [(a, coefficientLimit), (b, coefficientLimit), (c, limit)]
        where r.overflow || r.partialValue <= -bound || r.partialValue >= bound {
            return nil
        }
        return AffineIndex(row: a.partialValue, column: b.partialValue, constant: c.partialValue)
    }
}

/// Mask predicates: `&&` of affine comparisons in `i`, `j` and `same_segment(i, j, [...])`.
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
            guard let d = x.subtracting(y) else { throw overflow(e.location) }
            // `L op R` ⇔ `d op 0` with `d = L − R`; every form is made `≥ 0` or `= 0`.
            let (a, b, c) = (d.row, d.column, d.constant)
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

    /// An affine expression of `i` and `j`.
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
        case .binary(let op, _, _) where op == "/":
            throw error(
                "'/' is not allowed in a mask; masks are affine in i and j (use + - and constant *)", e.location)
        case .binary, .call, .list:
            throw error("expected an affine expression of i and j such as 'i - j + 4'", e.location)
        }
    }
}
