import BlockIR

extension FusionRule {
    /// R12 — row coarsening: double a kernel's row block so that the blocks it streams serve
    /// twice the rows.
    ///
    /// Runs once the other rules reach their fixed point (so no producer still waits to be
    /// inlined at the old block size). Precondition: grid axis `i` (lowering's row-block axis)
    /// appears only as slice starts `i * B +: B` (no mask, loop bound or point index uses it);
    /// `2B` is within the target's `maxRowBlock`; each instance streams, inside its loops, more
    /// bytes of blocks that do not depend on `i` than the local tier holds (so they come from
    /// beyond it every time, and doubling the rows halves that traffic); at least
    /// `minimumInstances` instances remain; and the widened kernel fits the local tier.
    ///
    /// ```
    /// kernel k grid(i < 32) { … %x = load X[i * 64 +: 64, …] … for h … { load W2[h * 64 +: 64, 0 +: 1024] … }
    ///     store … -> Y[i * 64 +: 64, 0 +: 1024] }
    /// ```
    /// → `grid(i < 16)`, `X[i * 128 +: 128, …]`, `Y[i * 128 +: 128, …]`, every shape recomputed.
    /// Exact: each instance computes the rows of two former instances the same way, row by row;
    /// rows past a tensor's edge are outside every extent.
    public static let coarsening = FusionRule(
        id: "R12", name: "coarsen",
        summary: "double a kernel's row block when the blocks it streams overflow the local tier"
    ) { program, plan in
        for c in plan.candidates(program) {
            let kernel = program.kernels[c]
            let row = IndexVar("i")
            guard let axis = kernel.grid.first(where: { $0.variable == row }), axis.extent > 1,
                let size = sliceSize(of: row, in: kernel.body), 2 * size <= plan.target.maxRowBlock,
                kernel.instanceCount / axis.extent * ((axis.extent + 1) / 2) >= minimumInstances
            else { continue }
            let streamed = streamedBytes(kernel, independentOf: row)
            guard streamed > plan.target.localCapacityBytes else { continue }
            guard let widened = coarsen(kernel, axis: axis, size: size).retyped(),
                Verifier.localPeakBytes(widened) <= plan.target.localCapacityBytes
            else {
                plan.note(
                    "keep \(kernel.name) at \(size)-row blocks: \(2 * size) rows do not fit \(plan.target.name)'s local tier"
                )
                continue
            }
            plan.note(
                "coarsen \(kernel.name) to \(2 * size)-row blocks: each instance streams \(streamed) bytes of blocks shared by all row blocks, more than \(plan.target.name)'s local tier holds"
            )
            var out = program
            out.kernels[c] = widened.renumbered()
            return RuleApplication(
                program: out, place: kernel.name,
                detail: "row block \(size) → \(2 * size) (grid axis i: \(axis.extent) → \((axis.extent + 1) / 2))")
        }
        return nil
    }

    /// The fewest kernel instances coarsening leaves (work for the cores).
    static let minimumInstances = 8

    /// Bytes of blocks loaded inside loops, over all iterations of one instance, whose access does
    /// not involve `v`.
    static func streamedBytes(_ kernel: Kernel, independentOf v: IndexVar) -> Int {
        func visit(_ body: [Instruction], trips: Int, inLoop: Bool) -> Int {
            var total = 0
            for inst in body {
                switch inst.op {
                case .loop(let loop):
                    let n = max(1, loop.upper.evaluate([:]) - loop.lower.evaluate([:]))
                    total += visit(loop.body, trips: trips * n, inLoop: true)
                case .load(_, let access) where inLoop:
                    let vars = access.flatMap(\.variables)
                    guard !vars.contains(v), let r = inst.result else { continue }
                    total += trips * r.type.elementCount * 4
                default: continue
                }
            }
            return total
        }
        return visit(kernel.body, trips: 1, inLoop: false)
    }

    private static func coarsen(_ kernel: Kernel, axis: GridAxis, size: Int) -> Kernel {
        var out = kernel
        out.grid = kernel.grid.map { g in
            g.variable == axis.variable ? GridAxis(g.variable, (g.extent + 1) / 2) : g
        }
        out.body = kernel.body.mappingAccesses { a in
            if case .slice(.mul(.variable(let w), _), _) = a, w == axis.variable {
                return .slice(start: .mul(.variable(w), 2 * size), size: 2 * size)
            }
            return a
        }
        return out
    }
}
