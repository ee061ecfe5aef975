import BlockIR

extension FusionRule {
    /// R4a — a row scale commutes with linear maps along rows.
    ///
    /// A row scale is `broadcast %v axis 1` (one factor per row). Scaling the rows of a matrix
    /// product's left operand scales the rows of the product, and scaling the rows of a block
    /// scales its row sums:
    ///
    /// ```
    /// %r = broadcast %l axis 1 : f32[64,64];  %p = div %e, %r;  %o = dot %p, %v
    /// ```
    /// → `%o' = dot %e, %v;  %r' = broadcast %l axis 1 : f32[64,N];  %o = div %o', %r'`, and
    /// `reduce_sum (mul %x, %r) axis 1` → `mul (reduce_sum %x axis 1), %v`.
    /// Exact over the reals: `(D·X)·Y = D·(X·Y)` for a diagonal `D`, and `Σⱼ dᵢ xᵢⱼ = dᵢ Σⱼ xᵢⱼ`.
    ///
    /// A block scale `x ∘ s` with a scalar `s` (rank 0: one factor for the whole block, as the
    /// softmax sum of a single query row) moves the same way out of either operand of a dot, a
    /// sum along any axis and a broadcast: `broadcast(x ∘ s) = broadcast(x) ∘ s`.
    ///
    /// On a CPU, a column scale of an f32 product's left operand (`x ∘ broadcast(v, axis 0)`,
    /// one factor per element of the contracted axis: LayerNorm's and RMSNorm's γ) moves onto the
    /// rows of its right operand when that is a block of a tensor and `v` a loaded vector:
    /// `dot(x, y ∘ broadcast(v, axis 1))` (axis 0 for a transposed `y`). Exact over the reals,
    /// `(X·D)·Y = X·(D·Y)`; the schedule computes `y ∘ v` where it packs `y` once per call
    /// (`KernelSchedule.Prepack.scale`), so no instance scales a block of either operand.
    public static let scaleMotion = FusionRule(
        id: "R4a", name: "scale-motion", summary: "move a row scale out of a matmul's left operand or a row sum"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .scaleMotion) { kernel, program in
            let facts = plan.facts(of: kernel, in: program)
            var next = facts.nextValueNumber
            return moveScales(
                kernel.body, types: facts.valueTypes, next: &next, moveColumnScales: !plan.target.isGPU)
        }
    }

    /// Finds `(x, v, op)` when `id` is `x op broadcast(v, axis 1)` with `op` ∈ {mul, div}.
    private static func rowScaled(
        _ id: ValueID, _ defs: [ValueID: Instruction], _ types: [ValueID: BlockType]
    ) -> (x: ValueID, v: ValueID, op: BinaryOp)? {
        guard let inst = defs[id], case .binary(let op, let a, let b) = inst.op, op == .mul || op == .div else {
            return nil
        }
        func scale(_ s: ValueID) -> ValueID? {
            guard let d = defs[s], case .broadcast(let v, axis: 1) = d.op, types[v]?.rank == 1 else { return nil }
            return v
        }
        if let v = scale(b), types[a]?.rank == 2 { return (a, v, op) }
        if op == .mul, let v = scale(a), types[b]?.rank == 2 { return (b, v, op) }
        return nil
    }

    /// Finds `(x, v, op)` when `id` is `x op broadcast(v, axis 0)` (one factor per column) with
    /// `op` ∈ {mul, div}.
    private static func columnScaled(
        _ id: ValueID, _ defs: [ValueID: Instruction], _ types: [ValueID: BlockType]
    ) -> (x: ValueID, v: ValueID, op: BinaryOp)? {
        guard let inst = defs[id], case .binary(let op, let a, let b) = inst.op, op == .mul || op == .div else {
            return nil
        }
        func scale(_ s: ValueID) -> ValueID? {
            guard let d = defs[s], case .broadcast(let v, axis: 0) = d.op, types[v]?.rank == 1,
                types[s]?.rank == 2
            else { return nil }
            return v
        }
        if let v = scale(b), types[a]?.rank == 2 { return (a, v, op) }
        if op == .mul, let v = scale(a), types[b]?.rank == 2 { return (b, v, op) }
        return nil
    }

    /// Finds `(x, s, op)` when `id` is `x op s` with a scalar (rank-0) `s`, `x` a block, and
    /// `op` ∈ {mul, div}.
    private static func blockScaled(
        _ id: ValueID, _ defs: [ValueID: Instruction], _ types: [ValueID: BlockType]
    ) -> (x: ValueID, s: ValueID, op: BinaryOp)? {
        guard let inst = defs[id], case .binary(let op, let a, let b) = inst.op, op == .mul || op == .div else {
            return nil
        }
        if types[b]?.rank == 0, let ra = types[a]?.rank, ra > 0 { return (a, b, op) }
        if op == .mul, types[a]?.rank == 0, let rb = types[b]?.rank, rb > 0 { return (b, a, op) }
        return nil
    }

    /// `inst`, whose operand `scaled` is `x op s` for a scalar `s` (or a broadcast of it:
    /// `broadcast(x op s) = broadcast(x) op s`), rewritten to act on `x`, then scaled by `s`.
    private static func hoistBlockScale(
        _ inst: Instruction, operand scaled: ValueID, _ defs: [ValueID: Instruction], _ types: [ValueID: BlockType],
        next: inout Int
    ) -> (instructions: [Instruction], scale: ValueID)? {
        var prefix: [Instruction] = []
        var replacement: ValueID
        let found: (x: ValueID, s: ValueID, op: BinaryOp)
        if let direct = blockScaled(scaled, defs, types) {
            found = direct
            replacement = direct.x
        } else if let d = defs[scaled], case .broadcast(let z, let axis) = d.op, let inner = blockScaled(z, defs, types)
        {
            found = inner
            let wide = Value(ValueID(next), d.results[0].type)
            next += 1
            prefix.append(Instruction([wide], .broadcast(inner.x, axis: axis)))
            replacement = wide.id
        } else {
            return nil
        }
        let r = inst.results[0]
        let raw = Value(ValueID(next), r.type)
        next += 1
        return (
            prefix + [
                Instruction([raw], inst.op.mappingOperands { $0 == scaled ? replacement : $0 }),
                Instruction([r], .binary(found.op, raw.id, found.s)),
            ], found.s
        )
    }

    private static func moveScales(
        _ body: [Instruction], types: [ValueID: BlockType], next: inout Int, moveColumnScales: Bool,
        outer: [ValueID: Instruction] = [:]
    ) -> ([Instruction], String)? {
        var defs = outer
        for (index, inst) in body.enumerated() {
            for r in inst.results { defs[r.id] = inst }
            switch inst.op {
            case .loop(var loop):
                if let (inner, detail) = moveScales(
                    loop.body, types: types, next: &next, moveColumnScales: moveColumnScales, outer: defs)
                {
                    loop.body = inner
                    var out = body
                    out[index].op = .loop(loop)
                    return (out, detail)
                }
            case .dot(let a, let b, _, _, _):
                if let (replacement, scale) = hoistBlockScale(inst, operand: a, defs, types, next: &next)
                    ?? hoistBlockScale(inst, operand: b, defs, types, next: &next)
                {
                    var out = body
                    out.replaceSubrange(index...index, with: replacement)
                    return (out, "moved the block scale \(scale) out of the dot \(inst.results[0].id)")
                }
                if moveColumnScales, case .dot(_, _, false, let tb, .f32) = inst.op, let r = inst.result,
                    let (x, v, op) = columnScaled(a, defs, types), let y = defs[b], case .load = y.op,
                    let vd = defs[v], case .load = vd.op, let yType = types[b], yType.rank == 2
                {
                    // The right operand scaled along its rows (columns when transposed): a block
                    // of a tensor and a vector the schedule can apply where it packs the block
                    // once per call (`KernelSchedule.Prepack.scale`).
                    let scale = Value(ValueID(next), BlockType(yType.shape, yType.tier))
                    let scaled = Value(ValueID(next + 1), yType)
                    next += 2
                    let replacement = [
                        Instruction([scale], .broadcast(v, axis: tb ? 0 : 1)),
                        Instruction([scaled], .binary(op, b, scale.id)),
                        Instruction([r], .dot(x, scaled.id, transposeA: false, transposeB: tb, precision: .f32)),
                    ]
                    var out = body
                    out.replaceSubrange(index...index, with: replacement)
                    return (
                        out,
                        "moved the column scale \(v) of the dot \(r.id)'s left operand onto its right operand's rows"
                    )
                }
                guard case .dot(_, _, false, let tb, let precision) = inst.op, let r = inst.result,
                    let (x, v, op) = rowScaled(a, defs, types)
                else { continue }
                let product = Value(ValueID(next), r.type)
                let scale = Value(ValueID(next + 1), BlockType(r.type.shape, types[v]?.tier ?? .local))
                next += 2
                let replacement = [
                    Instruction([product], .dot(x, b, transposeA: false, transposeB: tb, precision: precision)),
                    Instruction([scale], .broadcast(v, axis: 1)),
                    Instruction([r], .binary(op, product.id, scale.id)),
                ]
                var out = body
                out.replaceSubrange(index...index, with: replacement)
                return (out, "moved the row scale \(v) out of the dot \(r.id)")
            case .reduce(.sum, let a, _) where blockScaled(a, defs, types) != nil:
                guard let (replacement, scale) = hoistBlockScale(inst, operand: a, defs, types, next: &next) else {
                    continue
                }
                var out = body
                out.replaceSubrange(index...index, with: replacement)
                return (out, "moved the block scale \(scale) out of the row sum \(inst.results[0].id)")
            case .reduce(.sum, let a, axis: 1):
                guard let r = inst.result, let (x, v, op) = rowScaled(a, defs, types) else { continue }
                let sum = Value(ValueID(next), r.type)
                next += 1
                let replacement = [
                    Instruction([sum], .reduce(.sum, x, axis: 1)),
                    Instruction([r], .binary(op, sum.id, v)),
                ]
                var out = body
                out.replaceSubrange(index...index, with: replacement)
                return (out, "moved the row scale \(v) out of the row sum \(r.id)")
            default: continue
            }
        }
        return nil
    }
}
