import BlockIR

/// Products that skip, register tile by register tile, the elements an index mask removes (CPU,
/// f32). A mask whose predicate bounds the kept columns of each row from above (an atom
/// `a·i − j + c ≥ 0` with `a ≥ 0`: row `i` keeps columns `j ≤ a·i + c`, causal attention's
/// `i − j ≥ 0`) keeps, in local row `r` of its block at `(row0, col0)`, at most the first
/// `lim + a·r` columns, `lim = a·row0 + c − col0 + 1`. Two products use that bound in a block it
/// cuts (`lim` below the block's width; elsewhere the plain product runs):
///
/// - **columns**: the product whose result is the mask's operand (`S = Q·Kᵀ`) computes, in each
///   register tile, only the 16-column vectors some row of the tile keeps (`blk_gemm_cl`); the
///   others are left unwritten;
/// - **reduction**: a product `dot(P, V)` whose left operand is 0 wherever the mask removes an
///   element (`P = exp(mask(S) − m)` with fill `-inf`) reduces each row tile only over the
///   columns its last row keeps (`blk_gemm_kl`; with the row scales of `RowScaledAccumulation`
///   where those apply).
///
/// In causal attention with 64-column key blocks, the diagonal block's upper triangle is then
/// neither multiplied by `K` nor by `V`.
///
/// Legality:
/// - columns: the product is f32, not accumulated (a fresh block), one call of `blk_gemm` (not a
///   whole reduction nor a panel walk), and the mask is its result's only reader, directly or
///   through other masks each of which is its operand's only reader: the elements left unwritten
///   are ones the mask replaces by its fill (the masks between choose among them and their
///   fills), so no value computed from them is read.
/// - reduction: the product is f32, one call of `blk_gemm` (or `_rs`, `_pf`), its left operand
///   not transposed and `zeroWhereMasked` (below) proves it 0 at every element the mask removes.
///
/// Exact for inputs without infinities or NaN, as R9's skipping of whole masked blocks is: a
/// term left out is `0·V[j]`, which is 0 unless `V[j]` is infinite or NaN.
package struct MaskedProduct: Hashable, Sendable {
    package enum Limit: Hashable, Sendable {
        /// Only the columns the mask keeps are computed.
        case columns
        /// The reduction runs only over the columns the mask keeps.
        case reduction
    }
    /// The product and the mask whose bound it uses.
    package var dot: ValueID
    package var mask: ValueID
    package var limit: Limit
    /// The mask's bound on the kept columns: row `i` keeps at most `j ≤ slope·i + constant`.
    package var slope: Int
    package var constant: Int
}

extension MaskedProduct {
    /// The products of a kernel that skip masked elements (CPU), by `dot`.
    package static func plan(
        _ kernel: Kernel, _ analysis: KernelAnalysis, wholeReductions: Set<ValueID>, panelProducts: Set<ValueID>,
        target: TargetDescription
    ) -> [ValueID: MaskedProduct] {
        guard !target.isGPU else { return [:] }
        let constants = kernel.fillConstants()
        let definitions = kernel.definitions()
        func oneCall(_ d: ValueID) -> Bool {
            guard case .dot(_, _, _, _, .f32)? = analysis.dots[d] else { return false }
            return !wholeReductions.contains(d) && !panelProducts.contains(d)
        }
        var out: [ValueID: MaskedProduct] = [:]
        func visit(_ body: [Instruction]) {
            for inst in body {
                if case .loop(let loop) = inst.op { visit(loop.body) }
                guard case .mask(let s, _, _, let predicate, _) = inst.op, let m = inst.result,
                    m.type.shape.count == 2, let (slope, constant) = upperBound(predicate)
                else { continue }
                // columns: the mask's operand is a fresh product only the mask reads, directly or
                // through masks that are each their operand's only reader (an element this mask
                // removes is its fill whatever they chose there).
                var operand = s
                while analysis.useCounts[operand] == 1, let def = definitions[operand],
                    case .mask(let inner, _, _, _, _) = def.op
                {
                    operand = inner
                }
                if analysis.useCounts[operand] == 1, let def = definitions[operand], case .dot = def.op,
                    oneCall(operand), !analysis.fusedDotOfAdd.values.contains(operand)
                {
                    out[operand] = MaskedProduct(
                        dot: operand, mask: m.id, limit: .columns, slope: slope, constant: constant)
                }
                // reduction: products whose left operand is 0 where the mask removes elements.
                let zeros = zeroWhereMasked(body, mask: m.id, constants: constants, definitions: definitions)
                for other in body {
                    guard case .dot(let p, _, false, _, _) = other.op, let d = other.result?.id, zeros.contains(p),
                        oneCall(d), out[d] == nil
                    else { continue }
                    out[d] = MaskedProduct(dot: d, mask: m.id, limit: .reduction, slope: slope, constant: constant)
                }
            }
        }
        visit(kernel.body)
        return out
    }

