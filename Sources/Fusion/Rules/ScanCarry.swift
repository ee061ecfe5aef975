import BlockIR
import Schedule

extension FusionRule {
    /// R13 — carry a producer's loop into the consumer's loop that reads its blocks in order.
    ///
    /// Preconditions: a top-level, store-free loop `for k in lo ..< hi` of the consumer loads (at
    /// its body's top level) a block of `T` at `[…, k * B +: B, …]`, and no other axis reads `k`;
    /// the last kernel before it that writes `T` is the producer, whose body is store-free
    /// instructions and then one loop `for k' in 0 ..< n` (its last instruction) that stores `T`
    /// once, at its body's top level, at `[…, f(k') * B +: B, …]` with `f(k') = k'` (forward) or
    /// `f(k') = n − 1 − k'` (reverse), the other axes solving the producer's grid variables from
    /// the load's as in R1; no kernel from the producer to the consumer writes what the producer
    /// reads. A reverse producer also needs the consumer's iterations to commute: every carried
    /// value is used once, by the `add`, `max` or `min` that yields it.
    ///
    /// The producer's iteration `k'` computes block `f(k')` from its carried values (a running
    /// total, for a scan: `prefix(k) = carry + scan(block k)`). Inlined by R1 it could not be (its
    /// store is inside a loop), and recomputing the carry for every block would cost O(n²). The
    /// consumer instead walks its blocks in the producer's order and runs the producer's
    /// iteration for the same block in the same step, carrying the producer's values; the
    /// producer's iterations before the consumer's first block run alone, before the loop:
    ///
    /// ```
    /// kernel p grid(i < 4) { %0 = fill 0.0 : f32[64]
    ///   %1 = for k in 0 ..< 4 iter(%2 = %0) { %3 = load X[i * 64 +: 64, (k * (-1) + 3) * 64 +: 64]
    ///     %4 = scan_sum %3 axis 1 reverse …; store %6 -> C[i * 64 +: 64, (k * (-1) + 3) * 64 +: 64]
    ///     %7 = reduce_sum %3 axis 1; %8 = add %2, %7; yield %8 } }
    /// kernel c grid(i < 4) { %1 = for k in 0 ..< min(4, i + 1) iter(%2 = %0) {
    ///     %3 = load C[i * 64 +: 64, k * 64 +: 64] …; %5 = add %2, %4; yield %5 } … }
    /// ```
    /// → in `c`: `for k1 in 0 ..< 4 − min(4, i + 1)` runs `p`'s iterations for the blocks above
    /// `hi` (no store), then `for k in 4 − min(4, i + 1) ..< 4 − 0` carries `p`'s total and `c`'s
    /// accumulator together, `c`'s body reading block `3 − k` from `p`'s computation of it. Exact:
    /// every block of `T` is computed from the same carried values as in the producer (the
    /// producer's iterations run in the same order, from the start), and the consumer's
    /// iterations are the same set, in an order that commutative, associative accumulations do not
    /// see (over the reals).
    public static let scanCarry = FusionRule(
        id: "R13", name: "scan-carry",
        summary: "run a producer's loop (a scan's running total) inside the consumer's loop that reads its blocks"
    ) { program, plan in
        for c in plan.candidates(program) {
            let consumer = program.kernels[c]
            var search = ScanCarrySearch(program: program, consumerIndex: c, plan: plan)
            guard let body = search.rewrite() else { continue }
            var out = consumer
            out.body = body
            if !LocalStorage.fits(out, in: program, capacity: plan.target.localCapacityBytes, target: plan.target) {
                continue
            }
            return RuleApplication(
                change: .replace(c, out.renumbered()), place: consumer.name, detail: search.detail,
                absorbed: [search.producerName])
        }
        return nil
    }
}

private struct ScanCarrySearch {
    let program: Program
    let consumerIndex: Int
    let plan: FusionPlan
    var detail = ""
    var producerName = ""

    var consumer: Kernel { program.kernels[consumerIndex] }

    /// The consumer's body with the first matching loop rewritten, or nil.
    mutating func rewrite() -> [Instruction]? {
        let body = consumer.body
        for (index, inst) in body.enumerated() {
            guard case .loop(let loop) = inst.op, loop.body.isStoreFree, loop.condition == nil else { continue }
            for load in loop.body {
                guard case .load(let tensor, let access) = load.op, let result = load.result,
                    let fused = fuse(body, at: index, loop, tensor, access, result)
                else { continue }
                return fused
            }
        }
        return nil
    }

