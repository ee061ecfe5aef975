extension Array where Element == Instruction {
    /// Whether an index expression here names `v`: an access, a mask or position offset, a loop
    /// bound, or an element a loop reads (its guard, run-time bounds, links), recursively.
    public func names(_ v: IndexVar) -> Bool {
        if freeIndexVariables.contains(v) { return true }
        for inst in self {
            guard case .loop(let loop) = inst.op else { continue }
            if loop.elementReads.contains(where: { $0.indices.contains { $0.variables.contains(v) } }) { return true }
            if loop.body.names(v) { return true }
        }
        return false
    }
}

extension Kernel {
    /// The top-level values computed alike at every index of grid variable `v` (the other grid
    /// variables fixed): their instruction (with its loop body) stores nothing, names `v` in no
    /// index expression, reads no storage the kernel writes, and reads only values that are
    /// invariant too. A CPU thread that runs consecutive instances along `v` may compute them
    /// once (`KernelSchedule.GridHoisting`).
    public func valuesInvariant(along v: IndexVar, in program: Program) -> Set<ValueID> {
        let written = Set(body.storedTensors.map { program.storage(of: $0) })
        var invariant: Set<ValueID> = []
        for inst in body {
            let one = [inst]
            guard !inst.results.isEmpty, one.isStoreFree, !one.names(v),
                one.loadedTensors.allSatisfy({ !written.contains(program.storage(of: $0)) }),
                one.freeValues.isSubset(of: invariant)
            else { continue }
            invariant.formUnion(inst.results.map(\.id))
        }
        return invariant
    }
}
