import BlockIR

extension FusionRule {
    /// R15 — split-reduction: a reduction loop split into chunks over a new grid axis when the
    /// kernel's grid cannot fill the cores.
    ///
    /// Precondition: the kernel has fewer instances than the plan's core count; a top-level loop
    /// `for k in lo ..< hi` (the first that qualifies) has constant bounds and stores nothing,
    /// and only store-free instructions precede it, whose loops load at most a chunk's share of
    /// what the split loop loads (every chunk runs them again); every value the loop carries is
    /// an associative state:
    ///
    /// - a *sum*: starts at `0`, updated `c' = c + x`;
    /// - an *extremum*: starts at `-inf` (`+inf`), updated `c' = max(c, x)` (`min`);
    /// - a *running maximum* `m` (R6's): starts at `-inf`, updated `m' = max(m, f)`, read
    ///   otherwise only by `α = exp(m − m̂')` with `m̂' = max(m', lowest)`;
    /// - a *rescaled sum* `s` of such an `m`: starts at `0`, updated `s' = s·α + t` (α possibly
    ///   broadcast along an axis), where `t` reaches the clamped maximum only as `exp(x − m̂')`
    ///   through maps linear in that factor (R6's classification: sums along the factor's axis,
    ///   a dot's operand on the factor's side, products and quotients with values free of it);
    ///
    /// with every `x`, `f` free of the carried values, and the instructions after the loop
    /// combining no elements across an axis (no `dot`, `concat`, `gather`; reductions and scans
    /// only along axes of size 1), since the merge reads partial states at full block extent.
    ///
    /// ```
    /// kernel k grid(b0 < 2) {
    ///   %m, %l, %o = for k in 0 ..< 64 iter(…) { … }
    ///   … epilogue … store → O
    /// }
    /// ```
    /// → `kernel k_split grid(b0 < 2, s < 16)`: the same loop over `k in s·4 ..< min(64, s·4 + 4)`,
    /// its results stored to `k_split_state0[b0, s]`, …; `kernel k grid(b0 < 2)`: a loop over
    /// `s in 0 ..< 16` that loads the partial states and combines them (sums add, extrema take
    /// their max or min, rescaled sums `S·exp(M − M̂) + s_c·exp(m_c − M̂)` with `M = max(M, m_c)`,
    /// `M̂ = max(M, lowest)`), then the epilogue.
    ///
    /// Exact over the reals: the chunks partition the iterations; each state's update is an
    /// associative, commutative combine with its start as identity (for rescaled sums the state
    /// `(m, s)` means `s·exp(m̂)`, and `exp(x − m̂) = exp(x − M̂)·exp(M̂ − m̂)`), so combining the
    /// chunks' states in chunk order gives the loop's final state. The clamp keeps empty or fully
    /// masked chunks (`m_c = -inf`, `s_c = 0`) at 0.
    ///
    /// Policy (the plan's): chunks = min(⌈cores / instances⌉, ⌊trips / 4⌋), each chunk then
    /// ⌈trips / chunks⌉ trips; no split below 2 chunks, and none unless one trip loads more
    /// elements than the states hold (a chunk's state is written and read back once). The
    /// driver runs R15 after the other rules' fixed point (`Fusion.finalRules`); the kernels it
    /// adds never qualify again (a partial kernel's loop bounds read its chunk axis; a merge loop
    /// loads exactly its states).
    public static let splitReduction = FusionRule(
        id: "R15", name: "split-reduction",
        summary:
            "split the reduction loop of a kernel whose grid cannot fill the cores into chunks over a new grid axis; a follow-up kernel merges the partial states"
    ) { program, plan in
        SplitReduction.first(program, plan)
    }
}

/// How a value carried by a split loop combines across chunks.
enum CarriedState: Equatable {
    /// Added up, from 0.
    case sum
    /// `max` from `-inf` or `min` from `+inf`.
    case extremum(BinaryOp)
    /// A running maximum that rescales sums (R6's `m`), clamped to this constant.
    case runningMax(clamp: Float)
    /// A sum rescaled by `exp(m − m̂')` of carried value `by`, the factor broadcast along `axis`
    /// (`nil`: used as it is).
    case rescaled(by: Int, axis: Int?)

