import BlockIR
import Schedule

extension KernelEmitter {
    /// Emits a body; `carried` are the enclosing loop's carried values (for its `yield`).
    mutating func emitBody(_ body: [Instruction], carried: [Value]) {
        var position = 0
        while position < body.count {
            let inst = body[position]
            if dialect.gpu == nil, let r = inst.result, let pass = schedule.rowPasses[r.id],
                body.count - position >= pass.values.count,
                zip(body[position...], pass.values).allSatisfy({ $0.result?.id == $1 })
            {
                emitRowPass(Array(body[position..<(position + pass.values.count)]), rows: pass.rows)
                position += pass.values.count
                continue
            }
            position += 1
            if let r = inst.result, analysis.fusedDots.contains(r.id) {
                w.line("// \(Self.describe(inst, program)): accumulated in place by its add")
                continue
            }
            let known = inst.result.map { chosenSelects.contains($0.id) } ?? false
            w.line("// \(Self.describe(inst, program))" + (known ? ": its condition is true in a full block" : ""))
            emit(inst, carried: carried)
            if dialect.gpu != nil && LaunchConfiguration.barrierAfter(inst, analysis) { barrier() }
        }
    }

    /// Declares the buffer pointer of a value that owns storage.
    mutating func declareBuffer(_ v: ValueID) {
        let b = plan.bufferOf[v].map { "B\($0)" } ?? "NULL"
        if let window = rowWindow, let s = window.restriction.rowStrides[v], s != 0, plan.bufferOf[v] != nil {
            // An aligned value of a row-restricted iteration: its buffer from the first row computed.
            w.line("float *v\(v.number) = \(b) + \(window.first) * \(s);")
            return
        }
        w.line("float *v\(v.number) = \(b);")
    }

    /// The row length of a value's own buffer.
    func rowLength(_ v: ValueID) -> Int { analysis.layouts[v]!.shape.last ?? 1 }

    mutating func emit(_ inst: Instruction, carried: [Value]) {
        let result = inst.result
        switch inst.op {
        case .load(let t, let access):
            emitLoad(result!, t, access)
        case .store(let v, let t, let access):
            emitStore(v, t, access)
        case .fill(let c):
            w.line("const float s\(result!.id.number) = \(Self.float(c));")
            extents[result!.id] = result!.type.shape.map { "\($0)" }
        case .index(let e, let axis):
            emitIndex(result!.id, e, axis: axis)
        case .unary(let op, let a):
            let r = result!.id
            if op == .exp, emitExpRows(r, a) { break }
            let (operands, f) = elementwiseForm(inst.op, r)!
            emitElementwise(r, operands: operands, f)
        case .binary(_, let a, let b):
            let r = result!.id
            if let load = analysis.packedScaledBlocks[r], let k = schedule.prepackedLoads[r],
                case .load(let t, let access)? = kernel.instruction(defining: load)?.op
            {
                // Computed where the block is packed once per call (its rows scaled): read the copy.
                w.line("// computed in P\(k), the copy packed once per call")
                emitPackedBlock(result!, t, access, pack: k)
                break
            }
            if let fold = schedule.rowScaledAccumulations[r] {
                // Computed by the product that accumulates onto it: no code here.
                // Its extents are those the op would have (the smaller of its operands'), as expressions.
                w.line("// computed by the product of \(fold.add): each row of \(fold.block) times \(fold.scale)")
                extents[r] = zip(extents[a]!, extents[b]!).map { minExtent($0, $1) }
            } else if let d = analysis.fusedDotOfAdd[r] {
                emitAccumulatingDot(r, other: a == d ? b : a, dot: d)
            } else {
                let (operands, f) = elementwiseForm(inst.op, r)!
                emitElementwise(r, operands: operands, f)
            }
        case .select(_, let a, let b):
            let r = result!.id
            if selectIsOperand(r, a) {
                // Its condition is known non-zero and it is written over `a`: `a` is already there.
                declareBuffer(r)
                defineExtents(r, elementwiseExtents([a, b], r))
                break
            }
            let (operands, f) = elementwiseForm(inst.op, r)!
            emitElementwise(r, operands: operands, f)
        case .gather(let t, let access, let index, let axis):
            emitGather(result!, t, access, index: index, axis: axis)
        case .broadcast(let a, let axis):
            var e = extents[a]!
            let shape = result!.type.shape
            e.insert("\(shape[Swift.min(axis, shape.count - 1)])", at: Swift.min(axis, e.count))
            extents[result!.id] = e
        case .transpose(let a):
            extents[result!.id] = extents[a]!.reversed()
        case .concat(let a, let b, let axis):
            emitConcat(result!.id, a, b, axis: axis)
        case .reduce(let op, let a, let axis):
            emitReduce(result!.id, op, a, axis: axis)
        case .scan(let op, let a, let axis, let reverse, let exclusive):
            emitScan(result!.id, op, a, axis: axis, reverse: reverse, exclusive: exclusive)
        case .dot(let a, let b, let ta, let tb, _):
            emitDot(result!.id, a, b, transposeA: ta, transposeB: tb, accumulate: false)
        case .mask(let a, let row, let column, let predicate, let fill):
            emitMask(result!.id, a, row: row, column: column, predicate, fill: fill)
        case .loop(let loop):
            emitLoop(inst, loop)
        case .yield(let ys):
            emitYield(ys, carried: carried)
        }
    }

    // MARK: Memory

    /// The element offset of an access into a tensor and, per sliced axis, its tensor stride,
    /// extent expression and size.
    private func address(_ t: TensorID, _ access: [AxisAccess]) -> (
        offset: String, strides: [Int], extents: [String]
    ) {
        let shape = program[t].shape
        let (_, viewOffset, tStrides) = program.placement(of: t)
        var terms: [String] = viewOffset == 0 ? [] : ["\(viewOffset)"]
        var strides: [Int] = []
        var ext: [String] = []
        for (axis, a) in access.enumerated() {
            let e: IndexExpr
            switch a {
            case .point(let p): e = p
            case .slice(let start, let size):
                e = start
                strides.append(tStrides[axis])
                let range = IndexRange.of(start, ranges)
                if let s = IndexRange.staticExtent(dimension: shape[axis], start: range, size: size) {
                    ext.append("\(s)")
                } else {
                    ext.append("blk_extent(\(shape[axis]), \(index(start)), \(size))")
                }
            }
            if case .constant(0) = e { continue }
            terms.append(tStrides[axis] == 1 ? index(e) : "\(index(e)) * \(tStrides[axis])")
        }
        return (terms.isEmpty ? "0" : terms.joined(separator: " + "), strides, ext)
    }

