import BlockIR

extension FusionRule {
    /// R8 — forwarding, dead stores, dead code.
    ///
    /// Four clean-ups, tried in this order, the first that applies is the step:
    ///
    /// 1. *Forwarding*: `store %v -> T[a]` then, in the same body, `%w = load T[a]` of the same
    ///    type with no store to `T` between → uses of `%w` read `%v`.
    /// 2. *Dead store*: a store to a temporary that no later kernel, and nothing later in this
    ///    kernel, reads → removed. A kernel left without stores is removed.
    /// 3. *Dead carried value*: a loop-carried value whose result is unused and that no other
    ///    carried value or store of the body depends on → removed with its initial value and yield.
    /// 4. *Dead code*: a store-free instruction whose results are unused → removed.
    ///
    /// ```
    /// kernel k1 { …; store %5 -> T[i * 64 +: 64] }      // T temp, never loaded again
    /// ```
    /// → `k1` disappears. Exact: nothing observable reads what was removed.
    public static let deadCode = FusionRule(
        id: "R8", name: "dead-code",
        summary: "forward stored blocks to later loads; drop dead stores, kernels, carried values and code"
    ) { program, plan in
        let forward = { (k: Kernel, p: Program) in forwardStores(k, plan.facts(of: k, in: p), p) }
        if let a = KernelRewrite.first(program, plan, local: .forwarding, forward) { return a }
        if let a = removeDeadStores(program, plan) { return a }
        // A carried value can be dead only when its loop result is read nowhere, and the first
        // instruction the sweep removes is one whose results are read nowhere: without such a
        // loop result or instruction (one walk, shared) the rewrites would find nothing.
        let deadCarried = { (k: Kernel, p: Program) in
            plan.facts(of: k, in: p).hasUnreadLoopResult ? removeDeadCarried(k) : nil
        }
        if let a = KernelRewrite.first(program, plan, local: .deadCarried, deadCarried) { return a }
        let deadCode = { (k: Kernel, p: Program) in
            plan.facts(of: k, in: p).hasUnreadInstruction ? removeDeadCode(k) : nil
        }
        return KernelRewrite.first(program, plan, local: .deadCode, deadCode)
    }

    private static func forwardStores(
        _ kernel: Kernel, _ facts: KernelFacts, _ program: Program
    ) -> (kernel: Kernel, detail: String)? {
        func visit(_ body: [Instruction]) -> ([Instruction], String)? {
            for (index, inst) in body.enumerated() {
                if case .loop(var loop) = inst.op, let (inner, detail) = visit(loop.body) {
                    loop.body = inner
                    var out = body
                    out[index].op = .loop(loop)
                    return (out, detail)
                }
                // A store that rounds (to a narrower element type) is not forwarded.
                guard case .store(let value, let tensor, let access) = inst.op,
                    program.storeKeepsValue(body.first(where: { $0.defines(value) })?.op, into: tensor)
                else { continue }
                for later in (index + 1)..<body.count {
                    let next = body[later]
                    if next.op.storesOrMayStore(to: tensor) { break }
                    guard case .load(let t, let a) = next.op, t == tensor, a == access,
                        let result = next.result, facts.valueTypes[value]?.shape == result.type.shape
                    else { continue }
                    var out = body
                    out.remove(at: later)
                    out = out.replacingUses([result.id: value])
                    return (out, "forwarded the stored \(value) to the load \(result.id) of T\(tensor.index)")
                }
            }
            return nil
        }
        guard let (body, detail) = visit(kernel.body) else { return nil }
        var out = kernel
        out.body = body
        return (out, detail)
    }

    private static func removeDeadStores(_ program: Program, _ plan: FusionPlan) -> RuleApplication? {
        for index in plan.candidates(program) {
            let kernel = program.kernels[index]
            for tensor in kernel.body.storedTensors.sorted() {
                let storage = program.storage(of: tensor)
                guard plan.isTemporary(storage, program) else { continue }
                // Temporaries are written before they are read, so any reader reads this store.
                let readLater = !plan.readers(of: storage).isEmpty
                guard !readLater else { continue }
                let stripped = kernel.body.removingStores(to: tensor)
                if stripped.storedTensors.isEmpty {
                    return RuleApplication(
                        change: .remove(index), place: kernel.name,
                        detail: "removed the kernel: its only output \(program[tensor].name) is never read")
                }
                var out = kernel
                out.body = stripped
                return RuleApplication(
                    change: .replace(index, out.renumbered()), place: kernel.name,
                    detail: "removed the dead store to \(program[tensor].name)")
            }
        }
        return nil
    }