    var word: String {
        switch self {
        case .sum: return "sum"
        case .extremum(let op): return op.rawValue
        case .runningMax: return "running max"
        case .rescaled: return "rescaled sum"
        }
    }
}

/// The implementation of R15.
enum SplitReduction {
    /// The fewest loop trips a chunk gets (so a chunk's work outweighs writing its state).
    static let minimumChunkTrips = 4

    /// The first kernel (not looked at before) that splits, split.
    static func first(_ program: Program, _ plan: FusionPlan) -> RuleApplication? {
        for index in plan.candidates(program) {
            let kernel = program.kernels[index]
            guard !plan.splitExamined.contains(kernel.name) else { continue }
            plan.splitExamined.insert(kernel.name)
            if let application = split(program, index, plan) { return application }
        }
        return nil
    }

    private static func split(_ program: Program, _ index: Int, _ plan: FusionPlan) -> RuleApplication? {
        let kernel = program.kernels[index]
        guard kernel.instanceCount < plan.cores else { return nil }
        let types = kernel.valueTypes()
        for at in kernel.body.indices {
            guard case .loop = kernel.body[at].op else { continue }
            if let application = split(program, index, at: at, types: types, plan) { return application }
        }
        return nil
    }

    /// The kernel split at its top-level loop `at`, when that loop qualifies. Loops before it
    /// (a normalisation's statistics before the matrix product that uses them) run again in
    /// every chunk, so they must load at most a chunk's share of what the split loop loads.
    private static func split(
        _ program: Program, _ index: Int, at: Int, types: [ValueID: BlockType], _ plan: FusionPlan
    ) -> RuleApplication? {
        let kernel = program.kernels[index]
        let instances = kernel.instanceCount
        let cores = plan.cores
        guard case .loop(let loop) = kernel.body[at].op, loop.body.isStoreFree else { return nil }
        let prologue = Array(kernel.body[..<at])
        let epilogue = Array(kernel.body[(at + 1)...])
        guard prologue.isStoreFree, case .constant(let lo) = loop.lower.simplified(),
            case .constant(let hi) = loop.upper.simplified(), hi > lo
        else { return nil }
        guard combinesNoElements(epilogue, types), let states = classify(loop, prologue: prologue, types: types)
        else { return nil }
        // Each chunk writes its state and the merge reads it back: worth it only when a trip
        // reads more than the state holds (so the merge loops themselves never split).
        let stateElements = loop.carried.map(\.type.elementCount).reduce(0, +)
        guard loadedElements(loop.body) > stateElements else { return nil }
        // The plan: enough chunks to fill the cores, each at least `minimumChunkTrips` long.
        let trips = hi - lo
        let wanted = (cores + instances - 1) / instances
        let most = trips / minimumChunkTrips
        let words = states.map(\.word).joined(separator: ", ")
        guard min(wanted, most) >= 2 else {
            plan.note(
                "keep \(kernel.name)'s loop \(loop.variable) whole: grid \(instances) < \(cores) cores, but \(trips) trips make fewer than 2 chunks of ≥ \(minimumChunkTrips)"
            )
            return nil
        }
        let length = (trips + min(wanted, most) - 1) / min(wanted, most)
        let chunks = (trips + length - 1) / length
        // Every chunk runs the prologue again: its loops may load at most a chunk's share.
        let loopElements = (hi - lo) * loadedElements(loop.body)
        guard loadedElements(prologue) * chunks <= loopElements else { return nil }
        // Names: the partial kernel, the grid axis, the state tensors.
        let kernelNames = Set(program.kernels.map(\.name))
        var partialName = kernel.name + "_split"
        while kernelNames.contains(partialName) { partialName += "_" }
        var used = Set(kernel.gridVariables)
        kernel.walk { inst in
            if case .loop(let l) = inst.op { used.insert(l.variable) }
        }
        used.formUnion(kernel.body.freeIndexVariables)
        var axisName = "s"
        var suffix = 0
        while used.contains(IndexVar(axisName)) {
            suffix += 1
            axisName = "s\(suffix)"
        }
        let axis = IndexVar(axisName)
        var out = program
        var tensorNames = Set(program.tensors.map(\.name))
        var stateTensors: [TensorID] = []
        let results = kernel.body[at].results
        for (c, carried) in loop.carried.enumerated() {
            var name = "\(partialName)_state\(c)"
            while tensorNames.contains(name) { name += "_" }
            tensorNames.insert(name)
            stateTensors.append(TensorID(out.tensors.count))
            out.tensors.append(
                GlobalTensor(
                    name: name, shape: kernel.grid.map(\.extent) + [chunks] + carried.type.shape, role: .temp))
        }
        func access(_ c: Int) -> [AxisAccess] {
            kernel.grid.map { .point(.variable($0.variable)) } + [.point(.variable(axis))]
                + loop.carried[c].type.shape.map { .slice(start: .constant(0), size: $0) }
        }
        // The partial kernel: the loop over one chunk, its states stored.
        var chunked = loop
        let start = IndexExpr.add(.constant(lo), .mul(.variable(axis), length))
        chunked.lower = start.simplified()
        chunked.upper = IndexExpr.min(.constant(hi), .add(start, .constant(length))).simplified()
        var loopInst = kernel.body[at]
        loopInst.op = .loop(chunked)
        let stores = results.indices.map { Instruction([], .store(results[$0].id, stateTensors[$0], access($0))) }
        let partial = Kernel(
            name: partialName, grid: kernel.grid + [GridAxis(axis, chunks)],
            body: removingUnused(prologue + [loopInst] + stores)
        ).renumbered()
        // The merge kernel: combine the chunks' states in order, then the epilogue.
        var next = kernel.nextValueNumber
        func fresh(_ type: BlockType) -> Value {
            defer { next += 1 }
            return Value(ValueID(next), type)
        }
        var body = prologue
        var initial: [ValueID] = []
        var clamps: [Int: ValueID] = [:]
        for (c, state) in states.enumerated() {
            let start: Float
            switch state {
            case .sum, .rescaled: start = 0
            case .extremum(let op): start = op == .min ? .infinity : -.infinity
            case .runningMax(let clamp):
                start = -.infinity
                let v = fresh(BlockType([], .reg))
                body.append(Instruction([v], .fill(clamp)))
                clamps[c] = v.id
            }
            let v = fresh(loop.carried[c].type)
            body.append(Instruction([v], .fill(start)))
            initial.append(v.id)
        }
        let running = loop.carried.map { fresh($0.type) }
        var inner: [Instruction] = []
        var loaded: [ValueID] = []
        for c in loop.carried.indices {
            let v = fresh(loop.carried[c].type)
            inner.append(Instruction([v], .load(stateTensors[c], access(c))))
            loaded.append(v.id)
        }
        var combined = [ValueID?](repeating: nil, count: states.count)
        // Per running maximum: the factors rescaling the merged state and the chunk's state.
        var factors: [Int: (old: ValueID, new: ValueID)] = [:]
        for (c, state) in states.enumerated() {
            let type = loop.carried[c].type
            switch state {
            case .sum:
                let v = fresh(type)
                inner.append(Instruction([v], .binary(.add, running[c].id, loaded[c])))
                combined[c] = v.id
            case .extremum(let op):
                let v = fresh(type)
                inner.append(Instruction([v], .binary(op, running[c].id, loaded[c])))
                combined[c] = v.id
            case .runningMax:
                let m = fresh(type)
                let clamped = fresh(type)
                inner.append(Instruction([m], .binary(.max, running[c].id, loaded[c])))
                inner.append(Instruction([clamped], .binary(.max, m.id, clamps[c]!)))
                var pair: [ValueID] = []
                for from in [running[c].id, loaded[c]] {
                    let shift = fresh(type)
                    let factor = fresh(type)
                    inner.append(Instruction([shift], .binary(.sub, from, clamped.id)))
                    inner.append(Instruction([factor], .unary(.exp, shift.id)))
                    pair.append(factor.id)
                }
                factors[c] = (pair[0], pair[1])
                combined[c] = m.id
            case .rescaled: break
            }
        }
        for (c, state) in states.enumerated() {
            guard case .rescaled(let by, let along) = state, let (old, new) = factors[by] else { continue }
            let type = loop.carried[c].type
            var terms: [ValueID] = []
            for (value, factor) in [(running[c].id, old), (loaded[c], new)] {
                var f = factor
                if let along {
                    let wide = fresh(type)
                    inner.append(Instruction([wide], .broadcast(factor, axis: along)))
                    f = wide.id
                }
                let product = fresh(type)
                inner.append(Instruction([product], .binary(.mul, value, f)))
                terms.append(product.id)
            }
            let sum = fresh(type)
            inner.append(Instruction([sum], .binary(.add, terms[0], terms[1])))
            combined[c] = sum.id
        }
        inner.append(Instruction([], .yield(combined.map { $0! })))
        let merged = results.map { fresh($0.type) }
        let mergeLoop = Loop(
            variable: axis, lower: .constant(0), upper: .constant(chunks), initial: initial, carried: running,
            body: inner)
        body.append(Instruction(merged, .loop(mergeLoop)))
        body += epilogue.replacingUses(Dictionary(uniqueKeysWithValues: zip(results.map(\.id), merged.map(\.id))))
        let merge = Kernel(name: kernel.name, grid: kernel.grid, body: removingUnused(body)).renumbered()
        out.kernels[index] = partial
        out.kernels.insert(merge, at: index + 1)
        plan.splitExamined.insert(partialName)
        plan.note(
            "split \(kernel.name)'s loop \(loop.variable) (\(trips) trips) into \(chunks) chunks of \(length) over grid axis \(axisName): grid \(instances) < \(cores) cores; chunks = min(⌈\(cores) / \(instances)⌉, ⌊\(trips) / \(minimumChunkTrips)⌋) = \(min(wanted, most)), ⌈\(trips) / \(min(wanted, most))⌉ = \(length) trips each; \(kernel.name) then merges the partial states (\(words))"
        )
        return RuleApplication(
            program: out, place: kernel.name,
            detail:
                "split loop \(loop.variable) into \(chunks) chunks of \(length) over grid axis \(axisName) (\(partialName)); \(kernel.name) merges the \(words) states",
            absorbed: [])
    }

