import BlockIR

extension FusionRule {
    /// R6 — streaming a running maximum with a correction factor.
    ///
    /// Precondition: loop A completes a row maximum `m = max over k of f_k` (its one carried
    /// value starts at `-inf` and is updated by `max(c, f)`), and a later loop B over the same
    /// range uses `m` only through `exp(x − broadcast(m))` — `exp` turns the shift into a
    /// per-row factor `exp(−m)` (`UnaryOp.exp.isExponential`) — whose results reach B's carried
    /// sums (starting at `0`) only through maps linear in a row factor (row sums, the left
    /// operand of a dot, products with values not involving `m`, sums of such). A rank-1 maximum
    /// broadcast along axis 0 is one per column (softmax along the first axis): the factor is then
    /// per column, kept by column sums and a dot's right operand, and `α` is broadcast along axis 0.
    ///
    /// ```
    /// %m = for k … iter(%c = -inf) { …; %f = reduce_max %s axis 1; %c2 = max %c, %f; yield %c2 }
    /// %l, %o = for k … iter(%a = 0, %b = 0) { …; %e = exp (sub %s', broadcast %m);
    ///                                          yield add %a, rowsum %e;  add %b, dot %e, %v }
    /// ```
    /// → one loop carrying `(m, l, o)`: per iteration `m' = max(m, f)`, `α = exp(m − m̂')`,
    /// `e = exp(s − m̂')`, `l = α·l + rowsum e`, `o = α·o + e·v`, where `m̂' = max(m', lowest)`
    /// clamps the running maximum to the lowest finite float. The clamp makes the rule −∞-safe:
    /// while every score so far is `-inf`, `α = exp(−inf) = 0` and `e = 0`, never `exp(−inf + inf)`.
    /// Exact over the reals: `exp(x − m) = exp(x − m')·exp(m' − m)`, so rescaling the partial sums
    /// by `α` whenever the maximum grows gives the sums taken with the final maximum.
    public static let streaming = FusionRule(
        id: "R6", name: "streaming",
        summary: "merge a max loop into a loop that uses the max through exp, rescaling partial sums"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .streaming) { kernel, program in
            let facts = plan.facts(of: kernel, in: program)
            var next = facts.nextValueNumber
            return stream(kernel.body, types: facts.valueTypes, next: &next)
        }
    }

    private static func stream(_ body: [Instruction], types: [ValueID: BlockType], next: inout Int) -> (
        [Instruction], String
    )? {
        var defs: [ValueID: Instruction] = [:]
        for (a, first) in body.enumerated() {
            for r in first.results { defs[r.id] = first }
            guard case .loop(let loopA) = first.op else { continue }
            if let (inner, detail) = stream(loopA.body, types: types, next: &next) {
                var out = body
                var l = loopA
                l.body = inner
                out[a].op = .loop(l)
                return (out, detail)
            }
            guard let maxLoop = runningMax(first, loopA, defs, types) else { continue }
            let m = first.results[0].id
            for b in (a + 1)..<body.count {
                guard case .loop(let loopB) = body[b].op, loopB.lower == loopA.lower, loopB.upper == loopA.upper,
                    loopA.condition == nil, loopB.condition == nil,
                    loopB.body.isStoreFree, loopA.body.isStoreFree
                else { continue }
                guard
                    let rewritten = merge(
                        body, a, b, loopA, loopB, m: m, maxValue: maxLoop, types: types, defs: defs, next: &next)
                else { continue }
                return (rewritten, "merged the running maximum of loop \(loopA.variable) into loop \(loopB.variable)")
            }
        }
        return nil
    }

    /// A's yielded `max(c, f)` when A carries one rank-0 or rank-1 value starting at `-inf` (one
    /// maximum for the whole block, as with a single query row, or one per row), used only there.
    private static func runningMax(
        _ inst: Instruction, _ loop: Loop, _ defs: [ValueID: Instruction], _ types: [ValueID: BlockType]
    ) -> ValueID? {
        guard loop.carried.count == 1, loop.carried[0].type.rank <= 1,
            let initial = defs[loop.initial[0]], case .fill(let c) = initial.op, c == -.infinity,
            case .yield(let ys) = loop.body.last?.op,
            let update = loop.body.first(where: { $0.results.first?.id == ys[0] }),
            case .binary(.max, let x, let y) = update.op,
            x == loop.carried[0].id || y == loop.carried[0].id,
            loop.body.useCounts[loop.carried[0].id] == 1
        else { return nil }
        return ys[0]
    }

    /// How a value of loop B relates to the maximum `m`.
    private enum Role {
        /// A broadcast (or `m` itself): a function of `m` only.
        case shift
        /// `x − shift`, to be exponentiated.
        case shifted
        /// Carries the row factor `exp(−m)`.
        case scaled
    }

    private static func merge(
        _ body: [Instruction], _ a: Int, _ b: Int, _ loopA: Loop, _ loopB: Loop, m: ValueID, maxValue: ValueID,
        types: [ValueID: BlockType], defs: [ValueID: Instruction], next: inout Int
    ) -> [Instruction]? {
        // With a rank-0 maximum the factor exp(−m) is one number for the whole block, so any
        // broadcast, reduction or dot operand position keeps it a factor; with a rank-1 maximum it
        // is one number per row of the rank-2 blocks.
        let perBlock = types[m]?.rank == 0
        // A rank-1 maximum is one per row (broadcast along axis 1 into rank-2 blocks) or, for a
        // maximum over rows (softmax along the first axis), one per column (broadcast along axis 0).
        guard let along = factorAxis(m, body[(a + 1)..<b], loopB, types) else { return nil }
        // Instructions between the loops that involve m must be broadcasts of it.
        var role: [ValueID: Role] = [m: .shift]
        var between: [Instruction] = []
        var independent: [Instruction] = []
        for inst in body[(a + 1)..<b] {
            let involved = inst.op.operands.contains { role[$0] != nil }
            if !involved {
                independent.append(inst)
                continue
            }
            guard case .broadcast = inst.op, let r = inst.result else { return nil }
            role[r.id] = .shift
            between.append(inst)
        }
        guard case .yield(let yieldsB) = loopB.body.last?.op else { return nil }
        // Classify B's body; find the accumulator updates.
        var accumulators: [Int: ValueID] = [:]  // carried index → scaled contribution
        let carriedIndex = Dictionary(uniqueKeysWithValues: loopB.carried.enumerated().map { ($1.id, $0) })
        var initialFills: [ValueID: Float] = [:]
        for inst in body[..<a] { if case .fill(let c) = inst.op, let r = inst.result { initialFills[r.id] = c } }
        let uses = loopB.body.useCounts
        for inst in loopB.body.dropLast() {
            let ops = inst.op.operands
            guard ops.contains(where: { role[$0] != nil }) else { continue }
            guard let r = inst.result else { return nil }
            switch inst.op {
            case .broadcast(let x, _) where role[x] == .shift: role[r.id] = .shift
            case .broadcast(let x, let axis) where role[x] == .scaled && types[x]?.rank == 1 && axis == along:
                role[r.id] = .scaled
            case .broadcast(let x, _) where role[x] == .scaled && perBlock: role[r.id] = .scaled
            case .binary(.sub, let x, let s) where role[x] == nil && role[s] == .shift:
                guard types[s]?.rank == 2 || types[s]?.rank == types[x]?.rank || (perBlock && types[s]?.rank == 0)
                else { return nil }
                role[r.id] = .shifted
            case .unary(let op, let x) where op.isExponential && role[x] == .shifted:
                role[r.id] = .scaled
            case .reduce(.sum, let x, let axis) where role[x] == .scaled && axis == along: role[r.id] = .scaled
            case .reduce(.sum, let x, _) where role[x] == .scaled && perBlock: role[r.id] = .scaled
            case .dot(let x, let y, false, _, _) where role[x] == .scaled && role[y] == nil && along == 1:
                role[r.id] = .scaled
            case .dot(let x, let y, _, false, _) where role[y] == .scaled && role[x] == nil && along == 0:
                role[r.id] = .scaled
            case .binary(.mul, let x, let y)
            where (role[x] == .scaled) != (role[y] == .scaled)
                && (role[x] == nil || role[y] == nil):
                role[r.id] = .scaled
            case .binary(.div, let x, let y) where role[x] == .scaled && role[y] == nil: role[r.id] = .scaled
            case .binary(.add, let x, let y) where role[x] == .scaled && role[y] == .scaled: role[r.id] = .scaled
            case .binary(.add, let x, let y) where role[x] == .scaled || role[y] == .scaled:
                // An accumulator update: carried + scaled, yielded, carried starting at 0.
                let (acc, term) = role[x] == .scaled ? (y, x) : (x, y)
                guard let c = carriedIndex[acc], yieldsB[c] == r.id, uses[acc] == 1, uses[r.id] == 1,
                    initialFills[loopB.initial[c]] == 0 || defsFill(loopB.initial[c], defs) == 0,
                    types[term]?.shape == loopB.carried[c].type.shape
                else { return nil }
                accumulators[c] = term
            default:
                return nil
            }
        }
        // Scaled values may reach only accumulators; shifts and shifted values only what was classified.
        for inst in loopB.body {
            if case .yield = inst.op { continue }
            for o in inst.op.operands where role[o] == .scaled {
                guard let r = inst.result, role[r.id] == .scaled || accumulators.values.contains(o) else { return nil }
            }
        }
        guard !accumulators.isEmpty else { return nil }
        for y in yieldsB where role[y] != nil { return nil }
        // Build the merged loop.
        func fresh(_ type: BlockType) -> Value {
            defer { next += 1 }
            return Value(ValueID(next), type)
        }
        let mType = loopA.carried[0].type
        let running = loopA.carried[0].id
        var newBody = Array(loopA.body.dropLast())
        let lowest = fresh(BlockType([], .reg))
        let clamped = fresh(mType)
        let shift = fresh(mType)
        let alpha = fresh(mType)
        newBody += [
            Instruction([lowest], .fill(-Float.greatestFiniteMagnitude)),
            Instruction([clamped], .binary(.max, maxValue, lowest.id)),
            Instruction([shift], .binary(.sub, running, clamped.id)),
            Instruction([alpha], .unary(.exp, shift.id)),
        ]
        // m's broadcasts, recomputed from the clamped running maximum.
        var rename: [ValueID: ValueID] = [m: clamped.id]
        for inst in between {
            let copy = fresh(inst.results[0].type)
            newBody.append(Instruction([copy], inst.op.mappingOperands { rename[$0] ?? $0 }))
            rename[inst.results[0].id] = copy.id
        }
        let bodyB = Array(loopB.body.dropLast()).substitutingIndices([loopB.variable: .variable(loopA.variable)])
        var rescaled: [ValueID: ValueID] = [:]
        for (c, carried) in loopB.carried.enumerated() where accumulators[c] != nil {
            var factor = alpha.id
            if carried.type.rank == 2 && mType.rank == 1 {
                let wide = fresh(BlockType(carried.type.shape, carried.type.tier))
                newBody.append(Instruction([wide], .broadcast(alpha.id, axis: along)))
                factor = wide.id
            }
            let scaledAcc = fresh(carried.type)
            newBody.append(Instruction([scaledAcc], .binary(.mul, carried.id, factor)))
            rescaled[carried.id] = scaledAcc.id
        }
        newBody += bodyB.replacingUses(rename).replacingUses(rescaled)
        newBody.append(Instruction([], .yield([maxValue] + yieldsB)))
        var merged = loopA
        merged.initial = loopA.initial + loopB.initial
        merged.carried = loopA.carried + loopB.carried
        merged.body = newBody
        let mergedInst = Instruction(body[a].results + body[b].results, .loop(merged))
        // After the loop, m reads the final running maximum (the same id), and the broadcasts stay.
        return Array(body[..<a]) + independent + [mergedInst] + between + Array(body[(b + 1)...])
    }

    /// The axis along which a rank-1 maximum `m` is broadcast into rank-2 blocks (1: a factor per
    /// row; 0: per column), the same at every broadcast of it or of a copy; 1 when it never is,
    /// or when `m` has rank 0; nil when broadcasts disagree.
    private static func factorAxis(
        _ m: ValueID, _ between: ArraySlice<Instruction>, _ loopB: Loop, _ types: [ValueID: BlockType]
    ) -> Int? {
        guard types[m]?.rank == 1 else { return 1 }
        var shifts: Set<ValueID> = [m]
        var axes: Set<Int> = []
        for inst in Array(between) + loopB.body {
            guard case .broadcast(let x, let axis) = inst.op, shifts.contains(x), let r = inst.result else { continue }
            shifts.insert(r.id)
            if r.type.rank == 2 { axes.insert(axis) }
        }
        guard axes.count <= 1 else { return nil }
        return axes.first ?? 1
    }

    private static func defsFill(_ id: ValueID, _ defs: [ValueID: Instruction]) -> Float? {
        if let d = defs[id], case .fill(let c) = d.op { return c }
        return nil
    }
}

extension UnaryOp {
    /// Whether the op turns a shift of its argument into a factor: `f(x − c) = f(x)·g(c)`
    /// (only `exp`, with `g(c) = exp(−c)`).
    public var isExponential: Bool { self == .exp }
}
