import BlockIR

extension FusionRule {
    /// R17 — read through a copy: a load of a tensor that a copy kernel (a transpose, the head
    /// merge of attention) writes becomes a load of the copy's source through its index map.
    ///
    /// Preconditions: the consumer loads `T`, or a reshape view of `T` (no window); `T` is a
    /// storage tensor whose only writer `P` comes before the consumer and is a copy (`S` and `T`
    /// of one element type: a store into another type converts): its body is
    /// `load S[in]`, at most a `transpose` of that block, and `store … -> T[out]`, where every
    /// entry of `out` is an entry of `in` at a permuted axis (`in[π(k)] = out[k]`, with
    /// `S.shape[π(k)] = T.shape[k]`) and `out` covers `T` (each grid variable once, as a point
    /// over an axis of its extent or a slice `g * B +: B` whose blocks cover the axis), so
    /// `T[x] = S[π(x)]` everywhere; nothing between `P` and the consumer writes `S`. A load of a
    /// reshape view maps to `T`'s axes when each view axis is a run of `T` axes and its access is
    /// a point, or a slice `e +: b` with `e` a multiple of `b` and `b` dividing the run's last axis
    /// (a block inside one row of that axis): the outer axes get points (`e`'s digits) and the last
    /// the slice `e mod n +: b`. The slices must keep their order under `π` (or be two that swap:
    /// the block is then loaded transposed and transposed back).
    ///
    /// ```
    /// tensor t37: f32[4,4,1024,128] @global temp
    /// tensor t38: f32[1024,4,4,128] @global temp
    /// tensor A: f32[1024,2048] @global temp view t38
    /// kernel p grid(b0 < 1024, b1 < 4, i < 1, j < 2) {
    ///   %0 = load t37[b1, i * 4 +: 4, b0, j * 64 +: 64] : f32[4,64] @local
    ///   store %0 -> t38[b0, b1, i * 4 +: 4, j * 64 +: 64] }
    /// kernel c … { … %4 = load A[i * 64 +: 64, k1 * 64 +: 64] : f32[64,64] @local … }
    /// ```
    /// → `%4 = load t37[k1 floordiv 8, …, i * 64 +: 64, … +: 64] : f32[64,64] @local`: the
    /// consumer reads the copy's source at the elements the copy would have put there, and R8
    /// removes `p` once nothing reads `T`. Exact: the load returns the same elements in the same
    /// block order; it reads the same number of bytes (from another place), so it needs no cost
    /// model. R1 cannot do this: the copy's blocks (`[4, 64]`, one position) are not the blocks
    /// the consumer reads (`[64, 64]`, 64 positions), and a reshape view is not the tensor the
    /// copy stores.
    public static let copyForwarding = FusionRule(
        id: "R17", name: "copy-forwarding",
        summary: "read a copy kernel's source through its index map instead of the copy (a transpose, a head merge)"
    ) { program, plan in
        for c in plan.candidates(program) {
            let kernel = program.kernels[c]
            var forward = CopyForward(program: program, plan: plan, consumerIndex: c)
            guard let body = forward.visit(kernel.body) else { continue }
            var out = kernel
            out.body = body
            return RuleApplication(
                change: .replace(c, out.renumbered()), place: kernel.name, detail: forward.detail,
                absorbed: [forward.copyName])
        }
        return nil
    }
}

/// A copy kernel as an index map: `T[x] = S[π(x)]`, with `T`'s axis `k` read from `S`'s axis
/// `permutation[k]`.
struct CopyMap {
    let source: TensorID
    let target: TensorID
    let permutation: [Int]
    let kernel: Int