    /// Whether the instructions combine no elements of a block with one another (so values
    /// past a block's valid extent never reach valid elements).
    private static func combinesNoElements(_ body: [Instruction], _ types: [ValueID: BlockType]) -> Bool {
        for inst in body {
            switch inst.op {
            case .dot, .concat, .gather: return false
            case .reduce(_, let a, let axis), .scan(_, let a, let axis, _, _):
                guard let shape = types[a]?.shape, axis < shape.count, shape[axis] == 1 else { return false }
            case .loop(let l):
                guard combinesNoElements(l.body, types) else { return false }
            default: break
            }
        }
        return true
    }

    /// The elements one run of a body loads (inner loops' trips counted at grid index 0).
    private static func loadedElements(_ body: [Instruction]) -> Int {
        var total = 0
        for inst in body {
            switch inst.op {
            case .load, .gather: total += inst.results.first?.type.elementCount ?? 0
            case .loop(let l):
                total += max(0, l.upper.evaluate([:]) - l.lower.evaluate([:])) * loadedElements(l.body)
            default: break
            }
        }
        return total
    }

    /// The body without top-level store-free instructions nothing uses.
    private static func removingUnused(_ body: [Instruction]) -> [Instruction] {
        var live: Set<ValueID> = []
        var out: [Instruction] = []
        for inst in body.reversed() {
            var needed: Bool
            switch inst.op {
            case .store, .yield: needed = true
            case .loop(let l): needed = !l.body.isStoreFree || inst.results.contains { live.contains($0.id) }
            default: needed = inst.results.contains { live.contains($0.id) }
            }
            if !needed { continue }
            live.formUnion(inst.op.operands)
            if case .loop(let l) = inst.op { live.formUnion(l.body.freeValues) }
            out.append(inst)
        }
        return out.reversed()
    }

