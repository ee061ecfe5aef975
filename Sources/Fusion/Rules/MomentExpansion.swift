import BlockIR

extension FusionRule {
    /// R5 — moment expansion: a row sum over the loop of a polynomial in a loop-invariant `μ`
    /// becomes power sums that do not involve `μ`.
    ///
    /// Precondition: a carried row vector starting at `0` accumulates `reduce_sum(p) axis 1`
    /// where `p` is `d` (degree 1) or `square d` / `mul d, d` (degree 2), `d = sub x, m` or
    /// `sub m, x`, `m = broadcast μ axis 1` with `μ` defined before the loop; nothing else reads
    /// the accumulator, `p` or `d`.
    ///
    /// ```
    /// %v = for k … iter(%c = %zero) { %x = load …; %d = sub %x, %m; %p = square %d
    ///                                  %r = reduce_sum %p axis 1; %c2 = add %c, %r; yield %c2 }
    /// ```
    /// → the loop carries `S2 = Σ rowsum x²`, `S1 = Σ rowsum x`, `S0 = Σ rowsum one(x)` (the
    /// count of valid elements) and after it `%v = S2 − 2μ·S1 + μ²·S0`.
    /// Exact over the reals: `Σ(x − μ)² = Σx² − 2μΣx + nμ²` and `Σ(x − μ) = Σx − nμ`. In fp32 the
    /// expanded form cancels when `|μ| ≫` the spread of `x`; the tests draw inputs with mean 0.
    public static let momentExpansion = FusionRule(
        id: "R5", name: "moment-expansion",
        summary: "expand a row sum of a polynomial in a loop-invariant value into power sums"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .momentExpansion) { kernel, program in
            var next = plan.facts(of: kernel, in: program).nextValueNumber
            return expand(kernel.body, next: &next)
        }
    }

    private static func expand(_ body: [Instruction], next: inout Int) -> ([Instruction], String)? {
        var fills: [ValueID: Float] = [:]
        for (index, inst) in body.enumerated() {
            if case .fill(let c) = inst.op, let r = inst.result { fills[r.id] = c }
            guard case .loop(var loop) = inst.op else { continue }
            if let (inner, detail) = expand(loop.body, next: &next) {
                loop.body = inner
                var out = body
                out[index].op = .loop(loop)
                return (out, detail)
            }
            guard case .yield(let yields) = loop.body.last?.op,
                zip(loop.carried, loop.initial).contains(where: { $0.type.rank == 1 && fills[$1] == 0 })
            else { continue }
            var defs: [ValueID: Instruction] = [:]
            for b in loop.body { for r in b.results { defs[r.id] = b } }
            let local = loop.body.definedValues.union(loop.carried.map(\.id))
            let uses = loop.body.useCounts
            for (c, carried) in loop.carried.enumerated() where carried.type.rank == 1 {
                guard fills[loop.initial[c]] == 0, uses[carried.id] == 1,
                    let update = defs[yields[c]], case .binary(.add, let a0, let b0) = update.op
                else { continue }
                let r = a0 == carried.id ? b0 : (b0 == carried.id ? a0 : nil)
                guard let r, uses[r] == 1, let red = defs[r], case .reduce(.sum, let p, axis: 1) = red.op,
                    uses[p] == 1, let pInst = defs[p]
                else { continue }
                var degree = 1
                var d = p
                switch pInst.op {
                case .unary(.square, let x) where uses[x] == 1:
                    degree = 2
                    d = x
                case .binary(.mul, let x, let y) where x == y && uses[x] == 2:
                    degree = 2
                    d = x
                default: break
                }
                guard let dInst = defs[d], case .binary(.sub, let u, let v) = dInst.op else { continue }
                /// `μ` when `id` is `broadcast μ axis 1` of a `μ` defined before the loop (the
                /// broadcast itself inside the loop or hoisted before it).
                func invariantRow(_ id: ValueID) -> ValueID? {
                    if let m = defs[id], case .broadcast(let mu, axis: 1) = m.op, !local.contains(mu) { return mu }
                    return hoistedRow(id, outer: body[..<index])
                }
                let (x, mu, sign): (ValueID, ValueID, Float)
                if let m = invariantRow(v) {
                    (x, mu, sign) = (u, m, 1)
                } else if let m = invariantRow(u) {
                    (x, mu, sign) = (v, m, -1)
                } else {
                    continue
                }
                guard local.contains(x), let xType = defs[x]?.results.first?.type ?? nil, xType.rank == 2 else {
                    continue
                }
                return (
                    rewrite(
                        body, index, loop, c, x: x, xType: xType, mu: mu, sign: sign, degree: degree,
                        drop: [yields[c], r, p, d], next: &next),
                    "expanded a degree-\(degree) row sum around \(mu) in loop \(loop.variable) into power sums"
                )
            }
        }
        return nil
    }

    /// The loop at `index` carrying the power sums of `x` instead of its carried value `c`, and
    /// the polynomial in `mu` after it.
    private static func rewrite(
        _ body: [Instruction], _ index: Int, _ loop: Loop, _ c: Int, x: ValueID, xType: BlockType, mu: ValueID,
        sign: Float, degree: Int, drop: Set<ValueID>, next: inout Int
    ) -> [Instruction] {
        func fresh(_ t: BlockType) -> Value {
            defer { next += 1 }
            return Value(ValueID(next), t)
        }
        let rowType = loop.carried[c].type
        let blockType = BlockType(xType.shape, xType.tier)
        var inner = loop.body.dropLast().filter { !$0.results.contains { drop.contains($0.id) } }
        var newCarried: [Value] = []
        var newYields: [ValueID] = []
        for power in degree == 2 ? [2, 1, 0] : [1, 0] {
            var term = x
            if power == 2 {
                let sq = fresh(blockType)
                inner.append(Instruction([sq], .unary(.square, x)))
                term = sq.id
            } else if power == 0 {
                let ones = fresh(blockType)
                inner.append(Instruction([ones], .unary(.one, x)))
                term = ones.id
            }
            let sum = fresh(rowType)
            inner.append(Instruction([sum], .reduce(.sum, term, axis: 1)))
            let acc = fresh(rowType)
            let updated = fresh(rowType)
            inner.append(Instruction([updated], .binary(.add, acc.id, sum.id)))
            newCarried.append(acc)
            newYields.append(updated.id)
        }
        guard case .yield(var yields) = loop.body.last?.op else { return body }
        var newLoop = loop
        var carried = loop.carried
        var initial = loop.initial
        carried.remove(at: c)
        initial.remove(at: c)
        yields.remove(at: c)
        newLoop.carried = carried + newCarried
        newLoop.initial = initial + Array(repeating: loop.initial[c], count: newCarried.count)
        newLoop.body = inner + [Instruction([], .yield(yields + newYields))]
        var results = body[index].results
        let old = results.remove(at: c)
        let sums = newCarried.map { fresh($0.type) }
        var loopInst = body[index]
        loopInst.results = results + sums
        loopInst.op = .loop(newLoop)
        // Epilogue: the polynomial in μ over the power sums.
        var epilogue: [Instruction] = []
        if degree == 2 {
            let two = fresh(BlockType([], .reg))
            let muS1 = fresh(rowType)
            let twoMuS1 = fresh(rowType)
            let mu2 = fresh(rowType)
            let mu2S0 = fresh(rowType)
            let diff = fresh(rowType)
            epilogue = [
                Instruction([two], .fill(2)),
                Instruction([muS1], .binary(.mul, mu, sums[1].id)),
                Instruction([twoMuS1], .binary(.mul, muS1.id, two.id)),
                Instruction([mu2], .binary(.mul, mu, mu)),
                Instruction([mu2S0], .binary(.mul, mu2.id, sums[2].id)),
                Instruction([diff], .binary(.sub, sums[0].id, twoMuS1.id)),
                Instruction([old], .binary(.add, diff.id, mu2S0.id)),
            ]
        } else {
            let muS0 = fresh(rowType)
            epilogue = [
                Instruction([muS0], .binary(.mul, mu, sums[1].id)),
                Instruction(
                    [old],
                    sign > 0 ? .binary(.sub, sums[0].id, muS0.id) : .binary(.sub, muS0.id, sums[0].id)),
            ]
        }
        return Array(body[..<index]) + [loopInst] + epilogue + Array(body[(index + 1)...])
    }

    /// `μ` when `id` is `broadcast μ axis 1` defined before the loop (hoisted there).
    private static func hoistedRow(_ id: ValueID, outer: ArraySlice<Instruction>) -> ValueID? {
        for inst in outer where inst.results.first?.id == id {
            if case .broadcast(let mu, axis: 1) = inst.op { return mu }
        }
        return nil
    }
}
