import BlockIR

extension FusionRule {
    /// R7 — hoisting loop-invariant computations.
    ///
    /// A store-free instruction at the top level of a loop body whose operands are all defined
    /// outside the loop, whose index expressions do not read the loop counter, and (for loads and
    /// loops that load) whose tensors the kernel never stores to, computes the same value in every
    /// iteration: it moves before the loop.
    ///
    /// ```
    /// %4 = for k in 0 ..< 16 iter(%5 = %3) : … { %6 = load Q[b0, i * 64 +: 64, 0 +: 64] : …; … }
    /// ```
    /// → `%6 = load Q[…]` before the loop. Exact: same value, computed once (a loop that runs zero
    /// times computes it needlessly, which is harmless for pure code).
    public static let hoist = FusionRule(
        id: "R7", name: "hoist", summary: "move loop-invariant computations before their loop"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .hoist) { kernel, program in
            let stored = Set(kernel.body.storedTensors.map { program.storage(of: $0) })
            return hoist(kernel.body, program: program, stored: stored)
        }
    }

    private static func hoist(_ body: [Instruction], program: Program, stored: Set<TensorID>) -> (
        [Instruction], String
    )? {
        for (index, inst) in body.enumerated() {
            guard case .loop(var loop) = inst.op else { continue }
            var local = Set(loop.carried.map(\.id))
            var moved: [Instruction] = []
            var kept: [Instruction] = []
            for candidate in loop.body {
                var invariant = true
                candidate.op.forEachOperand { if local.contains($0) { invariant = false } }
                if invariant, case .loop(let l) = candidate.op { invariant = l.body.freeValues.isDisjoint(with: local) }
                invariant =
                    invariant && !candidate.readsIndexVariable(loop.variable)
                    && isHoistable(candidate, program: program, stored: stored)
                if invariant {
                    moved.append(candidate)
                } else {
                    kept.append(candidate)
                    local.formUnion(candidate.results.map(\.id))
                }
            }
            if !moved.isEmpty {
                loop.body = kept
                var out = Array(body[..<index]) + moved
                var newLoop = inst
                newLoop.op = .loop(loop)
                out.append(newLoop)
                out += body[(index + 1)...]
                return (
                    out,
                    "hoisted \(moved.count) invariant instruction\(moved.count == 1 ? "" : "s") out of loop \(loop.variable)"
                )
            }
            if let (inner, detail) = hoist(loop.body, program: program, stored: stored) {
                loop.body = inner
                var out = body
                out[index].op = .loop(loop)
                return (out, detail)
            }
        }
        return nil
    }

    private static func isHoistable(_ inst: Instruction, program: Program, stored: Set<TensorID>) -> Bool {
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
}

extension Instruction {
    /// Whether the instruction reads index variable `v` (for a loop: in its bounds, or in its
    /// body unless the loop binds `v`): `[self].freeIndexVariables.contains(v)`, without building
    /// the set.
    func readsIndexVariable(_ v: IndexVar) -> Bool {
        func reads(_ access: [AxisAccess]) -> Bool {
            access.contains { a in
                switch a {
                case .point(let e), .slice(let e, _): return e.reads(v)
                }
            }
        }
        switch op {
        case .load(_, let access), .store(_, _, let access), .gather(_, let access, _, _): return reads(access)
        case .mask(_, let r, let c, _, _): return r.reads(v) || c.reads(v)
        case .index(let e, _): return e.reads(v)
        case .loop(let loop):
            return loop.lower.reads(v) || loop.upper.reads(v)
                || (loop.variable != v && loop.body.contains { $0.readsIndexVariable(v) })
        case .fill, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .yield:
            return false
        }
    }
}

extension IndexExpr {
    /// Whether the expression reads `v`.
    func reads(_ v: IndexVar) -> Bool {
        switch self {
        case .constant: return false
        case .variable(let w): return w == v
        case .add(let a, let b), .min(let a, let b), .max(let a, let b): return a.reads(v) || b.reads(v)
        case .mul(let a, _), .floorDiv(let a, _): return a.reads(v)
        }
    }
}