    private mutating func emitLoad(_ result: Value, _ t: TensorID, _ access: [AxisAccess]) {
        let r = result.id
        let g = names.storage(program.storage(of: t))
        let (offset, strides, ext) = address(t, access)
        let type = program[t].elementType
        if result.type.shape.isEmpty {
            w.line("const float s\(r.number) = \(dialect.loaded(type, "\(g)[\(offset)]"));")
            extents[r] = []
            return
        }
        if let k = schedule.prepackedLoads[r] {
            emitPackedBlock(result, t, access, pack: k)
            return
        }
        // A block read where it lies: a view of global memory (a bf16 block only bf16 dots read stays
        // bf16: `blk_gemm_bf16` packs it directly), or a block that products running several blocks
        // per call read in place (`WholeReduction`) where the storage analysis would copy it.
        let readInPlace = schedule.loadsReadInPlace.contains(r)
        let isView: Bool
        if case .global = analysis.layouts[r]!.base { isView = true } else { isView = false }
        if readInPlace || isView {
            w.line("const \(dialect.storageType(type)) *v\(r.number) = \(g) + \(offset);")
            defineExtents(r, ext)
            if !readInPlace { planPrefetch(r, t, access) }
            return
        }
        declareBuffer(r)
        defineExtents(r, ext)
        let src = temp("src")
        w.line("const \(dialect.storageType(type)) *\(src) = \(g) + \(offset);")
        let row = rowLength(r)
        forEach(extents[r]!) { me, i in
            let dst = i.count == 2 ? "\(i[0]) * \(row) + \(i[1])" : i[0]
            let s = zip(i, strides).map { $1 == 1 ? $0 : "\($0) * \($1)" }.joined(separator: " + ")
            me.w.line("v\(r.number)[\(dst)] = \(me.dialect.loaded(type, "\(src)[\(s)]"));")
        }
    }

    /// A block of a tensor packed once per call, read as its tile in the packed copy (bf16 pairs,
    /// or f32): `result` is the load, or the scaled block the packing computed.
    private mutating func emitPackedBlock(_ result: Value, _ t: TensorID, _ access: [AxisAccess], pack k: Int) {
        let r = result.id
        let (_, _, ext) = address(t, access)
        let p = schedule.prepacks[k]
        let shape = program[t].shape
        var terms: [String] = []
        var step = p.tiles * p.kRows * p.tile
        for axis in stride(from: shape.count - 3, through: 0, by: -1) {
            if case .point(let e) = access[axis] { terms.append("\(index(e)) * \(step)") }
            step *= shape[axis]
        }
        guard case .slice(let rowStart, _) = access[shape.count - 2],
            case .slice(let columnStart, _) = access[shape.count - 1]
        else { return }
        let (kStart, jStart) = p.kAlongRows ? (rowStart, columnStart) : (columnStart, rowStart)
        terms.append("(\(index(jStart)) / \(p.tile)) * \(p.kRows * p.tile)")
        terms.append((p.precision == .bf16 ? "(\(index(kStart)) / 2)" : index(kStart)) + " * \(p.tile)")
        let type = p.precision == .bf16 ? "uint32_t" : "float"
        w.line("const \(type) *v\(r.number) = P\(k) + \(terms.joined(separator: " + "));")
        defineExtents(r, ext)
    }

    /// A gather: element `(pre, q, post)` reads the tensor at row `idx[q]` along `axis`. An index
    /// outside `0 ..< size` (or NaN) reads nothing and gives 0, so no access leaves the tensor.
    private mutating func emitGather(
        _ result: Value, _ t: TensorID, _ access: [AxisAccess], index: ValueID, axis: Int
    ) {
        let r = result.id
        let g = names.storage(program.storage(of: t))
        var full = access
        full.insert(.point(.constant(0)), at: Swift.min(axis, full.count))
        let (offset, strides, ext) = address(t, full)
        let type = program[t].elementType
        let size = program[t].shape[axis]
        let rowStride = program.placement(of: t).strides[axis]
        let pre = access[..<Swift.min(axis, access.count)].filter { if case .slice = $0 { true } else { false } }.count
        let indexRank = analysis.layouts[index]!.shape.count
        func read(_ me: KernelEmitter, _ i: [String], _ src: String) -> String {
            let x = me.element(index, Array(i[pre..<(pre + indexRank)]))
            var parts = ["(\(me.dialect.indexType))(\(x)) * \(rowStride)"]
            for (k, s) in zip(Array(i[..<pre]) + Array(i[(pre + indexRank)...]), strides) {
                parts.append(s == 1 ? k : "\(k) * \(s)")
            }
            let loaded = me.dialect.loaded(type, "\(src)[\(parts.joined(separator: " + "))]")
            return "((\(x)) >= 0.0f && (\(x)) < \(size).0f) ? \(loaded) : 0.0f"
        }
        let src = temp("src")
        w.line("const \(dialect.storageType(type)) *\(src) = \(g) + \(offset);")
        if result.type.shape.isEmpty {
            w.line("const float s\(r.number) = \(read(self, [], src));")
            extents[r] = []
            return
        }
        declareBuffer(r)
        var bounds = Array(ext[..<pre])
        bounds += extents[index]!
        bounds += Array(ext[pre...])
        defineExtents(r, bounds)
        let row = rowLength(r)
        forEach(extents[r]!) { me, i in
            let dst = i.count == 2 ? "\(i[0]) * \(row) + \(i[1])" : i[0]
            me.w.line("v\(r.number)[\(dst)] = \(read(me, i, src));")
        }
    }

    /// Records where the next iteration of the innermost loop reads the same 2-D block, when
    /// the access moves with that loop: the CPU `blk_gemm` prefetches it while it computes.
    private mutating func planPrefetch(_ r: ValueID, _ t: TensorID, _ access: [AxisAccess]) {
        guard schedule.prefetchedLoads.contains(r), let loop = loops.last else { return }
        // The next iteration: the one after, or in a compacted traversal the one its links give.
        let following: IndexExpr =
            loop.linked
            ? .variable(Self.followingIteration(loop.variable)) : .add(.variable(loop.variable), .constant(1))
        let next = access.map { $0.substituting([loop.variable: following]) }
        let (offset, strides, _) = address(t, next)
        let e = extents[r]!
        let g = names.storage(program.storage(of: t))
        let nextIndex = loop.linked ? index(following) : "\(names.index(loop.variable)) + 1"
        nextBlock[r] = "\(nextIndex) < \(index(loop.upper)) ? \(g) + \(offset) : 0, \(e[0]), \(strides[0]), \(e[1])"
    }

    /// The C variable of a compacted loop's next iteration.
    static func followingIteration(_ v: IndexVar) -> IndexVar { IndexVar("blk_following_" + v.name) }

