import BlockIR

/// Rows a loop's iteration skips (CPU): in a loop over key blocks whose body masks the scores of
/// a query block by an index predicate, the rows of the block the mask removes entirely in an
/// iteration are left out of that iteration, every op of the body running over the others only.
///
/// Causal attention with 128-row query blocks and 64-column key blocks: in the last iteration of
/// row block `i` (`k = 2i + 1`), rows 0–63 of the block see only masked keys; the iteration
/// computes rows 64–127 (`first = max(0, 64·k − 128·i)`).
///
/// ```
/// for k in 0 ..< min(16, 2i + 2) iter(%m, %l, %o) { %s = dot %q, K[k]ᵀ; %x = mask %s at (128·i, 64·k) if i − j ≥ 0 else -inf; … }
/// ```
///
/// Legality, for a loop that stores nothing, holds no nested loop and has no full-block branch:
/// - the mask's row offset does not move with the loop, its columns do, and an iteration whose
///   mask removed every element would leave every carried value unchanged (R9's check,
///   `Loop.isUnchangedWhenMasked`; with the lowest float as the fill, only where R9 also skips:
///   the first element of the first block is kept in every row, a carried value is the running
///   maximum of the mask's row maxima, and the loop has no run-time bounds, guard or links);
/// - the body is row-local: every value whose first axis is the query block's rows (the
///   *aligned* values: the carried ones, the mask, the blocks the body reads from before the
///   loop with that first axis) is computed from aligned values row by row (elementwise ops, a
///   reduction or broadcast along the columns, a product with an aligned left operand and a
///   right operand that is not), combined only with scalars and blocks the same in every row
///   (a broadcast along the rows); every carried value is aligned.
///
/// Exact: row `r` of every aligned value depends only on row `r` of aligned values (and on
/// values that are the same for every row), so R9's argument holds row by row: a row whose
/// mask elements are all the fill comes out of the iteration unchanged, as if skipped. The
/// rows kept are bounded from the predicate's affine atoms (each alone removes a row on which
/// it fails for every column of the block; other atoms bound nothing).
package struct RowRestriction: Hashable, Sendable {
    /// The loop's counter.
    package var variable: IndexVar
    /// The query block's rows (the aligned values' first axis).
    package var rows: Int
    /// The first row of the block some element of which the mask keeps, and one past the last
    /// (unclamped; `nil`: no bound), in terms of the loop's counter and the grid.
    package var first: IndexExpr?
    package var end: IndexExpr?
    /// Every aligned value the body defines or reads (the carried values included).
    package var aligned: Set<ValueID>
    /// The aligned values defined before the loop (read by the body, or carried), sorted.
    package var outside: [ValueID]
    /// The elements per row of the storage of the aligned values: by the value that owns it (a
    /// buffer, or a block read in place), for the emitter to shift it by whole rows.
    package var rowStrides: [ValueID: Int]

    /// The restricted loops among a kernel's top-level instructions, by counter.
    package static func plan(_ kernel: Kernel, _ analysis: KernelAnalysis, target: TargetDescription) -> [IndexVar:
        RowRestriction]
    {
        guard !target.isGPU else { return [:] }
        let constants = kernel.fillConstants()
        let definitions = kernel.definitions()
        let grid = Set(kernel.gridVariables)
        var out: [IndexVar: RowRestriction] = [:]
        for inst in kernel.body {
            guard case .loop(let loop) = inst.op,
                let r = restriction(loop, constants: constants, definitions: definitions, grid: grid, analysis)
            else { continue }
            out[loop.variable] = r
        }
        return out
    }

    private static func restriction(
        _ loop: Loop, constants: [ValueID: Float], definitions: [ValueID: Instruction], grid: Set<IndexVar>,
        _ analysis: KernelAnalysis
    ) -> RowRestriction? {
        guard loop.full == nil, loop.body.isStoreFree,
            !loop.body.contains(where: { if case .loop = $0.op { return true } else { return false } })
        else { return nil }
        let k = loop.variable
        for inst in loop.body {
            guard case .mask(_, let row, let column, let predicate, let fill) = inst.op, let m = inst.result,
                m.type.shape.count == 2, !row.variables.contains(k), column.variables.contains(k)
            else { continue }
            let key = (row, column, predicate)
            var proved = loop.isUnchangedWhenMasked(constants: constants, mask: key)
            if !proved, fill == -Float.greatestFiniteMagnitude, loop.bounds == nil, loop.condition == nil,
                loop.links == nil, loop.keepsFirstElement(row: row, column: column, predicate: predicate, grid: grid),
                let running = loop.runningMaximum(of: m.id)
            {
                proved = loop.isUnchangedWhenMasked(constants: constants, mask: key, runningMaximum: running)
            }
            guard proved else { continue }
            let rows = m.type.shape[0]
            guard let found = rowBounds(row: row, column: column, columns: m.type.shape[1], predicate) else { continue }
            // A bound no iteration needs (causal with square blocks: every row keeps its diagonal) is dropped.
            let bounds = (
                first: found.first.flatMap { holds($0, in: loop, atMost: 0) ? nil : $0 },
                end: found.end.flatMap { holds($0, in: loop, atLeast: rows) ? nil : $0 }
            )
            guard bounds.first != nil || bounds.end != nil,
                let (aligned, strides) = alignedValues(loop, rows: rows, definitions: definitions, analysis)
            else { continue }
            let defined = Set(loop.body.flatMap { $0.results.map(\.id) })
            let outside = aligned.subtracting(defined).sorted { $0.number < $1.number }
            return RowRestriction(
                variable: k, rows: rows, first: bounds.first, end: bounds.end, aligned: aligned, outside: outside,
                rowStrides: strides)
        }
        return nil
    }

    /// Whether `e` (affine in the loop's counter) is at most `atMost` (or at least `atLeast`) in
    /// every iteration: at the iteration where it is largest (smallest), a clamp of the loop's
    /// bounds (`k < min(a, b)`: `k ≤ a − 1` and `k ≤ b − 1`) must make it a constant that holds.
    static func holds(_ e: IndexExpr, in loop: Loop, atMost: Int? = nil, atLeast: Int? = nil) -> Bool {
        let k = loop.variable
        guard let (c, _) = e.affine(in: k) else { return false }
        func arms(_ x: IndexExpr, min: Bool) -> [IndexExpr] {
            switch x {
            case .min(let a, let b) where min: return arms(a, min: true) + arms(b, min: true)
            case .max(let a, let b) where !min: return arms(a, min: false) + arms(b, min: false)
            default: return [x]
            }
        }
        let last = arms(loop.upper, min: true).map { IndexExpr.add($0, .constant(-1)) }
        let first = arms(loop.lower, min: false)
        // The largest value at the last iteration when e grows with k, else at the first.
        let extreme = (atMost != nil) == (c >= 0) ? last : first
        return extreme.contains { point in
            // A constant once every variable's terms cancel (`64·(i + 1 − 1) − 64·i`).
            var x = e.substituting([k: point]).simplified()
            for variable in Set(x.variables).sorted() {
                guard let (c, rest) = x.affine(in: variable), c == 0 else { return false }
                x = rest.simplified()
            }
            guard case .constant(let v) = x else { return false }
            return atMost.map { v <= $0 } ?? atLeast.map { v >= $0 } ?? false
        }
    }

    /// The kept rows of a block at `(row, column)` of `columns` columns, relative to its first row:
    /// each affine atom `a·i + b·j + c ≥ 0` keeps row `i` only if it holds at the block's column
    /// that maximizes `b·j`, which bounds the rows from below (`a > 0`) or above (`a < 0`).
    static func rowBounds(row: IndexExpr, column: IndexExpr, columns: Int, _ predicate: Predicate) -> (
        first: IndexExpr?, end: IndexExpr?
    )? {
        var atoms: [(Int, Int, Int)] = []
        for atom in predicate.atoms {
            switch atom {
            case .affineNonNegative(let a, let b, let c): atoms.append((a, b, c))
            case .affineZero(let a, let b, let c): atoms += [(a, b, c), (-a, -b, -c)]
            case .sameSegment, .quotient: continue
            }
        }
        var first: IndexExpr?
        var end: IndexExpr?
        for (a, b, c) in atoms where a != 0 {
            // g = max over the block's columns of b·j, plus c.
            let j: IndexExpr = b > 0 ? .add(column, .constant(columns - 1)) : column
            let g = IndexExpr.add(.mul(j, b), .constant(c))
            if a > 0 {
                // a·i + g ≥ 0 ⇔ i ≥ ⌈−g / a⌉ = ⌊(−g + a − 1) / a⌋
                let f = IndexExpr.add(.floorDiv(.add(.mul(g, -1), .constant(a - 1)), a), .mul(row, -1))
                first = first.map { .max($0, f) } ?? f
            } else {
                // i ≤ ⌊g / −a⌋
                let e = IndexExpr.add(.add(.floorDiv(g, -a), .constant(1)), .mul(row, -1))
                end = end.map { .min($0, e) } ?? e
            }
        }
        guard first != nil || end != nil else { return nil }
        return (first?.simplified(), end?.simplified())
    }

    /// The aligned values of a row-local body (see the type's comment) and the row stride of
    /// their storage by owner, or nil where the body is not row-local: the carried values of
    /// `rows` rows seed them, and the values before the loop the body reads with `rows` as their
    /// first axis (not a broadcast along the rows).
    private static func alignedValues(
        _ loop: Loop, rows: Int, definitions: [ValueID: Instruction], _ analysis: KernelAnalysis
    ) -> (Set<ValueID>, [ValueID: Int])? {
        enum Kind { case aligned, uniform, other }
        var kinds: [ValueID: Kind] = [:]
        for c in loop.carried {
            guard (1...2).contains(c.type.shape.count), c.type.shape[0] == rows else { return nil }
            kinds[c.id] = .aligned
        }
        func kind(_ v: ValueID) -> Kind {
            if let k = kinds[v] { return k }
            // Defined before the loop.
            guard let def = definitions[v], let t = def.results.first(where: { $0.id == v })?.type else {
                return .other
            }
            if t.shape.isEmpty { return .uniform }
            if case .broadcast(_, 0) = def.op { return .uniform }
            return t.shape[0] == rows && t.shape.count <= 2 ? .aligned : .other
        }
        var aligned: Set<ValueID> = Set(loop.carried.map(\.id))
        for inst in loop.body {
            let operands = inst.op.operands
            let operandKinds = operands.map(kind)
            let anyAligned = operandKinds.contains { $0 == .aligned }
            if anyAligned { for (v, k) in zip(operands, operandKinds) where k == .aligned { aligned.insert(v) } }
            guard let r = inst.result else {
                if case .yield(let ys) = inst.op {
                    // Every carried value is yielded an aligned value with a buffer (not a splat).
                    for y in ys {
                        guard kind(y) == .aligned, !analysis.isSplat(y) else { return nil }
                    }
                }
                continue
            }
            let result: Kind
            switch inst.op {
            case .fill: result = .uniform
            case .load, .gather, .index: result = r.type.shape.isEmpty ? .uniform : .other
            case .unary, .binary, .select, .mask:
                if case .mask(let x, _, _, _, _) = inst.op, kind(x) != .aligned { return nil }
                if anyAligned {
                    // Row-by-row: the other operands are the same in every row.
                    guard operandKinds.allSatisfy({ $0 != .other }) else { return nil }
                    result = .aligned
                } else {
                    result = operandKinds.allSatisfy { $0 == .uniform } ? .uniform : .other
                }
            case .broadcast(let x, let axis):
                if kind(x) == .aligned {
                    guard axis >= 1 else { return nil }
                    result = .aligned
                } else {
                    result = axis == 0 || kind(x) == .uniform ? .uniform : .other
                }
            case .reduce(_, let x, let axis):
                if kind(x) == .aligned {
                    guard axis >= 1 else { return nil }
                    result = .aligned
                } else {
                    result = kind(x) == .uniform && r.type.shape.isEmpty ? .uniform : .other
                }
            case .dot(let a, let b, let ta, _, _):
                if kind(b) == .aligned { return nil }
                if kind(a) == .aligned {
                    guard !ta else { return nil }
                    result = .aligned
                } else {
                    result = .other
                }
            case .transpose, .concat, .scan, .loop, .store, .yield:
                guard !anyAligned else { return nil }
                result = .other
            }
            kinds[r.id] = result
            if result == .aligned {
                guard r.type.shape.first == rows else { return nil }
                aligned.insert(r.id)
            }
        }
        // The C emitter shifts each aligned value's storage by whole rows: every value on that
        // storage in the body is aligned, with one row stride.
        var stride: [ValueID: Int] = [:]
        var owners: [ValueID: Bool] = [:]
        func owner(_ v: ValueID) -> ValueID? {
            switch analysis.layouts[v]?.base {
            case .buffer(let o)?, .global(let o)?: return o
            case .scalar?, nil: return nil
            }
        }
        var used: Set<ValueID> = []
        for inst in loop.body {
            used.formUnion(inst.op.operands)
            used.formUnion(inst.results.map(\.id))
        }
        used.formUnion(loop.carried.map(\.id))
        for v in used.sorted(by: { $0.number < $1.number }) {
            guard let o = owner(v), let l = analysis.layouts[v] else { continue }
            let isAligned = aligned.contains(v)
            if let previous = owners[o], previous != isAligned { return nil }
            owners[o] = isAligned
            guard isAligned else { continue }
            if let s = stride[o], s != l.strides[0] { return nil }
            stride[o] = l.strides[0]
        }
        return (aligned, stride)
    }
}
