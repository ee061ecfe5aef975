import BlockIR

/// Products that run several iterations of their loop's reduction in one call (CPU).
///
/// LayerNorm+matmul's product, after the schedule split the row statistics off, is a loop over
/// blocks of K whose only work is `acc += X[i, k-block] · P[k-block, j]`, `P` the weights packed
/// once per call (each column tile's rows contiguous along all of K). Sixteen 64-deep calls load
/// and store the 64×64 accumulator sixteen times; a call every `group` iterations, from that
/// iteration's addresses and `group` blocks deep (256 elements, as a BLAS blocks K), keeps it in
/// registers four times as long (the other iterations only compute addresses). Not deeper: each
/// call's sum is one running sum in registers, whose rounding error grows with its length.
///
/// Legality: a loop with constant bounds and no guard, run-time bounds, links or full-block
/// branch, whose body holds only loads (and broadcasts and the scaled blocks the schedule computes
/// where it packs them), f32 products accumulated in place into a carried value (`c = add(c,
/// dot(a, b))`, yielded in place), and the yield. Each product's left operand is a block read in
/// place from global memory and its right operand a block packed once per call no wider than a
/// tile, both sliced along the contracted axis at `size·k + c` (consecutive blocks, `size` the
/// block's depth). Exact over the reals (the same terms summed, in the same order of `k`; each
/// block's partial sum is no longer rounded on its own).
package struct WholeReduction: Hashable, Sendable {
    /// The loop's counter and first iteration.
    package var variable: IndexVar
    package var first: Int
    /// The contracted elements of all iterations together.
    package var depth: Int
    /// The contracted elements of one iteration (the blocks' depth).
    package var size: Int
    /// The iterations one call runs: `⌈groupDepth / size⌉`.
    package var group: Int
    /// The contracted elements one call runs at most.
    package static let groupDepth = 256

    /// The products of a kernel that qualify, by `dot` value, and the loads they read in place
    /// that the storage analysis copies (a block two products read): only those products read
    /// them, so the copy is not made.
    package static func plan(
        _ program: Program, _ kernel: Kernel, _ analysis: KernelAnalysis, _ buffers: BufferPlan,
        prepacks: [KernelSchedule.Prepack], prepackedLoads: [ValueID: Int], target: TargetDescription
    ) -> (products: [ValueID: WholeReduction], inPlace: Set<ValueID>) {
        guard !target.isGPU else { return ([:], []) }
        var out: [ValueID: WholeReduction] = [:]
        var inPlace: Set<ValueID> = []
        let definitions = kernel.definitions()
        kernel.walk { inst in
            guard case .loop(let loop) = inst.op,
                let (found, copied) = products(loop, program, analysis, buffers, prepacks, prepackedLoads, definitions)
            else { return }
            for (dot, r) in found { out[dot] = r }
            inPlace.formUnion(copied)
        }
        return (out, inPlace)
    }

    private static func products(
        _ loop: Loop, _ program: Program, _ analysis: KernelAnalysis, _ buffers: BufferPlan,
        _ prepacks: [KernelSchedule.Prepack], _ prepackedLoads: [ValueID: Int], _ definitions: [ValueID: Instruction]
    ) -> ([(ValueID, WholeReduction)], Set<ValueID>)? {
        guard loop.bounds == nil, loop.condition == nil, loop.links == nil, loop.full == nil,
            case .constant(let lo) = loop.lower, case .constant(let hi) = loop.upper, hi > lo + 1,
            case .yield(let ys)? = loop.body.last?.op
        else { return nil }
        var copied: Set<ValueID> = []
        let k = loop.variable
        let carried = loop.carried.map(\.id)
        var found: [(ValueID, WholeReduction)] = []
        for inst in loop.body {
            switch inst.op {
            case .load, .broadcast, .yield: continue
            case .binary(_, _, _) where inst.result.map({ analysis.packedScaledBlocks[$0.id] != nil }) ?? false:
                continue
            case .dot(let a, let b, false, _, .f32):
                guard let d = inst.result, let add = analysis.fusedDotOfAdd.first(where: { $0.value == d.id })?.key,
                    case .binary(.add, let x, let y)? = definitions[add]?.op,
                    let c = [x, y].first(where: { carried.contains($0) }), let slot = carried.firstIndex(of: c),
                    slot < ys.count, ys[slot] == add, buffers.yieldsInPlace(add, into: c),
                    let p = prepackedLoads[b].map({ prepacks[$0] }), p.precision == .f32,
                    (d.type.shape.last ?? 0) <= p.tile,
                    let aBase = analysis.layouts[a]?.base, aBase == .global(a) || aBase == .buffer(a),
                    case .load(let at, let aAccess)? = definitions[a]?.op, program[at].elementType == .f32,
                    let bLoadID = analysis.packedScaledBlocks[b] ?? (definitions[b].map { _ in b }),
                    case .load(let bt, let bAccess)? = definitions[bLoadID]?.op,
                    let aSpan = span(aAccess, program[at].shape, axisOfBlock: 1, k),
                    let bSpan = span(bAccess, program[bt].shape, axisOfBlock: p.kAlongRows ? 0 : 1, k),
                    aSpan.size == bSpan.size
                else { return nil }
                if aBase == .buffer(a) { copied.insert(a) }
                let size = aSpan.size
                let depth = min(
                    (hi - lo) * size, aSpan.dimension - aSpan.offset - lo * size,
                    bSpan.dimension - bSpan.offset - lo * size)
                guard depth > 0 else { return nil }
                let group = max(1, min(hi - lo, (groupDepth + size - 1) / size))
                guard group > 1 else { return nil }
                found.append((d.id, WholeReduction(variable: k, first: lo, depth: depth, size: size, group: group)))
            case .binary(.add, _, _) where inst.result.map({ analysis.fusedDotOfAdd[$0.id] != nil }) ?? false:
                continue
            default: return nil
            }
        }
        // Every carried value is one of the products' accumulators, and a copied block is read
        // by these products only (as their left operand).
        guard found.count == carried.count else { return nil }
        let products = Set(found.map(\.0))
        for inst in loop.body where inst.op.operands.contains(where: copied.contains) {
            guard let r = inst.result, products.contains(r.id), case .dot(let a, let b, _, _, _) = inst.op,
                !copied.contains(b), copied.contains(a)
            else { return nil }
        }
        return (found, copied)
    }

    /// For an access whose block axis `axisOfBlock` is sliced at `size·k + c` (a constant `c`,
    /// nothing else naming `k`): the slice's size, `c` and the tensor's extent along that axis.
    private static func span(_ access: [AxisAccess], _ shape: [Int], axisOfBlock: Int, _ k: IndexVar) -> (
        size: Int, offset: Int, dimension: Int
    )? {
        var blockAxis = 0
        var result: (Int, Int, Int)?
        for (axis, a) in access.enumerated() {
            switch a {
            case .point(let e):
                if e.variables.contains(k) { return nil }
            case .slice(let start, let size):
                defer { blockAxis += 1 }
                guard blockAxis == axisOfBlock else {
                    if start.variables.contains(k) { return nil }
                    continue
                }
                guard let (c, rest) = start.affine(in: k), c == size, case .constant(let offset) = rest.simplified()
                else { return nil }
                result = (size, offset, shape[axis])
            }
        }
        return result
    }
}