    private mutating func emitStore(_ v: ValueID, _ t: TensorID, _ access: [AxisAccess]) {
        let g = names.storage(program.storage(of: t))
        let (offset, strides, ext) = address(t, access)
        let type = program[t].elementType
        if strides.isEmpty {
            w.line("\(dialect.gpu?.singleThread ?? "")\(g)[\(offset)] = \(dialect.stored(type, element(v, [])));")
            return
        }
        open("")
        let dst = temp("dst")
        w.line("\(dialect.storageType(type)) *\(dst) = \(g) + \(offset);")
        let bounds = zip(extents[v]!, ext).map { minExtent($0, $1) }
        forEach(bounds) { me, i in
            let d = zip(i, strides).map { $1 == 1 ? $0 : "\($0) * \($1)" }.joined(separator: " + ")
            me.w.line("\(dst)[\(d)] = \(me.dialect.stored(type, me.element(v, i)));")
        }
        close()
    }

    /// Copies the valid elements of `v` into the row-major buffer `dst` of row length `row`.
    mutating func copy(_ v: ValueID, into dst: String, row: Int) {
        forEach(extents[v]!) { me, i in
            let d = i.count == 2 ? "\(i[0]) * \(row) + \(i[1])" : i[0]
            me.w.line("\(dst)[\(d)] = \(me.element(v, i));")
        }
    }

    // MARK: Elementwise

    /// `r = f(operands)` elementwise; rank-0 operands broadcast.
    private mutating func emitElementwise(
        _ r: ValueID, operands: [ValueID], _ f: (KernelEmitter, [String]) -> String
    ) {
        let shape = analysis.layouts[r]!.shape
        if analysis.isSplat(r) {
            // A scalar, or a splat of operands that are all splats: one element for the block.
            w.line("const float s\(r.number) = \(f(self, operands.map { element($0, []) }));")
            extents[r] = shape.map { "\($0)" }
            return
        }
        declareBuffer(r)
        defineExtents(r, elementwiseExtents(operands, r))
        // The loops run over the axes the result's buffer stores (not those its layout repeats).
        let strides = analysis.layouts[r]!.strides
        let stored = shape.indices.filter { strides[$0] != 0 }
        forEach(stored.map { extents[r]![$0] }) { me, i in
            var at = shape.map { _ in "0" }
            for (n, k) in stored.enumerated() { at[k] = i[n] }
            let d = zip(stored, i).map { strides[$0] == 1 ? $1 : "\($1) * \(strides[$0])" }.joined(separator: " + ")
            me.w.line("v\(r.number)[\(d.isEmpty ? "0" : d)] = \(f(me, operands.map { me.element($0, at) }));")
        }
    }

    /// The extents of the elementwise result `r`: along each axis the smallest of its block
    /// operands' extents (expressions), or `r`'s shape where every operand is a scalar.
    func elementwiseExtents(_ operands: [ValueID], _ r: ValueID) -> [String] {
        var bounds: [String] = []
        for a in operands where !(analysis.layouts[a]!.shape.isEmpty) {
            bounds = bounds.isEmpty ? extents[a]! : zip(bounds, extents[a]!).map { minExtent($0, $1) }
        }
        return bounds.isEmpty ? analysis.layouts[r]!.shape.map { "\($0)" } : bounds
    }

    /// Whether the select `r` needs no code: its condition is known non-zero (a full block) and it
    /// is written in place over its chosen operand `a`, which is therefore already there.
    func selectIsOperand(_ r: ValueID, _ a: ValueID) -> Bool {
        guard chosenSelects.contains(r), plan.inPlace.contains(r), !analysis.isSplat(r), let ba = plan.bufferOf[a]
        else { return false }
        return plan.bufferOf[r] == ba
    }

    /// The operands and the C expression of an elementwise op's element (`nil`: not elementwise).
    func elementwiseForm(_ op: Op, _ r: ValueID) -> ([ValueID], (KernelEmitter, [String]) -> String)? {
        switch op {
        case .unary(let u, let a):
            return ([a], { me, x in me.dialect.apply(me.dialect.unaryTemplates[u]!, x) })
        case .binary(let b, let x, let y):
            return ([x, y], { me, v in me.dialect.apply(me.dialect.binaryTemplates[b]!, v) })
        case .select(let c, let a, let b):
            if chosenSelects.contains(r) {
                // Its condition is known non-zero (a full block): `a`, over the extent of `a` and `b`.
                return ([a, b], { _, x in x[0] })
            }
            // A choice, never arithmetic: the branch not taken (NaN, inf) does not reach the result.
            return ([c, a, b], { _, x in "((\(x[0])) != 0.0f ? (\(x[1])) : (\(x[2])))" })
        default:
            return nil
        }
    }

    /// `r = exp(a)` a row at a time through the C runtime's `blk_exp_row` (16 lanes, `vscalefps`
    /// with AVX-512), where `a` is a row-major f32 block of unit stride along its last axis (a
    /// buffer, or a global tensor read in place) of the result's shape and the result owns its
    /// row-major buffer; false (nothing emitted) elsewhere, on GPUs and for splats.
    private mutating func emitExpRows(_ r: ValueID, _ a: ValueID) -> Bool {
        guard expRowsApply(r, a), let la = analysis.layouts[a] else { return false }
        declareBuffer(r)
        defineExtents(r, extents[a]!)
        let e = extents[r]!
        if e.count == 1 {
            w.line("blk_exp_row(\(pointer(a)), v\(r.number), \(e[0]));")
        } else {
            let rowA = la.strides[0] == 0 ? "" : " + r_ * \(la.strides[0])"
            open("for (\(dialect.indexType) r_ = 0; r_ < \(e[0]); r_++)")
            w.line("blk_exp_row(\(pointer(a))\(rowA), v\(r.number) + r_ * \(rowLength(r)), \(e[1]));")
            close()
        }
        return true
    }

    /// Whether `r = exp(a)` runs a row at a time through `blk_exp_row` (`emitExpRows`).
    func expRowsApply(_ r: ValueID, _ a: ValueID) -> Bool {
        guard dialect.gpu == nil, !analysis.isSplat(r), let lr = analysis.layouts[r], lr.ownsRowMajorBuffer,
            case .buffer(let owner) = lr.base, owner == r, let la = analysis.layouts[a], la.shape == lr.shape,
            (1...2).contains(la.shape.count), la.strides.last == 1
        else { return false }
        switch la.base {
        case .buffer: return true
        case .global(let load): return !analysis.bf16Views.contains(load)
        case .scalar: return false
        }
    }