    /// The copy map of `kernel` when it is one (see R17's preconditions).
    init?(_ program: Program, _ index: Int) {
        let kernel = program.kernels[index]
        let body = kernel.body
        guard body.count == 2 || body.count == 3, case .load(let s, let input)? = body.first?.op,
            let loaded = body.first?.result, case .store(let stored, let t, let output)? = body.last?.op,
            program[t].viewOf == nil, input.count == output.count,
            // A store into another element type converts (rounds): the copy is not the source.
            program[s].elementType == program[t].elementType
        else { return nil }
        if body.count == 3 {
            guard case .transpose(let x) = body[1].op, x == loaded.id, body[1].result?.id == stored else { return nil }
        } else {
            guard stored == loaded.id else { return nil }
        }
        let (sShape, tShape) = (program[s].shape, program[t].shape)
        guard sShape.count == tShape.count, tShape.count == output.count else { return nil }
        var permutation: [Int] = []
        var used = Set<Int>()
        for (k, entry) in output.enumerated() {
            guard
                let q = input.indices.first(where: {
                    !used.contains($0) && input[$0] == entry && sShape[$0] == tShape[k]
                })
            else { return nil }
            used.insert(q)
            permutation.append(q)
        }
        // The store covers T: every grid variable once, each axis whole.
        var seen: [IndexVar] = []
        for (k, entry) in output.enumerated() {
            switch entry {
            case .point(.constant(0)):
                guard tShape[k] == 1 else { return nil }
            case .point(.variable(let g)):
                guard let axis = kernel.grid.first(where: { $0.variable == g }), axis.extent == tShape[k] else {
                    return nil
                }
                seen.append(g)
            case .slice(.constant(0), let n):
                guard n >= tShape[k] else { return nil }
            case .slice(.mul(.variable(let g), let b), let n) where b == n:
                guard let axis = kernel.grid.first(where: { $0.variable == g }),
                    axis.extent * n >= tShape[k], (axis.extent - 1) * n < tShape[k]
                else { return nil }
                seen.append(g)
            default:
                return nil
            }
        }
        guard seen.count == kernel.grid.count, Set(seen) == Set(kernel.gridVariables) else { return nil }
        // The transpose is the block's own reordering: present exactly when the slices swap.
        let slices = output.indices.filter { if case .slice = output[$0] { true } else { false } }
        let swapped = slices.count == 2 && permutation[slices[0]] > permutation[slices[1]]
        guard swapped == (body.count == 3) else { return nil }
        (source, target, self.permutation, self.kernel) = (s, t, permutation, index)
    }
}

private struct CopyForward {
    let program: Program
    let plan: FusionPlan
    let consumerIndex: Int
    var detail = ""
    var copyName = ""

    mutating func visit(_ body: [Instruction]) -> [Instruction]? {
        for (index, inst) in body.enumerated() {
            switch inst.op {
            case .loop(var loop):
                guard let inner = visit(loop.body) else { continue }
                loop.body = inner
                var out = body
                out[index].op = .loop(loop)
                return out
            case .load(let tensor, let access):
                guard let result = inst.result, let replacement = forwarded(tensor, access, result) else { continue }
                return Array(body[..<index]) + replacement + Array(body[(index + 1)...])
            default: continue
            }
        }
        return nil
    }

    /// The load of the copy's source standing for `result`, when `tensor` is a copy's output (or
    /// a reshape view of it).
    mutating func forwarded(_ tensor: TensorID, _ access: [AxisAccess], _ result: Value) -> [Instruction]? {
        let storage = program.storage(of: tensor)
        guard program[storage].role == .temp, tensor == storage || program[tensor].viewOf == storage,
            program[tensor].window == nil
        else { return nil }
        let writers = plan.writers(of: storage)
        guard writers.count == 1,
            let p = program.kernels[..<consumerIndex].lastIndex(where: { writers.contains($0.name) }),
            let copy = CopyMap(program, p), copy.target == storage
        else { return nil }
        let sourceStorage = program.storage(of: copy.source)
        for k in (p + 1)...consumerIndex where plan.access(program.kernels[k], program).stores.contains(sourceStorage) {
            return nil
        }
        guard
            let onTarget = tensor == storage
                ? access : Self.reshaped(access, from: program[tensor].shape, to: program[storage].shape)
        else { return nil }
        // The block's shape is its slices' sizes in axis order.
        let sizes = onTarget.compactMap { if case .slice(_, let n) = $0 { n } else { nil } }
        guard sizes == result.type.shape else { return nil }
        var onSource = onTarget
        for (k, entry) in onTarget.enumerated() { onSource[copy.permutation[k]] = entry }
        let order = onTarget.indices.filter { if case .slice = onTarget[$0] { true } else { false } }
            .map { copy.permutation[$0] }
        var instructions: [Instruction] = []
        if order == order.sorted() {
            instructions = [Instruction([result], .load(copy.source, onSource))]
        } else if order.count == 2 {
            let next = plan.facts(of: program.kernels[consumerIndex], in: program).nextValueNumber
            let loaded = Value(ValueID(next), BlockType(result.type.shape.reversed(), result.type.tier))
            instructions = [
                Instruction([loaded], .load(copy.source, onSource)), Instruction([result], .transpose(loaded.id)),
            ]
        } else {
            return nil
        }
        copyName = program.kernels[p].name
        detail =
            "read \(program[tensor].name) at \(result.id) from \(program[copy.source].name) through \(copyName)'s index map"
        return instructions
    }