    /// The first atom `a·i − j + c ≥ 0` with `a ≥ 0` (an upper bound on the kept columns that does
    /// not fall as the rows go down), as `(a, c)`. Any such atom bounds the kept set: the others
    /// only remove more.
    static func upperBound(_ p: Predicate) -> (Int, Int)? {
        for atom in p.atoms {
            if case .affineNonNegative(let a, -1, let c) = atom, a >= 0 { return (a, c) }
        }
        return nil
    }

    /// The values of `body` that are exactly 0 at every element the mask removes: values of the
    /// mask's shape computed element by element from the mask (its fill `-inf` or 0 there), with
    /// row values broadcast along the columns and scalars. At a removed element:
    /// - the mask is its fill; a unary op of a known value is that op's value there (`exp(-inf)`
    ///   is 0);
    /// - `x − y` is `-inf` where `x` is `-inf` and `y` is never `-inf` (a maximum with a finite
    ///   constant, or a finite constant: the clamped running maximum of online softmax);
    /// - `x·y` is 0 where `x` or `y` is 0 (for a finite other factor); two known values combine
    ///   by the op (`0 + 0`).
    /// Anything else (a reduction, a scan, a product, a transpose) is unknown there.
    static func zeroWhereMasked(
        _ body: [Instruction], mask: ValueID, constants: [ValueID: Float], definitions: [ValueID: Instruction]
    ) -> Set<ValueID> {
        guard let maskInst = definitions[mask], case .mask(_, _, _, _, let fill) = maskInst.op,
            let shape = maskInst.result?.type.shape
        else { return [] }
        // The value at a removed element of the mask's shape, where known.
        var known: [ValueID: Float] = [mask: fill]
        // Never -inf: finite constants and maxima with one (scalars or row values).
        func neverNegInf(_ v: ValueID) -> Bool {
            if let c = constants[v] { return c.isFinite }
            guard let def = definitions[v] else { return false }
            switch def.op {
            case .binary(.max, let x, let y): return neverNegInf(x) || neverNegInf(y)
            default: return false
            }
        }
        // An operand's value at a removed element: known values of the mask's shape, scalars
        // (constants), row values broadcast along the columns (only whether never -inf).
        enum Operand { case value(Float), neverNegInf, unknown }
        func operand(_ v: ValueID) -> Operand {
            if let x = known[v] { return .value(x) }
            if let c = constants[v] { return .value(c) }
            if let def = definitions[v], case .broadcast(let row, 1) = def.op, neverNegInf(row) { return .neverNegInf }
            if let def = definitions[v], def.result?.type.shape.isEmpty == true, neverNegInf(v) { return .neverNegInf }
            return .unknown
        }
        guard let at = body.firstIndex(where: { $0.result?.id == mask }) else { return [] }
        for inst in body[(at + 1)...] {
            guard let r = inst.result, r.type.shape == shape else { continue }
            var value: Float?
            switch inst.op {
            case .unary(let op, let x):
                if case .value(let a) = operand(x) { value = op.apply(a) }
            case .binary(let op, let x, let y):
                switch (operand(x), operand(y)) {
                case (.value(let a), .value(let b)): value = op.apply(a, b)
                case (.value(let a), .neverNegInf) where op == .sub && a == -.infinity: value = -.infinity
                case (.value(0), _) where op == .mul: value = 0
                case (_, .value(0)) where op == .mul: value = 0
                default: break
                }
            default: break
            }
            if let value, !value.isNaN { known[r.id] = value }
        }
        return Set(known.filter { $0.value == 0 }.keys)
    }
}
