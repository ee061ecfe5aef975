import BlockIR

/// Row coarsening, the schedule's block-size policy: double a kernel's row block so that the
/// blocks it streams serve twice the rows.
///
/// Runs on the fused program (so every producer was inlined at the lowering's block size).
/// Legality: grid axis `i` (lowering's row-block axis) appears only as slice starts `i * B +: B`
/// (no mask, loop bound or point index uses it), and the widened kernel retypes and fits the
/// local tier. Policy: `2B` is within the target's `maxRowBlock`; each instance streams, inside
/// its loops, more bytes of blocks that do not depend on `i` than the local tier holds (so they
/// come from beyond it every time, and doubling the rows halves that traffic); and at least
/// `minimumInstances` instances remain.
///
/// ```
/// kernel k grid(i < 32) { … %x = load X[i * 64 +: 64, …] … for h … { load W2[h * 64 +: 64, 0 +: 1024] … }
///     store … -> Y[i * 64 +: 64, 0 +: 1024] }
/// ```
/// → `grid(i < 16)`, `X[i * 128 +: 128, …]`, `Y[i * 128 +: 128, …]`, every shape recomputed.
/// Exact: each instance computes the rows of two former instances the same way, row by row;
/// rows past a tensor's edge are outside every extent.
enum RowCoarsening {
    /// The fewest kernel instances coarsening leaves (work for the cores).
    static let minimumInstances = 8

    /// The program with every kernel coarsened as far as the policy allows, and one decision line
    /// per kernel considered.
    static func apply(_ program: Program, target: TargetDescription) -> (program: Program, decisions: [String]) {
        var out = program
        var decisions: [String] = []
        for c in out.kernels.indices {
            while let (widened, decision) = coarsenOnce(out.kernels[c], in: out, target: target, decisions: &decisions)
            {
                out.kernels[c] = widened
                decisions.append(decision)
            }
        }
        return (out, decisions)
    }

    /// One doubling of a kernel's row block, when legal and worth it.
    private static func coarsenOnce(
        _ kernel: Kernel, in program: Program, target: TargetDescription, decisions: inout [String]
    ) -> (Kernel, String)? {
        let row = IndexVar("i")
        guard let axis = kernel.grid.first(where: { $0.variable == row }), axis.extent > 1,
            let size = kernel.blockSize(of: row), 2 * size <= target.maxRowBlock,
            kernel.instanceCount / axis.extent * ((axis.extent + 1) / 2) >= minimumInstances
        else { return nil }
        let streamed = streamedBytes(kernel, independentOf: row)
        guard streamed > target.localCapacityBytes else { return nil }
        guard let widened = coarsen(kernel, axis: axis, size: size).retyped(),
            LocalStorage.fits(widened, in: program, capacity: target.localCapacityBytes, target: target)
        else {
            decisions.append(
                "keep \(kernel.name) at \(size)-row blocks: \(2 * size) rows do not fit \(target.name)'s local tier")
            return nil
        }
        return (
            widened.renumbered(),
            "coarsen \(kernel.name) to \(2 * size)-row blocks (grid axis i: \(axis.extent) → \((axis.extent + 1) / 2)): "
                + "each instance streams \(streamed) bytes of blocks shared by all row blocks, more than "
                + "\(target.name)'s local tier holds"
        )
    }

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
                case .load(_, let access) where inLoop, .gather(_, let access, _, _) where inLoop:
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
