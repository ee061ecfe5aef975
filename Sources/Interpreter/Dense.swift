import BlockIR

/// Inner loops shared by the graph and block interpreters: matrix products, reductions and mask
/// rows, over raw buffers (no bounds checks in the innermost loops).
enum Dense {
    /// `c[i·ldc + j] = Σ_{p<k} A(i, p)·B(p, j)` for `i < m`, `j < n`, where
    /// `A(i, p) = a[i·aRow + p·aColumn]` and `B(p, j) = b[p·bRow + j·bColumn]`. Accumulates in
    /// fp32 in `p` order (i-k-j loop); packs `B` when its rows are not contiguous.
    static func matmul(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, aRow: Int, aColumn: Int,
        b: UnsafePointer<Float>, bRow: Int, bColumn: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0 && n > 0 else { return }
        var i = 0
        while i < m {
            (c + i * ldc).update(repeating: 0, count: n)
            i += 1
        }
        guard k > 0 else { return }
        if bColumn == 1 {
            product(m: m, n: n, k: k, a: a, aRow: aRow, aColumn: aColumn, b: b, ldb: bRow, c: c, ldc: ldc)
            return
        }
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        defer { packed.deallocate() }
        var p = 0
        while p < k {
            let src = b + p * bRow
            let dst = packed + p * n
            var j = 0
            while j < n {
                dst[j] = src[j * bColumn]
                j += 1
            }
            p += 1
        }
        product(m: m, n: n, k: k, a: a, aRow: aRow, aColumn: aColumn, b: packed, ldb: n, c: c, ldc: ldc)
    }

    /// The i-k-j loop over a `B` with contiguous rows; `c` is zeroed.
    private static func product(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, aRow: Int, aColumn: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        var i = 0
        while i < m {
            let row = c + i * ldc
            var p = 0
            while p < k {
                let x = a[i * aRow + p * aColumn]
                let brow = b + p * ldb
                var j = 0
                while j + 4 <= n {
                    row[j] += x * brow[j]
                    row[j + 1] += x * brow[j + 1]
                    row[j + 2] += x * brow[j + 2]
                    row[j + 3] += x * brow[j + 3]
                    j += 4
                }
                while j < n {
                    row[j] += x * brow[j]
                    j += 1
                }
                p += 1
            }
            i += 1
        }
    }

    /// Combines `count` elements at stride `stride` into `acc` with a reduction (`max`
    /// propagates NaN, as `BinaryOp.max` does).
    @inline(__always)
    static func combine(_ op: ReduceOp, _ acc: Float, _ x: Float) -> Float {
        switch op {
        case .sum: return acc + x
        case .max: return acc.isNaN || x.isNaN ? .nan : Swift.max(acc, x)
        }
    }

    /// Scans `x` viewed as `[outer, length, inner]` along the middle axis into `out` (same
    /// layout): element `a` of a line combines elements `0 ... a` (`..< a` when `exclusive`) of
    /// the first `validLength`, or, when `reverse`, elements `a ..< validLength` (`a + 1 ..<`).
    /// Elements past `validLength` get the identity.
    static func scan(
        _ op: ReduceOp, _ x: UnsafePointer<Float>, outer: Int, length: Int, inner: Int, validLength: Int,
        reverse: Bool, exclusive: Bool, into out: UnsafeMutablePointer<Float>
    ) {
        for o in 0..<outer {
            for i in 0..<inner {
                var acc = op.identity
                for step in 0..<length {
                    let a = reverse ? length - 1 - step : step
                    let at = (o * length + a) * inner + i
                    guard a < validLength else {
                        out[at] = op.identity
                        continue
                    }
                    if exclusive {
                        out[at] = acc
                        acc = combine(op, acc, x[at])
                    } else {
                        acc = combine(op, acc, x[at])
                        out[at] = acc
                    }
                }
            }
        }
    }

    /// Reduces `x` viewed as `[outer, length, inner]` along the middle axis into `out`
    /// (`[outer, inner]`), folding the first `validLength` elements of each line (the identity
    /// when 0), for the first `validOuter` and `validInner` entries; other outputs are untouched.
    static func reduce(
        _ op: ReduceOp, _ x: UnsafePointer<Float>, outer: Int, length: Int, inner: Int,
        validOuter: Int, validLength: Int, validInner: Int, into out: UnsafeMutablePointer<Float>
    ) {
        var o = 0
        while o < validOuter {
            let dst = out + o * inner
            dst.update(repeating: op.identity, count: validInner)
            var a = 0
            while a < validLength {
                let src = x + (o * length + a) * inner
                var i = 0
                switch op {
                case .sum:
                    while i < validInner {
                        dst[i] += src[i]
                        i += 1
                    }
                case .max:
                    while i < validInner {
                        let y = src[i]
                        let acc = dst[i]
                        dst[i] = acc.isNaN || y.isNaN ? .nan : (y > acc ? y : acc)
                        i += 1
                    }
                }
                a += 1
            }
            o += 1
        }
    }

