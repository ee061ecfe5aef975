import BlockIR
import Schedule

extension FusionRule {
    /// R18 — sibling fusion: a kernel that reads the same operand blocks in the same loop as an
    /// earlier kernel joins it, so one pass over each block feeds both kernels' accumulators.
    ///
    /// Preconditions: kernel `B` and an earlier kernel `A` (the nearest before `B` that loads
    /// what `B` loads; no kernel between them writes a tensor `B` loads or touches one `B`
    /// stores, and `B` loads nothing `A` stores) each have a top-level loop over the same range
    /// that loads the same block of the same tensor, the access naming the loop's counter and
    /// grid axes both kernels have with the same extent and block size (`X[i * 64 +: 64, k * 64
    /// +: 64]` in both). Their other grid axes (the output columns `j`, whose extents differ
    /// between siblings of different widths) appear only as slice starts `j * B +: B` and are
    /// folded into the blocks (as R11 does), so both grids become the shared axes. The merged
    /// kernel must keep at least as many instances as the plan's cores (the siblings would
    /// otherwise trade parallelism for the shared reads: the decode layer's single row keeps its
    /// projections apart), and the two widened kernels together must fit the target's local
    /// tier once their loops are fused as R3 will fuse them (their accumulators then live
    /// together).
    ///
    /// ```
    /// kernel a grid(i < 16, j < 32) { … for k … { %3 = load X[i * 64 +: 64, k * 64 +: 64] …
    ///     %4 = load Wq[k * 64 +: 64, j * 64 +: 64] … } store … -> Q[i * 64 +: 64, j * 64 +: 64] }
    /// kernel b grid(i < 16, j < 8) { … for k … { %3 = load X[i * 64 +: 64, k * 64 +: 64] …
    ///     %4 = load Wk[k * 64 +: 64, j * 64 +: 64] … } store … -> K[i * 64 +: 64, j * 64 +: 64] }
    /// ```
    /// → `kernel a grid(i < 16) { <a widened: Q[i * 64 +: 64, 0 +: 2048]>; <b widened, its loop
    /// counters and values renamed: K[i * 64 +: 64, 0 +: 512]> }`, and `b` removed. R3 then fuses
    /// the two loops (they are independent), R10 merges the repeated loads and the computation on
    /// them (an RMSNorm's statistics computed once, not once per projection and column block).
    ///
    /// Exact: folding a grid axis computes the same blocks per instance (R11); `B`'s computation
    /// moves earlier in the program, which changes nothing it reads (no kernel in between writes
    /// its inputs) or anyone reads (no kernel in between touches its outputs, and `A` does not
    /// read them: `A` runs its own part first).
    public static let siblingFusion = FusionRule(
        id: "R18", name: "sibling-fusion",
        summary:
            "merge a kernel into an earlier one that loads the same blocks in the same loop, one pass feeding both"
    ) { program, plan in
        for b in plan.candidates(program) where !plan.siblingExamined.contains(program.kernels[b].name) {
            guard let (a, shared) = sibling(of: b, program, plan) else {
                plan.siblingExamined.insert(program.kernels[b].name)
                continue
            }
            let (first, second) = (program.kernels[a], program.kernels[b])
            let keep = Set(shared.variables)
            guard let wideA = foldAll(first, except: keep, program, plan),
                let wideB = foldAll(second, except: keep, program, plan),
                wideA.grid == wideB.grid
            else {
                plan.siblingExamined.insert(second.name)
                continue
            }
            // B's loop counters renamed away from A's names, its values numbered after A's.
            var taken = wideA.indexVariableNames
            let renamed = wideB.body.renamingLoopVariables { v in
                let base = String(v.name.reversed().drop { $0.isNumber }.reversed())
                var n = 1
                while taken.contains("\(base)\(n)") { n += 1 }
                taken.insert("\(base)\(n)")
                return IndexVar("\(base)\(n)")
            }
            let offset = wideA.nextValueNumber
            var merged = wideA
            merged.body += renamed.renumberingDefinitions { ValueID($0.number + offset) }
            guard merged.instanceCount >= plan.cores else {
                plan.note(
                    "keep \(second.name) apart from its sibling \(first.name): merged they would run \(merged.instanceCount) instance\(merged.instanceCount == 1 ? "" : "s"), fewer than the \(plan.cores) cores"
                )
                plan.siblingExamined.insert(second.name)
                continue
            }
            // Legality: the merged kernel must fit with its loops fused (R3 fuses them next, and
            // then the accumulators of both live together).
            var fused = merged
            while let (body, _) = fuseLoops(fused.body) { fused.body = body }
            let capacity = plan.target.localCapacityBytes
            let bytes = LocalStorage.bytes(fused.renumbered(), in: program, target: plan.target)
            guard bytes <= capacity else {
                plan.note(
                    "keep \(second.name) apart from its sibling \(first.name): with their loops fused they need \(bytes) bytes of local tier, more than \(plan.target.name)'s \(capacity)"
                )
                plan.siblingExamined.insert(second.name)
                continue
            }
            // The merged kernel, and the kernels that may look back at it, are looked at again.
            for k in a..<min(program.kernels.count, a + siblingWindow + 2) {
                plan.siblingExamined.remove(program.kernels[k].name)
            }
            let folded = first.grid.count + second.grid.count - 2 * merged.grid.count
            plan.note(
                "merge \(second.name) into its sibling \(first.name): both read \(program[shared.tensor].name) blocks in one loop over \(shared.loop); \(folded) grid ax\(folded == 1 ? "is" : "es") folded, \(merged.instanceCount) instances, \(bytes) bytes of local tier with the loops fused"
            )
            return RuleApplication(
                change: .merge(a, merged.renumbered(), removing: b), place: first.name,
                detail:
                    "merged \(second.name), which reads the same \(program[shared.tensor].name) blocks in its loop over \(shared.loop)",
                absorbed: [second.name])
        }
        return nil
    }

