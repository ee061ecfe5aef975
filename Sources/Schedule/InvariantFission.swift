import BlockIR

/// Loop fission for grid hoisting (CPU): a top-level loop whose carried values split into a group
/// invariant along the grid's last axis and a group that is not becomes two loops, the
/// invariant one first, so `GridHoisting` can compute it once per run of a thread's instances.
///
/// LayerNorm+matmul's loop over `K` carries `Σx`, `Σx²` and the count (the same for every
/// column block `j` of a row block `i`) beside the product's accumulators (which name `j`):
///
/// ```
/// %2, %3, … = for k in 0 ..< 16 iter(%8 = …, %9 = …, …) { %14 = load X[i…, k…]; Σx; X∘γ·W[k…, j…]; Σx²; … }
/// ```
/// → `%2, %6, %7 = for k … { %14 = load X[i…, k…]; Σx; Σx²; count }` then
/// `%3, %4, %5 = for k … { %14' = load X[i…, k…]; X∘γ·W[k…, j…]; … }`, an instruction both need
/// (the load of `X`) computed in each.
///
/// Legality: the loop stores nothing and has no guard, run-time bounds or links; the invariant
/// group's values (their initial values, yields and everything they read in the body) name no
/// `j`, read no storage the kernel writes and read no value of the other group; the other group
/// reads no carried value of the invariant one inside the loop. Exact: each loop computes its
/// carried values from the same iterations and inputs as before; the two groups never read each
/// other's iterations.
enum InvariantFission {
    /// The program with every kernel's qualifying top-level loops split, and one line per split.
    static func apply(_ program: Program, target: TargetDescription) -> (program: Program, decisions: [String]) {
        var out = program
        var decisions: [String] = []
        for c in out.kernels.indices where !target.isGPU {
            let written = Set(out.kernels[c].body.storedTensors.map { program.storage(of: $0) })
            var next = out.kernels[c].nextValueNumber
            var lines: [String] = []
            var moved = out.kernels[c]
            moved.body = hoistFromLoops(moved.body, written: written, program, &next, &lines)
            // Moved values live across their loop: kept only within the local tier (or no larger).
            let bytes = LocalStorage.bytes(moved, in: out, target: target)
            guard
                bytes <= target.localCapacityBytes
                    || bytes <= LocalStorage.bytes(out.kernels[c], in: out, target: target)
            else {
                continue
            }
            out.kernels[c] = moved
            decisions += lines.map { "\($0) of \(moved.name)" }
        }
        for c in out.kernels.indices {
            // Along the last axis (a thread's runs), then along the first (a table per call).
            let axes = [
                GridHoisting.axis(of: out.kernels[c], target: target),
                GridHoisting.tableAxis(of: out.kernels[c], target: target),
            ]
            for case let (n, axis?) in axes.enumerated() {
                let kernel = out.kernels[c]
                let outside = kernel.valuesInvariant(along: axis, in: program)
                let written = Set(kernel.body.storedTensors.map { program.storage(of: $0) })
                var next = kernel.nextValueNumber
                var body: [Instruction] = []
                for inst in kernel.body {
                    if let pair = split(
                        inst, axis: axis, invariantOutside: { outside.contains($0) }, written: written, program, &next)
                    {
                        body += pair
                        decisions.append(
                            "split loop \(pair[0].loopVariable?.name ?? "?") of \(kernel.name): "
                                + "\(pair[0].results.map { "\($0.id)" }.joined(separator: ", ")) do not depend on "
                                + "\(axis.name), computed "
                                + (n == 0 ? "once per run of instances along it" : "once per call, before the grid"))
                    } else {
                        body.append(inst)
                    }
                }
                out.kernels[c].body = body
            }
        }
        return (out, decisions)
    }