    /// An access of a reshape view (`from`) as an access of its storage (`to`), both row-major,
    /// when each view axis is a run of storage axes and its entry maps to one box (see R17).
    static func reshaped(_ access: [AxisAccess], from view: [Int], to storage: [Int]) -> [AxisAccess]? {
        guard access.count == view.count else { return nil }
        var out: [AxisAccess] = []
        var j = 0
        for (i, entry) in access.enumerated() {
            // The run of storage axes whose product is the view axis (size-1 axes join the run).
            var run: [Int] = []
            var product = 1
            while j < storage.count, product < view[i] || (run.isEmpty && storage[j] == 1) {
                run.append(storage[j])
                product *= storage[j]
                j += 1
            }
            if i == access.count - 1 {
                while j < storage.count, storage[j] == 1 {
                    run.append(1)
                    j += 1
                }
            }
            guard product == view[i], !run.isEmpty else { return nil }
            // The stride of each storage axis of the run, in view elements.
            var strides = Array(repeating: 1, count: run.count)
            for k in stride(from: run.count - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * run[k + 1] }
            func digit(_ e: IndexExpr, _ k: Int) -> IndexExpr {
                let q = quotient(e, strides[k])
                return k == 0 ? q : remainder(q, run[k])
            }
            switch entry {
            case .point(let e):
                for k in run.indices { out.append(.point(digit(e, k))) }
            case .slice(let e, let b):
                let last = run.count - 1
                if run.count == 1 {
                    out.append(entry)
                    continue
                }
                guard run[last] % b == 0, Self.isMultiple(e, of: b) else { return nil }
                for k in 0..<last { out.append(.point(digit(e, k))) }
                out.append(.slice(start: digit(e, last), size: b))
            }
        }
        guard j == storage.count else { return nil }
        return out
    }

    /// `floor(e / d)` for `d > 0`, without a division where `e` is a multiple of `d` or a multiple
    /// `x·c` of a `c` that `d` is a multiple of.
    static func quotient(_ e: IndexExpr, _ d: Int) -> IndexExpr {
        if d == 1 { return e }
        switch e {
        case .constant(let c): return .constant(Int((Double(c) / Double(d)).rounded(.down)))
        case .mul(let x, let c) where c > 0 && c % d == 0: return IndexExpr.mul(x, c / d).simplified()
        case .mul(let x, let c) where c > 0 && d % c == 0: return quotient(x, d / c)
        default: return IndexExpr.floorDiv(e, d).simplified()
        }
    }

    /// `e mod n` (`n > 0`, `e ≥ 0`), written `e − floor(e / n)·n`; 0 where `e` is a multiple of
    /// `n`, `(x mod n/c)·c` for `e = x·c` with `n` a multiple of `c`.
    static func remainder(_ e: IndexExpr, _ n: Int) -> IndexExpr {
        if n == 1 || isMultiple(e, of: n) { return .constant(0) }
        switch e {
        case .constant(let c): return .constant(((c % n) + n) % n)
        case .mul(let x, let c) where c > 0 && n % c == 0: return IndexExpr.mul(remainder(x, n / c), c).simplified()
        default: return IndexExpr.add(e, .mul(quotient(e, n), -n)).simplified()
        }
    }

    /// Whether an index expression is a multiple of `q` for every value of its variables.
    static func isMultiple(_ e: IndexExpr, of q: Int) -> Bool {
        switch e {
        case .constant(let c): return c % q == 0
        case .mul(let x, let c): return c % q == 0 || isMultiple(x, of: q)
        case .add(let x, let y): return isMultiple(x, of: q) && isMultiple(y, of: q)
        case .variable, .floorDiv, .min, .max: return false
        }
    }
}
