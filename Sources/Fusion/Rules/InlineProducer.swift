import BlockIR
import Schedule

extension FusionRule {
    /// R1 — inline a producer kernel at a consumer's load.
    ///
    /// Preconditions: the consumer loads a block of tensor `T`; the last kernel before it that
    /// writes `T`'s storage is the producer, which stores `T` at the top level of its body with
    /// an access whose grid variables can be solved from the load's access (same block sizes,
    /// `b0 := b0, i := i, j := k`); the computation of the stored value is store-free and reads
    /// only tensors that neither the consumer nor any kernel between them writes; and the plan
    /// allows recomputing it as often as the consumer reads each block; the plan allows running a
    /// producer's chunks in a loop of the consumer (a grid axis of the producer bound to a
    /// consumer loop, with the producer's loop bounds reading it: not below the cores); and the
    /// consumer with the computation inlined still fits the target's local tier (`LocalStorage`).
    /// A load of a reshape view that only inserts unit axes, reading each at its one position
    /// (`t13[i * 64 +: 64, 0]` of a `[N, 1]` view of `[N]`), counts as the same load of the
    /// viewed tensor (`t12[i * 64 +: 64]`): the same elements, in the same shape.
    ///
    /// ```
    /// kernel p grid(b0 < 8, i < 16, j < 16) { %0 = load S[b0, i * 64 +: 64, j * 64 +: 64] …
    ///                                         %2 = exp %1 …; store %2 -> E[b0, i * 64 +: 64, j * 64 +: 64] }
    /// kernel c grid(b0 < 8, i < 16) { … for k … { %7 = load E[b0, i * 64 +: 64, k * 64 +: 64] … } }
    /// ```
    /// → in `c`'s loop: `%7' = load S[b0, i * 64 +: 64, k * 64 +: 64]; …; %7 = exp …` (the
    /// producer's computation with `j := k`). The producer keeps its store while `T` has other
    /// readers or is an output (R8 removes it otherwise). Exact: the consumer computes the very
    /// value the producer stored, from the same inputs.
    public static let inlineProducer = FusionRule(
        id: "R1", name: "inline-producer",
        summary: "recompute a producer's block at the consumer's load instead of going through global memory"
    ) { program, plan in
        for c in plan.candidates(program) {
            let consumer = program.kernels[c]
            var search = InlineSearch(program: program, consumerIndex: c, plan: plan)
            guard let body = search.visit(consumer.body, trips: Double(consumer.instanceCount)) else { continue }
            var out = consumer
            out.body = body
            // Legality: the consumer with the producer's computation must still fit the local
            // tier (inlined loads of narrow tensors, converted into buffers, can overflow it).
            let capacity = plan.target.localCapacityBytes
            if !LocalStorage.fits(out, in: program, capacity: capacity, target: plan.target) {
                let bytes = LocalStorage.bytes(out, in: program, target: plan.target)
                if bytes > LocalStorage.bytes(consumer, in: program, target: plan.target) {
                    plan.note(
                        "keep \(search.producerName)'s output in global memory for \(consumer.name): inlining needs "
                            + "\(bytes) bytes of local tier, more than \(plan.target.name) has")
                    continue
                }
            }
            return RuleApplication(
                change: .replace(c, out.renumbered()), place: consumer.name, detail: search.detail,
                absorbed: [search.producerName])
        }
        return nil
    }
}

