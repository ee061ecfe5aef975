import BlockIR

/// The closed range of values an index expression can take, for proving extents static.
///
/// Grid variables range over `0 ..< extent`, loop counters over their bounds. When the range
/// of a slice's start shows the slice always lies inside the tensor, its extent is the slice
/// size and the emitter writes a constant instead of a run-time clamp.
package struct IndexRange: Hashable, Sendable {
    /// The smallest value.
    package var lower: Int
    /// The largest value.
    package var upper: Int

    /// A range of one value.
    package init(_ value: Int) {
        lower = value
        upper = value
    }

    /// A range `lower ... upper`.
    package init(lower: Int, upper: Int) {
        self.lower = lower
        self.upper = upper
    }

    /// A range that says nothing.
    package static let unknown = IndexRange(lower: -(1 << 40), upper: 1 << 40)

    /// The range of an expression given the ranges of its variables.
    package static func of(_ e: IndexExpr, _ env: [IndexVar: IndexRange]) -> IndexRange {
        switch e {
        case .constant(let c): return IndexRange(clamp(c))
        case .variable(let v): return env[v] ?? .unknown
        case .add(let a, let b):
            let x = of(a, env)
            let y = of(b, env)
            return IndexRange(lower: clamp(x.lower &+ y.lower), upper: clamp(x.upper &+ y.upper))
        case .mul(let a, let c):
            let x = of(a, env)
            let p = product(x.lower, c)
            let q = product(x.upper, c)
            return IndexRange(lower: Swift.min(p, q), upper: Swift.max(p, q))
        case .floorDiv(let a, let c):
            guard c != 0 else { return IndexRange(0) }
            let x = of(a, env)
            let p = clamp(e.floorDivide(x.lower, c))
            let q = clamp(e.floorDivide(x.upper, c))
            return IndexRange(lower: Swift.min(p, q), upper: Swift.max(p, q))
        case .min(let a, let b):
            let x = of(a, env)
            let y = of(b, env)
            return IndexRange(lower: Swift.min(x.lower, y.lower), upper: Swift.min(x.upper, y.upper))
        case .max(let a, let b):
            let x = of(a, env)
            let y = of(b, env)
            return IndexRange(lower: Swift.max(x.lower, y.lower), upper: Swift.max(x.upper, y.upper))
        }
    }

    /// Bounds are kept within ±2^40, so sums of two never overflow; products saturate.
    private static func clamp(_ x: Int) -> Int { Swift.max(-(1 << 40), Swift.min(1 << 40, x)) }

    private static func product(_ a: Int, _ b: Int) -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        guard overflow else { return clamp(p) }
        return (a < 0) != (b < 0) ? -(1 << 40) : 1 << 40
    }

    /// The extent of a slice `start +: size` of an axis of `dimension` elements, when the
    /// start's range decides it.
    package static func staticExtent(dimension: Int, start: IndexRange, size: Int) -> Int? {
        let most = dimension &- start.lower
        let least = dimension &- start.upper
        func clampExtent(_ e: Int) -> Int { Swift.max(0, Swift.min(size, e)) }
        let a = clampExtent(least)
        let b = clampExtent(most)
        return a == b ? a : nil
    }
}

extension IndexExpr {
    /// Floor division as `evaluate` does it.
    fileprivate func floorDivide(_ x: Int, _ c: Int) -> Int {
        let q = x / c
        return (x % c != 0 && ((x < 0) != (c < 0))) ? q - 1 : q
    }
}
