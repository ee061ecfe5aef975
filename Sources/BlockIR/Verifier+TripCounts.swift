extension Verifier {
    /// The largest extent of a grid axis or trip count of a loop (2^31).
    public static let maximumExtent = 1 << 31
    /// The most loop iterations one kernel may run over all its instances, its grid instances
    /// times the trips of the loops around the innermost body (2^32): far beyond any real program,
    /// and far below what would keep `blockc run` busy for days.
    public static let maximumIterations = 1 << 32

    /// The first trip-count problem of a kernel: an extent over `maximumExtent`, or a loop nest
    /// whose iterations over the whole grid exceed `maximumIterations`. Loop bounds that depend
    /// on grid or outer loop indices are bounded by interval arithmetic over their ranges.
    static func tripCountErrors(_ kernel: Kernel) -> [(path: [Int]?, message: String)] {
        var ranges: [IndexVar: (lo: Int, hi: Int)] = [:]
        var instances = 1
        for axis in kernel.grid {
            if axis.extent > maximumExtent {
                return [
                    (
                        nil,
                        "grid axis '\(axis.variable.name)' has extent \(axis.extent), over the limit of "
                            + "\(maximumExtent); use larger blocks or split the work"
                    )
                ]
            }
            instances = saturatingProduct(instances, axis.extent)
            ranges[axis.variable] = (0, axis.extent - 1)
        }
        if instances > maximumIterations {
            let sizes = kernel.grid.map { "\($0.variable.name) < \($0.extent)" }.joined(separator: ", ")
            return [
                (
                    nil,
                    "the grid (\(sizes)) has \(instances) instances, over the limit of \(maximumIterations); "
                        + "use larger blocks"
                )
            ]
        }
        func visit(_ body: [Instruction], path: [Int], iterations: Int) -> (path: [Int]?, message: String)? {
            for (index, inst) in body.enumerated() {
                guard case .loop(let loop) = inst.op else { continue }
                let lower = bounds(loop.lower, ranges)
                let upper = bounds(loop.upper, ranges)
                let trips = max(0, upper.hi - lower.lo)
                let label = "'for \(loop.variable.name)'"
                if trips > maximumExtent {
                    return (
                        path + [index],
                        "\(label): the loop may run \(trips) times (\(loop.lower) ..< \(loop.upper)), over the limit "
                            + "of \(maximumExtent); use larger blocks"
                    )
                }
                let total = saturatingProduct(iterations, trips)
                if total > maximumIterations {
                    return (
                        path + [index],
                        "\(label): the kernel may run \(total) iterations of this loop over its \(instances) "
                            + "instances, over the limit of \(maximumIterations); use larger blocks"
                    )
                }
                guard trips > 0 else { continue }
                let saved = ranges[loop.variable]
                ranges[loop.variable] = (lower.lo, upper.hi - 1)
                if let problem = visit(loop.body, path: path + [index], iterations: total) { return problem }
                ranges[loop.variable] = saved
            }
            return nil
        }
        return visit(kernel.body, path: [], iterations: instances).map { [$0] } ?? []
    }

    /// The product, saturating at `Int.max` (operands are non-negative).
    static func saturatingProduct(_ a: Int, _ b: Int) -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : p
    }

    /// Bounds of an index expression when each variable lies in its range (unknown variables read
    /// as 0), saturating far from `Int`'s limits.
    static func bounds(_ e: IndexExpr, _ ranges: [IndexVar: (lo: Int, hi: Int)]) -> (lo: Int, hi: Int) {
        let limit = 1 << 62
        func clamp(_ x: Int) -> Int { Swift.min(limit, Swift.max(-limit, x)) }
        func scaled(_ x: Int, _ c: Int) -> Int {
            let (p, overflow) = x.multipliedReportingOverflow(by: c)
            return overflow ? ((x < 0) != (c < 0) ? -limit : limit) : clamp(p)
        }
        switch e {
        case .constant(let c): return (clamp(c), clamp(c))
        case .variable(let v): return ranges[v] ?? (0, 0)
        case .add(let a, let b):
            let (x, y) = (bounds(a, ranges), bounds(b, ranges))
            return (clamp(x.lo + y.lo), clamp(x.hi + y.hi))
        case .mul(let a, let c):
            let x = bounds(a, ranges)
            let (p, q) = (scaled(x.lo, c), scaled(x.hi, c))
            return (Swift.min(p, q), Swift.max(p, q))
        case .floorDiv(let a, let c):
            let x = bounds(a, ranges)
            guard c != 0 else { return (0, 0) }
            let (p, q) = (IndexExpr.constant(x.lo).floorDivided(by: c), IndexExpr.constant(x.hi).floorDivided(by: c))
            return (Swift.min(p, q), Swift.max(p, q))
        case .min(let a, let b):
            let (x, y) = (bounds(a, ranges), bounds(b, ranges))
            return (Swift.min(x.lo, y.lo), Swift.min(x.hi, y.hi))
        case .max(let a, let b):
            let (x, y) = (bounds(a, ranges), bounds(b, ranges))
            return (Swift.max(x.lo, y.lo), Swift.max(x.hi, y.hi))
        }
    }
}

extension IndexExpr {
    /// `value / c` rounded toward minus infinity, for a constant expression.
    fileprivate func floorDivided(by c: Int) -> Int { IndexExpr.floorDiv(self, c).evaluate([:]) }
}