extension FusionRule {
    /// Whether R1 may place `producer`'s computation of `tensor` (reading the storages
    /// `sliceReads`) in `consumer` as far as copies go: a producer that keeps its store (an
    /// output, a tensor another kernel reads, or one the consumer also loads elsewhere: inlining
    /// at one load keeps the store for the others unless each is inlined too) is duplicated, not
    /// moved, and the plan bounds how far such copies spread (`FusionPlan.allowsDuplicate`).
    /// R11 asks it too (`noting: false`): re-blocking cannot make a refused copy allowed.
    static func mayCopy(
        producer: Kernel, into consumer: Kernel, tensor: TensorID, sliceReads: Set<TensorID>, _ program: Program,
        _ plan: FusionPlan, noting: Bool
    ) -> Bool {
        let storage = program.storage(of: tensor)
        let readers = plan.readers(of: storage)
        var loadsOfStorage = 0
        consumer.walk { inst in
            if case .load(let t, _) = inst.op, program.storage(of: t) == storage { loadsOfStorage += 1 }
        }
        let keepsStore =
            program[tensor].role == .output || readers.count > (readers.contains(consumer.name) ? 1 : 0)
            || loadsOfStorage > 1
        guard keepsStore else { return true }
        let consumerLoads = plan.access(consumer, program).loads
        // Inputs of the program cost no recomputation upstream; count new temporaries.
        let added = sliceReads.subtracting(consumerLoads).filter { program[$0].role != .input }.count
        return plan.allowsDuplicate(
            producer: producer, consumer: consumer, newInputs: added,
            bytes: program[tensor].shape.reduce(1, *) * program[tensor].elementType.byteSize,
            readsNothingNew: sliceReads.isSubset(of: consumerLoads), tensor: program[tensor].name, program,
            noting: noting)
    }
}

extension Kernel {
    /// Whether a loop bound anywhere in the body reads the index variable.
    func loopBoundsRead(_ v: IndexVar) -> Bool {
        var found = false
        walk { inst in
            if case .loop(let l) = inst.op, l.lower.variables.contains(v) || l.upper.variables.contains(v) {
                found = true
            }
        }
        return found
    }
}

private struct InlineSearch {
    let program: Program
    let consumerIndex: Int
    let plan: FusionPlan
    var detail = ""
    var producerName = ""

    var consumer: Kernel { program.kernels[consumerIndex] }

    mutating func visit(_ body: [Instruction], trips: Double) -> [Instruction]? {
        for (index, inst) in body.enumerated() {
            switch inst.op {
            case .loop(var loop):
                let count = Double(max(1, loop.upper.evaluate([:]) - loop.lower.evaluate([:])))
                if let inner = visit(loop.body, trips: trips * count) {
                    loop.body = inner
                    var out = body
                    out[index].op = .loop(loop)
                    return out
                }
            case .load(let tensor, let access):
                guard let result = inst.result, let replacement = inlined(tensor, access, result, reads: trips) else {
                    continue
                }
                var out = Array(body[..<index]) + replacement.instructions
                out += Array(body[(index + 1)...]).replacingUses([result.id: replacement.value])
                return out
            default: continue
            }
        }
        return nil
    }