    /// `r = concat(a, b)` along `axis`: `a`'s valid elements, then `b`'s, shifted by `a`'s size
    /// (`a` is full along `axis`, so the extent there is that size plus `b`'s extent).
    private mutating func emitConcat(_ r: ValueID, _ a: ValueID, _ b: ValueID, axis: Int) {
        let offset = analysis.layouts[a]!.shape[axis]
        declareBuffer(r)
        var bounds = zip(extents[a]!, extents[b]!).map { minExtent($0, $1) }
        let eb = extents[b]![axis]
        bounds[axis] = Int(eb).map { "\(offset + $0)" } ?? "(\(offset) + \(eb))"
        defineExtents(r, bounds)
        let row = rowLength(r)
        for (part, shift) in [(a, 0), (b, offset)] {
            var partBounds = extents[r]!
            partBounds[axis] = extents[part]![axis]
            forEach(partBounds) { me, i in
                var o = i
                if shift != 0 { o[axis] = "(\(i[axis]) + \(shift))" }
                let d = o.count == 2 ? "\(o[0]) * \(row) + \(o[1])" : o[0]
                me.w.line("v\(r.number)[\(d)] = \(me.element(part, i));")
            }
        }
    }

    /// An index block: a splat of the expression (no axis, like `fill`), or a buffer of the
    /// expression plus each coordinate along `axis`, which the layout repeats along the other
    /// axes (positions are exact in f32 below 2^24).
    private mutating func emitIndex(_ r: ValueID, _ e: IndexExpr, axis: Int?) {
        let shape = analysis.layouts[r]!.shape
        guard let axis, axis < shape.count, case .buffer = analysis.layouts[r]!.base else {
            w.line("const float s\(r.number) = (float)(\(index(e)));")
            extents[r] = shape.map { "\($0)" }
            return
        }
        declareBuffer(r)
        defineExtents(r, shape.map { "\($0)" })
        let start = temp("pos0")
        w.line("const \(dialect.indexType) \(start) = \(index(e));")
        // One position per element of `axis`; the layout repeats them along the other axes.
        forEach([extents[r]![axis]]) { me, i in
            me.w.line("v\(r.number)[\(i[0])] = (float)(\(start) + \(i[0]));")
        }
    }

    private mutating func emitMask(
        _ r: ValueID, _ a: ValueID, row: IndexExpr, column: IndexExpr, _ predicate: Predicate, fill: Float
    ) {
        declareBuffer(r)
        defineExtents(r, extents[a]!)
        let rowBase = temp("row0")
        let colBase = temp("col0")
        w.line(
            "const \(dialect.indexType) \(rowBase) = \(index(row))\(rowShift(r)), \(colBase) = \(index(column));")
        let n = rowLength(r)
        // Blocks wholly inside the predicate (checked at the block's corners: the atoms are
        // affine or piecewise constant) copy without the element test.
        let e = extents[r]!
        let inside = Self.wholeBlockCondition(
            predicate, row: rowBase, column: colBase, lastRow: "(\(rowBase) + \(e[0]) - 1)",
            lastColumn: "(\(colBase) + \(e[1]) - 1)")
        // Written in place over a row-major operand of the same row length, a kept block is
        // already there.
        let alreadyThere =
            plan.inPlace.contains(r) && (analysis.layouts[a]?.ownsRowMajorBuffer ?? false) && rowLength(a) == n
        if alreadyThere {
            open("if (!(\(inside)))")
        } else {
            open("if (\(inside))")
            forEach(e) { me, i in
                me.w.line("v\(r.number)[\(i[0]) * \(n) + \(i[1])] = \(me.element(a, i));")
            }
            close()
            open("else")
        }
        forEach(e) { me, i in
            let gi = "(\(rowBase) + \(i[0]))"
            let gj = "(\(colBase) + \(i[1]))"
            let cond = Self.predicate(predicate, row: gi, column: gj)
            me.w.line("v\(r.number)[\(i[0]) * \(n) + \(i[1])] = \(cond) ? \(me.element(a, i)) : \(Self.float(fill));")
        }
        close()
    }

    /// What a block's first row moves by: in a row-restricted iteration an aligned block starts at
    /// the first row computed (`" + first"`), elsewhere nothing.
    private func rowShift(_ v: ValueID) -> String {
        rowWindow.flatMap { $0.restriction.aligned.contains(v) ? " + \($0.first)" : nil } ?? ""
    }

    /// A C condition that holds when every element of the rows `row ... lastRow` and columns
    /// `column ... lastColumn` satisfies the predicate: affine atoms at their worst corner, segment
    /// atoms when all four corners lie in one segment.
    static func wholeBlockCondition(
        _ p: Predicate, row: String, column: String, lastRow: String, lastColumn: String
    ) -> String {
        if p.atoms.isEmpty { return "1" }
        func segment(_ x: String, _ bounds: [Int]) -> String {
            bounds.isEmpty ? "0" : "(" + bounds.map { "(\(x) >= \($0))" }.joined(separator: " + ") + ")"
        }
        let parts = p.atoms.map { atom -> String in
            switch atom {
            case .affineNonNegative(let a, let b, let c):
                let i = a > 0 ? row : lastRow
                let j = b > 0 ? column : lastColumn
                return "(\(a) * \(i) + \(b) * \(j) + \(c) >= 0)"
            case .affineZero(let a, let b, let c):
                return a == 0 && b == 0 && c == 0 ? "1" : "0"
            case .sameSegment(let bounds):
                let s = segment(row, bounds)
                let others = [lastRow, column, lastColumn].map { "\(s) == \(segment($0, bounds))" }
                return "(" + others.joined(separator: " && ") + ")"
            case .quotient(let q):
                // a·i + p·⌊i/m⌋ is monotone in i when a and p do not have opposite signs (likewise in
                // j), so its extremes over the block lie at corners: `≥ 0` holds on the whole block
                // when it holds at the minimizing corner, `= 0` when at both extreme corners.
                guard q.row.signum() * q.rowQuotient.signum() >= 0, q.column.signum() * q.columnQuotient.signum() >= 0
                else { return "0" }
                let rowRises = q.row > 0 || q.rowQuotient > 0
                let columnRises = q.column > 0 || q.columnQuotient > 0
                let low = quotientText(q, row: rowRises ? row : lastRow, column: columnRises ? column : lastColumn)
                guard q.isEquality else { return "(\(low) >= 0)" }
                let high = quotientText(q, row: rowRises ? lastRow : row, column: columnRises ? lastColumn : column)
                return "(\(low) == 0 && \(high) == 0)"
            }
        }
        return "(" + parts.joined(separator: " && ") + ")"
    }

