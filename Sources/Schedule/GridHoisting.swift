import BlockIR

/// Work a CPU thread does once per run of consecutive instances along the grid's last axis.
///
/// The instances of a kernel's grid are dealt to a thread in runs that vary the last grid axis
/// fastest (`collapse`, `schedule(static)`): a LayerNorm+matmul thread computes the column blocks
/// `j = 0, 1, …` of one row block `i` in turn. A top-level value whose computation never names
/// `j`, reads no storage the kernel writes and reads only values like it (`Kernel.valuesInvariant`)
/// is the same in all of them: the row statistics of `X[i]`. The thread computes such values
/// when the other grid variables change and keeps the ones read outside their computation in
/// buffers of its own, so every other instance of the run reads them instead of recomputing them.
///
/// Exact: the kept values are the ones the instance would compute, from the same inputs.
package struct GridHoisting: Hashable, Sendable {
    /// A value kept between instances: the storage it lives in (its layout's base), copied after
    /// its run into `floats` floats of the thread's own (0: a scalar).
    package struct Kept: Hashable, Sendable {
        package var value: ValueID
        package var owner: ValueID
        package var floats: Int
        /// The run (index into `runs`) that computes it.
        package var run: Int
    }

    /// The grid axis along which the hoisted values are invariant (the last).
    package var axis: IndexVar
    /// Runs of consecutive top-level instructions (positions in the kernel's body) computed
    /// only when the other grid variables change.
    package var runs: [Range<Int>]
    /// The storages kept: one per storage (a view and the value it views share one).
    package var kept: [Kept]
    /// A value read outside its run (its extents are kept with it).
    package struct KeptValue: Hashable, Sendable {
        package var value: ValueID
        package var run: Int
    }
    /// Every value read outside its run.
    package var keptValues: [KeptValue]

    /// The most bytes a thread keeps between instances.
    package static let keptBytesLimit = 64 * 1024

    /// The axis a CPU hoists along: the grid's last, when it has 2 or more instances. The fusion
    /// plan asks the same question before fusing an invariant loop into one that is not (R3).
    package static func axis(of kernel: Kernel, target: TargetDescription) -> IndexVar? {
        guard !target.isGPU, let last = kernel.grid.last, last.extent >= 2 else { return nil }
        return last.variable
    }

    /// The hoisting of a kernel scheduled for `target`, or `nil` when there is nothing to hoist
    /// (no invariant loop, reduction or product) or a kept value cannot be kept (it is a view of
    /// global memory, shares its storage with another kept value, or they exceed
    /// `keptBytesLimit`).
    package static func plan(
        _ program: Program, _ kernel: Kernel, _ analysis: KernelAnalysis, _ buffers: BufferPlan,
        target: TargetDescription
    ) -> GridHoisting? {
        guard let axis = axis(of: kernel, target: target) else { return nil }
        let invariant = kernel.valuesInvariant(along: axis, in: program)
        guard !invariant.isEmpty else { return nil }
        // The work: invariant loops, reductions, scans and products, and the computations
        // (not views) that read them.
        var derived: Set<ValueID> = []
        var hoisted: [Int] = []
        for (k, inst) in kernel.body.enumerated() {
            guard let r = inst.result ?? inst.results.first, invariant.contains(r.id) else { continue }
            let reads = [inst].freeValues
            switch inst.op {
            case .loop, .reduce, .scan, .dot:
                hoisted.append(k)
            case .unary, .binary, .select, .mask, .concat, .gather:
                guard !reads.isDisjoint(with: derived) else { continue }
                hoisted.append(k)
            case .broadcast, .transpose:
                guard !reads.isDisjoint(with: derived) else { continue }
            default:
                continue
            }
            derived.formUnion(inst.results.map(\.id))
        }
        guard !hoisted.isEmpty else { return nil }
        // Runs: stretches of invariant instructions from a hoisted one to a hoisted one; the
        // invariant ones between (a constant, a view of a hoisted value) join the run, anything
        // else (a block read in place from global memory, a value that varies) ends it.
        let isHoisted = Set(hoisted)
        func joins(_ k: Int) -> Bool {
            let inst = kernel.body[k]
            guard let r = inst.result, invariant.contains(r.id) else { return false }
            return inst.results.allSatisfy { v in
                guard let l = analysis.layouts[v.id] else { return false }
                if case .global = l.base { return false }
                return true
            }
        }
        var runs: [Range<Int>] = []
        var k = 0
        while k < kernel.body.count {
            guard isHoisted.contains(k) else {
                k += 1
                continue
            }
            var end = k + 1
            var probe = end
            while probe < kernel.body.count, isHoisted.contains(probe) || joins(probe) {
                probe += 1
                if isHoisted.contains(probe - 1) { end = probe }
            }
            runs.append(k..<end)
            k = end
        }
        // The values read outside the run that computes them, kept by the storage they live in.
        var runOf: [ValueID: Int] = [:]
        for (n, run) in runs.enumerated() {
            for k in run { for r in kernel.body[k].results { runOf[r.id] = n } }
        }
        var readOutside: Set<ValueID> = []
        for (k, inst) in kernel.body.enumerated() {
            let own = runs.firstIndex { $0.contains(k) }
            for v in [inst].freeValues where runOf[v] != nil && runOf[v] != own { readOutside.insert(v) }
        }
        var kept: [Kept] = []
        var keptOwners: Set<ValueID> = []
        var values: [(ValueID, Int)] = []
        for (n, run) in runs.enumerated() {
            for k in run {
                for r in kernel.body[k].results where readOutside.contains(r.id) {
                    guard let layout = analysis.layouts[r.id] else { return nil }
                    values.append((r.id, n))
                    switch layout.base {
                    case .global: return nil
                    case .scalar(let o):
                        if keptOwners.insert(o).inserted { kept.append(Kept(value: r.id, owner: o, floats: 0, run: n)) }
                    case .buffer(let o):
                        // The elements its layout spans (a view of the storage spans no more).
                        guard let b = buffers.bufferOf[o] else { return nil }
                        let span = zip(layout.shape, layout.strides).reduce(1) { $0 + ($1.0 - 1) * $1.1 }
                        let floats = min(buffers.capacities[b], span)
                        if let m = kept.firstIndex(where: { $0.owner == o }) {
                            kept[m].floats = max(kept[m].floats, floats)
                        } else {
                            keptOwners.insert(o)
                            kept.append(Kept(value: r.id, owner: o, floats: floats, run: n))
                        }
                    }
                }
            }
        }
        let hoisting = GridHoisting(
            axis: axis, runs: runs, kept: kept, keptValues: values.map { KeptValue(value: $0.0, run: $0.1) })
        guard hoisting.keptBytes <= keptBytesLimit else { return nil }
        return hoisting
    }

    /// The bytes a thread keeps.
    package var keptBytes: Int { kept.reduce(0) { $0 + max(1, $1.floats) } * 4 }
}