    /// Applies a unary op to `count` elements.
    static func apply(_ op: UnaryOp, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        switch op {
        case .neg:
            while i < count {
                out[i] = -x[i]
                i += 1
            }
        case .square:
            while i < count {
                out[i] = x[i] * x[i]
                i += 1
            }
        case .one:
            while i < count {
                out[i] = 1
                i += 1
            }
        case .exp, .log, .sqrt, .rsqrt, .recip, .tanh, .sigmoid, .silu, .gelu, .abs, .sin, .cos, .softplus, .log1p,
            .erf:
            while i < count {
                out[i] = op.apply(x[i])
                i += 1
            }
        }
    }

    /// Applies a binary op to `count` element pairs at strides `aStride` and `bStride` (0
    /// broadcasts a scalar).
    static func apply(
        _ op: BinaryOp, _ a: UnsafePointer<Float>, aStride: Int, _ b: UnsafePointer<Float>, bStride: Int,
        _ out: UnsafeMutablePointer<Float>, count: Int
    ) {
        var i = 0
        switch op {
        case .add:
            while i < count {
                out[i] = a[i * aStride] + b[i * bStride]
                i += 1
            }
        case .sub:
            while i < count {
                out[i] = a[i * aStride] - b[i * bStride]
                i += 1
            }
        case .mul:
            while i < count {
                out[i] = a[i * aStride] * b[i * bStride]
                i += 1
            }
        case .div:
            while i < count {
                out[i] = a[i * aStride] / b[i * bStride]
                i += 1
            }
        case .max, .min, .pow, .lt, .le, .gt, .ge, .eq, .ne, .logicalAnd, .logicalOr:
            while i < count {
                out[i] = op.apply(a[i * aStride], b[i * bStride])
                i += 1
            }
        }
    }
}

/// The columns a predicate keeps in one row, as an interval: every atom keeps an interval of
/// columns `j` for a fixed row `i` (affine conditions in `j`; segments are intervals), so their
/// conjunction does too.
enum MaskRows {
    /// The kept columns of row `row` within `columns`, or nil when an intermediate value would
    /// overflow (callers then test elements with `Predicate.holds`).
    static func keptColumns(_ predicate: Predicate, row i: Int, within columns: Range<Int>) -> Range<Int>? {
        var lo = columns.lowerBound
        var hi = columns.upperBound
        for atom in predicate.atoms {
            switch atom {
            case .affineNonNegative(let a, let b, let c):
                // b·j ≥ t with t = −(a·i + c).
                guard let t = negatedAffine(a, i, c) else { return nil }
                if b == 0 {
                    if t > 0 { return columns.lowerBound..<columns.lowerBound }
                } else if b > 0 {
                    lo = max(lo, ceilDiv(t, b))
                } else {
                    guard b != Int.min else { return nil }
                    let f = floorDiv(t, b)  // j ≤ ⌊t / b⌋ for b < 0
                    hi = min(hi, f == Int.max ? f : f + 1)
                }
            case .affineZero(let a, let b, let c):
                guard let t = negatedAffine(a, i, c) else { return nil }
                if b == 0 {
                    if t != 0 { return columns.lowerBound..<columns.lowerBound }
                } else {
                    guard b != Int.min, t % b == 0 else { return columns.lowerBound..<columns.lowerBound }
                    let j = t / b
                    lo = max(lo, j)
                    hi = min(hi, j == Int.max ? j : j + 1)
                }
            case .sameSegment(let bounds):
                let sorted = bounds.sorted()
                let s = sorted.reduce(0) { i >= $1 ? $0 + 1 : $0 }
                if s > 0 { lo = max(lo, sorted[s - 1]) }
                if s < sorted.count { hi = min(hi, sorted[s]) }
            case .quotient(let q):
                guard let kept = quotientColumns(q, row: i) else { return nil }
                lo = max(lo, kept.lowerBound)
                hi = min(hi, kept.upperBound)
            }
        }
        return lo < hi ? lo..<hi : columns.lowerBound..<columns.lowerBound
    }

