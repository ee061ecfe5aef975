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
    ///
    /// Second case, matching a wider producer: a kernel loads a temporary `T` (read by no other
    /// kernel, not an output) as `j * B +: B` along an axis where `T`'s last writer, re-blocked
    /// already, stores the whole axis at once (`0 +: B · |j|`), and with `j` folded the load
    /// names exactly the block the producer stores (R1's unification solves). The kernel is
    /// widened over `j` so R1 can inline the producer: a residual `Y = X1 + P` after the product
    /// `P = G·W2` that was re-blocked to read `G` once ends in the product's epilogue.
    /// ```
    /// kernel p grid(i < 16) { … store %1 -> P[i * 64 +: 64, 0 +: 2048] }
    /// kernel c grid(i < 16, j < 32) { %0 = load X1[i * 64 +: 64, j * 64 +: 64] …
    ///     %1 = load P[i * 64 +: 64, j * 64 +: 64] … store %2 -> Y[i * 64 +: 64, j * 64 +: 64] }
    /// ```
    /// → `c` over `grid(i < 16)`, loading `P[i * 64 +: 64, 0 +: 2048]`. Exact for the same reason.
    public static let reblocking = FusionRule(
        id: "R11", name: "reblock", summary: "widen a kernel's block over a grid axis so a producer can be inlined once"
    ) { program, plan in
        for c in plan.candidates(program) {
            let kernel = program.kernels[c]
            let facts = plan.facts(of: kernel, in: program)
            for axis in kernel.grid where axis.extent > 1 {
                guard let size = facts.blockSize(of: axis.variable),
                    let (tensor, reads) = repeatedLoad(program, c, axis: axis.variable, plan),
                    // Only for an inlining refused because of the repeated reads (R1 did not
                    // inline it for another reason, or not yet: re-blocking would not help).
                    !plan.wouldAllowRecompute(
                        producer: program.kernels[tensor.producer], consumer: kernel,
                        readsPerBlock: reads, program),
                    plan.wouldAllowRecompute(
                        producer: program.kernels[tensor.producer], consumer: kernel,
                        readsPerBlock: reads / Double(axis.extent), program)
                else { continue }
                guard let retyped = facts.widened(over: axis.variable, program, plan.target) else {
                    if facts.keptBlocked.insert(axis.variable).inserted {
                        plan.capacityRefusals += 1
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
            for axis in kernel.grid where axis.extent > 1 {
                guard let size = facts.blockSize(of: axis.variable),
                    let (tensor, producer) = widerProducer(program, c, axis: axis, size: size, plan),
                    let retyped = facts.widened(over: axis.variable, program, plan.target)
                else { continue }
                plan.note(
                    "re-block \(kernel.name) over \(axis.variable) (\(axis.extent) blocks of \(size) → one of \(axis.extent * size)) to read the whole block \(producer) stores of \(tensor)"
                )
                return RuleApplication(
                    change: .replace(c, retyped.renumbered()), place: kernel.name,
                    detail:
                        "folded grid axis \(axis.variable) into the block (\(size) → \(axis.extent * size)) to match \(producer)'s block of \(tensor)"
                )
            }
        }
        return nil
    }

    /// A load of a temporary only this kernel reads whose last writer stores, along the axis the
    /// load slices by `axis` (`axis * size +: size`), the whole extent at once, so that with
    /// `axis` folded the load is exactly the producer's block (R1 could inline it); the tensor's
    /// and the producer's names.
    private static func widerProducer(
        _ program: Program, _ c: Int, axis: GridAxis, size: Int, _ plan: FusionPlan
    ) -> (tensor: String, producer: String)? {
        let kernel = program.kernels[c]
        var found: (String, String)?
        kernel.walk { inst in
            guard found == nil, case .load(let t, let access) = inst.op, program[t].role == .temp else { return }
            let storage = program.storage(of: t)
            guard plan.readers(of: storage) == [kernel.name],
                access.contains(where: {
                    if case .slice(.mul(.variable(let v), _), _) = $0 { v == axis.variable } else { false }
                }),
                let p = program.kernels[..<c].lastIndex(where: { plan.access($0, program).stores.contains(storage) })
            else { return }
            let producer = program.kernels[p]
            let folded = access.map { a -> AxisAccess in
                if case .slice(.mul(.variable(let w), _), _) = a, w == axis.variable {
                    return .slice(start: .constant(0), size: size * axis.extent)
                }
                return a
            }
            let grid = Set(producer.gridVariables)
            guard let block = plan.facts(of: producer, in: program).producedBlock(of: t, program),
                block.access.count == access.count, block.slice.isStoreFree,
                GridUnification.unify(zip(block.access, access).lazy.map { (store: $0, load: $1) }, gridVariables: grid)
                    == nil,
                let binding = GridUnification.unify(
                    zip(block.access, folded).lazy.map { (store: $0, load: $1) }, gridVariables: grid),
                binding.count == producer.grid.count
            else { return }
            found = (program[t].name, producer.name)
        }
        return found
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
                    // Re-blocking changes how often the block is read, not whether R1 may copy
                    // a producer that keeps its store.
                    guard
                        mayCopy(
                            producer: producer, into: kernel, tensor: t, sliceReads: block.reads, program, plan,
                            noting: false)
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
            LocalStorage.fits(retyped, in: program, capacity: target.localCapacityBytes, target: target)
        else { return nil }
        return retyped
    }

    static func widen(_ kernel: Kernel, axis: GridAxis, size: Int) -> Kernel {
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