    /// The producer's loop and its shape: which access axis carries the loop, and its direction.
    private struct Match {
        var producer: Kernel
        var loopIndex: Int
        var loop: Loop
        var trips: Int
        var reverse: Bool
        var binding: [IndexVar: IndexExpr]
        var stored: ValueID
    }

    private mutating func fuse(
        _ body: [Instruction], at index: Int, _ cl: Loop, _ tensor: TensorID, _ access: [AxisAccess], _ result: Value
    ) -> [Instruction]? {
        guard let m = match(tensor, access, result, consumerLoop: cl) else { return nil }
        if m.reverse && !commutes(cl) { return nil }
        let k = cl.variable
        let n = m.trips
        // Producer steps before the consumer's first block, and the fused range.
        let prologueEnd: IndexExpr
        let fusedRange: (IndexExpr, IndexExpr)
        let consumerBlock: IndexExpr
        if m.reverse {
            prologueEnd = IndexExpr.add(.mul(cl.upper, -1), .constant(n)).simplified()
            fusedRange = (prologueEnd, IndexExpr.add(.mul(cl.lower, -1), .constant(n)).simplified())
            consumerBlock = .add(.mul(.variable(k), -1), .constant(n - 1))
        } else {
            prologueEnd = cl.lower
            fusedRange = (cl.lower, cl.upper)
            consumerBlock = .variable(k)
        }
        // Two renamed, bound and renumbered copies of the producer: the prologue (with the
        // instructions before its loop) and the body run inside the fused loop.
        var taken = consumer.indexVariableNames
        for e in m.binding.values { taken.formUnion(e.variables.map(\.name)) }
        func rename(_ v: IndexVar) -> IndexVar {
            let base = String(v.name.reversed().drop { $0.isNumber }.reversed())
            var i = 1
            while taken.contains("\(base)\(i)") { i += 1 }
            taken.insert("\(base)\(i)")
            return IndexVar("\(base)\(i)")
        }
        let producerBody = Array(m.producer.body[...m.loopIndex])
        let size = m.producer.nextValueNumber
        let base1 = plan.facts(of: consumer, in: program).nextValueNumber
        let base2 = base1 + size
        let base3 = base2 + size
        let copy1 = producerBody.renamingLoopVariables(rename).substitutingIndices(m.binding)
            .renumberingDefinitions { ValueID($0.number + base1) }
        let copy2 = producerBody.renamingLoopVariables(rename).substitutingIndices(m.binding)
            .renumberingDefinitions { ValueID($0.number + base2) }
        guard case .loop(var prologue) = copy1[m.loopIndex].op, case .loop(let inner) = copy2[m.loopIndex].op,
            case .yield(let producerYield) = inner.body.last?.op, case .yield(let consumerYield) = cl.body.last?.op
        else { return nil }
        prologue.upper = prologueEnd
        prologue.body = prologue.body.filter { if case .store = $0.op { false } else { true } }
        // The second copy reads the values before the producer's loop from the first copy.
        var shared: [ValueID: ValueID] = [:]
        for inst in m.producer.body[..<m.loopIndex] {
            for r in inst.results { shared[ValueID(r.id.number + base2)] = ValueID(r.id.number + base1) }
        }
        let producerStep = inner.body.dropLast().filter { if case .store = $0.op { false } else { true } }
            .substitutingIndices([inner.variable: .variable(k)]).replacingUses(shared)
        let stored = ValueID(m.stored.number + base2)
        var consumerStep: [Instruction] = []
        for inst in cl.body.dropLast() where inst.result?.id != result.id {
            consumerStep.append(inst)
        }
        consumerStep = consumerStep.substitutingIndices([k: consumerBlock]).replacingUses([result.id: stored])
        let prologueResults = inner.carried.enumerated().map { Value(ValueID(base3 + 2 * $0.offset), $0.element.type) }
        let fusedResults = inner.carried.enumerated().map { Value(ValueID(base3 + 2 * $0.offset + 1), $0.element.type) }
        var fused = Loop(
            variable: k, lower: fusedRange.0, upper: fusedRange.1, initial: prologueResults.map(\.id) + cl.initial,
            carried: inner.carried + cl.carried,
            body: producerStep + consumerStep
                + [Instruction([], .yield(producerYield + consumerYield.map { $0 == result.id ? stored : $0 }))])
        var out = Array(body[..<index]) + Array(copy1[..<m.loopIndex])
        if prologueEnd == .constant(0) {
            // The consumer starts at the producer's first block: no step runs alone.
            fused.initial = prologue.initial + cl.initial
        } else {
            out.append(Instruction(prologueResults, .loop(prologue)))
        }
        out.append(Instruction(fusedResults + body[index].results, .loop(fused)))
        out += body[(index + 1)...]
        producerName = m.producer.name
        detail =
            "carried \(m.producer.name)'s loop into loop \(k) at \(result.id), walking "
            + (m.reverse ? "its blocks in reverse" : "its blocks in order")
        return out
    }

