extension Kernel {
    /// The kernel with every value's shape recomputed after its accesses changed: loads take the
    /// shapes of their slices, elementwise ops, reductions, dots and transposes follow their
    /// operands, and fills, broadcasts and loop-carried values widen to what their users combine
    /// them with. `nil` when the shapes cannot be made consistent.
    public func retyped() -> Kernel? {
        var shapes: [ValueID: [Int]] = [:]
        walk { inst in
            for r in inst.results { shapes[r.id] = r.type.shape }
            if case .loop(let l) = inst.op { for c in l.carried { shapes[c.id] = c.type.shape } }
        }
        var definedBy: [ValueID: Op] = [:]
        walk { inst in for r in inst.results { definedBy[r.id] = inst.op } }

        /// Widens a fill, broadcast or carried value to `target` (same rank).
        func widen(_ v: ValueID, to target: [Int]) -> Bool {
            guard let s = shapes[v], s.count == target.count else { return false }
            guard s != target else { return true }
            switch definedBy[v] {
            case .fill?, .index?, .broadcast?, nil:
                shapes[v] = zip(s, target).map { max($0, $1) }
                return true
            default: return false
            }
        }

        // A pass that fails may still widen values a later pass needs; the last pass must not fail.
        var failed = false
        for _ in 0..<8 {
            var changed = false
            failed = false
            func set(_ v: ValueID, _ s: [Int]) {
                if shapes[v] != s {
                    shapes[v] = s
                    changed = true
                }
            }
            func visit(_ body: [Instruction]) {
                for inst in body {
                    guard let r = inst.result else {
                        if case .loop = inst.op {} else { continue }
                        continue
                    }
                    switch inst.op {
                    case .load(_, let access):
                        set(r.id, access.compactMap { if case .slice(_, let n) = $0 { return n } else { return nil } })
                    case .unary(_, let a), .mask(let a, _, _, _, _), .scan(_, let a, _, _, _):
                        set(r.id, shapes[a] ?? [])
                    case .gather(_, let access, let index, let axis):
                        set(r.id, Op.gatherShape(access, axis: axis, indexShape: shapes[index] ?? []))
                    case .select(let c, let a, let b):
                        // Operands of one shape, or scalars: the result has the non-scalar shape.
                        let found = [c, a, b].map { shapes[$0] ?? [] }.filter { !$0.isEmpty }
                        guard let first = found.first, found.allSatisfy({ $0 == first }) else {
                            if found.isEmpty { set(r.id, []) } else { failed = true }
                            continue
                        }
                        set(r.id, first)
                    case .transpose(let a): set(r.id, (shapes[a] ?? []).reversed())
                    case .concat(let a, let b, let axis):
                        var s = shapes[a] ?? []
                        let sb = shapes[b] ?? []
                        if axis < s.count, axis < sb.count { s[axis] += sb[axis] }
                        set(r.id, s)
                    case .reduce(_, let a, let axis):
                        var s = shapes[a] ?? []
                        if axis < s.count { s.remove(at: axis) }
                        set(r.id, s)
                    case .dot(let a, let b, let ta, let tb, _):
                        let sa = shapes[a] ?? [1, 1]
                        let sb = shapes[b] ?? [1, 1]
                        guard sa.count == 2, sb.count == 2 else {
                            failed = true
                            continue
                        }
                        set(r.id, [ta ? sa[1] : sa[0], tb ? sb[0] : sb[1]])
                    case .binary(_, let a, let b):
                        let sa = shapes[a] ?? []
                        let sb = shapes[b] ?? []
                        if sa.isEmpty {
                            set(r.id, sb)
                        } else if sb.isEmpty {
                            set(r.id, sa)
                        } else if sa == sb {
                            set(r.id, sa)
                        } else {
                            guard sa.count == sb.count else {
                                failed = true
                                continue
                            }
                            // An operand that cannot widen (yet) fails this pass, but the result
                            // takes the wider shape: a loop-carried operand rescaled before the
                            // add that widens it (`acc · α + dot`) widens in the next pass.
                            let target = zip(sa, sb).map { max($0, $1) }
                            let widened = (widen(a, to: target), widen(b, to: target))
                            if !widened.0 || !widened.1 { failed = true }
                            changed = true
                            set(r.id, target)
                        }
                    case .broadcast(let a, let axis):
                        var s = shapes[a] ?? []
                        let old = shapes[r.id] ?? []
                        if axis <= s.count { s.insert(axis < old.count ? old[axis] : 1, at: axis) }
                        set(r.id, s)
                    case .loop(let loop):
                        visit(loop.body)
                        guard case .yield(let ys) = loop.body.last?.op else { continue }
                        for (k, c) in loop.carried.enumerated() {
                            let target = zip(shapes[loop.initial[k]] ?? [], shapes[ys[k]] ?? []).map { max($0, $1) }
                            if shapes[c.id] != target { set(c.id, target) }
                            _ = widen(loop.initial[k], to: target)
                            if shapes[ys[k]] != target && !widen(ys[k], to: target) { failed = true }
                            set(inst.results[k].id, target)
                        }
                    case .fill, .index, .store, .yield: break
                    }
                }
            }
            visit(body)
            if failed && !changed { return nil }
            if !changed { break }
        }
        if failed { return nil }
        func apply(_ body: [Instruction]) -> [Instruction] {
            body.map { inst in
                var out = inst
                out.results = inst.results.map { Value($0.id, BlockType(shapes[$0.id] ?? $0.type.shape, $0.type.tier)) }
                if case .loop(var loop) = inst.op {
                    loop.carried = loop.carried.map {
                        Value($0.id, BlockType(shapes[$0.id] ?? $0.type.shape, $0.type.tier))
                    }
                    loop.body = apply(loop.body)
                    out.op = .loop(loop)
                }
                return out
            }
        }
        var out = self
        out.body = apply(body)
        return out
    }
}
