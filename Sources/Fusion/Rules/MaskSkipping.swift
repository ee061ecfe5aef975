import BlockIR

extension FusionRule {
    /// R9 — skipping blocks an index-predicate mask removes entirely.
    ///
    /// Precondition: a loop over block index `k` whose body masks a block at offsets affine in
    /// `k` (one mask, one predicate), and where, if that mask removed every element (each element
    /// becomes its fill, e.g. `-inf`), every carried value would come out of the iteration
    /// unchanged — checked by evaluating the body abstractly with the ops' identities (`max(x,
    /// -inf) = x`, `exp(-inf) = 0`, `x + 0 = x`, `x·1 = x`, `dot(0, y) = 0`, …).
    ///
    /// ```
    /// for k in 0 ..< 16 { …; %s = mask %x at (i * 64, k * 64) if i - j >= 0 else -inf … }
    /// ```
    /// → `for k in 0 ..< min(16, (i * 64 + 63) / 64 + 1)`: interval arithmetic on the block's
    /// rows and columns bounds `k` to the blocks where some element satisfies every affine atom.
    /// Exact: the skipped iterations would not have changed any carried value. Partly masked
    /// blocks keep the element test.
    ///
    /// A finite fill, the lowest float (what `torch.onnx` writes for a causal mask, `finfo.min`,
    /// where a hand-written graph says `-inf`), is not an identity: `exp(lowest − m)` is 0 only
    /// once the running maximum `m` holds a score above `lowest`, and a row that has seen only
    /// masked elements would give them weight. So with that fill only the trailing iterations are
    /// skipped (the upper bound shrinks, the lower stays), and only when (a) the first element of
    /// the loop's first block is kept in every row of every instance (the predicate's affine
    /// atoms, evaluated at that column, are sums of grid variables with non-negative coefficients
    /// and a non-negative constant), and (b) a carried value is the running maximum of that mask's
    /// row maxima (`yield max(m, reduce_max(mask …))`): from the first iteration on, `m` then
    /// holds each row's kept score, and `lowest − m` counts as `-inf` in the check above. Exact
    /// for scores above `lowest` (every finite score short of overflow); a causal row always
    /// keeps its diagonal.
    public static let maskSkipping = FusionRule(
        id: "R9", name: "mask-skipping", summary: "shrink a loop to the blocks an index-predicate mask keeps"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .maskSkipping) { kernel, _ in
            skip(kernel.body, constants: kernel.fillConstants(), grid: Set(kernel.gridVariables))
        }
    }

    private static func skip(
        _ body: [Instruction], constants: [ValueID: Float], grid: Set<IndexVar>
    ) -> ([Instruction], String)? {
        for (index, inst) in body.enumerated() {
            guard case .loop(var loop) = inst.op else { continue }
            if let (inner, detail) = skip(loop.body, constants: constants, grid: grid) {
                loop.body = inner
                var out = body
                out[index].op = .loop(loop)
                return (out, detail)
            }
            // The masks whose position moves with k.
            var masks: [MovingMask] = []
            for b in loop.body {
                if case .mask(_, let r, let c, let p, let fill) = b.op,
                    r.variables.contains(loop.variable) || c.variables.contains(loop.variable)
                {
                    masks.append((r, c, p, b.results[0].type.shape, fill, b.results[0].id))
                }
            }
            // Skipped iterations must change nothing: no carried value, and no store.
            guard loop.body.isStoreFree else { continue }
            // Each distinct moving mask in turn: the first whose fully masked blocks leave every
            // carried value unchanged (the other masks then count as unknown blocks) bounds k.
            var chosen: MovingMask?
            var bounded: (IndexExpr?, IndexExpr?)?
            for mask in masks {
                let key = (mask.row, mask.column, mask.predicate)
                if loop.isUnchangedWhenMasked(constants: constants, mask: key),
                    let b = bounds(loop, mask.row, mask.column, mask.predicate, mask.shape)
                {
                    chosen = mask
                    bounded = b
                    break
                }
                // The lowest float as the fill: only trailing iterations, after every row kept one.
                guard mask.fill == -Float.greatestFiniteMagnitude, mask.shape.count == 2,
                    loop.keepsFirstElement(row: mask.row, column: mask.column, predicate: mask.predicate, grid: grid),
                    let m = loop.runningMaximum(of: mask.id),
                    loop.isUnchangedWhenMasked(constants: constants, mask: key, runningMaximum: m),
                    case (_, let upper?)? = bounds(loop, mask.row, mask.column, mask.predicate, mask.shape)
                else { continue }
                chosen = mask
                bounded = (nil, upper)
                break
            }
            guard chosen != nil, let (lower, upper) = bounded else { continue }
            let newLower = lower.map {
                covers(loop.lower, $0, isMax: true) ? loop.lower : .max(loop.lower, $0).simplified()
            }
            let newUpper = upper.map {
                covers(loop.upper, $0, isMax: false) ? loop.upper : .min(loop.upper, $0).simplified()
            }
            guard (newLower ?? loop.lower) != loop.lower || (newUpper ?? loop.upper) != loop.upper else { continue }
            loop.lower = newLower ?? loop.lower
            loop.upper = newUpper ?? loop.upper
            var out = body
            out[index].op = .loop(loop)
            return (out, "loop \(loop.variable) now runs \(loop.lower) ..< \(loop.upper), skipping fully masked blocks")
        }
        return nil
    }

    /// A mask in a loop body whose position moves with the loop's counter, and its result.
    private typealias MovingMask = (
        row: IndexExpr, column: IndexExpr, predicate: Predicate, shape: [Int], fill: Float, id: ValueID
    )

    /// Whether `bound` already includes the clamp `extra`.
    private static func covers(_ bound: IndexExpr, _ extra: IndexExpr, isMax: Bool) -> Bool {
        let e = extra.simplified()
        if bound == e { return true }
        switch bound {
        case .max(let a, let b) where isMax: return a == e || b == e
        case .min(let a, let b) where !isMax: return a == e || b == e
        default: return false
        }
    }

    /// The range of `k` outside which some affine atom is false on the whole block.
    private static func bounds(
        _ loop: Loop, _ row: IndexExpr, _ column: IndexExpr, _ predicate: Predicate, _ shape: [Int]
    ) -> (IndexExpr?, IndexExpr?)? {
        guard shape.count == 2 else { return nil }
        let k = loop.variable
        guard let (rk, rRest) = row.affine(in: k), let (ck, cRest) = column.affine(in: k), (rk == 0) != (ck == 0)
        else { return nil }
        let onRows = rk != 0
        let stride = onRows ? rk : ck
        if stride < 0 {
            // A loop walking blocks backwards (R13 runs a reverse scan so): bound k̃ = −k, whose
            // offsets move forwards, and map k̃ ∈ [l, u) back to k ∈ [1 − u, 1 − l).
            let flip: [IndexVar: IndexExpr] = [k: .mul(.variable(k), -1)]
            guard
                let (l, u) = bounds(
                    loop, row.substituting(flip).simplified(), column.substituting(flip).simplified(), predicate,
                    shape)
            else { return nil }
            let back = { (e: IndexExpr) in IndexExpr.add(.mul(e, -1), .constant(1)).simplified() }
            return (u.map(back), l.map(back))
        }
        guard stride > 0 else { return nil }
        let (movingRest, movingSize) = onRows ? (rRest, shape[0]) : (cRest, shape[1])
        let (fixedStart, fixedSize) = onRows ? (column, shape[1]) : (row, shape[0])
        var lower: IndexExpr?
        var upper: IndexExpr?
        var atoms: [(Int, Int, Int)] = []
        for atom in predicate.atoms {
            switch atom {
            case .affineNonNegative(let a, let b, let c): atoms.append((a, b, c))
            case .affineZero(let a, let b, let c):
                atoms.append((a, b, c))
                atoms.append((-a, -b, -c))
            case .sameSegment(let boundaries):
                // Keep the moving blocks that meet [start of the first segment, end of the last
                // segment) touched by the fixed range.
                let last = IndexExpr.add(fixedStart, .constant(fixedSize - 1))
                let lo = segmentStart(fixedStart, boundaries)
                let hi = segmentEnd(last, boundaries)
                // stride·k + rest + size − 1 ≥ lo  and  stride·k + rest ≤ hi − 1
                let l = IndexExpr.floorDiv(
                    .add(.add(lo, .mul(movingRest, -1)), .constant(-movingSize + 1 + stride - 1)), stride)
                let u = IndexExpr.add(
                    .floorDiv(.add(.add(hi, .constant(-1)), .mul(movingRest, -1)), stride), .constant(1))
                lower = lower.map { .max($0, l) } ?? l
                upper = upper.map { .min($0, u) } ?? u
            case .quotient(let q):
                // `= 0` needs both `≥ 0` and `≤ 0`; each alone bounds k.
                let sides = q.isEquality ? [q, q.negated] : [q]
                for var side in sides {
                    side.isEquality = false
                    let block = MovingBlock(
                        stride: stride, rest: movingRest, size: movingSize, fixedStart: fixedStart, fixedSize: fixedSize
                    )
                    guard let (l, u) = quotientBound(side, onRows: onRows, block) else { continue }
                    if let l { lower = lower.map { .max($0, l) } ?? l }
                    if let u { upper = upper.map { .min($0, u) } ?? u }
                }
            }
        }
        for (a, b, c) in atoms {
            // p·x + q·y + c ≥ 0 somewhere, x the moving axis, y the fixed one.
            let (p, q) = onRows ? (a, b) : (b, a)
            guard p != 0 else { continue }
            let fixedMax: IndexExpr = q > 0 ? .mul(.add(fixedStart, .constant(fixedSize - 1)), q) : .mul(fixedStart, q)
            if p > 0 {
                // p·(stride·k + rest + size − 1) + fixedMax + c ≥ 0 ⇒ k ≥ ⌈−(p·(rest + size − 1) + fixedMax + c) / (p·stride)⌉
                let num = IndexExpr.mul(
                    .add(.add(.mul(.add(movingRest, .constant(movingSize - 1)), p), fixedMax), .constant(c)), -1)
                let d = p * stride
                let bound = IndexExpr.floorDiv(.add(num, .constant(d - 1)), d)
                lower = lower.map { .max($0, bound) } ?? bound
            } else {
                // p·(stride·k + rest) + fixedMax + c ≥ 0 ⇒ k ≤ ⌊(p·rest + fixedMax + c) / (−p·stride)⌋
                let num = IndexExpr.add(.add(.mul(movingRest, p), fixedMax), .constant(c))
                let bound = IndexExpr.add(.floorDiv(num, -p * stride), .constant(1))
                upper = upper.map { .min($0, bound) } ?? bound
            }
        }
        guard lower != nil || upper != nil else { return nil }
        return (lower?.simplified(), upper?.simplified())
    }

    /// The block a mask covers in iteration `k`: moving positions `stride·k + rest ..< stride·k +
    /// rest + size`, fixed positions `fixedStart ..< fixedStart + fixedSize`.
    struct MovingBlock {
        var stride: Int
        var rest: IndexExpr
        var size: Int
        var fixedStart: IndexExpr
        var fixedSize: Int
    }

    /// The bounds on `k` outside which `p·⌊x/m⌋ + b·y + q·⌊y/m⌋ + c ≥ 0` fails on the whole block
    /// (x the moving position, y the fixed one; the atom must not read x outside the quotient):
    /// `(lower, nil)` when `p > 0`, `(nil, upper)` when `p < 0`, nil when it gives no bound.
    ///
    /// Proof. Write `g(y) = b·y + q·⌊y/m⌋`. When `b` and `q` do not have opposite signs `g` is
    /// monotone, so over the block's fixed range its largest value `G` is at the range's last
    /// position (`b > 0` or `q > 0`) or its first. Every element of the block then has value
    /// `≤ p·⌊x/m⌋ + G + c`, and `⌊x/m⌋` is non-decreasing in `x`, with `x` between `xlo = s·k + R`
    /// and `xhi = s·k + R + size − 1`.
    /// - `p > 0`: the block is empty of kept elements when `p·⌊xhi/m⌋ + G + c < 0`, i.e.
    ///   `⌊xhi/m⌋ < T = ⌈−(G + c)/p⌉` (an integer is below a real iff it is below its ceiling), i.e.
    ///   `xhi < m·T` (for `m > 0`, `⌊z/m⌋ < T ⇔ z < m·T`), i.e. `s·k < m·T − R − size + 1`, i.e.
    ///   `k < ⌈(m·T − R − size + 1)/s⌉ = ⌊(m·T − R − size + s)/s⌋`, the lower bound.
    /// - `p < 0`: empty when `p·⌊xlo/m⌋ + G + c < 0`, i.e. `⌊xlo/m⌋ > (G + c)/(−p)`, i.e.
    ///   `⌊xlo/m⌋ > U = ⌊(G + c)/(−p)⌋`, i.e. `xlo ≥ m·(U + 1)`, i.e. `s·k ≥ m·U + m − R`, i.e.
    ///   `k ≥ ⌈(m·U + m − R)/s⌉ = ⌊(m·U + m − 1 − R)/s⌋ + 1`, the (exclusive) upper bound.
    ///
    /// The block's shape may exceed its valid extent at a tensor's edge; the argument covers the
    /// whole shape, so a skipped block has no kept element among its valid ones either.
    static func quotientBound(_ atom: QuotientAffine, onRows: Bool, _ block: MovingBlock) -> (IndexExpr?, IndexExpr?)? {
        let m = atom.divisor
        let (linear, p) = onRows ? (atom.row, atom.rowQuotient) : (atom.column, atom.columnQuotient)
        let (b, q) = onRows ? (atom.column, atom.columnQuotient) : (atom.row, atom.rowQuotient)
        guard m > 0, linear == 0, p != 0, b.signum() * q.signum() >= 0, block.stride > 0 else { return nil }
        let last = IndexExpr.add(block.fixedStart, .constant(block.fixedSize - 1))
        let y = b > 0 || q > 0 ? last : block.fixedStart
        let g = IndexExpr.add(.mul(y, b), .mul(.floorDiv(y, m), q))
        let s = block.stride
        let rest = block.rest
        if p > 0 {
            // T = ⌈−(G + c)/p⌉ = ⌊(−G − c + p − 1)/p⌋; k ≥ ⌊(m·T − R − size + s)/s⌋.
            let t = IndexExpr.floorDiv(.add(.mul(g, -1), .constant(-atom.constant + p - 1)), p)
            let lower = IndexExpr.floorDiv(.add(.add(.mul(t, m), .mul(rest, -1)), .constant(s - block.size)), s)
            return (lower.simplified(), nil)
        }
        // U = ⌊(G + c)/(−p)⌋; k < ⌊(m·U + m − 1 − R)/s⌋ + 1.
        let u = IndexExpr.floorDiv(.add(g, .constant(atom.constant)), -p)
        let upper = IndexExpr.add(.floorDiv(.add(.add(.mul(u, m), .mul(rest, -1)), .constant(m - 1)), s), .constant(1))
        return (nil, upper.simplified())
    }

    /// `[x ≥ b]` for integers: `min(1, max(0, x − b + 1))`.
    private static func atLeast(_ x: IndexExpr, _ b: Int) -> IndexExpr {
        .min(.constant(1), .max(.constant(0), .add(x, .constant(1 - b))))
    }

    /// The first element of the segment holding `x`: `Σₜ (bₜ − bₜ₋₁)·[x ≥ bₜ]`.
    private static func segmentStart(_ x: IndexExpr, _ boundaries: [Int]) -> IndexExpr {
        var e = IndexExpr.constant(0)
        var previous = 0
        for b in boundaries {
            e = .add(e, .mul(atLeast(x, b), b - previous))
            previous = b
        }
        return e
    }

    /// One past the last element of the segment holding `x` (a large sentinel for the last one).
    private static func segmentEnd(_ x: IndexExpr, _ boundaries: [Int]) -> IndexExpr {
        let ends = boundaries + [1 << 40]
        var e = IndexExpr.constant(ends[0])
        for (t, b) in boundaries.enumerated() {
            e = .add(e, .mul(atLeast(x, b), ends[t + 1] - ends[t]))
        }
        return e
    }

}
