/// Rewriting helpers over instruction lists (kernel and loop bodies), used by lowering and the
/// fusion rules. All of them recurse into loop bodies.
extension Array where Element == Instruction {
    /// Renames uses of values (operands, loop initial values, yields), recursively.
    public func replacingUses(_ map: [ValueID: ValueID]) -> [Instruction] {
        guard !map.isEmpty else { return self }
        return self.map { inst in
            var out = inst
            out.op = inst.op.mappingOperands { map[$0] ?? $0 }
            if case .loop(var loop) = out.op {
                loop.body = loop.body.replacingUses(map)
                // A value vouched for is still vouched for under another name (the same value).
                if let f = loop.full {
                    loop.full = LoopFullBlocks(element: f.element, trueValues: f.trueValues.map { map[$0] ?? $0 })
                }
                out.op = .loop(loop)
            }
            return out
        }
    }

    /// Rewrites every load's and store's per-axis accesses with `fix`, recursively.
    public func mappingAccesses(_ fix: (AxisAccess) -> AxisAccess) -> [Instruction] {
        self.map { inst in
            var out = inst
            switch inst.op {
            case .load(let t, let access): out.op = .load(t, access.map(fix))
            case .gather(let t, let access, let index, let axis):
                out.op = .gather(t, access.map(fix), index: index, axis: axis)
            case .store(let v, let t, let access): out.op = .store(v, t, access.map(fix))
            case .loop(var loop):
                loop.body = loop.body.mappingAccesses(fix)
                out.op = .loop(loop)
            default: break
            }
            return out
        }
    }

    /// Substitutes index variables in every index expression (accesses, mask offsets, loop
    /// bounds), recursively. Variables bound by loops inside are not protected: rename them first.
    public func substitutingIndices(_ map: [IndexVar: IndexExpr]) -> [Instruction] {
        guard !map.isEmpty else { return self }
        // Substituting a constant leaves foldable expressions (`0 * 64`); fold them.
        func sub(_ e: IndexExpr) -> IndexExpr {
            let s = e.substituting(map)
            return s == e ? e : s.simplified()
        }
        func subAccess(_ a: AxisAccess) -> AxisAccess {
            switch a {
            case .point(let e): return .point(sub(e))
            case .slice(let s, let n): return .slice(start: sub(s), size: n)
            }
        }
        return self.map { inst in
            var out = inst
            switch inst.op {
            case .load(let t, let access): out.op = .load(t, access.map(subAccess))
            case .gather(let t, let access, let index, let axis):
                out.op = .gather(t, access.map(subAccess), index: index, axis: axis)
            case .store(let v, let t, let access): out.op = .store(v, t, access.map(subAccess))
            case .mask(let v, let r, let c, let p, let fill):
                out.op = .mask(v, rowOffset: sub(r), columnOffset: sub(c), p, fill: fill)
            case .index(let e, let axis): out.op = .index(sub(e), axis: axis)
            case .loop(var loop):
                loop.lower = sub(loop.lower)
                loop.upper = sub(loop.upper)
                loop = loop.mappingElementReads { LoopCondition(tensor: $0.tensor, indices: $0.indices.map(sub)) }
                loop.body = loop.body.substitutingIndices(map)
                out.op = .loop(loop)
            case .fill, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .yield: break
            }
            return out
        }
    }

    /// Renumbers every value defined here (results, carried values) through `renumber`, and
    /// every use accordingly; values defined outside are renamed only if `renumber` maps them.
    public func renumberingDefinitions(_ renumber: (ValueID) -> ValueID) -> [Instruction] {
        var map: [ValueID: ValueID] = [:]
        func collect(_ body: [Instruction]) {
            for inst in body {
                for r in inst.results { map[r.id] = renumber(r.id) }
                if case .loop(let loop) = inst.op {
                    for c in loop.carried { map[c.id] = renumber(c.id) }
                    collect(loop.body)
                }
            }
        }
        collect(self)
        return renamingDefinitions(map)
    }

    /// Renames every value defined here (results, carried values) and every use through `map`,
    /// recursively; values `map` does not name keep their number.
    func renamingDefinitions(_ map: [ValueID: ValueID]) -> [Instruction] {
        func rename(_ body: [Instruction]) -> [Instruction] {
            body.map { inst in
                var out = inst
                out.results = inst.results.map { Value(map[$0.id] ?? $0.id, $0.type) }
                out.op = inst.op.mappingOperands { map[$0] ?? $0 }
                if case .loop(var loop) = out.op {
                    loop.carried = loop.carried.map { Value(map[$0.id] ?? $0.id, $0.type) }
                    if let f = loop.full {
                        loop.full = LoopFullBlocks(element: f.element, trueValues: f.trueValues.map { map[$0] ?? $0 })
                    }
                    loop.body = rename(loop.body)
                    out.op = .loop(loop)
                }
                return out
            }
        }
        return rename(self)
    }

    /// Every value read here (recursively), including values defined here.
    public var usedValues: Set<ValueID> {
        var used: Set<ValueID> = []
        for inst in self {
            used.formUnion(inst.op.operands)
            if case .loop(let loop) = inst.op { used.formUnion(loop.body.usedValues) }
        }
        return used
    }

    /// Every value defined here (results and carried values), recursively.
    public var definedValues: Set<ValueID> {
        var defined: Set<ValueID> = []
        for inst in self {
            defined.formUnion(inst.results.map(\.id))
            if case .loop(let loop) = inst.op {
                defined.formUnion(loop.carried.map(\.id))
                defined.formUnion(loop.body.definedValues)
            }
        }
        return defined
    }

    /// Values read here but defined outside.
    public var freeValues: Set<ValueID> { usedValues.subtracting(definedValues) }