    /// A shared load of two sibling kernels: the tensor, the loop counter (in `B`), and the grid
    /// variables its access names.
    struct SharedLoad {
        var tensor: TensorID
        var loop: IndexVar
        var variables: [IndexVar]
    }

    /// How far back R18 looks for a sibling (kernels; it stops earlier at a kernel that writes
    /// what `B` loads), so a step's work does not grow with the program.
    static let siblingWindow = 8

    /// The nearest earlier kernel that `B` may join, with the load they share.
    private static func sibling(of b: Int, _ program: Program, _ plan: FusionPlan) -> (Int, SharedLoad)? {
        let kernel = program.kernels[b]
        let mine = plan.access(kernel, program)
        guard !mine.stores.isEmpty, !kernel.grid.isEmpty else { return nil }
        let loadsB = topLevelLoopLoads(kernel)
        guard !loadsB.isEmpty else { return nil }
        var a = b
        while a > 0, b - a < siblingWindow {
            a -= 1
            let other = program.kernels[a]
            let theirs = plan.access(other, program)
            // B moves before the kernels in between: they must not feed it or touch its outputs.
            if !theirs.stores.isDisjoint(with: mine.loads) { return nil }
            if !theirs.stores.isDisjoint(with: mine.stores) || !theirs.loads.isDisjoint(with: mine.stores) {
                return nil
            }
            let loadsA = topLevelLoopLoads(other)
            for (tensor, access, loopB, boundsB) in loadsB {
                for (t, accessA, loopA, boundsA) in loadsA where t == tensor && boundsA == boundsB {
                    let renamed = accessA.map { $0.substituting([loopA: .variable(loopB)]) }
                    guard renamed == access else { continue }
                    let variables = access.flatMap(\.variables).filter { $0 != loopB }
                    let shared = variables.allSatisfy { v in
                        guard let x = kernel.grid.first(where: { $0.variable == v }),
                            let y = other.grid.first(where: { $0.variable == v })
                        else { return false }
                        return x.extent == y.extent && kernel.blockSize(of: v) == other.blockSize(of: v)
                    }
                    guard shared else { continue }
                    return (a, SharedLoad(tensor: tensor, loop: loopB, variables: Array(Set(variables)).sorted()))
                }
            }
        }
        return nil
    }

    /// The loads directly in the kernel's top-level loops: tensor, access, counter and bounds.
    private static func topLevelLoopLoads(_ kernel: Kernel) -> [(TensorID, [AxisAccess], IndexVar, [IndexExpr])] {
        var out: [(TensorID, [AxisAccess], IndexVar, [IndexExpr])] = []
        for inst in kernel.body {
            guard case .loop(let loop) = inst.op, loop.condition == nil else { continue }
            for inner in loop.body {
                if case .load(let t, let access) = inner.op {
                    out.append((t, access, loop.variable, [loop.lower, loop.upper]))
                }
            }
        }
        return out
    }

    /// The kernel with every grid axis but `keep` folded into its blocks (R11's widening), when
    /// each folds.
    private static func foldAll(_ kernel: Kernel, except keep: Set<IndexVar>, _ program: Program, _ plan: FusionPlan)
        -> Kernel?
    {
        var out = kernel
        for axis in kernel.grid where !keep.contains(axis.variable) {
            guard let size = out.blockSize(of: axis.variable),
                let wide = widen(out, axis: axis, size: size).retyped()
            else { return nil }
            out = wide
        }
        return out
    }
}
