import BlockIR

extension FusionRule {
    /// R4b — distributing a matrix product over a sum whose terms carry loop-invariant row
    /// factors, so the factors apply once after the loop and the loop no longer needs them.
    ///
    /// Precondition: a carried matrix starting at `0` accumulates `dot(E, W)` (nothing else
    /// reads it), and `E` expands — through `add`, `sub`, `neg` and `mul` — into terms
    /// `c · f₁⋯fₚ · g` where each `fᵢ` is a row vector (or scalar) defined before the loop,
    /// broadcast along rows, and `g` is a product of loop values and column vectors broadcast
    /// down the rows (`broadcast v axis 0`); at least one term has a factor.
    ///
    /// ```
    /// %a = for k … iter(%c = 0) { %d = sub %x, (broadcast %μ axis 1); %n = mul %d, (broadcast %r axis 1)
    ///                              %y = mul %n, (broadcast %γ axis 0);  %e = add %y, (broadcast %β axis 0)
    ///                              %c2 = add %c, (dot %e, %w); yield %c2 }
    /// ```
    /// → the loop carries `A₁ = Σ dot(x∘γ, w)`, `A₂ = Σ γ·w` and `A₃ = Σ β·w` (the last two
    /// row vectors: a column vector broadcast down the rows makes every row of the product
    /// equal), and after it `%a = r·A₁ − μ·r·A₂ + A₃`. Exact over the reals: the product is
    /// bilinear, so `Σₖ (Σₜ fₜ·gₜ,ₖ)·wₖ = Σₜ fₜ·Σₖ gₜ,ₖ·wₖ` when the `fₜ` do not depend on `k`.
    public static let distribution = FusionRule(
        id: "R4b", name: "distribution",
        summary: "split an accumulated matmul of a sum into per-term accumulators; invariant row factors apply after"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .distribution) { kernel, program in
            let facts = plan.facts(of: kernel, in: program)
            var next = facts.nextValueNumber
            return distribute(kernel.body, types: facts.valueTypes, next: &next)
        }
    }

    /// One column factor of a term: a loop value, or a column vector broadcast down the rows.
    private enum Column: Hashable, Comparable {
        case value(ValueID)
        case rowsOf(ValueID)
    }

    /// `coefficient · Π factors · Π columns`.
    private struct Term {
        var coefficient: Float
        var factors: [ValueID]
        var columns: [Column]

        /// Whether every column is a broadcast column vector (the product's rows are all equal).
        var isRowConstant: Bool {
            columns.allSatisfy { if case .rowsOf = $0 { return true } else { return false } }
        }
    }

    private static func distribute(_ body: [Instruction], types: [ValueID: BlockType], next: inout Int) -> (
        [Instruction], String
    )? {
        var fills: [ValueID: Float] = [:]
        for (index, inst) in body.enumerated() {
            if case .fill(let c) = inst.op, let r = inst.result { fills[r.id] = c }
            guard case .loop(var loop) = inst.op else { continue }
            if let (inner, detail) = distribute(loop.body, types: types, next: &next) {
                loop.body = inner
                var out = body
                out[index].op = .loop(loop)
                return (out, detail)
            }
            guard case .yield(let yields) = loop.body.last?.op,
                zip(loop.carried, loop.initial).contains(where: { $0.type.rank == 2 && fills[$1] == 0 })
            else { continue }
            var defs: [ValueID: Instruction] = [:]
            for b in loop.body { for r in b.results { defs[r.id] = b } }
            var outerDefs: [ValueID: Instruction] = [:]
            for b in body[..<index] { for r in b.results { outerDefs[r.id] = b } }
            let local = loop.body.definedValues.union(loop.carried.map(\.id))
            let uses = loop.body.useCounts
            for (c, carried) in loop.carried.enumerated() where carried.type.rank == 2 {
                guard fills[loop.initial[c]] == 0, uses[carried.id] == 1,
                    let update = defs[yields[c]], case .binary(.add, let a0, let b0) = update.op
                else { continue }
                let term = a0 == carried.id ? b0 : (b0 == carried.id ? a0 : nil)
                guard let term, uses[term] == 1, let dotInst = defs[term],
                    case .dot(let e, let w, false, let tb, let precision) = dotInst.op, let eType = types[e],
                    eType.rank == 2
                else { continue }
                var budget = 16
                guard let terms = expand(e, defs, outerDefs, local, types, &budget),
                    terms.contains(where: { !$0.factors.isEmpty }),
                    terms.allSatisfy({ !$0.columns.isEmpty })
                else { continue }
                // Group terms by their factors and by whether their product is row-constant.
                var groups: [(factors: [ValueID], rowConstant: Bool, terms: [Term])] = []
                for t in terms {
                    if let g = groups.firstIndex(where: { $0.factors == t.factors && $0.rowConstant == t.isRowConstant }
                    ) {
                        groups[g].terms.append(t)
                    } else {
                        groups.append((t.factors, t.isRowConstant, [t]))
                    }
                }
                func fresh(_ t: BlockType) -> Value {
                    defer { next += 1 }
                    return Value(ValueID(next), t)
                }
                let accType = carried.type
                let n = accType.shape[1]
                let rowType = BlockType([1, n], accType.tier)
                let vecType = BlockType([n], accType.tier)
                var inner = Array(loop.body.dropLast())
                inner.removeAll { $0.results.contains { $0.id == yields[c] } }
                var newCarried: [Value] = []
                var newYields: [ValueID] = []
                var zeroVector: Value?
                var prologue: [Instruction] = []
                for group in groups {
                    // The group's operand this iteration: its terms' column products (row
                    // vectors for a row-constant group), scaled and summed before one product
                    // with `w` (bilinearity: Σₜ cₜ·(gₜ·w) = (Σₜ cₜ·gₜ)·w), so a group costs one
                    // dot however many terms it has.
                    var operandSum: ValueID?
                    for t in group.terms {
                        var product: ValueID?
                        for col in t.columns {
                            let operand: ValueID
                            switch col {
                            case .rowsOf(let v) where group.rowConstant: operand = v
                            case .rowsOf(let v):
                                let b = fresh(eType)
                                inner.append(Instruction([b], .broadcast(v, axis: 0)))
                                operand = b.id
                            case .value(let v): operand = v
                            }
                            if let p = product {
                                let m = fresh(types[operand] ?? eType)
                                inner.append(Instruction([m], .binary(.mul, p, operand)))
                                product = m.id
                            } else {
                                product = operand
                            }
                        }
                        guard var scaled = product else { return nil }
                        let operandType = types[scaled] ?? eType
                        if t.coefficient != 1 {
                            let k = fresh(BlockType([], .reg))
                            let m = fresh(operandType)
                            inner.append(Instruction([k], .fill(t.coefficient)))
                            inner.append(Instruction([m], .binary(.mul, scaled, k.id)))
                            scaled = m.id
                        }
                        if let s = operandSum {
                            let a = fresh(operandType)
                            inner.append(Instruction([a], .binary(.add, s, scaled)))
                            operandSum = a.id
                        } else {
                            operandSum = scaled
                        }
                    }
                    guard let operand = operandSum else { return nil }
                    let sum: ValueID?
                    if group.rowConstant {
                        let row = fresh(BlockType([1, types[operand]?.shape.first ?? eType.shape[1]], eType.tier))
                        inner.append(Instruction([row], .broadcast(operand, axis: 0)))
                        let d = fresh(rowType)
                        inner.append(
                            Instruction([d], .dot(row.id, w, transposeA: false, transposeB: tb, precision: precision)))
                        let v = fresh(vecType)
                        inner.append(Instruction([v], .reduce(.sum, d.id, axis: 0)))
                        sum = v.id
                    } else {
                        let d = fresh(accType)
                        inner.append(
                            Instruction([d], .dot(operand, w, transposeA: false, transposeB: tb, precision: precision)))
                        sum = d.id
                    }
                    guard let s = sum else { return nil }
                    let acc = fresh(group.rowConstant ? vecType : accType)
                    let updated = fresh(acc.type)
                    inner.append(Instruction([updated], .binary(.add, acc.id, s)))
                    newCarried.append(acc)
                    newYields.append(updated.id)
                    if group.rowConstant && zeroVector == nil {
                        let z = fresh(vecType)
                        prologue.append(Instruction([z], .fill(0)))
                        zeroVector = z
                    }
                }
                var newLoop = loop
                var carriedList = loop.carried
                var initial = loop.initial
                var ys = yields
                carriedList.remove(at: c)
                initial.remove(at: c)
                ys.remove(at: c)
                newLoop.carried = carriedList + newCarried
                newLoop.initial =
                    initial
                    + zip(groups, newCarried).map { group, _ in
                        group.rowConstant ? zeroVector!.id : loop.initial[c]
                    }
                newLoop.body = inner + [Instruction([], .yield(ys + newYields))]
                var results = inst.results
                let old = results.remove(at: c)
                let sums = newCarried.map { fresh($0.type) }
                var loopInst = inst
                loopInst.results = results + sums
                loopInst.op = .loop(newLoop)
                // After the loop: Σ over groups of (Π factors) · accumulator.
                var epilogue: [Instruction] = []
                var total: ValueID?
                for (group, s) in zip(groups, sums) {
                    var value = s.id
                    if group.rowConstant {
                        let b = fresh(accType)
                        epilogue.append(Instruction([b], .broadcast(s.id, axis: 0)))
                        value = b.id
                    }
                    for f in group.factors {
                        var factor = f
                        if types[f]?.rank == 1 {
                            let b = fresh(accType)
                            epilogue.append(Instruction([b], .broadcast(f, axis: 1)))
                            factor = b.id
                        }
                        let m = fresh(accType)
                        epilogue.append(Instruction([m], .binary(.mul, value, factor)))
                        value = m.id
                    }
                    if let t = total {
                        let a = fresh(accType)
                        epilogue.append(Instruction([a], .binary(.add, t, value)))
                        total = a.id
                    } else {
                        total = value
                    }
                }
                guard let result = total else { return nil }
                let tail = Array(body[(index + 1)...]).replacingUses([old.id: result])
                let out = Array(body[..<index]) + prologue + [loopInst] + epilogue + tail
                return (out, "split the accumulated dot of loop \(loop.variable) into \(groups.count) accumulators")
            }
        }
        return nil
    }

    /// The terms of `v`, or `nil` when it is not a sum of products of the recognised forms.
    private static func expand(
        _ v: ValueID, _ defs: [ValueID: Instruction], _ outer: [ValueID: Instruction], _ local: Set<ValueID>,
        _ types: [ValueID: BlockType], _ budget: inout Int
    ) -> [Term]? {
        budget -= 1
        guard budget >= 0 else { return nil }
        let inst = defs[v] ?? outer[v]
        switch inst?.op {
        case .broadcast(let r, axis: 1)? where !local.contains(r) && types[r]?.rank == 1:
            return [Term(coefficient: 1, factors: [r], columns: [])]
        case .broadcast(let col, axis: 0)? where types[col]?.rank == 1:
            return [Term(coefficient: 1, factors: [], columns: [.rowsOf(col)])]
        case .binary(.add, let a, let b)?:
            guard let x = expand(a, defs, outer, local, types, &budget),
                let y = expand(b, defs, outer, local, types, &budget)
            else { return nil }
            return x + y
        case .binary(.sub, let a, let b)?:
            guard let x = expand(a, defs, outer, local, types, &budget),
                let y = expand(b, defs, outer, local, types, &budget)
            else { return nil }
            return x
                + y.map {
                    var t = $0; t.coefficient = -t.coefficient; return t
                }
        case .unary(.neg, let a)?:
            return expand(a, defs, outer, local, types, &budget)?.map {
                var t = $0; t.coefficient = -t.coefficient; return t
            }
        case .binary(.mul, let a, let b)?:
            if types[b]?.rank == 0, !local.contains(b), let x = expand(a, defs, outer, local, types, &budget) {
                return x.map {
                    var t = $0; t.factors = (t.factors + [b]).sorted(); return t
                }
            }
            guard let x = expand(a, defs, outer, local, types, &budget),
                let y = expand(b, defs, outer, local, types, &budget), x.count * y.count <= 8
            else { return nil }
            return x.flatMap { s in
                y.map { t in
                    Term(
                        coefficient: s.coefficient * t.coefficient, factors: (s.factors + t.factors).sorted(),
                        columns: (s.columns + t.columns).sorted())
                }
            }
        default:
            // Any other loop value is an opaque column factor.
            guard local.contains(v), types[v]?.rank == 2 else { return nil }
            return [Term(coefficient: 1, factors: [], columns: [.value(v)])]
        }
    }
}