    /// Index variables read here but bound outside (loop counters bound inside are excluded).
    public var freeIndexVariables: Set<IndexVar> {
        var free: Set<IndexVar> = []
        for inst in self {
            switch inst.op {
            case .load(_, let access), .store(_, _, let access), .gather(_, let access, _, _):
                for a in access {
                    switch a {
                    case .point(let e), .slice(let e, _): free.formUnion(e.variables)
                    }
                }
            case .mask(_, let r, let c, _, _):
                free.formUnion(r.variables)
                free.formUnion(c.variables)
            case .index(let e, _): free.formUnion(e.variables)
            case .loop(let loop):
                free.formUnion(loop.lower.variables)
                free.formUnion(loop.upper.variables)
                free.formUnion(loop.body.freeIndexVariables.subtracting([loop.variable]))
            case .fill, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .yield: break
            }
        }
        return free
    }

    /// Every index variable bound by a loop here, recursively.
    public var boundLoopVariables: Set<IndexVar> {
        var bound: Set<IndexVar> = []
        for inst in self {
            if case .loop(let loop) = inst.op {
                bound.insert(loop.variable)
                bound.formUnion(loop.body.boundLoopVariables)
            }
        }
        return bound
    }

    /// Renames the loop counters bound here (recursively) through `rename`.
    public func renamingLoopVariables(_ rename: (IndexVar) -> IndexVar) -> [Instruction] {
        self.map { inst in
            guard case .loop(var loop) = inst.op else { return inst }
            let fresh = rename(loop.variable)
            loop.body = loop.body.renamingLoopVariables(rename).substitutingIndices([loop.variable: .variable(fresh)])
            loop.variable = fresh
            var out = inst
            out.op = .loop(loop)
            return out
        }
    }

    /// The global tensors stored to here, recursively.
    public var storedTensors: Set<TensorID> {
        var out: Set<TensorID> = []
        for inst in self {
            switch inst.op {
            case .store(_, let t, _): out.insert(t)
            case .loop(let loop): out.formUnion(loop.body.storedTensors)
            default: break
            }
        }
        return out
    }

    /// The global tensors loaded here (by `load` or `gather`), recursively.
    public var loadedTensors: Set<TensorID> {
        var out: Set<TensorID> = []
        for inst in self {
            switch inst.op {
            case .load(let t, _), .gather(let t, _, _, _): out.insert(t)
            case .loop(let loop):
                for c in loop.elementReads { out.insert(c.tensor) }
                out.formUnion(loop.body.loadedTensors)
            default: break
            }
        }
        return out
    }

    /// Whether nothing here stores to global memory.
    public var isStoreFree: Bool { storedTensors.isEmpty }
}

extension Kernel {
    /// The kernel with values renumbered `%0, %1, …` in order of definition (a loop's results,
    /// then its carried values, then its body), so printed programs are canonical.
    public func renumbered() -> Kernel {
        var order: [ValueID: ValueID] = [:]
        var next = 0
        func visit(_ body: [Instruction]) {
            for inst in body {
                for r in inst.results {
                    order[r.id] = ValueID(next)
                    next += 1
                }
                if case .loop(let loop) = inst.op {
                    for c in loop.carried {
                        order[c.id] = ValueID(next)
                        next += 1
                    }
                    visit(loop.body)
                }
            }
        }
        visit(body)
        var out = self
        out.body = body.renamingDefinitions(order)
        return out
    }

    /// Every index variable name used in the kernel (grid and loops).
    public var indexVariableNames: Set<String> {
        Set(grid.map(\.variable.name)).union(body.boundLoopVariables.map(\.name))
    }
}

extension Program {
    /// Drops temporary tensors that no kernel reads or writes and that no view is based on,
    /// renumbering tensor IDs everywhere.
    public func removingUnusedTensors() -> Program {
        var used = Set<TensorID>()
        for k in kernels {
            used.formUnion(k.body.loadedTensors)
            used.formUnion(k.body.storedTensors)
        }
        var keep = tensors.indices.map { i in
            tensors[i].role != .temp || used.contains(TensorID(i))
        }
        // A kept view keeps its base.
        var changed = true
        while changed {
            changed = false
            for i in tensors.indices where keep[i] {
                if let base = tensors[i].viewOf, !keep[base.index] {
                    keep[base.index] = true
                    changed = true
                }
            }
        }
        guard keep.contains(false) else { return self }
        var remap: [Int] = Array(repeating: -1, count: tensors.count)
        var newTensors: [GlobalTensor] = []
        for i in tensors.indices where keep[i] {
            remap[i] = newTensors.count
            newTensors.append(tensors[i])
        }
        for i in newTensors.indices {
            if let base = newTensors[i].viewOf { newTensors[i].viewOf = TensorID(remap[base.index]) }
        }
        func fix(_ body: [Instruction]) -> [Instruction] {
            body.map { inst in
                var out = inst
                switch inst.op {
                case .load(let t, let a): out.op = .load(TensorID(remap[t.index]), a)
                case .gather(let t, let a, let index, let axis):
                    out.op = .gather(TensorID(remap[t.index]), a, index: index, axis: axis)
                case .store(let v, let t, let a): out.op = .store(v, TensorID(remap[t.index]), a)
                case .loop(var loop):
                    loop = loop.mappingElementReads {
                        LoopCondition(tensor: TensorID(remap[$0.tensor.index]), indices: $0.indices)
                    }
                    loop.body = fix(loop.body)
                    out.op = .loop(loop)
                default: break
                }
                return out
            }
        }
        var out = self
        out.tensors = newTensors
        out.kernels = kernels.map { k in
            var k = k
            k.body = fix(k.body)
            return k
        }
        return out
    }
}
