import BlockIR

/// A product's scale folded into its loop-invariant left operand (CPU): in a loop whose body
/// scales the result of an f32 product by a scalar, both the left operand and the scalar defined
/// before the loop, the operand is scaled once before the loop and the product reads it, instead
/// of the product's block being scaled in every iteration.
///
/// Attention's key loop (R4a moved `1/√d` out of the product, to the scores):
///
/// ```
/// %2 = fill 0.125; for k2 … { %13 = dot %1, %12 transpose_b; %14 = mul %13, %2; … }
/// ```
/// → `%q = mul %1, %2` before the loop and `%14 = dot %q, %12 transpose_b` in it: `Q·c` once per
/// query block, not `S·c` once per key block (the "fold the scale into Q" of hand-written flash
/// kernels).
///
/// Legality: the product is an f32 `dot` at the loop body's top level whose only use is the
/// `mul` by a rank-0 value; its left operand and that value are defined outside the loop. The
/// scaled operand lives across the loop, so the kernel's local storage must still fit (or not
/// grow). Exact over the reals (`(c·a)·b = c·(a·b)`); in floating point each product term is
/// rounded once more or less (within an ulp per term), which the interpreter checks' tolerances
/// cover. Not for bf16 products: `c·a` would be rounded to bf16 before the product.
enum ScaleFolding {
    /// The program with the scales of every qualifying product folded, and one line per fold.
    static func apply(_ program: Program, target: TargetDescription) -> (program: Program, decisions: [String]) {
        guard !target.isGPU else { return (program, []) }
        var out = program
        var decisions: [String] = []
        for c in out.kernels.indices {
            let kernel = out.kernels[c]
            var types: [ValueID: BlockType] = [:]
            kernel.walk { inst in
                for r in inst.results { types[r.id] = r.type }
                if case .loop(let loop) = inst.op { for v in loop.carried { types[v.id] = v.type } }
            }
            var next = kernel.nextValueNumber
            var lines: [String] = []
            var folded = kernel
            folded.body = fold(kernel.body, types: types, &next, &lines)
            guard !lines.isEmpty else { continue }
            let bytes = LocalStorage.bytes(folded, in: out, target: target)
            guard
                bytes <= target.localCapacityBytes || bytes <= LocalStorage.bytes(kernel, in: out, target: target)
            else { continue }
            out.kernels[c] = folded
            decisions += lines.map { "\($0) of \(folded.name)" }
        }
        return (out, decisions)
    }

    /// How many times a body (nested bodies and yields included) reads a value.
    private static func uses(_ v: ValueID, in body: [Instruction]) -> Int {
        var n = 0
        for inst in body {
            n += inst.op.operands.filter { $0 == v }.count
            if case .loop(let loop) = inst.op { n += uses(v, in: loop.body) }
        }
        return n
    }

    private static func fold(
        _ body: [Instruction], types: [ValueID: BlockType], _ next: inout Int, _ lines: inout [String]
    ) -> [Instruction] {
        var out: [Instruction] = []
        for inst in body {
            guard case .loop(var loop) = inst.op else {
                out.append(inst)
                continue
            }
            loop.body = fold(loop.body, types: types, &next, &lines)
            let inside = loop.body.definedValues.union(loop.carried.map(\.id))
            var scaled: [[ValueID]: ValueID] = [:]
            var before: [Instruction] = []
            var newBody = loop.body
            for position in loop.body.indices {
                guard case .dot(let a, let b, let ta, let tb, .f32) = loop.body[position].op,
                    let d = loop.body[position].result?.id, !inside.contains(a), uses(d, in: loop.body) == 1,
                    let m = newBody.firstIndex(where: { candidate in
                        guard case .binary(.mul, let x, let y) = candidate.op else { return false }
                        return x == d || y == d
                    }),
                    case .binary(.mul, let x, let y) = newBody[m].op
                else { continue }
                let scale = x == d ? y : x
                guard scale != d, !inside.contains(scale), types[scale]?.shape == [], let aType = types[a],
                    let result = newBody[m].result
                else { continue }
                let key = [a, scale]
                let q: ValueID
                if let known = scaled[key] {
                    q = known
                } else {
                    q = ValueID(next)
                    next += 1
                    scaled[key] = q
                    before.append(Instruction([Value(q, BlockType(aType.shape, .local))], .binary(.mul, a, scale)))
                    lines.append(
                        "folded the scale \(scale) of the product \(d) into \(q) = \(a)·\(scale) before loop \(loop.variable)"
                    )
                }
                newBody[m] = Instruction([result], .dot(q, b, transposeA: ta, transposeB: tb, precision: .f32))
                newBody.removeAll { $0.result?.id == d }
            }
            loop.body = newBody
            var current = inst
            current.op = .loop(loop)
            out += before
            out.append(current)
        }
        return out
    }
}
