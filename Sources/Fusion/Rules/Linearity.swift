import BlockIR

extension FusionRule {
    /// R4 — linearity of a sum over loop iterations.
    ///
    /// A carried accumulator that starts at `0` and adds `z ∘ s` (∘ ∈ {mul, div}) each
    /// iteration, where `s` is defined before the loop, sums `z` instead and applies `s` once
    /// after the loop:
    ///
    /// ```
    /// %0 = fill 0.0 : T
    /// %1 = for k … iter(%2 = %0) : T { …; %5 = div %4, %s; %6 = add %2, %5; yield %6 }
    /// ```
    /// → `%1' = for k … iter(%2 = %0) : T { …; %6 = add %2, %4; yield %6 }; %1 = div %1', %s`.
    /// Exact over the reals: `Σₖ zₖ·s = (Σₖ zₖ)·s` (and likewise for division) when `s` does not
    /// depend on `k`; the accumulator must have no other use in the body.
    public static let linearity = FusionRule(
        id: "R4", name: "linearity", summary: "apply a loop-invariant factor once after an accumulation"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .linearity) { kernel, program in
            var next = plan.facts(of: kernel, in: program).nextValueNumber
            return factorOut(kernel.body, next: &next)
        }
    }

    private static func factorOut(_ body: [Instruction], next: inout Int) -> ([Instruction], String)? {
        var fills: [ValueID: Float] = [:]
        for (index, inst) in body.enumerated() {
            if case .fill(let c) = inst.op, let r = inst.result { fills[r.id] = c }
            guard case .loop(var loop) = inst.op else { continue }
            if let (inner, detail) = factorOut(loop.body, next: &next) {
                loop.body = inner
                var out = body
                out[index].op = .loop(loop)
                return (out, detail)
            }
            guard case .yield(let yielded) = loop.body.last?.op,
                loop.carried.indices.contains(where: { fills[loop.initial[$0]] == 0 })
            else { continue }
            let local = Array(loop.body).definedValues.union(loop.carried.map(\.id))
            var defs: [ValueID: (Int, Instruction)] = [:]
            for (k, b) in loop.body.enumerated() { for r in b.results { defs[r.id] = (k, b) } }
            let uses = loop.body.useCounts
            for (c, carried) in loop.carried.enumerated() {
                guard fills[loop.initial[c]] == 0, uses[carried.id] == 1,
                    let (addIndex, add) = defs[yielded[c]], case .binary(.add, let x, let y) = add.op
                else { continue }
                let term = x == carried.id ? y : (y == carried.id ? x : nil)
                guard let term, let (_, scaled) = defs[term], case .binary(let op, let z, let s) = scaled.op,
                    op == .mul || op == .div, !local.contains(s), uses[term] == 1,
                    scaled.results[0].type.shape == carried.type.shape
                else { continue }
                // Accumulate z; apply s after the loop.
                var newBody = loop.body
                newBody[addIndex].op = x == carried.id ? .binary(.add, carried.id, z) : .binary(.add, z, carried.id)
                var newLoop = loop
                newLoop.body = newBody
                let result = inst.results[c]
                let raw = Value(ValueID(next), result.type)
                next += 1
                var newInst = inst
                newInst.results[c] = raw
                newInst.op = .loop(newLoop)
                var out = Array(body[..<index])
                out.append(newInst)
                out.append(Instruction([result], .binary(op, raw.id, s)))
                out += body[(index + 1)...]
                return (out, "applied the invariant factor \(s) once after loop \(loop.variable) (\(op.rawValue))")
            }
        }
        return nil
    }
}

extension Array where Element == Instruction {
    /// How many times each value is read here (recursively).
    var useCounts: [ValueID: Int] {
        var counts: [ValueID: Int] = [:]
        for inst in self {
            for o in inst.op.operands { counts[o, default: 0] += 1 }
            if case .loop(let loop) = inst.op {
                for (k, v) in loop.body.useCounts { counts[k, default: 0] += v }
            }
        }
        return counts
    }
}
