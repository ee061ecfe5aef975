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
        KernelRewrite.first(program, plan, local: "R10") { kernel, program in
            let stored = Set(kernel.body.storedTensors.map { program.storage(of: $0) })
            var merged = 0
            let body = cse(kernel.body, available: [:], program: program, stored: stored, merged: &merged)
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
            for a in loop.carried.indices {
                for b in loop.carried.indices where b > a {
                    guard loop.initial[a] == loop.initial[b], loop.carried[a].type == loop.carried[b].type else {
                        continue
                    }
                    var merged = 0
                    let trial = cse(
                        loop.body.replacingUses([loop.carried[b].id: loop.carried[a].id]), available: [:],
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

    private struct Key: Hashable {
        var op: Op
        var types: [BlockType]
    }

    private static func cse(
        _ body: [Instruction], available outer: [Key: [ValueID]], program: Program, stored: Set<TensorID>,
        merged: inout Int
    ) -> [Instruction] {
        var available = outer
        var rename: [ValueID: ValueID] = [:]
        var out: [Instruction] = []
        for original in body {
            var inst = Array([original]).replacingUses(rename)[0]
            if case .loop(var loop) = inst.op {
                loop.body = cse(loop.body, available: available, program: program, stored: stored, merged: &merged)
                inst.op = .loop(loop)
            }
            guard isPure(inst, program: program, stored: stored) else {
                out.append(inst)
                continue
            }
            let key = Key(op: canonical(inst.op), types: inst.results.map(\.type))
            if let existing = available[key] {
                for (r, e) in zip(inst.results, existing) { rename[r.id] = e }
                merged += 1
                continue
            }
            available[key] = inst.results.map(\.id)
            out.append(inst)
        }
        return out
    }

    private static func isPure(_ inst: Instruction, program: Program, stored: Set<TensorID>) -> Bool {
        switch inst.op {
        case .store, .yield: return false
        case .load(let t, _): return !stored.contains(program.storage(of: t))
        case .loop(let loop):
            return loop.body.isStoreFree
                && loop.body.loadedTensors.allSatisfy { !stored.contains(program.storage(of: $0)) }
        case .fill, .unary, .binary, .broadcast, .reduce, .dot, .transpose, .mask: return true
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
