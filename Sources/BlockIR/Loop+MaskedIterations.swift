/// The facts about a loop's fully masked iterations that fusion (R9, R16) and the schedule
/// (`RowRestriction`) both rely on: whether an iteration whose mask removes every element leaves
/// the carried values unchanged, and the conditions under which a finite lowest-float fill
/// counts as `-inf`.
extension Loop {
    /// Whether the mask keeps the first element (its block's first column, at the loop's first
    /// iteration) of every row of its block, in every instance: each affine atom, at that column
    /// and the block's worst row, is a sum of grid variables (never negative) with non-negative
    /// coefficients plus a non-negative constant. Only masks whose columns move with `k`.
    public func keepsFirstElement(row: IndexExpr, column: IndexExpr, predicate: Predicate, grid: Set<IndexVar>) -> Bool
    {
        let loop = self
        guard !row.variables.contains(loop.variable), column.variables.contains(loop.variable) else { return false }
        let first = column.substituting([loop.variable: loop.lower]).simplified()
        func nonNegative(_ e: IndexExpr) -> Bool {
            var rest = e.simplified()
            for v in Set(rest.variables).sorted() {
                guard grid.contains(v), let (c, r) = rest.affine(in: v), c >= 0 else { return false }
                rest = r.simplified()
            }
            guard case .constant(let c) = rest else { return false }
            return c >= 0
        }
        return !predicate.atoms.isEmpty
            && predicate.atoms.allSatisfy { atom in
                // a·row + b·first + c ≥ 0 for every row of the block: at its first row when a ≥ 0.
                guard case .affineNonNegative(let a, let b, let c) = atom, a >= 0 else { return false }
                return nonNegative(.add(.add(.mul(row, a), .mul(first, b)), .constant(c)))
            }
    }

    /// The carried value that is the running maximum of the mask's row maxima: its yield is
    /// `max(carried, reduce_max(mask, axis 1))`.
    public func runningMaximum(of mask: ValueID) -> Int? {
        let loop = self
        guard case .yield(let ys)? = loop.body.last?.op else { return nil }
        var defs: [ValueID: Instruction] = [:]
        for b in loop.body { for r in b.results { defs[r.id] = b } }
        for (i, c) in loop.carried.enumerated() where i < ys.count {
            guard case .binary(.max, let x, let y)? = defs[ys[i]]?.op else { continue }
            let other = x == c.id ? y : (y == c.id ? x : nil)
            if let other, case .reduce(.max, let z, 1)? = defs[other]?.op, z == mask { return i }
        }
        return nil
    }

    /// Abstract values for the "fully masked iteration" check.
    private enum Abstract: Hashable {
        case carried(Int)
        case constant(Float)
        case unknown
    }

    /// Whether an iteration in which every element of the moving mask `chosen` is its fill, and
    /// every value in `zeros` is 0, leaves every carried value unchanged (R9 asks with a mask,
    /// R16 with the bool block a select chooses by).
    public func isUnchangedWhenMasked(
        constants: [ValueID: Float], mask chosen: (IndexExpr, IndexExpr, Predicate)?, zeros: Set<ValueID> = [],
        runningMaximum: Int? = nil
    ) -> Bool {
        let loop = self
        var env = constants.mapValues { Abstract.constant($0) }
        for (i, c) in loop.carried.enumerated() { env[c.id] = .carried(i) }
        func get(_ v: ValueID) -> Abstract { env[v] ?? .unknown }
        // A row value broadcast along the columns (the running maximum in `S − m`).
        var broadcastOf: [ValueID: ValueID] = [:]
        for inst in loop.body {
            guard let r = inst.result else {
                if case .yield(let ys) = inst.op {
                    return ys.enumerated().allSatisfy { get($0.element) == .carried($0.offset) }
                }
                continue
            }
            let value: Abstract
            switch inst.op {
            case .fill(let c): value = .constant(c)
            case .mask(_, let row, let col, let predicate, let fill):
                if let chosen, row == chosen.0 && col == chosen.1 && predicate == chosen.2 {
                    value = .constant(fill)
                } else if case .mask(let x, _, _, _, _) = inst.op, get(x) == .constant(fill) {
                    // Its fill everywhere already: masking changes nothing.
                    value = .constant(fill)
                } else {
                    value = .unknown
                }
            case .broadcast(let x, _), .transpose(let x):
                if case .broadcast = inst.op { broadcastOf[r.id] = x }
                if case .constant = get(x) { value = get(x) } else { value = .unknown }
            case .reduce(let op, let x, _):
                if case .constant(let c) = get(x), c == op.identity || op == .max {
                    value = .constant(c)
                } else {
                    value = .unknown
                }
            case .unary(let op, let x):
                if case .constant(let c) = get(x) { value = .constant(op.apply(c)) } else { value = .unknown }
            case .scan(let op, let x, _, _, _):
                // Prefixes of the identity are the identity.
                if case .constant(let c) = get(x), c == op.identity { value = .constant(c) } else { value = .unknown }
            case .dot(let x, let y, _, _, _):
                value = get(x) == .constant(0) || get(y) == .constant(0) ? .constant(0) : .unknown
            case .binary(let op, let x, let y):
                // lowest − m where m holds a kept score above lowest: at most −2·10³¹, exp gives 0.
                if op == .sub, let m = runningMaximum, get(x) == .constant(-Float.greatestFiniteMagnitude),
                    get(broadcastOf[y] ?? y) == .carried(m)
                {
                    value = .constant(-.infinity)
                } else {
                    value = Self.binary(op, get(x), get(y))
                }
            case .concat(let x, let y, _):
                if case .constant = get(x), get(x) == get(y) { value = get(x) } else { value = .unknown }
            case .select(let c, let x, let y):
                // A known condition picks its branch; both branches the same value: that value,
                // whatever the condition.
                if case .constant(let k) = get(c) {
                    value = k != 0 ? get(x) : get(y)
                } else {
                    value = get(x) == get(y) ? get(x) : .unknown
                }
            case .load, .gather, .index, .loop, .store, .yield: value = .unknown
            }
            env[r.id] = zeros.contains(r.id) ? .constant(0) : value
        }
        return false
    }

    private static func binary(_ op: BinaryOp, _ x: Abstract, _ y: Abstract) -> Abstract {
        if case .constant(let a) = x, case .constant(let b) = y { return .constant(op.apply(a, b)) }
        let lowest = -Float.greatestFiniteMagnitude
        switch op {
        case .max:
            // max(m, lowest) clamps a running maximum (R6); it is m except when m = -inf, and then
            // every accumulator still holds its identity, which any factor leaves unchanged.
            if y == .constant(-.infinity) || y == .constant(lowest) { return x }
            if x == .constant(-.infinity) || x == .constant(lowest) { return y }
        case .add:
            if y == .constant(0) { return x }
            if x == .constant(0) { return y }
        case .sub:
            if y == .constant(0) { return x }
            if x == y, case .carried = x { return .constant(0) }
            if x == .constant(-.infinity) { return x }
        case .mul:
            if y == .constant(1) { return x }
            if x == .constant(1) { return y }
            if x == .constant(0) || y == .constant(0) { return .constant(0) }
        case .div:
            if y == .constant(1) { return x }
            if x == .constant(0) { return .constant(0) }
        case .logicalAnd:
            // false && c = false: a fully masked bool block stays masked under a conjunction.
            if x == .constant(0) || y == .constant(0) { return .constant(0) }
        case .min, .pow, .lt, .le, .gt, .ge, .eq, .ne, .logicalOr: break
        }
        return .unknown
    }
}