    /// A predicate over element positions in C.
    static func predicate(_ p: Predicate, row: String, column: String) -> String {
        if p.atoms.isEmpty { return "1" }
        func affine(_ a: Int, _ b: Int, _ c: Int) -> String {
            var terms: [String] = []
            if a != 0 { terms.append(a == 1 ? row : "\(a) * \(row)") }
            if b != 0 { terms.append(b == 1 ? column : "\(b) * \(column)") }
            if c != 0 || terms.isEmpty { terms.append("\(c)") }
            return terms.joined(separator: " + ")
        }
        func segment(_ x: String, _ bounds: [Int]) -> String {
            bounds.isEmpty ? "0" : "(" + bounds.map { "(\(x) >= \($0))" }.joined(separator: " + ") + ")"
        }
        let parts = p.atoms.map { atom -> String in
            switch atom {
            case .affineNonNegative(let a, let b, let c): return "(\(affine(a, b, c)) >= 0)"
            case .affineZero(let a, let b, let c): return "(\(affine(a, b, c)) == 0)"
            case .sameSegment(let bounds): return "(\(segment(row, bounds)) == \(segment(column, bounds)))"
            case .quotient(let q):
                return "(\(quotientText(q, row: row, column: column)) \(q.isEquality ? "==" : ">=") 0)"
            }
        }
        return "(" + parts.joined(separator: " && ") + ")"
    }

    /// `a·i + b·j + p·⌊i/m⌋ + q·⌊j/m⌋ + c` in C; `blk_floordiv` rounds toward −∞ as the IR does.
    static func quotientText(_ q: QuotientAffine, row: String, column: String) -> String {
        var terms: [String] = []
        for (coefficient, x) in [
            (q.row, row), (q.column, column), (q.rowQuotient, "blk_floordiv(\(row), \(q.divisor))"),
            (q.columnQuotient, "blk_floordiv(\(column), \(q.divisor))"),
        ] where coefficient != 0 {
            terms.append(coefficient == 1 ? x : "\(coefficient) * \(x)")
        }
        if q.constant != 0 || terms.isEmpty { terms.append("\(q.constant)") }
        return terms.joined(separator: " + ")
    }

    // MARK: Reductions

    private mutating func emitReduce(_ r: ValueID, _ op: ReduceOp, _ a: ValueID, axis: Int) {
        if analysis.isReductionOfSplat(.reduce(op, a, axis: axis)), let n = analysis.layouts[a]!.staticExtents[axis] {
            // n copies of one value: their sum, or the value itself.
            let s = element(a, [])
            w.line("const float s\(r.number) = \(op == .sum ? "(\(s) * \(n).0f)" : s);")
            extents[r] = analysis.layouts[r]!.shape.map { "\($0)" }
            return
        }
        if let gpu = dialect.gpu {
            emitGPUReduce(r, op, a, axis: axis, gpu)
            return
        }
        let la = analysis.layouts[a]!
        let comb = dialect.reduceTemplates[op]!
        let identity = Self.float(op.identity)
        let contiguous = op == .sum ? "blk_sum_contig" : "blk_max_contig"
        let ea = extents[a]!
        if la.shape.count == 1 {
            if la.strides[0] == 1 {
                w.line("const float s\(r.number) = \(contiguous)(\(pointer(a)), \(ea[0]));")
            } else {
                w.line("float s\(r.number) = \(identity);")
                forEach([ea[0]]) { me, i in
                    me.w.line("s\(r.number) = \(me.dialect.apply(comb, ["s\(r.number)", me.element(a, i)]));")
                }
            }
            extents[r] = []
            return
        }
        declareBuffer(r)
        let kept = axis == 1 ? ea[0] : ea[1]
        defineExtents(r, [kept])
        let out = "v\(r.number)"
        if axis == 1, la.strides[1] == 1, la.strides[0] != 0 {
            // Rows of unit stride: 16 rows at a time through their lanes (no horizontal reduction per row).
            let rows = op == .sum ? "blk_sum_rows" : "blk_max_rows"
            w.line("\(rows)(\(pointer(a)), \(la.strides[0]), \(extents[r]![0]), \(ea[1]), \(out));")
        } else if axis == 1 {
            open("for (\(dialect.indexType) r_ = 0; r_ < \(extents[r]![0]); r_++)")
            emitRowOfReduction(out, op, a)
            close()
        } else {
            forEach([extents[r]![0]]) { me, i in me.w.line("\(out)[\(i[0])] = \(identity);") }
            open("for (\(dialect.indexType) r_ = 0; r_ < \(ea[0]); r_++)")
            w.flushLeft(dialect.simdLoop)
            open("for (\(dialect.indexType) c_ = 0; c_ < \(extents[r]![0]); c_++)")
            w.line("\(out)[c_] = \(dialect.apply(comb, ["\(out)[c_]", element(a, ["r_", "c_"])]));")
            close()
            close()
        }
    }

    /// Row `r_` of a reduction of the block `a` along its columns, into `out[r_]`.
    mutating func emitRowOfReduction(_ out: String, _ op: ReduceOp, _ a: ValueID) {
        let la = analysis.layouts[a]!
        let ea = extents[a]!
        if la.strides[1] == 1 {
            let contiguous = op == .sum ? "blk_sum_contig" : "blk_max_contig"
            let rowStride = la.strides[0] == 0 ? "" : " + r_ * \(la.strides[0])"
            w.line("\(out)[r_] = \(contiguous)(\(pointer(a))\(rowStride), \(ea[1]));")
        } else {
            w.line("float acc_ = \(Self.float(op.identity));")
            w.flushLeft(dialect.simdLoop)
            open("for (\(dialect.indexType) c_ = 0; c_ < \(ea[1]); c_++)")
            w.line("acc_ = \(dialect.apply(dialect.reduceTemplates[op]!, ["acc_", element(a, ["r_", "c_"])]));")
            close()
            w.line("\(out)[r_] = acc_;")
        }
    }

    /// A reduction on a GPU: a warp per row (lanes stride, a shuffle butterfly combines), every
    /// warp for a scalar result, a thread per column for a reduction over rows.
    private mutating func emitGPUReduce(_ r: ValueID, _ op: ReduceOp, _ a: ValueID, axis: Int, _ gpu: GPUSpellings) {
        let comb = dialect.reduceTemplates[op]!
        let warp = gpu.warpReduceTemplates[op]!
        let identity = Self.float(op.identity)
        let ea = extents[a]!
        let it = dialect.indexType
        if analysis.layouts[a]!.shape.count == 1 {
            w.line("float s\(r.number);")
            open("")
            w.line("float acc_ = \(identity);")
            open("for (\(it) c_ = \(gpu.laneIndex); c_ < \(ea[0]); c_ += \(gpu.warpSize))")
            w.line("acc_ = \(dialect.apply(comb, ["acc_", element(a, ["c_"])]));")
            close()
            w.line("s\(r.number) = \(dialect.apply(warp, ["acc_"]));")
            close()
            extents[r] = []
            return
        }
        declareBuffer(r)
        defineExtents(r, [axis == 1 ? ea[0] : ea[1]])
        let out = "v\(r.number)"
        if axis == 1 {
            open("for (\(it) r_ = \(gpu.warpIndex); r_ < \(extents[r]![0]); r_ += \(gpu.warpCount))")
            w.line("float acc_ = \(identity);")
            open("for (\(it) c_ = \(gpu.laneIndex); c_ < \(ea[1]); c_ += \(gpu.warpSize))")
            w.line("acc_ = \(dialect.apply(comb, ["acc_", element(a, ["r_", "c_"])]));")
            close()
            w.line("acc_ = \(dialect.apply(warp, ["acc_"]));")
            w.line("if (\(gpu.laneIndex) == 0) \(out)[r_] = acc_;")
            close()
        } else {
            open(gpu.cooperativeLoop(extents[r]![0], indexType: it))
            w.line("const \(it) c_ = f_;")
            w.line("float acc_ = \(identity);")
            open("for (\(it) r_ = 0; r_ < \(ea[0]); r_++)")
            w.line("acc_ = \(dialect.apply(comb, ["acc_", element(a, ["r_", "c_"])]));")
            close()
            w.line("\(out)[c_] = acc_;")
            close()
        }
    }