    /// How a value relates to a running maximum's clamp `m̂'` inside the loop (R6's roles).
    private enum Role {
        case shift, shifted, scaled
    }

    /// Each carried value's state, or nil when one is not an associative state.
    private static func classify(_ loop: Loop, prologue: [Instruction], types: [ValueID: BlockType])
        -> [CarriedState]?
    {
        guard case .yield(let yields) = loop.body.last?.op, yields.count == loop.carried.count else { return nil }
        let body = Array(loop.body.dropLast())
        var defs: [ValueID: Instruction] = [:]
        for inst in prologue + body { for r in inst.results { defs[r.id] = inst } }
        func constant(_ v: ValueID) -> Float? {
            if let d = defs[v], case .fill(let c) = d.op { return c }
            return nil
        }
        // Values depending on a carried value.
        var dependent = Set(loop.carried.map(\.id))
        for inst in body {
            var operands = inst.op.operands
            if case .loop(let l) = inst.op { operands += l.body.freeValues }
            if operands.contains(where: dependent.contains) { dependent.formUnion(inst.results.map(\.id)) }
        }
        let uses = loop.body.useCounts
        var states = [CarriedState?](repeating: nil, count: loop.carried.count)
        var recognized: Set<ValueID> = []
        // Per running maximum (carried index): its factor α and clamped value.
        var alphas: [ValueID: Int] = [:]
        var clamps: [Int: ValueID] = [:]
        // Pass 1: sums, extrema and running maxima.
        for (c, carried) in loop.carried.enumerated() {
            guard let update = defs[yields[c]], case .binary(let op, let a, let b) = update.op,
                a == carried.id || b == carried.id
            else { continue }
            let x = a == carried.id ? b : a
            guard x != carried.id, !dependent.contains(x), let start = constant(loop.initial[c]) else { continue }
            switch op {
            case .add where start == 0 && uses[carried.id] == 1 && uses[yields[c]] == 1:
                states[c] = .sum
            case .max where start == -.infinity && uses[carried.id] == 1 && uses[yields[c]] == 1:
                states[c] = .extremum(.max)
            case .min where start == .infinity && uses[carried.id] == 1 && uses[yields[c]] == 1:
                states[c] = .extremum(.min)
            case .max where start == -.infinity && uses[carried.id] == 2 && uses[yields[c]] == 2:
                // m' = max(m, f); m̂' = max(m', lowest); α = exp(m − m̂').
                guard
                    let clamp = body.first(where: {
                        if case .binary(.max, let p, let q) = $0.op, p == yields[c], constant(q)?.isFinite == true {
                            return true
                        }
                        return false
                    }), case .binary(_, _, let lowest) = clamp.op, let clampValue = constant(lowest),
                    let clamped = clamp.result?.id,
                    let shift = body.first(where: {
                        if case .binary(.sub, carried.id, clamped) = $0.op { return true }
                        return false
                    }), let shiftValue = shift.result?.id, uses[shiftValue] == 1,
                    let exp = body.first(where: {
                        if case .unary(let u, shiftValue) = $0.op { return u.isExponential }
                        return false
                    }), let alpha = exp.result?.id
                else { continue }
                states[c] = .runningMax(clamp: clampValue)
                alphas[alpha] = c
                clamps[c] = clamped
                recognized.formUnion([yields[c], clamped, shiftValue, alpha])
            default: continue
            }
            recognized.insert(yields[c])
        }
        // Pass 2: sums rescaled by a running maximum's α: s' = s·A + t.
        var terms: [Int: ValueID] = [:]
        for (c, carried) in loop.carried.enumerated() where states[c] == nil {
            guard let update = defs[yields[c]], case .binary(.add, let a, let b) = update.op,
                constant(loop.initial[c]) == 0, uses[carried.id] == 1, uses[yields[c]] == 1
            else { return nil }
            func product(_ v: ValueID) -> (m: Int, axis: Int?, factor: ValueID?)? {
                guard let d = defs[v], case .binary(.mul, let p, let q) = d.op, uses[v] == 1,
                    p == carried.id || q == carried.id
                else { return nil }
                let f = p == carried.id ? q : p
                if let m = alphas[f] { return (m, nil, nil) }
                if let fd = defs[f], case .broadcast(let x, let axis) = fd.op, let m = alphas[x] {
                    return (m, axis, f)
                }
                return nil
            }
            guard
                let (m, axis, wide, term) = product(a).map({ ($0.m, $0.axis, $0.factor, b) })
                    ?? product(b).map({ ($0.m, $0.axis, $0.factor, a) })
            else { return nil }
            states[c] = .rescaled(by: m, axis: axis)
            terms[c] = term
            recognized.insert(yields[c])
            recognized.insert(term == a ? b : a)
            if let wide { recognized.insert(wide) }
        }
        // Every term of a rescaled sum carries the factor exp(−m̂') of its maximum (R6's roles).
        var classified = recognized
        for (c, term) in terms.sorted(by: { $0.key < $1.key }) {
            guard case .rescaled(let m, let axis) = states[c], let clamped = clamps[m],
                let roles = scaled(
                    term, from: clamped, along: axis, body: body, types: types, dependent: dependent, skip: recognized)
            else { return nil }
            classified.formUnion(roles)
        }
        // Nothing else reads a carried value or what depends on one.
        for inst in body {
            var operands = inst.op.operands
            if case .loop(let l) = inst.op { operands += l.body.freeValues }
            guard operands.contains(where: dependent.contains) else { continue }
            guard !inst.results.isEmpty, inst.results.allSatisfy({ classified.contains($0.id) }) else { return nil }
        }
        return states.allSatisfy({ $0 != nil }) ? states.map { $0! } : nil
    }

