import BlockIR

/// Consecutive row-local ops of a loop body computed in one pass over the rows (CPU): each
/// iteration of the pass computes one row of every op's result, in program order, so a row of
/// a block is read again while it is still in L1 instead of once per op over the whole block.
///
/// Attention's key-block loop, at 128-row query blocks over 64-column key blocks:
///
/// ```
/// %22 = sub %14, broadcast(%17); %23 = exp %22; %24 = reduce_sum %23 axis 1
/// ```
/// → `for r { S[r, :] − m[r]; exp of that row; l[r] = Σ of that row }`, one pass over the
/// 32 KiB block instead of three.
///
/// A run holds elementwise ops (unary, binary, select) whose result is a `[R, C]` block that owns
/// its row-major buffer, and reductions along the columns of a `[R, C]` block into an `[R]`
/// vector that owns its buffer; broadcasts (no code) may sit between them. An op that is none of
/// these (a product, a mask, an op on `[R]` vectors, which stay vectorised across the rows) ends
/// the run. Legality:
/// - storage: every buffer the run writes is addressed by every access of the run with one row
///   stride, each row's elements within it. The values the run computes are such buffers, so an
///   operand computed in the run is read at the row being computed (a block in a layout of its
///   rows, a vector broadcast along the columns), never at every row (a vector broadcast along
///   the rows); and row `r` of one value never overlaps another row of a value sharing its
///   buffer (a vector taking the buffer of a vector read at every row, or of a block, ends the
///   run). Operands in storage the run does not write (scalars, values defined before the run,
///   blocks read in place) may be read at any element;
/// - in a loop whose iterations compute only some rows (`RowRestriction`), every value the run
///   reads or writes row by row is one of the restriction's aligned values (shifted alike).
///
/// Exact: row `r` of every result is computed from the same elements by the same operations as
/// op by op; program order holds within each row, and the storage rule keeps a write to row `r`
/// from touching anything another row still reads.
package struct RowPass: Hashable, Sendable {
    /// The results of the run's instructions, in program order (broadcasts included).
    package var values: [ValueID]
    /// The rows of the run's blocks.
    package var rows: Int
}

extension RowPass {
    /// The runs of a kernel's loop bodies (CPU), by the result of their first instruction.
    package static func plan(
        _ kernel: Kernel, _ analysis: KernelAnalysis, _ buffers: BufferPlan,
        rowRestrictions: [IndexVar: RowRestriction], computedElsewhere: Set<ValueID> = [], target: TargetDescription
    ) -> [ValueID: RowPass] {
        guard !target.isGPU else { return [:] }
        var out: [ValueID: RowPass] = [:]
        func visit(_ body: [Instruction], inLoop restriction: RowRestriction?, isLoopBody: Bool) {
            if isLoopBody {
                for run in runs(body, analysis, buffers, restriction: restriction, excluded: computedElsewhere) {
                    out[run.values[0]] = run
                }
            }
            for inst in body {
                if case .loop(let loop) = inst.op {
                    visit(loop.body, inLoop: rowRestrictions[loop.variable], isLoopBody: true)
                }
            }
        }
        visit(kernel.body, inLoop: nil, isLoopBody: false)
        return out
    }

    /// How an instruction takes part in a run: code over the rows, no code (a broadcast), or not.
    private enum Role { case rows, free }

    private static func role(_ inst: Instruction, _ analysis: KernelAnalysis) -> Role? {
        guard let r = inst.result?.id, let layout = analysis.layouts[r] else { return nil }
        switch inst.op {
        case .broadcast:
            return .free
        case .unary, .binary, .select:
            guard !analysis.isSplat(r), analysis.fusedDotOfAdd[r] == nil, analysis.packedScaledBlocks[r] == nil,
                layout.shape.count == 2, layout.base == .buffer(r), layout.strides.count == 2,
                layout.strides[1] == 1, layout.strides[0] >= layout.shape[1]
            else { return nil }
            return .rows
        case .reduce(_, let a, let axis):
            guard axis == 1, !analysis.isReductionOfSplat(inst.op), layout.shape.count == 1,
                layout.base == .buffer(r), layout.strides == [1], analysis.layouts[a]?.shape.count == 2
            else { return nil }
            return .rows
        default:
            return nil
        }
    }