    /// `r = scan(a)` along `axis`: one sequential walk per line of the other axis, in the scan's
    /// direction, carrying the running combination (on a GPU a thread per line).
    private mutating func emitScan(
        _ r: ValueID, _ op: ReduceOp, _ a: ValueID, axis: Int, reverse: Bool, exclusive: Bool
    ) {
        let comb = dialect.reduceTemplates[op]!
        let it = dialect.indexType
        let ea = extents[a]!
        declareBuffer(r)
        defineExtents(r, ea)
        let rank = ea.count
        let n = rank == 2 ? rowLength(r) : 1
        let walked = rank == 2 && axis == 0 ? "r_" : "c_"
        let line = rank == 2 ? (axis == 0 ? "c_" : "r_") : nil
        if let line {
            let lines = ea[1 - axis]
            if let gpu = dialect.gpu {
                open(gpu.cooperativeLoop(lines, indexType: it))
                w.line("const \(it) \(line) = f_;")
            } else {
                open("for (\(it) \(line) = 0; \(line) < \(lines); \(line)++)")
            }
        } else if let gpu = dialect.gpu {
            open("if (\(gpu.threadIndex) == 0)")
        } else {
            open("")
        }
        w.line("float acc_ = \(Self.float(op.identity));")
        let length = ea[axis]
        open("for (\(it) t_ = 0; t_ < \(length); t_++)")
        w.line("const \(it) \(walked) = " + (reverse ? "\(length) - 1 - t_;" : "t_;"))
        let idx = rank == 2 ? ["r_", "c_"] : ["c_"]
        let target = rank == 2 ? "v\(r.number)[r_ * \(n) + c_]" : "v\(r.number)[c_]"
        w.line("const float x_ = \(element(a, idx));")
        if exclusive {
            w.line("\(target) = acc_;")
            w.line("acc_ = \(dialect.apply(comb, ["acc_", "x_"]));")
        } else {
            w.line("acc_ = \(dialect.apply(comb, ["acc_", "x_"]));")
            w.line("\(target) = acc_;")
        }
        close()
        close()
    }

    // MARK: Dot

