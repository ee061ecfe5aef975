import BlockIR
import Schedule

extension FusionRule {
    /// R11 — re-blocking: fold a grid dimension into the block.
    ///
    /// Precondition: the plan asks for it — a kernel loads, inside a loop, blocks of a temporary
    /// whose producer the plan would recompute there if the kernel did not repeat the load for
    /// every block of grid axis `j` — and `j` appears only as slice starts `j * B +: B`. The
    /// widened kernel must fit the local tier (`LocalStorage`, the emitters' storage model).
    ///
    /// ```
    /// kernel k grid(i < 32, j < 16) { … for h … { %g = load G[i * 64 +: 64, h * 64 +: 64]
    ///     %w = load W2[h * 64 +: 64, j * 64 +: 64] : f32[64,64] … } store … -> Y[i * 64 +: 64, j * 64 +: 64] }
    /// ```
    /// → `grid(i < 32)`, `W2[h * 64 +: 64, 0 +: 1024] : f32[64,1024]`, the accumulator
    /// `f32[64,1024]`, every shape recomputed from the new accesses. Exact: each instance now
    /// computes all of the former instances' column blocks; rows of a block are computed the same
    /// way, and elements past a tensor's edge are outside every extent.
    public static let reblocking = FusionRule(
        id: "R11", name: "reblock", summary: "widen a kernel's block over a grid axis so a producer can be inlined once"
    ) { program, plan in
        for c in plan.candidates(program) {
            let kernel = program.kernels[c]
            let facts = plan.facts(of: kernel, in: program)
            for axis in kernel.grid where axis.extent > 1 {
                guard let size = facts.blockSize(of: axis.variable),
                    let (tensor, reads) = repeatedLoad(program, c, axis: axis.variable, plan),
                    plan.wouldAllowRecompute(
                        producer: program.kernels[tensor.producer], consumer: kernel,
                        readsPerBlock: reads / Double(axis.extent), program)
                else { continue }
                guard let retyped = facts.widened(over: axis.variable, program, plan.target) else {
                    if facts.keptBlocked.insert(axis.variable).inserted {
                        plan.note(
                            "keep \(kernel.name) blocked over \(axis.variable): a block \(axis.extent)× wider does not fit \(plan.target.name)'s local tier"
                        )
                    }
                    continue
                }
                plan.note(
                    "re-block \(kernel.name) over \(axis.variable) (\(axis.extent) blocks of \(size) → one of \(axis.extent * size)) so \(program[tensor.id].name) is read once per block"
                )
                return RuleApplication(
                    change: .replace(c, retyped.renumbered()), place: kernel.name,
                    detail: "folded grid axis \(axis.variable) into the block (\(size) → \(axis.extent * size))")
            }
        }
        return nil
    }

    /// A load inside a loop of a temporary written by an earlier kernel that R1 could inline there
    /// (the kernel stores that tensor at its top level, with an access the load's solves), whose
    /// access does not involve `axis`; with how many times each of its blocks is read.
    private static func repeatedLoad(_ program: Program, _ c: Int, axis: IndexVar, _ plan: FusionPlan) -> (
        (id: TensorID, producer: Int), Double
    )? {
        let kernel = program.kernels[c]
        var found: ((id: TensorID, producer: Int), Double)?
        func visit(_ body: [Instruction], trips: Double, inLoop: Bool) {
            for inst in body where found == nil {
                switch inst.op {
                case .loop(let loop):
                    let n = Double(max(1, loop.upper.evaluate([:]) - loop.lower.evaluate([:])))
                    visit(loop.body, trips: trips * n, inLoop: true)
                case .load(let t, let access) where inLoop && program[t].role == .temp:
                    let vars = access.flatMap(\.variables)
                    guard !vars.contains(axis) else { continue }
                    let storage = program.storage(of: t)
                    guard
                        let p = program.kernels[..<c].lastIndex(where: { k in
                            plan.access(k, program).stores.contains(storage)
                        })
                    else { continue }
                    // Only a load R1 could inline (the producer stores this very tensor at its
                    // top level, its grid solving from the load): re-blocking for a load of a
                    // view of the producer's output (a reshape) saves nothing.
                    let producer = program.kernels[p]
                    guard let block = plan.facts(of: producer, in: program).producedBlock(of: t, program),
                        block.access.count == access.count,
                        GridUnification.unify(
                            zip(block.access, access).lazy.map { (store: $0, load: $1) },
                            gridVariables: Set(producer.gridVariables)) != nil
                    else { continue }
                    found = ((t, p), trips / Double(max(1, producer.instanceCount)))
                default: continue
                }
            }
        }
        visit(kernel.body, trips: Double(kernel.instanceCount), inLoop: false)
        return found
    }

    /// The kernel with grid axis `axis` (of block size `size`) folded into the block, retyped,
    /// when that fits the target's local tier.
    static func widened(_ kernel: Kernel, axis: GridAxis, size: Int, _ program: Program, _ target: TargetDescription)
        -> Kernel?
    {
        guard let retyped = widen(kernel, axis: axis, size: size).retyped(),
            LocalStorage.fits(retyped, in: program, capacity: target.localCapacityBytes)
        else { return nil }
        return retyped
    }

    private static func widen(_ kernel: Kernel, axis: GridAxis, size: Int) -> Kernel {
        var out = kernel
        out.grid.removeAll { $0.variable == axis.variable }
        out.body = kernel.body.mappingAccesses { a in
            if case .slice(.mul(.variable(let w), _), _) = a, w == axis.variable {
                return .slice(start: .constant(0), size: size * axis.extent)
            }
            return a
        }
        return out
    }
}