    /// The owner of a value's storage, when it is a buffer.
    private static func bufferOwner(_ layout: BlockLayout) -> ValueID? {
        if case .buffer(let o) = layout.base { return o }
        return nil
    }

    /// One access of a run to a buffer: the row stride and the elements of one row it spans.
    private struct Access: Hashable {
        var owner: ValueID
        var rowStride: Int
        var span: Int
    }

    private static func access(_ layout: BlockLayout, owner: ValueID) -> Access {
        switch layout.shape.count {
        case 2:
            let span = layout.strides[1] == 0 ? 1 : (layout.shape[1] - 1) * layout.strides[1] + 1
            return Access(owner: owner, rowStride: layout.strides[0], span: span)
        case 1:
            return Access(owner: owner, rowStride: layout.strides[0], span: 1)
        default:
            return Access(owner: owner, rowStride: 0, span: 1)
        }
    }

    /// The maximal runs of a body, greedily: an op joins the run when the run with it is legal. An
    /// op computed elsewhere (a rescale a product computes: `RowScaledAccumulation`) ends a run.
    private static func runs(
        _ body: [Instruction], _ analysis: KernelAnalysis, _ buffers: BufferPlan, restriction: RowRestriction?,
        excluded: Set<ValueID>
    ) -> [RowPass] {
        var out: [RowPass] = []
        var current: [Instruction] = []
        func flush() {
            let code = current.filter { role($0, analysis) == .rows }
            if code.count >= 2, let rows = analysis.layouts[code[0].result!.id]?.shape.first {
                // Trailing broadcasts belong to no pass.
                while let last = current.last, role(last, analysis) == .free { current.removeLast() }
                while let first = current.first, role(first, analysis) == .free { current.removeFirst() }
                out.append(RowPass(values: current.map { $0.result!.id }, rows: rows))
            }
            current = []
        }
        for inst in body {
            guard role(inst, analysis) != nil, !excluded.contains(inst.result!.id) else {
                flush()
                continue
            }
            if isLegal(current + [inst], analysis, buffers, restriction: restriction) {
                current.append(inst)
            } else {
                flush()
                if isLegal([inst], analysis, buffers, restriction: restriction) { current = [inst] }
            }
        }
        flush()
        return out
    }

    /// Whether a run is row-local and its storage safe to compute row by row.
    private static func isLegal(
        _ run: [Instruction], _ analysis: KernelAnalysis, _ buffers: BufferPlan, restriction: RowRestriction?
    ) -> Bool {
        var rows: Int?
        var accesses: [Int: Set<Access>] = [:]
        var written: Set<Int> = []
        var rowOwners: Set<ValueID> = []
        for inst in run {
            guard let r = inst.result?.id, let lr = analysis.layouts[r] else { return false }
            if role(inst, analysis) == .free { continue }
            guard let first = lr.shape.first, rows == nil || rows == first else { return false }
            rows = first
            for a in inst.op.operands {
                guard let la = analysis.layouts[a] else { return false }
                if la.strides.allSatisfy({ $0 == 0 }) && bufferOwner(la) == nil { continue }  // a scalar
                guard la.shape.first == first, la.shape.count == lr.shape.count || inst.op.isReduce else {
                    return false
                }
                let owner: ValueID
                switch la.base {
                case .buffer(let o): owner = o
                case .global(let o): owner = o
                case .scalar: continue
                }
                if la.strides[0] != 0 { rowOwners.insert(owner) }
                if case .buffer(let o) = la.base, let b = buffers.bufferOf[o] {
                    accesses[b, default: []].insert(access(la, owner: o))
                }
            }
            rowOwners.insert(r)
            guard let b = buffers.bufferOf[r] else { return false }
            written.insert(b)
            accesses[b, default: []].insert(access(lr, owner: r))
        }
        for b in written {
            let row = Set(accesses[b, default: []].map(\.rowStride))
            guard row.count == 1, let s = row.first, s > 0,
                accesses[b, default: []].allSatisfy({ $0.span <= s })
            else { return false }
        }
        if let rr = restriction {
            guard rowOwners.allSatisfy({ rr.aligned.contains($0) }) else { return false }
        }
        return true
    }
}

extension Op {
    fileprivate var isReduce: Bool {
        if case .reduce = self { return true }
        return false
    }
}