    private static func split(
        _ inst: Instruction, axis v: IndexVar, invariantOutside: (ValueID) -> Bool, written: Set<TensorID>,
        _ program: Program, _ next: inout Int
    ) -> [Instruction]? {
        guard case .loop(let loop) = inst.op, loop.condition == nil, loop.full == nil, loop.bounds == nil,
            loop.links == nil, !loop.lower.variables.contains(v), !loop.upper.variables.contains(v),
            loop.body.isStoreFree, case .yield(let yields)? = loop.body.last?.op,
            yields.count == loop.carried.count, loop.carried.count >= 2
        else { return nil }
        let body = Array(loop.body.dropLast())
        // Values that vary along v: defined outside and not invariant, or computed from such.
        var varying = Set(
            loop.carried.indices.filter { !invariantOutside(loop.initial[$0]) }.map {
                loop.carried[$0].id
            })
        let definedHere = body.definedValues.union(loop.carried.map(\.id))
        func isVarying(_ x: ValueID) -> Bool {
            varying.contains(x) || (!definedHere.contains(x) && !invariantOutside(x))
        }
        var changed = true
        while changed {
            changed = false
            for b in body where !b.results.contains(where: { varying.contains($0.id) }) {
                let one = [b]
                if one.names(v) || one.loadedTensors.contains(where: { written.contains(program.storage(of: $0)) })
                    || one.freeValues.contains(where: isVarying)
                {
                    varying.formUnion(b.results.map(\.id))
                    changed = true
                }
            }
            for (k, c) in loop.carried.enumerated() where !varying.contains(c.id) && isVarying(yields[k]) {
                varying.insert(c.id)
                changed = true
            }
        }
        let invariant = loop.carried.indices.filter { !varying.contains(loop.carried[$0].id) }
        let dependent = loop.carried.indices.filter { varying.contains(loop.carried[$0].id) }
        guard !invariant.isEmpty, !dependent.isEmpty else { return nil }
        func slice(_ roots: [ValueID]) -> [Instruction] {
            var needed = Set(roots)
            var kept: [Instruction] = []
            for b in body.reversed() where b.results.contains(where: { needed.contains($0.id) }) {
                kept.append(b)
                needed.formUnion([b].freeValues)
            }
            return kept.reversed()
        }
        let first = slice(invariant.map { yields[$0] })
        let second = slice(dependent.map { yields[$0] })
        // The dependent group must not read the invariant group's running values.
        let invariantCarried = Set(invariant.map { loop.carried[$0].id })
        guard second.freeValues.isDisjoint(with: invariantCarried) else { return nil }
        func loopOf(_ group: [Int], _ body: [Instruction]) -> Instruction {
            var l = loop
            l.initial = group.map { loop.initial[$0] }
            l.carried = group.map { loop.carried[$0] }
            l.body = body
            return Instruction(group.map { inst.results[$0] }, .loop(l))
        }
        func yielding(_ group: [Int]) -> Instruction { Instruction([], .yield(group.map { yields[$0] })) }
        // The second loop's own values (those it shares with the first computed again) renumbered.
        let renumbered = (second + [yielding(dependent)]).renumberingDefinitions { _ in
            defer { next += 1 }
            return ValueID(next)
        }
        return [loopOf(invariant, first + [yielding(invariant)]), loopOf(dependent, renumbered)]
    }
}

extension InvariantFission {
    /// Loops inside loops (CPU): within each loop `L` with constant bounds that runs at least
    /// once, an inner loop whose carried values split into a group that does not depend on `L`'s
    /// counter and the rest becomes two loops (as for the grid's axes), and then every top-level
    /// instruction of `L`'s body that stores nothing, names not `L`'s counter, reads no storage the
    /// kernel writes and reads only values defined outside `L` or moved with it, moves before `L`.
    ///
    /// RMSNorm+SwiGLU's loop over hidden blocks `k1` holds the loop over `k2` that sums `x²` beside
    /// the gate and up products (which name `k1`): the sum (and `1/rms` from it) is now computed
    /// once per row block, not once per hidden block.
    ///
    /// Exact: a moved instruction computes the same value in every iteration of `L`, which runs.
    static func hoistFromLoops(
        _ body: [Instruction], written: Set<TensorID>, _ program: Program, _ next: inout Int,
        _ decisions: inout [String]
    ) -> [Instruction] {
        var out: [Instruction] = []
        for inst in body {
            guard case .loop(var loop) = inst.op else {
                out.append(inst)
                continue
            }
            loop.body = hoistFromLoops(loop.body, written: written, program, &next, &decisions)
            var current = inst
            current.op = .loop(loop)
            guard case .constant(let lower) = loop.lower, case .constant(let upper) = loop.upper, upper > lower,
                loop.condition == nil, loop.bounds == nil, loop.links == nil
            else {
                out.append(current)
                continue
            }
            // Values of L's body and its carried values: invariant only once moved.
            let inside = loop.body.definedValues.union(loop.carried.map(\.id))
            var invariantHere: Set<ValueID> = []
            func isInvariant(_ x: ValueID) -> Bool { !inside.contains(x) || invariantHere.contains(x) }
            func movable(_ b: Instruction) -> Bool {
                if case .yield = b.op { return false }
                let one = [b]
                return one.isStoreFree && !one.names(loop.variable)
                    && !one.loadedTensors.contains(where: { written.contains(program.storage(of: $0)) })
                    && one.freeValues.allSatisfy(isInvariant)
            }
            var newBody: [Instruction] = []
            var moved: [Instruction] = []
            var splits: [String] = []
            for b in loop.body {
                var parts = [b]
                if !movable(b),
                    let pair = split(
                        b, axis: loop.variable, invariantOutside: isInvariant, written: written, program, &next)
                {
                    parts = pair
                    splits.append(pair[0].results.map { "\($0.id)" }.joined(separator: ", "))
                }
                for part in parts {
                    if movable(part) {
                        moved.append(part)
                        invariantHere.formUnion(part.results.map(\.id))
                    } else {
                        newBody.append(part)
                    }
                }
            }
            guard !moved.isEmpty else {
                out.append(current)
                continue
            }
            loop.body = newBody
            current.op = .loop(loop)
            out += moved
            out.append(current)
            decisions.append(
                "moved \(moved.count) instruction\(moved.count == 1 ? "" : "s") out of loop \(loop.variable.name)"
                    + (splits.isEmpty
                        ? "" : " (split off \(splits.joined(separator: "; ")), which do not depend on it)"))
        }
        return out
    }
}

extension Instruction {
    /// The counter of a loop instruction.
    fileprivate var loopVariable: IndexVar? {
        if case .loop(let l) = op { return l.variable }
        return nil
    }
}