    /// `r = dot(a, b)` into `r`'s buffer, or added to its content when `accumulate`.
    private mutating func emitDot(
        _ r: ValueID, _ a: ValueID, _ b: ValueID, transposeA: Bool, transposeB: Bool, accumulate: Bool,
        into target: ValueID? = nil, dotID: ValueID? = nil, rowScale: String? = nil
    ) {
        let ea = extents[a]!
        let eb = extents[b]!
        let m = transposeA ? ea[1] : ea[0]
        let ka = transposeA ? ea[0] : ea[1]
        let kb = transposeB ? eb[1] : eb[0]
        let n = transposeB ? eb[0] : eb[1]
        let k = minExtent(ka, kb)
        let dst = target ?? r
        if !accumulate {
            declareBuffer(r)
            defineExtents(r, [m, n])
        }
        var sa = analysis.layouts[a]!.strides
        if schedule.loadsReadInPlace.contains(a), case .load(let t, let access)? = kernel.instruction(defining: a)?.op {
            sa = address(t, access).strides
        }
        let (ars, aks) = transposeA ? (sa[1], sa[0]) : (sa[0], sa[1])
        let (ks, js) = analysis.rightStrides(b, transposed: transposeB)
        var bPointer = pointer(b)
        var ldb = ks
        let dotValue = dotID ?? r
        let rows = accumulate ? extents[dst]!.first! : m
        let cols = accumulate ? extents[dst]!.last! : n
        let micro = schedule.dots.first { $0.dot == dotValue }
        let bf16 = micro?.precision == .bf16
        let prepacked = micro?.prepackedRight.map { schedule.prepacks[$0] }
        if bf16, dialect.gpu == nil {
            // The CPU's bf16 product packs B itself (bf16 pairs with AVX512_BF16), into the pack buffer;
            // an operand that is a block of a bf16 tensor in place is read as bf16 bits (flag 1).
            let packed = "B\(plan.packBufferOf[dotValue]!)"
            func bits(_ v: ValueID) -> Int {
                if case .global(let load) = analysis.layouts[v]!.base, analysis.bf16Views.contains(load) { return 1 }
                return 0
            }
            // With the row scales (RowScaledAccumulation) the `_rs` product takes them where the flag
            // `accumulate` would be.
            let (suffix, accumulation) = rowScale.map { ("_rs", $0) } ?? ("", accumulate ? "1" : "0")
            if let p = prepacked {
                // B packed once per call: the product reads its pairs.
                w.line(
                    "blk_gemm_bf16p\(suffix)(\(rows), \(cols), \(k), \(pointer(a)), \(bits(a)), \(ars), \(aks), "
                        + "\(pointer(b)), \(p.tile), v\(dst.number), \(rowLength(dst)), \(accumulation), \(packed));")
                return
            }
            let prefetch = nextBlock[b].map { ", " + $0 } ?? ""
            w.line(
                "blk_gemm_bf16\(prefetch.isEmpty ? "" : "_pf")\(suffix)(\(rows), \(cols), \(k), \(pointer(a)), "
                    + "\(bits(a)), \(ars), \(aks), \(bPointer), \(bits(b)), \(ks), \(js), v\(dst.number), "
                    + "\(rowLength(dst)), \(accumulation), \(packed)\(prefetch));")
            return
        }
        if let p = prepacked {
            // B packed once per call: unit stride along j, its tile's rows `tile` apart; a block
            // wider than a tile is consecutive tiles (panels), which the product walks one by one.
            ldb = p.tile
            if analysis.types[dotValue]!.shape[1] > p.tile, dialect.gpu == nil {
                w.line(
                    "blk_gemm_panels(\(rows), \(cols), \(k), \(pointer(a)), \(ars), \(aks), \(bPointer), "
                        + "\(p.tileWords), v\(dst.number), \(rowLength(dst)), \(accumulate ? 1 : 0));")
                return
            }
        } else if analysis.needsPacking(dotValue) {
            let packed = "B\(plan.packBufferOf[dotValue]!)"
            // Rows padded on a GPU (KernelAnalysis.packedRowStride): no shared-memory bank conflicts in the
            // tensor cores' B fragment loads.
            let stride = analysis.packedRowStride(dotValue)
            w.line("blk_pack(\(k), \(n), \(bPointer), \(ks), \(js), \(packed), \(stride));")
            barrier()
            bPointer = packed
            ldb = stride
        }
        let prefetch = bf16 ? "" : nextBlock[b].map { ", " + $0 } ?? ""
        var name = bf16 ? "blk_gemm_bf16" : prefetch.isEmpty ? "blk_gemm" : "blk_gemm_pf"
        if case .registerTiled(let tile, _)? = micro?.gpu, tile != KernelSchedule.registerTiles[0] {
            // A product too small to give every thread a 4x4 tile: narrower tiles (KernelSchedule.registerTile).
            name += "_\(tile)"
        } else if case .tensorCores(let warpRows, let warpColumns)? = micro?.gpu {
            // The schedule chose the tensor cores: bf16 mma.sync, each warp a warpRows x warpColumns tile.
            name = "blk_gemm_mma_\(warpRows)x\(warpColumns)"
        } else if case .tf32TensorCores(let warpRows, let warpColumns)? = micro?.gpu {
            // The --tf32 option: an f32 product as TF32 mma.sync, operands rounded to TF32 as they are read.
            name = "blk_gemm_mma_tf32_\(warpRows)x\(warpColumns)"
        }
        if let whole = schedule.wholeReductions[dotValue], prepacked != nil, accumulate, dialect.gpu == nil {
            // `group` iterations' reduction in every `group`-th iteration, from its blocks' addresses:
            // the packed rows run on contiguously, the accumulator stays in registers throughout.
            let v = names.index(whole.variable)
            let done = whole.first == 0 ? v : "(\(v) - \(whole.first))"
            w.line(
                "if (\(done) % \(whole.group) == 0) \(name)(\(rows), \(cols), blk_imin(\(whole.group * whole.size), "
                    + "\(whole.depth) - \(done) * \(whole.size)), \(pointer(a)), \(ars), \(aks), \(bPointer), \(ldb), v\(dst.number), "
                    + "\(rowLength(dst)), 1);")
            return
        }
        let operands =
            "\(rows), \(cols), \(k), \(pointer(a)), \(ars), \(aks), \(bPointer), \(ldb), v\(dst.number), \(rowLength(dst))"
        // C = α⊙C + A·B: the accumulator's rows scaled as the tiles load them (RowScaledAccumulation).
        let call =
            rowScale.map { "\(name)_rs(\(operands), \($0)\(prefetch));" }
            ?? "\(name)(\(operands), \(accumulate ? 1 : 0)\(prefetch));"
        guard dialect.gpu == nil, let masked = schedule.maskedProducts[dotValue],
            case .mask(_, let row, let column, _, _)? = kernel.instruction(defining: masked.mask)?.op
        else {
            w.line(call)
            return
        }
        // MaskedProduct: row r of the mask's block keeps at most its first lim + slope·r columns;
        // where that cuts the block (the columns, or the reduction's terms), the product skips the
        // rest tile by tile.
        let lim = temp("lim")
        w.line(
            "const \(dialect.indexType) \(lim) = \(masked.slope) * (\(index(row))\(rowShift(masked.mask))) + "
                + "\(masked.constant) - (\(index(column))) + 1;")
        let (extent, bounded) =
            masked.limit == .columns
            ? (cols, "blk_gemm_cl(\(operands), \(lim), \(masked.slope));")
            : (k, "blk_gemm_kl(\(operands), \(accumulate ? 1 : 0), \(rowScale ?? "NULL"), \(lim), \(masked.slope));")
        open("if (\(lim) >= \(extent))")
        w.line(call)
        close()
        open("else")
        w.line(bounded)
        close()
    }

    /// `r = add(x, dot(a, b))`: `x` lands in `r`'s buffer (in place when it dies here), then
    /// the product accumulates onto it.
    private mutating func emitAccumulatingDot(_ r: ValueID, other x: ValueID, dot d: ValueID) {
        guard case .dot(let a, let b, let ta, let tb, _)? = analysis.dots[d] else { return }
        declareBuffer(r)
        let ea = extents[a]!
        let eb = extents[b]!
        let m = ta ? ea[1] : ea[0]
        let n = tb ? eb[0] : eb[1]
        let ex = extents[x]!
        defineExtents(r, [minExtent(ex[0], m), minExtent(ex[1], n)])
        // x = the accumulator's rows scaled (RowScaledAccumulation), in place in r's buffer: the
        // product scales each row of r's extents (within x's, and x has no other reader) as its
        // tiles load it.
        let rowScale = schedule.rowScaledAccumulations[x].map { pointer($0.scale) }
        if !plan.inPlace.contains(r) {
            copy(x, into: "v\(r.number)", row: rowLength(r))
            barrier()
        }
        emitDot(r, a, b, transposeA: ta, transposeB: tb, accumulate: true, into: r, dotID: d, rowScale: rowScale)
    }

    // MARK: Loops