    /// Whether `term` is linear in the factor `exp(−m̂')` of the clamped maximum `clamped`
    /// (per block for a rank-0 maximum, per row or column along `along` for a rank-1 one), and
    /// every value depending on the carried values that it reads is classified: the values
    /// classified, or nil.
    private static func scaled(
        _ term: ValueID, from clamped: ValueID, along: Int?, body: [Instruction], types: [ValueID: BlockType],
        dependent: Set<ValueID>, skip: Set<ValueID>
    ) -> Set<ValueID>? {
        let perBlock = types[clamped]?.rank == 0
        let axis = along ?? 1
        var role: [ValueID: Role] = [clamped: .shift]
        func free(_ v: ValueID) -> Bool { role[v] == nil && !dependent.contains(v) }
        for inst in body {
            guard let r = inst.result, !skip.contains(r.id), inst.op.operands.contains(where: { role[$0] != nil })
            else { continue }
            switch inst.op {
            case .broadcast(let x, _) where role[x] == .shift: role[r.id] = .shift
            case .broadcast(let x, let a) where role[x] == .scaled && (perBlock || (types[x]?.rank == 1 && a == axis)):
                role[r.id] = .scaled
            case .binary(.sub, let x, let s) where free(x) && role[s] == .shift: role[r.id] = .shifted
            case .unary(let op, let x) where op.isExponential && role[x] == .shifted: role[r.id] = .scaled
            case .reduce(.sum, let x, let a) where role[x] == .scaled && (perBlock || a == axis): role[r.id] = .scaled
            case .dot(let x, let y, false, _, _) where role[x] == .scaled && free(y) && (perBlock || axis == 1):
                role[r.id] = .scaled
            case .dot(let x, let y, _, false, _) where role[y] == .scaled && free(x) && (perBlock || axis == 0):
                role[r.id] = .scaled
            case .binary(.mul, let x, let y) where (role[x] == .scaled && free(y)) || (role[y] == .scaled && free(x)):
                role[r.id] = .scaled
            case .binary(.div, let x, let y) where role[x] == .scaled && free(y): role[r.id] = .scaled
            case .binary(.add, let x, let y) where role[x] == .scaled && role[y] == .scaled: role[r.id] = .scaled
            default: return nil
            }
        }
        return role[term] == .scaled ? Set(role.keys) : nil
    }
}