    /// The columns `j` a quotient atom keeps in row `i` when they form an interval: with `b·j`
    /// alone it is an affine condition; with `q·⌊j/m⌋` alone, `q·⌊j/m⌋ ≥ t` keeps `⌊j/m⌋ ≥ ⌈t/q⌉`
    /// (q > 0), i.e. `j ≥ m·⌈t/q⌉`, or `⌊j/m⌋ ≤ ⌊t/q⌋` (q < 0), i.e. `j < m·(⌊t/q⌋ + 1)`; `= t`
    /// keeps the chunk `[m·t/q, m·t/q + m)`. Nil when both occur (`j % 2 == 0` keeps every other
    /// column) or on overflow: callers then test every element.
    private static func quotientColumns(_ q: QuotientAffine, row i: Int) -> Range<Int>? {
        let m = q.divisor
        let all = Int.min..<Int.max
        guard q.column == 0 || q.columnQuotient == 0, m > 0, Swift.abs(q.column) < 1 << 40,
            Swift.abs(q.columnQuotient) < 1 << 40
        else { return nil }
        // t = −(a·i + p·⌊i/m⌋ + c): the condition is b·j + q·⌊j/m⌋ (≥ | =) t.
        let (ai, o1) = q.row.multipliedReportingOverflow(by: i)
        let (pi, o2) = q.rowQuotient.multipliedReportingOverflow(by: QuotientAffine.floorDivide(i, m))
        let (s1, o3) = ai.addingReportingOverflow(pi)
        let (s, o4) = s1.addingReportingOverflow(q.constant)
        guard !o1, !o2, !o3, !o4, s != Int.min, Swift.abs(s) < 1 << 60 else { return nil }
        let t = -s
        let empty = 0..<0
        let (coefficient, scale) = q.column != 0 ? (q.column, 1) : (q.columnQuotient, m)
        if coefficient == 0 {
            let kept = q.isEquality ? t == 0 : t <= 0
            return kept ? all : empty
        }
        // x = j (scale 1) or x = ⌊j/m⌋ (scale m); x in [xlo, xhi] ⇔ j in [scale·xlo, scale·xhi + scale).
        var xlo = Int.min / (2 * m)
        var xhi = Int.max / (2 * m)
        if q.isEquality {
            guard t % coefficient == 0 else { return empty }
            xlo = t / coefficient
            xhi = xlo
        } else if coefficient > 0 {
            xlo = ceilDiv(t, coefficient)
        } else {
            xhi = floorDiv(t, coefficient)
        }
        let lower = xlo <= Int.min / (2 * m) ? Int.min : xlo * scale
        let upper = xhi >= Int.max / (2 * m) ? Int.max : xhi * scale + scale
        return lower < upper ? lower..<upper : empty
    }

    /// `−(a·i + c)`, or nil on overflow.
    private static func negatedAffine(_ a: Int, _ i: Int, _ c: Int) -> Int? {
        let (ai, o1) = a.multipliedReportingOverflow(by: i)
        let (s, o2) = ai.addingReportingOverflow(c)
        guard !o1, !o2, s != Int.min else { return nil }
        return -s
    }

    private static func floorDiv(_ x: Int, _ y: Int) -> Int {
        let q = x / y
        return (x % y != 0 && ((x < 0) != (y < 0))) ? q - 1 : q
    }

    private static func ceilDiv(_ x: Int, _ y: Int) -> Int {
        let q = x / y
        return (x % y != 0 && ((x < 0) == (y < 0))) ? q + 1 : q
    }

    /// Replaces the masked elements of a `rows × columns` row-major matrix (rows at stride `ld`)
    /// whose element `(r, c)` sits at `(rowOffset + r, columnOffset + c)`.
    static func apply(
        _ predicate: Predicate, fill: Float, to x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ld: Int,
        rowOffset: Int, columnOffset: Int
    ) {
        let (end, overflow) = columnOffset.addingReportingOverflow(columns)
        var r = 0
        while r < rows {
            let row = x + r * ld
            let (i, o) = rowOffset.addingReportingOverflow(r)
            if !overflow, !o, let kept = keptColumns(predicate, row: i, within: columnOffset..<end) {
                let keptLo = kept.lowerBound - columnOffset
                let keptHi = kept.upperBound - columnOffset
                if keptLo >= keptHi {
                    row.update(repeating: fill, count: columns)
                } else {
                    row.update(repeating: fill, count: keptLo)
                    (row + keptHi).update(repeating: fill, count: columns - keptHi)
                }
            } else {
                var c = 0
                while c < columns {
                    if !holdsWrapping(predicate, row: rowOffset &+ r, column: columnOffset &+ c) { row[c] = fill }
                    c += 1
                }
            }
            r += 1
        }
    }

    /// `Predicate.holds` with wrapping arithmetic, for positions near the integer limits.
    private static func holdsWrapping(_ predicate: Predicate, row i: Int, column j: Int) -> Bool {
        for atom in predicate.atoms {
            switch atom {
            case .affineNonNegative(let a, let b, let c): if !(a &* i &+ b &* j &+ c >= 0) { return false }
            case .affineZero(let a, let b, let c): if a &* i &+ b &* j &+ c != 0 { return false }
            case .sameSegment: if !atom.holds(row: i, column: j) { return false }
            case .quotient(let q):
                let m = q.divisor
                let v =
                    q.row &* i &+ q.column &* j &+ q.rowQuotient &* QuotientAffine.floorDivide(i, m)
                    &+ q.columnQuotient &* QuotientAffine.floorDivide(j, m) &+ q.constant
                if q.isEquality ? v != 0 : v < 0 { return false }
            }
        }
        return true
    }
}