    /// The producer of the loaded block, when it stores it from its last top-level loop in
    /// the order of that loop's counter (forward or reverse).
    private func match(_ tensor: TensorID, _ access: [AxisAccess], _ result: Value, consumerLoop cl: Loop) -> Match? {
        let storage = program.storage(of: tensor)
        guard let p = plan.lastWriter(among: plan.writers(of: storage), before: consumerIndex, program) else {
            return nil
        }
        let producer = program.kernels[p]
        guard let loopIndex = producer.body.indices.last, case .loop(let pl) = producer.body[loopIndex].op,
            producer.body.dropLast().isStoreFree,
            !producer.body.dropLast().contains(where: { if case .loop = $0.op { true } else { false } }),
            pl.lower == .constant(0), case .constant(let n) = pl.upper, n > 0, pl.condition == nil,
            producer.body.storedTensors == [tensor]
        else { return nil }
        let stores = pl.body.filter { if case .store = $0.op { true } else { false } }
        guard stores.count == 1, case .store(let stored, _, let storeAccess) = stores[0].op,
            pl.body.dropLast().filter({ if case .loop = $0.op { true } else { false } }).allSatisfy({
                if case .loop(let l) = $0.op { l.body.isStoreFree } else { true }
            }),
            let type = pl.body.first(where: { $0.results.contains { $0.id == stored } })?.results.first?.type
                ?? pl.carried.first(where: { $0.id == stored })?.type,
            type.shape == result.type.shape, storeAccess.count == access.count,
            program.storeKeepsValue(pl.body.first(where: { $0.defines(stored) })?.op, into: tensor)
        else { return nil }
        let grid = Set(producer.gridVariables)
        var reverse: Bool?
        var others: [(store: AxisAccess, load: AxisAccess)] = []
        for (s, l) in zip(storeAccess, access) {
            // The carried axis: the consumer reads block k, the producer stores f(k').
            if case .slice(let ss, let size) = s, ss.reads(pl.variable) {
                guard reverse == nil, case .slice(let sl, size) = l, let (a, rest) = ss.affine(in: pl.variable),
                    case .constant(let r0) = rest.simplified(), let (ca, crest) = sl.affine(in: cl.variable),
                    ca == size, crest.simplified() == .constant(0), sl.variables == [cl.variable]
                else { return nil }
                if a == size && r0 == 0 {
                    reverse = false
                } else if a == -size && r0 == (n - 1) * size {
                    reverse = true
                } else {
                    return nil
                }
            } else {
                // Every other axis reads neither loop's counter and solves the grid as in R1.
                guard !s.variables.contains(pl.variable), !l.variables.contains(cl.variable) else { return nil }
                others.append((s, l))
            }
        }
        guard let binding = GridUnification.unify(others, gridVariables: grid) else { return nil }
        guard let reverse, binding.count == grid.count else { return nil }
        // Nothing from the producer to the consumer writes what the producer reads.
        let reads = plan.access(producer, program).loads
        for k in (p + 1)...consumerIndex {
            guard plan.access(program.kernels[k], program).stores.isDisjoint(with: reads) else { return nil }
        }
        return Match(
            producer: producer, loopIndex: loopIndex, loop: pl, trips: n, reverse: reverse, binding: binding,
            stored: stored)
    }

    /// Whether the loop's iterations may run in any order: each carried value is used once, by
    /// the `add`, `max` or `min` at the body's top level whose result it yields.
    private func commutes(_ loop: Loop) -> Bool {
        guard case .yield(let ys) = loop.body.last?.op else { return false }
        var uses: [ValueID: Int] = [:]
        func count(_ body: [Instruction]) {
            for inst in body {
                for v in inst.op.operands { uses[v, default: 0] += 1 }
                if case .loop(let l) = inst.op { count(l.body) }
            }
        }
        count(loop.body)
        for (c, y) in zip(loop.carried, ys) {
            guard uses[c.id] == 1,
                let def = loop.body.first(where: { $0.results.contains { $0.id == y } }),
                case .binary(let op, let a, let b) = def.op, op == .add || op == .max || op == .min,
                a == c.id || b == c.id, uses[y] == 1
            else { return false }
        }
        return true
    }
}