    /// The producer's computation of the block, ready to insert, and the value standing for it.
    mutating func inlined(_ loaded: TensorID, _ loadAccess: [AxisAccess], _ result: Value, reads: Double) -> (
        instructions: [Instruction], value: ValueID
    )? {
        // A load of a reshape view that only adds unit axes, read at their single position
        // (`t[i * 64 +: 64, 0]` of a `[N, 1]` view of `[N]`), reads the viewed tensor's block.
        let (tensor, access) = Self.unitAxesDropped(loaded, loadAccess, program)
        let storage = program.storage(of: tensor)
        // A consumer that also gathers rows of the tensor keeps reading it from memory: leave
        // its loads alone (conservative; the gather's rows are not a block the producer stores).
        var gathers = false
        consumer.walk { inst in
            if case .gather(let t, _, _, _) = inst.op, program.storage(of: t) == storage { gathers = true }
        }
        guard !gathers else { return nil }
        // The last writer of an element of T: kernels that store only windows of T's storage that
        // miss T (the other parts of a concatenation) do not count.
        var writerNames = plan.writers(of: storage)
        if writerNames.count > 1 {
            writerNames = writerNames.filter { name in
                guard let k = program.kernels.firstIndex(where: { $0.name == name }) else { return true }
                return program.kernels[k].body.storedTensors.contains { !program.areDisjoint($0, tensor) }
            }
        }
        guard let p = plan.lastWriter(among: writerNames, before: consumerIndex, program) else { return nil }
        let producer = program.kernels[p]
        // The store of T at the producer's top level, and the stored value's computation.
        guard let block = plan.facts(of: producer, in: program).producedBlock(of: tensor, program),
            block.shape == result.type.shape,
            let binding = unify(block.access, access, gridVariables: Set(producer.gridVariables)),
            binding.count == producer.grid.count, block.slice.isStoreFree
        else { return nil }
        let (stored, slice, sliceReads) = (block.value, block.slice, block.reads)
        // The load reads what the store rounded to T's element type: only a value the store
        // keeps unchanged may stand for it.
        var definition = slice.first(where: { $0.defines(stored) })?.op
        while case .broadcast(let x, _)? = definition { definition = slice.first(where: { $0.defines(x) })?.op }
        guard program.storeKeepsValue(definition, into: tensor) else {
            return nil
        }
        // A producer grid axis that becomes a consumer loop, where the producer's loop runs over
        // a range chosen by that axis (chunks, as R15 writes): inlining would run the chunks one
        // after another on the consumer's instances.
        let consumerGrid = Set(consumer.gridVariables)
        let chunkAxes = binding.filter { v, e in
            !e.variables.allSatisfy(consumerGrid.contains) && producer.loopBoundsRead(v)
        }.keys.sorted()
        if let axis = chunkAxes.first,
            !plan.allowsSerializing(producer: producer, consumer: consumer, axis: axis, tensor: program[tensor].name)
        {
            return nil
        }
        for k in (p + 1)...consumerIndex {
            guard plan.access(program.kernels[k], program).stores.isDisjoint(with: sliceReads) else { return nil }
        }
        guard
            FusionRule.mayCopy(
                producer: producer, into: consumer, tensor: tensor, sliceReads: sliceReads, program, plan, noting: true)
        else { return nil }
        let readsPerBlock = reads / Double(max(1, producer.instanceCount))
        guard
            plan.allowsRecompute(
                producer: producer, consumer: consumer, readsPerBlock: readsPerBlock, tensor: program[tensor].name,
                program)
        else { return nil }
        // Rename the producer's loop counters away from the consumer's names, then bind its grid.
        var taken = consumer.indexVariableNames
        for e in binding.values { taken.formUnion(e.variables.map(\.name)) }
        let renamed = slice.renamingLoopVariables { v in
            // `k` → `k1`, `k2`, …: the first free numbered name on the letters of the old one.
            let base = String(v.name.reversed().drop { $0.isNumber }.reversed())
            var n = 1
            while taken.contains("\(base)\(n)") { n += 1 }
            taken.insert("\(base)\(n)")
            return IndexVar("\(base)\(n)")
        }
        let bound = renamed.substitutingIndices(binding)
        let base = plan.facts(of: consumer, in: program).nextValueNumber
        let renumbered = bound.renumberingDefinitions { ValueID($0.number + base) }
        producerName = producer.name
        detail = "inlined \(producer.name)'s \(program[tensor].name) block at \(result.id)"
        return (renumbered, ValueID(stored.number + base))
    }

    /// The viewed tensor and the access into it, where `tensor` is a reshape view of it that
    /// inserts unit axes and `access` reads each of those at a point; else `tensor` and `access`.
    static func unitAxesDropped(_ tensor: TensorID, _ access: [AxisAccess], _ program: Program) -> (
        TensorID, [AxisAccess]
    ) {
        let view = program[tensor]
        guard let base = view.viewOf, view.window == nil, access.count == view.shape.count else {
            return (tensor, access)
        }
        var kept: [AxisAccess] = []
        var shape: [Int] = []
        for (axis, a) in access.enumerated() {
            if view.shape[axis] == 1, case .point = a { continue }
            kept.append(a)
            shape.append(view.shape[axis])
        }
        guard shape == program[base].shape, kept.count < access.count else { return (tensor, access) }
        return (base, kept)
    }

    /// Solves the producer's grid variables from its store access and the consumer's load.
    func unify(_ store: [AxisAccess], _ load: [AxisAccess], gridVariables: Set<IndexVar>) -> [IndexVar: IndexExpr]? {
        guard store.count == load.count else { return nil }
        return GridUnification.unify(zip(store, load).lazy.map { (store: $0, load: $1) }, gridVariables: gridVariables)
    }
}
