import BlockIR

/// Solving a producer's grid variables from a consumer's access to the producer's output: the
/// unification R1 (inline-producer) and R13 (scan-carry) share.
enum GridUnification {
    /// The binding of the producer's grid variables that makes each store entry address what
    /// the paired load entry addresses, or nil when none does. A point `v` (a grid variable)
    /// binds `v` to the load's point; a slice `v·n +: n` binds `v` to `e` from `e·n +: n`, or to
    /// `c / n` from a constant start `c` divisible by `n`; any other entry must be equal on both
    /// sides and read no grid variable.
    static func unify(
        _ pairs: some Sequence<(store: AxisAccess, load: AxisAccess)>, gridVariables: Set<IndexVar>
    ) -> [IndexVar: IndexExpr]? {
        var binding: [IndexVar: IndexExpr] = [:]
        func bind(_ v: IndexVar, _ e: IndexExpr) -> Bool {
            if let old = binding[v] { return old == e }
            binding[v] = e
            return true
        }
        for (s, l) in pairs {
            switch (s, l) {
            case (.point(let ps), .point(let pl)):
                if case .variable(let v) = ps, gridVariables.contains(v) {
                    guard bind(v, pl) else { return nil }
                } else if ps != pl {
                    return nil
                }
            case (.slice(let ss, let n), .slice(let sl, let m)):
                guard n == m else { return nil }
                switch ss {
                case .mul(.variable(let v), let size) where size == n && gridVariables.contains(v):
                    if case .mul(let e, let size2) = sl, size2 == n {
                        guard bind(v, e) else { return nil }
                    } else if case .constant(let c) = sl, c % n == 0 {
                        guard bind(v, .constant(c / n)) else { return nil }
                    } else {
                        return nil
                    }
                default:
                    guard ss == sl, ss.variables.allSatisfy({ !gridVariables.contains($0) }) else { return nil }
                }
            default:
                return nil
            }
        }
        return binding
    }
}
