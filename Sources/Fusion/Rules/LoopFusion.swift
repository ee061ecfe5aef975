import BlockIR

extension FusionRule {
    /// R3 — loop fusion.
    ///
    /// Two store-free loops in one body over the same range, where the second uses nothing the
    /// first computes (directly or through the instructions between them), become one loop
    /// carrying both sets of values. The second loop's counter is renamed to the first's; the
    /// instructions between them that the second needs move before the fused loop.
    ///
    /// ```
    /// %1 = for k in 0 ..< 16 iter(%2 = %0) : A { …; yield %5 }
    /// %6 = for k1 in 0 ..< 16 iter(%7 = %0) : B { …; yield %9 }
    /// ```
    /// → `%1, %6 = for k in 0 ..< 16 iter(%2 = %0, %7 = %0) : A, B { …; …; yield %5, %9 }`.
    /// Exact: the iterations of the two loops are independent of each other, so interleaving
    /// them computes the same carried values.
    public static let loopFusion = FusionRule(
        id: "R3", name: "loop-fusion", summary: "run two independent loops over the same range as one"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .loopFusion) { kernel, _ in
            fuseLoops(kernel.body)
        }
    }

    static func fuseLoops(_ body: [Instruction]) -> ([Instruction], String)? {
        for (a, first) in body.enumerated() {
            guard case .loop(let l1) = first.op else { continue }
            if let (inner, detail) = fuseLoops(l1.body) {
                var out = body
                var loop = l1
                loop.body = inner
                out[a].op = .loop(loop)
                return (out, detail)
            }
            guard l1.body.isStoreFree else { continue }
            var dependent = Set(first.results.map(\.id))
            for b in (a + 1)..<body.count {
                let second = body[b]
                // A guarded loop (R16) skips iterations that change none of its own values; another
                // loop's work in them would be lost.
                if case .loop(let l2) = second.op, l2.lower == l1.lower, l2.upper == l1.upper, l2.body.isStoreFree,
                    l1.condition == nil, l2.condition == nil,
                    second.op.operands.allSatisfy({ !dependent.contains($0) }),
                    l2.body.freeValues.isDisjoint(with: dependent)
                {
                    return (fuse(body, a, b, l1, l2), "fused loop \(l2.variable) into loop \(l1.variable)")
                }
                let uses = Set(second.op.operands).union(
                    { if case .loop(let l) = second.op { return l.body.freeValues } else { return [] } }())
                if !uses.isDisjoint(with: dependent) { dependent.formUnion(second.results.map(\.id)) }
            }
        }
        return nil
    }

    private static func fuse(_ body: [Instruction], _ a: Int, _ b: Int, _ l1: Loop, _ l2: Loop) -> [Instruction] {
        let between = Array(body[(a + 1)..<b])
        // What the second loop needs from between the two moves before the fused loop.
        let needs = between.backwardSlice(from: Set(body[b].op.operands).union(l2.body.freeValues))
        let before = between.filter { inst in inst.results.contains { needs.contains($0.id) } }
        let after = between.filter { inst in !inst.results.contains { needs.contains($0.id) } }
        guard case .yield(let y1) = l1.body.last?.op, case .yield(let y2) = l2.body.last?.op else { return body }
        let secondBody = Array(l2.body.dropLast()).substitutingIndices([l2.variable: .variable(l1.variable)])
        var fused = l1
        fused.initial = l1.initial + l2.initial
        fused.carried = l1.carried + l2.carried
        fused.body = Array(l1.body.dropLast()) + secondBody + [Instruction([], .yield(y1 + y2))]
        let loop = Instruction(body[a].results + body[b].results, .loop(fused))
        return Array(body[..<a]) + before + [loop] + after + Array(body[(b + 1)...])
    }
}
