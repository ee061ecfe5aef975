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
/// A value invariant along the grid's *first* axis of a two-axis grid (LayerNorm+matmul's `ΣγW`
/// and `ΣβW`: the same for every row block `i` of a column block `j`) is computed once per call
/// instead, before the grid, for each `j` in turn, into a table the instances read (`Table`).
///
/// Exact: the kept values are the ones the instance would compute, from the same inputs.
package struct GridHoisting: Hashable, Sendable {
    /// A value kept between instances: the storage it lives in (its layout's base), copied after
    /// its run into `floats` floats (0: a scalar).
    package struct Kept: Hashable, Sendable {
        package var owner: ValueID
        package var floats: Int
        /// The run (index into `runs`) that computes it.
        package var run: Int
    }

    /// A value read outside its run (its extents are kept with it).
    package struct KeptValue: Hashable, Sendable {
        package var value: ValueID
        package var run: Int
    }

    /// Runs of consecutive top-level instructions (positions in the kernel's body) invariant
    /// along an axis, and what is read of them outside.
    package struct Part: Hashable, Sendable {
        /// The grid axis along which the runs are invariant.
        package var axis: IndexVar
        package var runs: [Range<Int>]
        /// The storages kept: one per storage (a view and the value it views share one).
        package var kept: [Kept]
        /// Every value read outside its run.
        package var keptValues: [KeptValue]
        /// The bytes kept (per instance of the other axes, for a table).
        package var keptBytes: Int { kept.reduce(0) { $0 + max(1, $1.floats) } * 4 }
    }

    /// Values computed once per call, before the grid, for each index of the grid's last axis:
    /// the runs (invariant along the first axis), the cheap instructions they read that are
    /// computed again there (`prelude`: constants, blocks read in place), and the table's layout
    /// (`extent` entries of `stride` floats; kept storage `k` at `offsets[k]` in each).
    package struct Table: Hashable, Sendable {
        package var part: Part
        package var prelude: [Int]
        /// The grid axis the table is indexed by (the last) and its extent.
        package var index: IndexVar
        package var extent: Int
        package var offsets: [Int]
        package var stride: Int
    }

    /// Runs computed only when the other grid variables change (invariant along the last axis);
    /// empty when only a table hoists.
    package var guarded: Part
    /// The table computed once per call, if any.
    package var table: Table?

    /// The grid axis of the guarded runs, their runs and kept values.
    package var axis: IndexVar { guarded.axis }
    package var runs: [Range<Int>] { guarded.runs }
    package var kept: [Kept] { guarded.kept }
    package var keptValues: [KeptValue] { guarded.keptValues }

    /// The most bytes a thread keeps between instances, and the most a table holds.
    package static let keptBytesLimit = 64 * 1024
    package static let tableBytesLimit = 16 << 20

    /// The axis a CPU hoists along: the grid's last, when it has 2 or more instances.
    package static func axis(of kernel: Kernel, target: TargetDescription) -> IndexVar? {
        guard !target.isGPU, let last = kernel.grid.last, last.extent >= 2 else { return nil }
        return last.variable
    }

    /// The axis along which a CPU computes a table once per call: the first of a two-axis grid
    /// (both of 2 or more instances).
    package static func tableAxis(of kernel: Kernel, target: TargetDescription) -> IndexVar? {
        guard !target.isGPU, kernel.grid.count == 2, kernel.grid.allSatisfy({ $0.extent >= 2 }) else { return nil }
        return kernel.grid[0].variable
    }

    /// The hoisting of a kernel scheduled for `target`, or `nil` when there is nothing to hoist
    /// (no invariant loop, reduction or product) or a kept value cannot be kept (it is a view of
    /// global memory, or the kept values exceed `keptBytesLimit`; a table's also when an extent is
    /// not a constant, or it needs a value that is not invariant along the first axis).
    package static func plan(
        _ program: Program, _ kernel: Kernel, _ analysis: KernelAnalysis, _ buffers: BufferPlan,
        target: TargetDescription
    ) -> GridHoisting? {
        guard let axis = axis(of: kernel, target: target) else { return nil }
        var guarded =
            part(kernel, analysis, buffers, axis: axis, invariant: kernel.valuesInvariant(along: axis, in: program))
            ?? Part(axis: axis, runs: [], kept: [], keptValues: [])
        if guarded.keptBytes > keptBytesLimit { guarded = Part(axis: axis, runs: [], kept: [], keptValues: []) }
        let table = tableAxis(of: kernel, target: target).flatMap { first in
            Self.table(program, kernel, analysis, buffers, first: first, excluding: guarded.runs)
        }
        guard !guarded.runs.isEmpty || table != nil else { return nil }
        return GridHoisting(guarded: guarded, table: table)
    }

    private static func table(
        _ program: Program, _ kernel: Kernel, _ analysis: KernelAnalysis, _ buffers: BufferPlan, first: IndexVar,
        excluding guardedRuns: [Range<Int>]
    ) -> Table? {
        let taken = Set(guardedRuns.flatMap { Array($0) })
        var invariant = kernel.valuesInvariant(along: first, in: program)
        for k in taken { for r in kernel.body[k].results { invariant.remove(r.id) } }
        guard let part = part(kernel, analysis, buffers, axis: first, invariant: invariant), !part.kept.isEmpty
        else { return nil }
        // Every kept value's extents are constants (the instances read them without the pass's
        // variables), and every value the runs read is computed by them or cheaply again.
        for kv in part.keptValues {
            guard let l = analysis.layouts[kv.value], l.staticExtents.count == l.shape.count,
                l.staticExtents.allSatisfy({ $0 != nil })
            else { return nil }
        }
        let inRuns = Set(part.runs.flatMap { Array($0) })
        var definer: [ValueID: Int] = [:]
        for (k, inst) in kernel.body.enumerated() { for r in inst.results { definer[r.id] = k } }
        var prelude: Set<Int> = []
        var pending = inRuns.flatMap { [kernel.body[$0]].freeValues }
        while let v = pending.popLast() {
            guard let k = definer[v], !inRuns.contains(k), !prelude.contains(k) else { continue }
            let inst = kernel.body[k]
            switch inst.op {
            case .fill, .load, .index, .broadcast, .transpose: break
            default: return nil
            }
            guard invariant.contains(v) else { return nil }
            prelude.insert(k)
            pending += [inst].freeValues
        }
        let last = kernel.grid[kernel.grid.count - 1]
        var offsets: [Int] = []
        var stride = 0
        for k in part.kept {
            offsets.append(stride)
            stride += max(1, k.floats)
        }
        guard stride * last.extent * 4 <= tableBytesLimit else { return nil }
        return Table(
            part: part, prelude: prelude.sorted(), index: last.variable, extent: last.extent, offsets: offsets,
            stride: stride)
    }

    /// The runs of a kernel's top-level instructions in `invariant` that do work, and the values
    /// read of them outside.
    private static func part(
        _ kernel: Kernel, _ analysis: KernelAnalysis, _ buffers: BufferPlan, axis: IndexVar, invariant: Set<ValueID>
    ) -> Part? {
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
                        if keptOwners.insert(o).inserted { kept.append(Kept(owner: o, floats: 0, run: n)) }
                    case .buffer(let o):
                        // The elements its layout spans (a view of the storage spans no more).
                        guard let b = buffers.bufferOf[o] else { return nil }
                        let span = zip(layout.shape, layout.strides).reduce(1) { $0 + ($1.0 - 1) * $1.1 }
                        let floats = min(buffers.capacities[b], span)
                        if let m = kept.firstIndex(where: { $0.owner == o }) {
                            kept[m].floats = max(kept[m].floats, floats)
                        } else {
                            keptOwners.insert(o)
                            kept.append(Kept(owner: o, floats: floats, run: n))
                        }
                    }
                }
            }
        }
        return Part(axis: axis, runs: runs, kept: kept, keptValues: values.map { KeptValue(value: $0.0, run: $0.1) })
    }

}