    private static func removeDeadCarried(_ kernel: Kernel) -> (kernel: Kernel, detail: String)? {
        func visit(_ body: [Instruction], usedAfter: Set<ValueID>) -> ([Instruction], String)? {
            for (index, inst) in body.enumerated() {
                guard case .loop(var loop) = inst.op else { continue }
                let usedOutside = usedAfter.union(body[(index + 1)...].usedValuesRecursively)
                if let (inner, detail) = visit(loop.body, usedAfter: usedOutside.union(loop.body.usedValues)) {
                    loop.body = inner
                    var out = body
                    out[index].op = .loop(loop)
                    return (out, detail)
                }
                guard case .yield(let yielded) = loop.body.last?.op else { continue }
                for c in loop.carried.indices where !usedOutside.contains(inst.results[c].id) {
                    // Values the body needs apart from this carried value's own update.
                    var roots = Set(yielded.enumerated().filter { $0.offset != c }.map(\.element))
                    roots.formUnion(loop.body.storeOperandsRecursively)
                    let needed = loop.body.backwardSlice(from: roots)
                    guard !needed.contains(loop.carried[c].id) else { continue }
                    var newLoop = loop
                    newLoop.carried.remove(at: c)
                    newLoop.initial.remove(at: c)
                    var ys = yielded
                    ys.remove(at: c)
                    newLoop.body[newLoop.body.count - 1].op = .yield(ys)
                    var newInst = inst
                    newInst.results.remove(at: c)
                    newInst.op = .loop(newLoop)
                    var out = body
                    out[index] = newInst
                    return (out, "removed the unused carried value \(loop.carried[c].id) of loop \(loop.variable)")
                }
            }
            return nil
        }
        guard let (body, detail) = visit(kernel.body, usedAfter: []) else { return nil }
        var out = kernel
        out.body = body
        return (out, detail)
    }

    private static func removeDeadCode(_ kernel: Kernel) -> (kernel: Kernel, detail: String)? {
        var removed = 0
        func sweep(_ body: [Instruction], liveAfter: Set<ValueID>) -> [Instruction] {
            var live = liveAfter
            var out: [Instruction] = []
            for inst in body.reversed() {
                var inst = inst
                if case .loop(var loop) = inst.op {
                    loop.body = sweep(loop.body, liveAfter: live.union(loop.body.usedValues))
                    inst.op = .loop(loop)
                }
                let needed: Bool
                switch inst.op {
                case .store, .yield: needed = true
                case .loop(let loop): needed = !loop.body.isStoreFree || inst.results.contains { live.contains($0.id) }
                default: needed = inst.results.contains { live.contains($0.id) }
                }
                if needed {
                    live.formUnion(inst.op.operands)
                    if case .loop(let loop) = inst.op { live.formUnion(loop.body.freeValues) }
                    out.append(inst)
                } else {
                    removed += 1
                }
            }
            return out.reversed()
        }
        let body = sweep(kernel.body, liveAfter: [])
        guard removed > 0 else { return nil }
        var out = kernel
        out.body = body
        return (out, "removed \(removed) unused instruction\(removed == 1 ? "" : "s")")
    }
}

extension Op {
    /// Whether the op (or a loop body) stores to the tensor.
    func storesOrMayStore(to tensor: TensorID) -> Bool {
        switch self {
        case .store(_, let t, _): return t == tensor
        case .loop(let loop): return loop.body.storedTensors.contains(tensor)
        default: return false
        }
    }
}

extension Array where Element == Instruction {
    /// The body without its stores to a tensor (recursively).
    func removingStores(to tensor: TensorID) -> [Instruction] {
        compactMap { inst in
            if case .store(_, let t, _) = inst.op, t == tensor { return nil }
            if case .loop(var loop) = inst.op {
                loop.body = loop.body.removingStores(to: tensor)
                var out = inst
                out.op = .loop(loop)
                return out
            }
            return inst
        }
    }

    /// Values used by these instructions, recursively.
    var usedValuesRecursively: Set<ValueID> { Array(self).usedValues }

    /// Operands of stores, recursively.
    var storeOperandsRecursively: Set<ValueID> {
        var out: Set<ValueID> = []
        for inst in self {
            if case .store(let v, _, _) = inst.op { out.insert(v) }
            if case .loop(let loop) = inst.op { out.formUnion(loop.body.storeOperandsRecursively) }
        }
        return out
    }

    /// The values (defined here, including carried values of inner loops) that `roots` depend
    /// on, plus the roots. A loop's results depend on its initial values, carried values and
    /// whole body.
    func backwardSlice(from roots: Set<ValueID>) -> Set<ValueID> {
        var needed = roots
        var changed = true
        while changed {
            changed = false
            for inst in self.reversed() where inst.results.contains(where: { needed.contains($0.id) }) {
                var deps = Set(inst.op.operands)
                if case .loop(let loop) = inst.op {
                    deps.formUnion(loop.body.usedValues)
                    deps.formUnion(loop.carried.map(\.id))
                }
                let before = needed.count
                needed.formUnion(deps)
                if needed.count != before { changed = true }
            }
        }
        return needed
    }
}

extension ArraySlice where Element == Instruction {
    var usedValuesRecursively: Set<ValueID> { Array(self).usedValues }
}
