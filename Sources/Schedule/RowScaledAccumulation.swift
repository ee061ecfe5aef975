import BlockIR

/// An accumulator's rescale folded into the product that accumulates onto it (CPU, f32 and bf16
/// products): for `r = add(mul(x, broadcast(α, axis 1)), dot(a, b))`, with the product accumulated
/// in place (`KernelAnalysis.fusedDotOfAdd`), the product's register tiles load each row `i` of the
/// accumulator, multiply it by `α[i]` and add their sums (`C = α⊙C + A·B`), so the rescale is
/// not a pass over the block of its own.
///
/// Attention's output accumulator, rescaled by the change of the running maximum before `P·V`
/// adds onto it:
///
/// ```
/// %26 = broadcast %19 axis 1; %27 = mul %11, %26; %29 = dot %23, %28; %30 = add %27, %29
/// ```
/// → `blk_gemm_rs(…, v30, 64, v19)`: no loop over `%11` for `%27`.
///
/// Legality (every condition is on the schedule's storage, `BufferPlan`):
/// - `x`'s only reader is the add; `α` is an `[R]` vector stored with
///   unit stride, broadcast along the columns, and `x`'s block operand has the add's shape;
/// - `x`, its block operand and `r` share one buffer with the same strides (the rescale and the
///   add both in place), so the product reads the unscaled block where `x` would have been;
/// - nothing between the rescale and the add writes that buffer or `α`'s (the rescale now
///   happens at the add, later than in program order, so both must still hold their values; a
///   bf16 product's pack buffer, written before its tiles load `C`, included);
/// - the product is one call of `blk_gemm`, `blk_gemm_pf` or their bf16 counterparts (`_rs`
///   takes the row scales; a bf16 product split along `k` scales where its first chunk loads
///   `C`): not a whole reduction (`WholeReduction`) nor a walk over a packed operand's panels.
///
/// The unfused add's operations: each element is `sum + α[i]·C[i, j]`, the product `α[i]·C[i, j]`
/// added to the tile's sum as the unfused add does (the tile's sum starts at zero there too; a bf16
/// product's later chunks add onto `C` as they do without the fold). gcc may contract the product
/// and the add into one FMA (one rounding fewer), within `verify`'s tolerance.
package struct RowScaledAccumulation: Hashable, Sendable {
    /// The accumulating add, whose product rescales the accumulator.
    package var add: ValueID
    /// The rescale, computed by the product.
    package var scaled: ValueID
    /// The block rescaled and the vector of row scales `α`.
    package var block: ValueID
    package var scale: ValueID
}

extension RowScaledAccumulation {
    /// The folds of a kernel (CPU), by the rescale's value.
    package static func plan(
        _ kernel: Kernel, _ analysis: KernelAnalysis, _ buffers: BufferPlan, wholeReductions: Set<ValueID>,
        panelProducts: Set<ValueID>, target: TargetDescription
    ) -> [ValueID: RowScaledAccumulation] {
        guard !target.isGPU else { return [:] }
        var out: [ValueID: RowScaledAccumulation] = [:]
        func visit(_ body: [Instruction]) {
            var position: [ValueID: Int] = [:]
            for (n, inst) in body.enumerated() {
                for r in inst.results { position[r.id] = n }
                if case .loop(let loop) = inst.op { visit(loop.body) }
                guard let r = inst.result?.id, let d = analysis.fusedDotOfAdd[r],
                    case .binary(.add, let p, let q) = inst.op,
                    case .dot? = analysis.dots[d], !wholeReductions.contains(d), !panelProducts.contains(d)
                else { continue }
                let x = p == d ? q : p
                guard let at = position[x], let fold = fold(r, x, body[at], analysis, buffers),
                    untouched(body[(at + 1)..<n], fold, analysis, buffers)
                else { continue }
                out[x] = fold
            }
        }
        visit(kernel.body)
        return out
    }

    /// `r = add(x, dot)` with `x = mul(block, broadcast(α, 1))` in place, when the storage allows the fold.
    private static func fold(
        _ r: ValueID, _ x: ValueID, _ mul: Instruction, _ analysis: KernelAnalysis, _ buffers: BufferPlan
    ) -> RowScaledAccumulation? {
        guard case .binary(.mul, let u, let v) = mul.op, analysis.useCounts[x] == 1 else { return nil }
        for (block, b) in [(u, v), (v, u)] {
            guard let broadcast = analysis.kernel.instruction(defining: b),
                case .broadcast(let alpha, 1) = broadcast.op,
                let la = analysis.layouts[alpha], la.shape.count == 1, la.strides == [1],
                let lb = analysis.layouts[block], let lx = analysis.layouts[x], let lr = analysis.layouts[r],
                lb.shape == lr.shape, lb.shape.count == 2, la.shape[0] == lb.shape[0],
                lb.strides == lx.strides, lx.strides == lr.strides, lb.strides[1] == 1,
                let buffer = bufferOf(lb, buffers), bufferOf(lx, buffers) == buffer, bufferOf(lr, buffers) == buffer,
                bufferOf(la, buffers) != buffer
            else { continue }
            return RowScaledAccumulation(add: r, scaled: x, block: block, scale: alpha)
        }
        return nil
    }

    /// The buffer a layout's elements lie in, when they lie in one.
    private static func bufferOf(_ layout: BlockLayout, _ buffers: BufferPlan) -> Int? {
        if case .buffer(let o) = layout.base { return buffers.bufferOf[o] }
        return nil
    }

    /// Whether no instruction between the rescale and the add writes the accumulator's buffer or `α`'s
    /// (the fused product itself writes only into the add's buffer, which is the accumulator's).
    private static func untouched(
        _ between: ArraySlice<Instruction>, _ fold: RowScaledAccumulation, _ analysis: KernelAnalysis,
        _ buffers: BufferPlan
    ) -> Bool {
        guard let lb = analysis.layouts[fold.block], let la = analysis.layouts[fold.scale],
            let accumulator = bufferOf(lb, buffers)
        else { return false }
        // α may be a value read in place from elsewhere (no buffer): then nothing here can write it.
        let scale = bufferOf(la, buffers)
        for inst in between {
            if case .loop = inst.op { return false }
            for result in inst.results {
                let fused = analysis.fusedDotOfAdd[fold.add] == result.id
                if let owned = buffers.bufferOf[result.id], owned == scale || (owned == accumulator && !fused) {
                    return false
                }
            }
            if let d = inst.result?.id, let pack = buffers.packBufferOf[d], pack == scale || pack == accumulator {
                return false
            }
        }
        return true
    }
}
