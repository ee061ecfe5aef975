import BlockIR

extension FusionRule {
    /// R10 — common subexpressions.
    ///
    /// Two store-free instructions with the same op, operands and result types, the first
    /// visible from the second (same body or an enclosing one), compute the same value: uses of
    /// the second read the first. Loads count as pure when the kernel never stores to the tensor's
    /// storage; loops compare equal up to the renaming of their own values and counter.
    ///
    /// ```
    /// %3 = load K[b0, k * 64 +: 64, 0 +: 64] : f32[64,64] @local
    /// %9 = load K[b0, k * 64 +: 64, 0 +: 64] : f32[64,64] @local
    /// %10 = dot %2, %9 transpose_b : …
    /// ```
    /// → `%10 = dot %2, %3 transpose_b`. Exact: the same computation on the same inputs.
    public static let commonSubexpressions = FusionRule(
        id: "R10", name: "cse", summary: "merge identical computations visible from one another"
    ) { program, plan in
        KernelRewrite.first(program, plan, local: .commonSubexpressions) { kernel, program in
            let stored = Set(kernel.body.storedTensors.map { program.storage(of: $0) })
            var merged = 0
            var available = Available()
            let body = cse(kernel.body, available: &available, program: program, stored: stored, merged: &merged)
            if merged > 0 {
                var out = kernel
                out.body = body
                return (out, "merged \(merged) repeated computation\(merged == 1 ? "" : "s")")
            }
            guard let (carriedBody, detail) = mergeCarried(kernel.body, program: program, stored: stored) else {
                return nil
            }
            var out = kernel
            out.body = carriedBody
            return (out, detail)
        }
    }

    /// Two carried values of one loop with the same initial value whose updates are the same
    /// computation (once the second is read as the first) hold equal values in every iteration,
    /// by induction: the second is dropped and its uses read the first.
    private static func mergeCarried(_ body: [Instruction], program: Program, stored: Set<TensorID>) -> (
        [Instruction], String
    )? {
        for (index, inst) in body.enumerated() {
            guard case .loop(let loop) = inst.op else { continue }
            if let (inner, detail) = mergeCarried(loop.body, program: program, stored: stored) {
                var out = body
                var l = loop
                l.body = inner
                out[index].op = .loop(l)
                return (out, detail)
            }
            var updates: Updates?
            for a in loop.carried.indices {
                for b in loop.carried.indices where b > a {
                    guard loop.initial[a] == loop.initial[b], loop.carried[a].type == loop.carried[b].type else {
                        continue
                    }
                    if updates == nil { updates = Updates(loop) }
                    guard updates!.mayMerge(a, b) else { continue }
                    var merged = 0
                    var available = Available()
                    let trial = cse(
                        loop.body.replacingUses([loop.carried[b].id: loop.carried[a].id]), available: &available,
                        program: program, stored: stored, merged: &merged)
                    guard case .yield(let ys) = trial.last?.op, ys[a] == ys[b] else { continue }
                    var newLoop = loop
                    var newYields = ys
                    newYields.remove(at: b)
                    newLoop.body = Array(trial.dropLast()) + [Instruction([], .yield(newYields))]
                    newLoop.carried.remove(at: b)
                    newLoop.initial.remove(at: b)
                    var newInst = inst
                    let dropped = newInst.results.remove(at: b)
                    newInst.op = .loop(newLoop)
                    var out = Array(body[..<index]) + [newInst]
                    out += Array(body[(index + 1)...]).replacingUses([dropped.id: inst.results[a].id])
                    return (
                        out,
                        "merged the carried value \(loop.carried[b].id) into \(loop.carried[a].id) of loop \(loop.variable): same start, same update"
                    )
                }
            }
        }
        return nil
    }

    /// What a loop's carried values are updated to, for a cheap test before trying to merge two.
    private struct Updates {
        let carried: [ValueID]
        /// The yielded values, or `nil` when the body does not end in a yield.
        let yields: [ValueID]?
        /// Per value defined at the top level of the body: its instruction and result position.
        let definitions: [ValueID: (instruction: Instruction, position: Int)]

        init(_ loop: Loop) {
            carried = loop.carried.map(\.id)
            if case .yield(let ys) = loop.body.last?.op { yields = ys } else { yields = nil }
            var definitions: [ValueID: (instruction: Instruction, position: Int)] = [:]
            for inst in loop.body { for (k, r) in inst.results.enumerated() { definitions[r.id] = (inst, k) } }
            self.definitions = definitions
        }

        /// Whether merging carried value `b` into `a` can make their updates equal: after `b` is
        /// read as `a`, the yielded values are equal, or both are results (at one position) of
        /// top-level instructions of one kind and result types, which CSE alone can merge.
        func mayMerge(_ a: Int, _ b: Int) -> Bool {
            guard let yields else { return true }
            let (ya, yb) = (
                yields[a] == carried[b] ? carried[a] : yields[a], yields[b] == carried[b] ? carried[a] : yields[b]
            )
            if ya == yb { return true }
            guard let da = definitions[ya], let db = definitions[yb] else { return false }
            return da.position == db.position && da.instruction.op.mnemonic == db.instruction.op.mnemonic
                && da.instruction.results.map(\.type) == db.instruction.results.map(\.type)
        }
    }

    private struct Key: Hashable {
        var op: Op
        var types: [BlockType]
    }