    private mutating func emitLoop(_ inst: Instruction, _ loop: Loop) {
        for (k, c) in loop.carried.enumerated() {
            let x = loop.initial[k]
            if c.type.shape.isEmpty {
                w.line("float s\(c.id.number) = \(element(x, []));")
                extents[c.id] = []
                continue
            }
            declareBuffer(c.id)
            defineExtents(c.id, extents[x]!, mutable: true)
            if !plan.inPlace.contains(c.id) {
                copy(x, into: "v\(c.id.number)", row: rowLength(c.id))
            }
        }
        if loop.carried.contains(where: { !$0.type.shape.isEmpty }) { barrier() }
        let v = names.index(loop.variable)
        let lo = IndexRange.of(loop.lower, ranges)
        let hi = IndexRange.of(loop.upper, ranges)
        let saved = ranges[loop.variable]
        ranges[loop.variable] = IndexRange(lower: lo.lower, upper: Swift.max(lo.lower, hi.upper - 1))
        func tensorElement(_ c: LoopCondition) -> String {
            let g = names.storage(program.storage(of: c.tensor))
            let (offset, _, _) = address(c.tensor, c.indices.map { .point($0) })
            return "\(g)[\(offset)]"
        }
        var first = index(loop.lower)
        var end = index(loop.upper)
        if let b = loop.bounds {
            // Run-time bounds narrow the range (read once, the same for every thread of a GPU block).
            let (l, u) = (temp("first"), temp("end"))
            w.line("const \(dialect.indexType) \(l) = blk_imax(\(first), (long)\(tensorElement(b.lower)));")
            w.line("const \(dialect.indexType) \(u) = blk_imin(\(end), (long)\(tensorElement(b.upper)));")
            (first, end) = (l, u)
        }
        var step = "\(v)++"
        var following: String?
        if let l = loop.links {
            // A compacted traversal: where the mode element is set, the loop follows the links to
            // the next kept block (never backwards: at least one step), uniform over a GPU block.
            let mode = temp("links")
            w.line("const int \(mode) = \(tensorElement(l.mode)) != 0;")
            following = "\(mode) ? blk_imax(\(v) + 1, (long)\(tensorElement(l.next))) : \(v) + 1"
            step = "\(v) = \(following!)"
        }
        open("for (\(dialect.indexType) \(v) = \(first); \(v) < \(end); \(step))")
        if dialect.gpu != nil { w.line(BarrierPlan.loopBegin) }
        if let c = loop.condition {
            // The guard is read before anything in the iteration, so a skipped iteration leaves
            // every carried buffer (also those computed in place) as it was. Every thread of a
            // GPU block reads the same element: the skip is uniform.
            w.line("if (\(tensorElement(c)) == 0) continue;")
        }
        if let f = following, dialect.gpu == nil {
            // The iteration the loop runs next, for the blocks `blk_gemm` prefetches (`planPrefetch`).
            let name = names.index(Self.followingIteration(loop.variable))
            w.line("const \(dialect.indexType) \(name) = \(f);")
        }
        loops.append((loop.variable, loop.upper, following != nil && dialect.gpu == nil))
        let restricted = dialect.gpu == nil ? schedule.rowRestrictions[loop.variable] : nil
        var savedExtents: [ValueID: [String]] = [:]
        if let rr = restricted { savedExtents = openRowWindow(rr, counter: v) }
        if let f = loop.full {
            // A full block runs the body without its element test; the choice is uniform too.
            let (fast, chosen) = loop.bodyWhereTrue()
            open("if (\(tensorElement(f.element)) != 0)")
            let saved = chosenSelects
            chosenSelects = chosen
            emitBody(fast, carried: loop.carried)
            chosenSelects = saved
            w.dedent()
            w.line("} else {")
            w.indent()
            emitBody(loop.body, carried: loop.carried)
            close()
        } else {
            emitBody(loop.body, carried: loop.carried)
        }
        if restricted != nil {
            rowWindow = nil
            for (value, e) in savedExtents { extents[value] = e }
            close()
        }
        loops.removeLast()
        if dialect.gpu != nil { w.line(BarrierPlan.loopEnd) }
        close()
        ranges[loop.variable] = saved
        for (k, r) in inst.results.enumerated() where k < loop.carried.count {
            extents[r.id] = extents[loop.carried[k].id]
        }
    }

    /// Starts a row-restricted iteration (`RowRestriction`): its first row and row end, the
    /// storage of the aligned values defined before the loop renamed from that row on (in a scope
    /// of its own), and their row extents the rows computed. Returns the extents it replaced.
    private mutating func openRowWindow(_ rr: RowRestriction, counter v: String) -> [ValueID: [String]] {
        let it = dialect.indexType
        let first = "blk_rs_\(v)"
        w.line(
            "const \(it) \(first) = " + (rr.first.map { "blk_imin(\(rr.rows), blk_imax(0, \(index($0))))" } ?? "0")
                + ";")
        let end = rr.end.map { e -> String in
            let name = "blk_re_\(v)"
            w.line("const \(it) \(name) = \(index(e));")
            return name
        }
        var owners: [ValueID] = []
        for value in rr.outside {
            switch analysis.layouts[value]?.base {
            case .buffer(let o)?, .global(let o)?:
                if let s = rr.rowStrides[o], s != 0, !owners.contains(o) { owners.append(o) }
            default: break
            }
        }
        for o in owners {
            w.line("__typeof__(v\(o.number)) blk_o\(o.number)_ = v\(o.number) + \(first) * \(rr.rowStrides[o]!);")
        }
        open("")
        for o in owners { w.line("__typeof__(blk_o\(o.number)_) v\(o.number) = blk_o\(o.number)_;") }
        var saved: [ValueID: [String]] = [:]
        var counts: [String: String] = [:]
        for value in rr.outside {
            guard var e = extents[value], !e.isEmpty else { continue }
            saved[value] = e
            if counts[e[0]] == nil {
                let name = "blk_rn_\(v)_\(counts.count)"
                let last = end.map { "blk_imin(\(e[0]), \($0))" } ?? e[0]
                w.line("const \(it) \(name) = blk_imax(0, \(last) - \(first));")
                counts[e[0]] = name
            }
            e[0] = counts[e[0]]!
            extents[value] = e
        }
        rowWindow = (rr, first)
        return saved
    }

    private mutating func emitYield(_ ys: [ValueID], carried: [Value]) {
        open("")
        // 1. Values that sit in a carried buffer another slot overwrites: stage them first.
        for (k, y) in ys.enumerated() where k < carried.count {
            let c = carried[k].id
            guard let s = plan.stagingOf[c] else { continue }
            copy(y, into: "B\(s)", row: rowLength(c))
        }
        if carried.contains(where: { plan.stagingOf[$0.id] != nil }) { barrier() }
        // 2. New extents and scalars, computed before any carried value changes.
        var updates: [String] = []
        for (k, y) in ys.enumerated() where k < carried.count {
            let c = carried[k].id
            if carried[k].type.shape.isEmpty {
                let t = temp("next")
                w.line("const float \(t) = \(element(y, []));")
                updates.append("s\(c.number) = \(t);")
                continue
            }
            // A row-restricted iteration computes fewer rows of the same block: its row extent stays.
            let keepsRows = rowWindow?.restriction.aligned.contains(c) ?? false
            for (axis, e) in extents[c]!.enumerated() where Int(e) == nil && !(axis == 0 && keepsRows) {
                let t = temp("ext")
                w.line("const \(dialect.indexType) \(t) = \(extents[y]![axis]);")
                updates.append("\(e) = \(t);")
            }
        }
        // 3. Copies into the carried buffers (none when the value was computed in place).
        for (k, y) in ys.enumerated() where k < carried.count && !carried[k].type.shape.isEmpty {
            let c = carried[k].id
            if let s = plan.stagingOf[c] {
                forEach(extents[y]!) { me, i in
                    let d = i.count == 2 ? "\(i[0]) * \(me.rowLength(c)) + \(i[1])" : i[0]
                    me.w.line("v\(c.number)[\(d)] = B\(s)[\(d)];")
                }
            } else if !plan.yieldsInPlace(y, into: c) {
                copy(y, into: "v\(c.number)", row: rowLength(c))
            }
        }
        for u in updates { w.line(u) }
        close()
    }
}
