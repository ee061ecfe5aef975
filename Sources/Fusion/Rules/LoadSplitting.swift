import BlockIR

extension FusionRule {
    /// R14 — split a load at the seams of a concatenation.
    ///
    /// Preconditions: a kernel loads a block of a storage tensor `T` whose access along one axis
    /// `K` is a constant range `c +: n`; some kernel stores a window view `W` of `T` that spans
    /// `T` along every other axis (a part of a concatenation along `K`), and one of `W`'s edges
    /// along `K` falls strictly inside the loaded range (and inside `T`).
    ///
    /// ```
    /// tensor T: f32[256,64] @global temp
    /// tensor T_a: f32[256,32] @global temp view T at [0, 0]
    /// tensor T_b: f32[256,32] @global temp view T at [0, 32]
    /// kernel pa … { …; store %x -> T_a[i * 64 +: 64, 0 +: 32] }
    /// kernel pb … { …; store %y -> T_b[i * 64 +: 64, 0 +: 32] }
    /// kernel c … { %3 = load T[i * 64 +: 64, 0 +: 64] : f32[64,64] @local … }
    /// ```
    /// → `%5 = load T_a[i * 64 +: 64, 0 +: 32]; %6 = load T_b[i * 64 +: 64, 0 +: 32];
    /// %3 = concat %5, %6 axis 1 : f32[64,64] @local`. Each piece is a load of one part's window at
    /// the part's own coordinates, exactly what that part's producer stores, so R1 can inline
    /// each producer (a load of the whole block has no single producer). The last piece keeps the
    /// rest of the static size (`c + n` may pass `T`'s edge, where its window clips the extent as
    /// `T` clipped the original load); every other piece lies inside `T` and is full.
    ///
    /// Exact: a window view addresses the very elements of `T` it covers, so the pieces read the
    /// elements the original load read, and `concat` puts them back at their offsets along `K`.
    public static let loadSplitting = FusionRule(
        id: "R14", name: "split-load",
        summary: "split a load that spans several parts of a concatenation into one load per part and a concat"
    ) { program, plan in
        for index in plan.candidates(program) {
            let kernel = program.kernels[index]
            var split = LoadSplit(
                program: program, plan: plan, next: plan.facts(of: kernel, in: program).nextValueNumber)
            guard let body = split.visit(kernel.body) else { continue }
            var out = kernel
            out.body = body
            return RuleApplication(change: .replace(index, out.renumbered()), place: kernel.name, detail: split.detail)
        }
        return nil
    }
}

private struct LoadSplit {
    let program: Program
    let plan: FusionPlan
    var next: Int
    var detail = ""

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
                guard let result = inst.result, let pieces = split(tensor, access, result) else { continue }
                return Array(body[..<index]) + pieces + Array(body[(index + 1)...])
            default: continue
            }
        }
        return nil
    }

    /// The windows of `tensor`'s storage that some kernel stores, when `tensor` is a storage.
    func storedWindows(of tensor: TensorID) -> [TensorID] {
        guard program[tensor].viewOf == nil else { return [] }
        var stored: Set<TensorID> = []
        for name in plan.writers(of: tensor).sorted() {
            guard let k = program.kernels.firstIndex(where: { $0.name == name }) else { continue }
            for t in program.kernels[k].body.storedTensors where t != tensor && program[t].viewOf == tensor {
                if program[t].window != nil { stored.insert(t) }
            }
        }
        return stored.sorted()
    }

    /// The pieces of a load and the concats joining them (the last defines `result`), or `nil`.
    mutating func split(_ tensor: TensorID, _ access: [AxisAccess], _ result: Value) -> [Instruction]? {
        let windows = storedWindows(of: tensor)
        guard !windows.isEmpty else { return nil }
        let shape = program[tensor].shape
        var blockAxis = 0
        for (axis, a) in access.enumerated() {
            guard case .slice(let start, let size) = a else { continue }
            defer { blockAxis += 1 }
            guard case .constant(let c) = start, c >= 0 else { continue }
            let end = Swift.min(c + size, shape[axis])
            // The parts along `axis`: windows spanning every other axis of the storage.
            let parts = windows.compactMap { w -> (TensorID, Int, Int)? in
                guard let o = program[w].window, o.count == shape.count else { return nil }
                let s = program[w].shape
                for k in shape.indices where k != axis && (o[k] != 0 || s[k] != shape[k]) { return nil }
                return (w, o[axis], o[axis] + s[axis])
            }
            let cuts = Set(parts.flatMap { [$0.1, $0.2] }).filter { $0 > c && $0 < end }.sorted()
            guard !cuts.isEmpty else { continue }
            let bounds = [c] + cuts + [c + size]
            var instructions: [Instruction] = []
            var joined: Value?
            for k in 0..<(bounds.count - 1) {
                let (lo, hi) = (bounds[k], bounds[k + 1])
                let inside = Swift.min(hi, shape[axis])
                var pieceAccess = access
                var pieceTensor = tensor
                if let part = parts.first(where: { $0.1 <= lo && inside <= $0.2 }) {
                    pieceTensor = part.0
                    pieceAccess = access.enumerated().map { j, a in
                        j == axis ? .slice(start: .constant(lo - part.1), size: hi - lo) : a
                    }
                } else {
                    pieceAccess[axis] = .slice(start: .constant(lo), size: hi - lo)
                }
                var pieceShape = result.type.shape
                pieceShape[blockAxis] = hi - lo
                let piece = Value(ValueID(fresh()), BlockType(pieceShape, result.type.tier))
                instructions.append(Instruction([piece], .load(pieceTensor, pieceAccess)))
                guard let previous = joined else {
                    joined = piece
                    continue
                }
                var joinedShape = previous.type.shape
                joinedShape[blockAxis] += hi - lo
                let isLast = k == bounds.count - 2
                let value = isLast ? result : Value(ValueID(fresh()), BlockType(joinedShape, result.type.tier))
                instructions.append(Instruction([value], .concat(previous.id, piece.id, axis: blockAxis)))
                joined = value
            }
            detail =
                "split the \(program[tensor].name) load at \(result.id) into \(bounds.count - 1) parts "
                + "along axis \(axis)"
            return instructions
        }
        return nil
    }

    mutating func fresh() -> Int {
        next += 1
        return next - 1
    }
}