    /// The pure computations visible at a point of the body being rewritten: those of the
    /// enclosing bodies and the earlier ones of this body. Loops are kept apart, under a
    /// signature their canonical forms share, so a loop is put in canonical form only when an
    /// earlier visible loop has its signature.
    private struct Available {
        var values: [Key: [ValueID]] = [:]
        var loops: [AvailableLoop] = []
        /// The keys of `values` in the order they were added (a body's are removed when it ends).
        var added: [Key] = []

        /// Forgets what was added after `mark` (the end of a nested body).
        mutating func restore(_ mark: (values: Int, loops: Int)) {
            for key in added[mark.values...] { values[key] = nil }
            added.removeSubrange(mark.values...)
            loops.removeSubrange(mark.loops...)
        }

        var mark: (values: Int, loops: Int) { (added.count, loops.count) }
    }

    /// A visible loop: its signature, its key in canonical form once asked for, its results.
    private struct AvailableLoop {
        var signature: LoopSignature
        var op: Op
        var types: [BlockType]
        var key: Key?
        var results: [ValueID]
    }

    /// What a loop's canonical form keeps unchanged: loops with different signatures never have
    /// equal canonical forms.
    private struct LoopSignature: Equatable {
        var lower, upper: IndexExpr
        var initial: [ValueID]
        var carried: [BlockType]
        var results: [BlockType]
        var length: Int

        init(_ loop: Loop, results: [Value]) {
            (lower, upper, initial) = (loop.lower, loop.upper, loop.initial)
            carried = loop.carried.map(\.type)
            self.results = results.map(\.type)
            length = loop.body.count
        }
    }

    private static func cse(
        _ body: [Instruction], available: inout Available, program: Program, stored: Set<TensorID>,
        merged: inout Int
    ) -> [Instruction] {
        let mark = available.mark
        defer { available.restore(mark) }
        var rename: [ValueID: ValueID] = [:]
        var out: [Instruction] = []
        out.reserveCapacity(body.count)
        for original in body {
            var inst = rename.isEmpty ? original : Array([original]).replacingUses(rename)[0]
            if case .loop(var loop) = inst.op {
                loop.body = cse(loop.body, available: &available, program: program, stored: stored, merged: &merged)
                inst.op = .loop(loop)
            }
            guard isPure(inst, program: program, stored: stored) else {
                out.append(inst)
                continue
            }
            let existing: [ValueID]?
            if case .loop(let loop) = inst.op {
                existing = availableLoop(inst, loop, &available)
            } else {
                let key = Key(op: inst.op, types: inst.results.map(\.type))
                existing = available.values[key]
                if existing == nil {
                    available.values[key] = inst.results.map(\.id)
                    available.added.append(key)
                }
            }
            if let existing {
                for (r, e) in zip(inst.results, existing) { rename[r.id] = e }
                merged += 1
                continue
            }
            out.append(inst)
        }
        return out
    }

    /// The results of a visible loop equal to `inst` (a pure loop) up to renaming, or `nil`
    /// after making `inst` visible.
    private static func availableLoop(_ inst: Instruction, _ loop: Loop, _ available: inout Available) -> [ValueID]? {
        let signature = LoopSignature(loop, results: inst.results)
        var key: Key?
        for k in available.loops.indices where available.loops[k].signature == signature {
            if key == nil { key = Key(op: canonical(inst.op), types: inst.results.map(\.type)) }
            if available.loops[k].key == nil {
                available.loops[k].key = Key(op: canonical(available.loops[k].op), types: available.loops[k].types)
            }
            if available.loops[k].key == key { return available.loops[k].results }
        }
        available.loops.append(
            AvailableLoop(
                signature: signature, op: inst.op, types: inst.results.map(\.type), key: key,
                results: inst.results.map(\.id)))
        return nil
    }

    private static func isPure(_ inst: Instruction, program: Program, stored: Set<TensorID>) -> Bool {
        switch inst.op {
        case .store, .yield: return false
        case .load(let t, _), .gather(let t, _, _, _): return !stored.contains(program.storage(of: t))
        case .loop(let loop):
            return loop.body.isStoreFree
                && loop.body.loadedTensors.allSatisfy { !stored.contains(program.storage(of: $0)) }
        case .fill, .index, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .mask:
            return true
        }
    }

    /// A loop with its own values renumbered from a fixed base and its counters renamed, so two
    /// loops computing the same thing compare equal.
    private static func canonical(_ op: Op) -> Op {
        guard case .loop(var loop) = op else { return op }
        var next = 1 << 40
        var counter = 0
        loop.body = loop.body.renamingLoopVariables { _ in
            counter += 1
            return IndexVar("_c\(counter)")
        }
        let canonicalVar = IndexVar("_c0")
        loop.body = loop.body.substitutingIndices([loop.variable: .variable(canonicalVar)])
        loop.variable = canonicalVar
        var map: [ValueID: ValueID] = [:]
        for c in loop.carried {
            map[c.id] = ValueID(next)
            next += 1
        }
        loop.carried = loop.carried.map { Value(map[$0.id]!, $0.type) }
        let inner = loop.body.renumberingDefinitions { id in
            if let m = map[id] { return m }
            defer { next += 1 }
            map[id] = ValueID(next)
            return ValueID(next)
        }
        loop.body = inner.replacingUses(map)
        return .loop(loop)
    }
}
