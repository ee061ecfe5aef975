extension IndexExpr {
    /// The expression with constants folded and identities dropped (`x + 0`, `x * 1`, nested
    /// constant factors, `min`/`max` of constants), so rewritten bounds print readably.
    public func simplified() -> IndexExpr {
        switch self {
        case .constant, .variable: return self
        case .add(let a, let b):
            let (x, y) = (a.simplified(), b.simplified())
            switch (x, y) {
            case (.constant(let p), .constant(let q)): return .constant(p &+ q)
            case (_, .constant(0)): return x
            case (.constant(0), _): return y
            case (.add(let u, .constant(let p)), .constant(let q)):
                return IndexExpr.add(u, .constant(p &+ q)).simplified()
            case (.constant, _): return .add(y, x)
            default: return .add(x, y)
            }
        case .mul(let a, let c):
            let x = a.simplified()
            if c == 0 { return .constant(0) }
            if c == 1 { return x }
            switch x {
            case .constant(let p): return .constant(p &* c)
            case .mul(let u, let d): return .mul(u, d &* c)
            case .add(let u, let v): return IndexExpr.add(.mul(u, c), .mul(v, c)).simplified()
            default: return .mul(x, c)
            }
        case .floorDiv(let a, let c):
            let x = a.simplified()
            if c == 1 { return x }
            if case .constant = x { return .constant(IndexExpr.floorDiv(x, c).evaluate([:])) }
            if case .mul(let u, let d) = x, c > 0, d % c == 0 { return IndexExpr.mul(u, d / c).simplified() }
            // (u·d) / c = u / (c/d) when d divides c (d > 0): ⌊u·d / c⌋ = ⌊u / (c/d)⌋.
            if case .mul(let u, let d) = x, c > 0, d > 0, c % d == 0 {
                return IndexExpr.floorDiv(u, c / d).simplified()
            }
            // (u·m + d) / c = u·(m/c) + ⌊d/c⌋ when c divides m.
            if case .add(.mul(let u, let m), .constant(let d)) = x, c > 0, m % c == 0 {
                return IndexExpr.add(.mul(u, m / c), .constant(IndexExpr.floorDiv(.constant(d), c).evaluate([:])))
                    .simplified()
            }
            return .floorDiv(x, c)
        case .min(let a, let b):
            let (x, y) = (a.simplified(), b.simplified())
            if case .constant(let p) = x, case .constant(let q) = y { return .constant(Swift.min(p, q)) }
            return x == y ? x : .min(x, y)
        case .max(let a, let b):
            let (x, y) = (a.simplified(), b.simplified())
            if case .constant(let p) = x, case .constant(let q) = y { return .constant(Swift.max(p, q)) }
            return x == y ? x : .max(x, y)
        }
    }

    /// Splits the expression as `coefficient·v + rest` with `rest` free of `v`, when it is affine
    /// in `v` (no `v` under division, `min` or `max`).
    public func affine(in v: IndexVar) -> (coefficient: Int, rest: IndexExpr)? {
        switch self {
        case .constant: return (0, self)
        case .variable(let w): return w == v ? (1, .constant(0)) : (0, self)
        case .add(let a, let b):
            guard let (p, x) = a.affine(in: v), let (q, y) = b.affine(in: v) else { return nil }
            return (p + q, .add(x, y))
        case .mul(let a, let c):
            guard let (p, x) = a.affine(in: v) else { return nil }
            return (p * c, .mul(x, c))
        case .floorDiv, .min, .max:
            return variables.contains(v) ? nil : (0, self)
        }
    }
}
