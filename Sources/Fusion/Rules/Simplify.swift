import BlockIR

extension FusionRule {
    /// R0 — simplification by op identities.
    ///
    /// - A loop with a constant trip count of one is replaced by its body (counter := lower
    ///   bound, carried values := initial values, results := yielded values); a loop that never
    ///   runs is replaced by its initial values.
    /// - `add(x, fill 0)`, `sub(x, fill 0)`, `mul(x, fill 1)`, `div(x, fill 1)` → `x` when `x`
    ///   has the result's shape (the identities of the ops, `BinaryOp.rightIdentity`).
    /// - `dot(a, transpose(x))` → `dot(a, x)` with `transpose_b` flipped, and likewise for the
    ///   left operand: the product reads `x` in the other orientation instead of a transposed
    ///   copy (`(xᵀ)ᵀ = x`). The transpose stays for its other readers, or dead-code removal
    ///   drops it. An exported `Q·Kᵀ` then reads `K` in place, where the schedule can pack it
    ///   once per call for every query block.
    ///
    /// ```
    /// %1 = for k in 0 ..< 1 iter(%2 = %0) : T { %3 = … k …; yield %3 }
    /// ```
    /// → `%3 = … 0 …` and uses of `%1` read `%3`. Exact: the same operations run once.
    public static let simplify = FusionRule(
        id: "R0", name: "simplify", summary: "unroll single-trip loops; drop operations with an identity operand"
    ) { program, plan in
        KernelRewrite.body(program, plan, local: .simplify) { kernel, program in
            var transposed: [ValueID: ValueID] = [:]
            kernel.walk { inst in
                if case .transpose(let x) = inst.op, let r = inst.result { transposed[r.id] = x }
            }
            return simplify(kernel.body, plan.facts(of: kernel, in: program).valueTypes, transposed)
        }
    }

    private static func simplify(
        _ body: [Instruction], _ types: [ValueID: BlockType], _ transposed: [ValueID: ValueID]
    ) -> ([Instruction], String)? {
        var fills: [ValueID: Float] = [:]
        for (index, inst) in body.enumerated() {
            if case .fill(let c) = inst.op, let r = inst.result { fills[r.id] = c }
            switch inst.op {
            case .loop(let loop):
                let lo = loop.lower
                if case .constant(let a) = lo, case .constant(let b) = loop.upper, b - a <= 1 {
                    var out = Array(body[..<index])
                    if b - a <= 0 {
                        let map = Dictionary(uniqueKeysWithValues: zip(inst.results.map(\.id), loop.initial))
                        out += Array(body[(index + 1)...]).replacingUses(map)
                        return (out, "removed loop \(loop.variable), which never runs")
                    }
                    guard case .yield(let yielded) = loop.body.last?.op else { return nil }
                    let carriedMap = Dictionary(uniqueKeysWithValues: zip(loop.carried.map(\.id), loop.initial))
                    let inner = Array(loop.body.dropLast()).substitutingIndices([loop.variable: lo])
                        .replacingUses(carriedMap)
                    let resultMap = Dictionary(
                        uniqueKeysWithValues: zip(inst.results.map(\.id), yielded.map { carriedMap[$0] ?? $0 }))
                    out += inner
                    out += Array(body[(index + 1)...]).replacingUses(resultMap)
                    return (out, "unrolled loop \(loop.variable), which runs once")
                }
                if let (inner, detail) = simplify(loop.body, types, transposed) {
                    var newLoop = loop
                    newLoop.body = inner
                    var out = body
                    out[index].op = .loop(newLoop)
                    return (out, detail)
                }
            case .binary(let op, let a, let b):
                guard let r = inst.result else { continue }
                var kept: ValueID?
                if let c = fills[b], c == op.rightIdentity, types[a]?.shape == r.type.shape { kept = a }
                if kept == nil, let c = fills[a], op.isCommutative, c == op.rightIdentity,
                    types[b]?.shape == r.type.shape
                {
                    kept = b
                }
                guard let x = kept else { continue }
                var out = body
                out.remove(at: index)
                out = out.replacingUses([r.id: x])
                return (out, "\(op.rawValue) with its identity \(formatFloat(op.rightIdentity!)) dropped at \(r.id)")
            case .dot(let a, let b, let ta, let tb, let precision):
                guard let r = inst.result, transposed[a] != nil || transposed[b] != nil else { continue }
                var out = body
                out[index].op = .dot(
                    transposed[a] ?? a, transposed[b] ?? b, transposeA: transposed[a] == nil ? ta : !ta,
                    transposeB: transposed[b] == nil ? tb : !tb, precision: precision)
                let side = transposed[b] != nil ? "right" : "left"
                return (out, "\(r.id) reads its \(side) operand untransposed, in the other orientation")
            default: continue
            }
        }
        return nil
    }
}

extension BinaryOp {
    /// The constant `e` with `x op e = x` for every `x`, if any (`0` for add/sub, `1` for
    /// mul/div, `-inf` for max, `inf` for min).
    public var rightIdentity: Float? {
        switch self {
        case .add, .sub: return 0
        case .mul, .div, .pow: return 1
        case .max: return -.infinity
        case .min: return .infinity
        case .logicalAnd: return nil  // x ∧ 1 is 1 for every non-zero x, not x
        case .lt, .le, .gt, .ge, .eq, .ne, .logicalOr: return nil
        }
    }

    /// Whether `a op b = b op a`.
    public var isCommutative: Bool {
        switch self {
        case .add, .mul, .max, .min, .eq, .ne, .logicalAnd, .logicalOr: return true
        case .sub, .div, .pow, .lt, .le, .gt, .ge: return false
        }
    }
}
