extension Loop {
    /// The body an iteration runs where its *full* element (`full`) is non-zero, and the selects
    /// in it that take their `then` operand. `full` vouches that each of its `trueValues` is
    /// non-zero at every valid element, so `select c, a, b` on such a `c` is `a` there: it is
    /// kept (its result keeps its number, type and storage) but marked, its condition is no
    /// longer read, and the instructions nothing else reads any more are dropped (the element
    /// test: the mask's loads and comparisons).
    ///
    /// Only a select with a block operand among `a` and `b` is marked: its extent (where its
    /// elements are valid) then comes from them, as the unmarked select's does once the
    /// condition's own extent, which R16 checks covers theirs, is left out.
    ///
    /// ```
    /// for k in 0 ..< 16 if M_any[i, k] full M_all[i, k] true(%9) iter(…) {
    ///   %8 = load M[0, i * 64 +: 64, k * 64 +: 64]; %9 = ne %8, %0; %10 = select %9, %7, %1 …
    /// }
    /// ```
    /// where `M_all[i, k]` is set runs `%10 = select(true) %7, %1 …` without `%8` and `%9`.
    public func bodyWhereTrue() -> (body: [Instruction], chosen: Set<ValueID>) {
        guard let full else { return (body, []) }
        let known = Set(full.trueValues)
        var chosen: Set<ValueID> = []
        // Operands defined before the loop have unknown types here: a block operand must be seen.
        let types = Dictionary(
            body.flatMap(\.results).map { ($0.id, $0.type.shape) } + carried.map { ($0.id, $0.type.shape) },
            uniquingKeysWith: { x, _ in x })
        for inst in body {
            guard case .select(let c, let a, let b) = inst.op, known.contains(c), let r = inst.result else { continue }
            let shape = r.type.shape
            if types[a] == shape && !shape.isEmpty || types[b] == shape && !shape.isEmpty { chosen.insert(r.id) }
        }
        guard !chosen.isEmpty else { return (body, []) }
        // Backward liveness over the body: yields, stores and loops that store are kept, and what
        // they read; a marked select reads only its operands `a` and `b`.
        var live: Set<ValueID> = []
        var keep = Array(repeating: false, count: body.count)
        for (n, inst) in body.enumerated().reversed() {
            let effect: Bool
            switch inst.op {
            case .store, .yield: effect = true
            case .loop(let inner): effect = !inner.body.isStoreFree
            default: effect = false
            }
            guard effect || inst.results.contains(where: { live.contains($0.id) }) else { continue }
            keep[n] = true
            if case .select(_, let a, let b) = inst.op, let r = inst.result, chosen.contains(r.id) {
                live.formUnion([a, b])
            } else {
                live.formUnion(inst.op.operands)
                if case .loop(let inner) = inst.op { live.formUnion([Instruction](inner.body).usedValues) }
            }
        }
        return (zip(body, keep).filter(\.1).map(\.0), chosen)
    }
}
