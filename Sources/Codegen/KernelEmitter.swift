import BlockIR
import Schedule

/// Writes one kernel as a C function: thread-private block buffers, the grid as a parallel
/// loop nest, and the body.
///
/// Block values are addressed through their `BlockLayout`: a buffer `vN` (or a pointer into a
/// global tensor, or a scalar `sN`) with compile-time strides, and extents that are constants
/// where `KernelAnalysis` proved them, else `long` variables `eN_k`.
struct KernelEmitter {
    let program: Program
    let kernel: Kernel
    let index: Int
    let names: CNames
    let dialect: Dialect
    /// The kernel's schedule: storage, buffers, parallel axes, launch, micro-kernels.
    let schedule: KernelSchedule
    /// The schedule's storage analysis.
    var analysis: KernelAnalysis { schedule.analysis }
    /// The schedule's buffers.
    var plan: BufferPlan { schedule.buffers }
    /// The text written.
    var w = CodeWriter()
    /// The C expression of each value's extent along each axis.
    var extents: [ValueID: [String]] = [:]
    /// Index ranges of the variables in scope (to drop needless floor-division helpers).
    var ranges: [IndexVar: IndexRange] = [:]
    /// The enclosing loops, innermost last: counter, upper bound, and whether the next iteration is
    /// `followingIteration(variable)` (a compacted traversal on a CPU) rather than `variable + 1`.
    var loops: [(variable: IndexVar, upper: IndexExpr, linked: Bool)] = []
    /// For a block read in place from global memory inside a loop: the C arguments that let
    /// `blk_gemm` prefetch the same block of the loop's next iteration (CPU only).
    var nextBlock: [ValueID: String] = [:]
    /// The selects that take their `then` operand in the body being written (`Loop.bodyWhereTrue`).
    var chosenSelects: Set<ValueID> = []
    /// In the body of a loop that skips the rows its mask removes (`RowRestriction`): the
    /// restriction and the C name of the iteration's first row. Every aligned value's storage is
    /// then named from that row on, and its row extent counts the rows computed.
    var rowWindow: (restriction: RowRestriction, first: String)?
    /// The expression each constant extent variable was declared with, its names followed
    /// (`canonicalExtent`): two extents of one scope are equal where their expressions are.
    var extentExpressions: [String: String] = [:]
    private var tempCounter = 0

    init(program: Program, schedule: KernelSchedule, names: CNames, dialect: Dialect) {
        self.program = program
        self.kernel = schedule.kernel
        self.index = schedule.index
        self.names = names
        self.dialect = dialect
        self.schedule = schedule
        for axis in kernel.grid { ranges[axis.variable] = IndexRange(lower: 0, upper: axis.extent - 1) }
    }

    /// The storage tensors a kernel touches, in tensor order, and whether it writes them.
    static func storageParameters(_ program: Program, _ kernel: Kernel) -> [(tensor: TensorID, written: Bool)] {
        var touched: Set<TensorID> = []
        var written: Set<TensorID> = []
        kernel.walk { inst in
            switch inst.op {
            case .load(let t, _), .gather(let t, _, _, _): touched.insert(program.storage(of: t))
            case .store(_, let t, _):
                touched.insert(program.storage(of: t))
                written.insert(program.storage(of: t))
            case .loop(let loop):
                for c in loop.elementReads { touched.insert(program.storage(of: c.tensor)) }
            case .fill, .index, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .mask,
                .yield:
                break
            }
        }
        return touched.sorted().map { ($0, written.contains($0)) }
    }

    /// A fresh temporary name.
    mutating func temp(_ stem: String) -> String {
        tempCounter += 1
        return "t\(tempCounter)_\(stem)"
    }

    // MARK: Function

    mutating func emitFunction() {
        let r = dialect.restrictQualifier
        let params = Self.storageParameters(program, kernel).map { p in
            let type = dialect.storageType(program[p.tensor].elementType)
            return (p.written ? "\(type) *\(r) " : "const \(type) *\(r) ") + names.storage(p.tensor)
        }
        let grid = kernel.grid.map { "\($0.variable.name) < \($0.extent)" }.joined(separator: ", ")
        w.line(
            "/* kernel \(kernel.name): grid(\(grid)), \(kernel.instanceCount) instance(s); local blocks: "
                + "\(plan.capacities.count) buffer(s), \(plan.totalBytes) bytes per thread */")
        let params_ = params.isEmpty ? "void" : params.joined(separator: ", ")
        if let gpu = dialect.gpu {
            emitGPUFunction(params_, gpu)
            return
        }
        open("\(dialect.kernelQualifier) \(names.kernel(index))(\(params_))")
        if kernel.grid.isEmpty {
            declareBuffers()
            emitBody(kernel.body, carried: [])
            releaseBuffers()
            close()
            return
        }
        for (k, p) in schedule.prepacks.enumerated() {
            // Packed copies live in workspaces kept between calls (the CPU runtime's `blk_workspace`).
            let type = p.precision == .bf16 ? "uint32_t" : "float"
            w.line("static blk_workspace W\(k);")
            w.line("\(type) *P\(k) = (\(type) *)blk_workspace_take(&W\(k), \(p.words * 4));")
        }
        if let t = schedule.hoisting?.table {
            w.line("static blk_workspace WT;")
            w.line("float *blk_table = (float *)blk_workspace_take(&WT, \(t.stride * t.extent * 4));")
        }
        w.flushLeft(dialect.parallelRegion)
        open("")
        declareBuffers()
        declareHoistingState()
        emitPrepacks()
        emitTable()
        let balance = schedule.balance == .dynamic ? dialect.dynamicSchedule : dialect.staticSchedule
        w.flushLeft(
            dialect.fill(dialect.parallelFor, [("COLLAPSE", "\(schedule.parallelAxes.count)"), ("SCHEDULE", balance)]))
        for (k, axis) in kernel.grid.enumerated() {
            let v = names.index(axis.variable)
            let loop =
                schedule.heaviestFirst.contains(axis.variable)
                ? "for (\(dialect.indexType) \(v) = \(axis.extent - 1); \(v) >= 0; \(v)--)"
                : "for (\(dialect.indexType) \(v) = 0; \(v) < \(axis.extent); \(v)++)"
            if k == kernel.grid.count - 1 {
                open(loop)
            } else {
                w.line(loop)
                w.indent()
            }
        }
        emitInstance()
        close()
        for _ in 0..<(kernel.grid.count - 1) { w.dedent() }
        releaseBuffers()
        close()
        for k in schedule.prepacks.indices { w.line("blk_workspace_give(&W\(k), P\(k));") }
        if schedule.hoisting?.table != nil { w.line("blk_workspace_give(&WT, blk_table);") }
        close()
    }

    // MARK: Grid hoisting

    /// The thread's own state for `KernelSchedule.hoisting`: the other grid variables of the
    /// instance that last computed the hoisted runs, the storage of the values kept, and the
    /// extents that are not constants.
    private mutating func declareHoistingState() {
        guard let h = schedule.hoisting, !h.runs.isEmpty else { return }
        let aligned = dialect.fill(dialect.alignedArraySuffix, [("BYTES", "\(dialect.alignmentBytes)")])
        w.line("/* hoisted along \(names.index(h.axis)): computed when the other grid variables change */")
        w.line("int blk_h_valid = 0;")
        for axis in kernel.grid.dropLast() { w.line("\(dialect.indexType) blk_h_\(names.index(axis.variable)) = 0;") }
        for (n, k) in h.kept.enumerated() {
            w.line("float H\(n)[\(max(1, k.floats))] \(aligned);")
        }
        for kv in h.keptValues {
            for axis in hoistedExtentAxes(kv.value) { w.line("\(dialect.indexType) hx\(kv.value.number)_\(axis) = 0;") }
        }
    }

    /// The axes of a kept value whose extent is not a constant of its layout.
    private func hoistedExtentAxes(_ v: ValueID) -> [Int] {
        let l = analysis.layouts[v]!
        return l.shape.indices.filter { $0 >= l.staticExtents.count || l.staticExtents[$0] == nil }
    }

    /// The values computed once per call (`GridHoisting.Table`): for each index of the grid's last
    /// axis, shared out over the threads, the prelude and the runs, their kept storage copied into
    /// the table; the loop's closing barrier orders it before the grid reads it.
    private mutating func emitTable() {
        guard let t = schedule.hoisting?.table else { return }
        let j = names.index(t.index)
        w.flushLeft(dialect.fill(dialect.parallelFor, [("COLLAPSE", "1"), ("SCHEDULE", dialect.staticSchedule)]))
        open("for (\(dialect.indexType) \(j) = 0; \(j) < \(t.extent); \(j)++)")
        let positions = (t.prelude + t.part.runs.flatMap { Array($0) }).sorted()
        emitBody(positions.map { kernel.body[$0] }, carried: [])
        for (m, kept) in t.part.kept.enumerated() {
            copyKept(kept, into: "(blk_table + \(j) * \(t.stride) + \(t.offsets[m]))")
        }
        close()
    }

    /// Copies a kept value's storage (a scalar, or `floats` floats) into `place`, the thread's or
    /// the table's: a scalar is `place[0]`.
    private mutating func copyKept(_ kept: GridHoisting.Kept, into place: String) {
        if kept.floats == 0 {
            w.line("\(place)[0] = s\(kept.owner.number);")
        } else {
            w.line(
                "for (\(dialect.indexType) r_ = 0; r_ < \(kept.floats); r_++) \(place)[r_] = v\(kept.owner.number)[r_];"
            )
        }
    }

    /// Names a kept value's storage in `place` after its run, as its owner's scalar or pointer.
    private mutating func readKept(_ kept: GridHoisting.Kept, from place: String) {
        w.line(
            kept.floats == 0
                ? "const float s\(kept.owner.number) = \(place)[0];" : "float *v\(kept.owner.number) = \(place);")
    }

    /// One instance's body; with grid hoisting, each hoisted run under a test of whether the
    /// other grid variables changed since this thread's last instance, its kept values copied
    /// into the thread's storage and read from there after the run.
    private mutating func emitInstance() {
        guard let h = schedule.hoisting else {
            emitBody(kernel.body, carried: [])
            return
        }
        if !h.runs.isEmpty {
            let others = kernel.grid.dropLast().map { names.index($0.variable) }
            let same = (["blk_h_valid"] + others.map { "blk_h_\($0) == \($0)" }).joined(separator: " && ")
            w.line("const int blk_h_again = \(same);")
            w.line((["blk_h_valid = 1;"] + others.map { "blk_h_\($0) = \($0);" }).joined(separator: " "))
        }
        var k = 0
        while k < kernel.body.count {
            if let t = h.table, let n = t.part.runs.firstIndex(where: { $0.lowerBound == k }) {
                // Computed once per call before the grid (`emitTable`): read this instance's entry.
                let j = names.index(t.index)
                w.line("/* computed before the grid, for each \(j) */")
                for (m, kept) in t.part.kept.enumerated() where kept.run == n {
                    readKept(kept, from: "(blk_table + \(j) * \(t.stride) + \(t.offsets[m]))")
                }
                k = t.part.runs[n].upperBound
                continue
            }
            guard let n = h.runs.firstIndex(where: { $0.lowerBound == k }) else {
                emitBody([kernel.body[k]], carried: [])
                k += 1
                continue
            }
            let run = h.runs[n]
            open("if (!blk_h_again)")
            emitBody(Array(kernel.body[run]), carried: [])
            for (m, kept) in h.kept.enumerated() where kept.run == n { copyKept(kept, into: "H\(m)") }
            var kept: [(ValueID, [String])] = []
            for kv in h.keptValues where kv.run == n {
                var e = extents[kv.value]!
                for axis in hoistedExtentAxes(kv.value) {
                    let holder = "hx\(kv.value.number)_\(axis)"
                    w.line("\(holder) = \(e[axis]);")
                    e[axis] = holder
                }
                kept.append((kv.value, e))
            }
            close()
            for (m, kept) in h.kept.enumerated() where kept.run == n { readKept(kept, from: "H\(m)") }
            for (v, e) in kept { extents[v] = e }
            k = run.upperBound
        }
    }

    /// Packs each tensor the schedule packs once (`KernelSchedule.Prepack`) into its tiles (bf16
    /// pairs, or f32), its leading index and tiles shared out over the threads; the loop's closing
    /// barrier orders the packing before the grid reads it.
    private mutating func emitPrepacks() {
        for (k, p) in schedule.prepacks.enumerated() {
            let g = names.storage(program.storage(of: p.tensor))
            w.flushLeft(dialect.fill(dialect.parallelFor, [("COLLAPSE", "2"), ("SCHEDULE", dialect.staticSchedule)]))
            w.line("for (\(dialect.indexType) pl_ = 0; pl_ < \(p.leading); pl_++)")
            w.indent()
            open("for (\(dialect.indexType) pt_ = 0; pt_ < \(p.tiles); pt_++)")
            let width = "blk_imin(\(p.tile), \(p.jSize) - pt_ * \(p.tile))"
            let tile = "P\(k) + (pl_ * \(p.tiles) + pt_) * \(p.kRows * p.tile)"
            if p.precision == .bf16 {
                w.line(
                    "blk_bf16_prepack(\(g) + pl_ * \(p.rows * p.columns), \(p.rows), \(p.columns), "
                        + "\(p.kAlongRows ? 1 : 0), pt_ * \(p.tile), \(width), \(tile), \(p.tile));")
            } else {
                // The tile's columns j of B(k, j), unit stride: rows of T, or columns of a transposed T.
                let (first, ks, js) =
                    p.kAlongRows ? ("pt_ * \(p.tile)", p.columns, 1) : ("pt_ * \(p.tile * p.columns)", 1, p.columns)
                w.line(
                    "blk_pack(\(p.kRows), \(width), \(g) + pl_ * \(p.rows * p.columns) + \(first), \(ks), \(js), \(tile), "
                        + "\(p.tile));")
                if let s = p.scale {
                    // Each packed row k scaled by the vector's element k (R4a's column scale).
                    let v = names.storage(program.storage(of: s))
                    w.line("float *pp_ = \(tile);")
                    w.line("const long pw_ = \(width);")
                    open("for (\(dialect.indexType) pk_ = 0; pk_ < \(p.kRows); pk_++)")
                    w.line("const float ps_ = \(v)[pk_];")
                    w.flushLeft("#pragma omp simd")
                    w.line(
                        "for (\(dialect.indexType) pj_ = 0; pj_ < pw_; pj_++) pp_[pk_ * \(p.tile) + pj_] \(p.scaleDivides ? "/=" : "*=") ps_;"
                    )
                    close()
                }
            }
            close()
            w.dedent()
        }
    }

    /// A GPU kernel: one CUDA block per grid instance, the grid variables from the block index,
    /// the local blocks in shared memory.
    private mutating func emitGPUFunction(_ params: String, _ gpu: GPUSpellings) {
        let mapping = schedule.launch!
        if mapping.usesGlobalScratch {
            w.line(
                "/* launch: \(mapping.blocks) block(s) x \(mapping.threads) threads; blocks in global scratch, "
                    + "\(mapping.blockFloats) floats per block */")
        } else {
            w.line(
                "/* launch: \(mapping.blocks) block(s) x \(mapping.threads) threads, \(mapping.sharedBytes) bytes of "
                    + "dynamic shared memory */")
        }
        let qualifier = dialect.fill(gpu.kernelQualifier, [("THREADS", "\(mapping.threads)")])
        var allParams = params == "void" ? "" : params
        if mapping.usesGlobalScratch {
            allParams += (allParams.isEmpty ? "" : ", ") + "float *\(dialect.restrictQualifier) blk_scratch"
        }
        open("\(qualifier) \(names.kernel(index))(\(allParams.isEmpty ? "void" : allParams))")
        for g in mapping.gridIndices {
            var e = g.divisor == 1 ? "(long)\(gpu.blockIndex)" : "((long)\(gpu.blockIndex) / \(g.divisor))"
            if let m = g.modulus { e = "\(e) % \(m)" }
            w.line("const \(dialect.indexType) \(names.index(g.variable)) = \(e);")
        }
        w.line(BarrierPlan.summary)
        declareBuffers()
        emitBody(kernel.body, carried: [])
        close()
        let (text, plan) = BarrierPlan.resolve(w.text, barrier: gpu.barrier)
        w.replaceText(text)
        barriers = plan
    }

    /// Writes a candidate barrier of the block's threads (GPU dialects only): `BarrierPlan` keeps it where a shared
    /// access of one thread must be ordered before another thread's.
    mutating func barrier() {
        if dialect.gpu != nil { w.line(BarrierPlan.candidate) }
    }

    /// The barriers of the GPU kernel written (after `emitFunction`): placed and kept.
    var barriers = BarrierPlan()

    /// Opens a brace scope: `header {` and one more indentation level.
    mutating func open(_ header: String) {
        w.line(header.isEmpty ? "{" : header + " {")
        w.indent()
    }

    /// Closes the innermost brace scope.
    mutating func close() {
        w.dedent()
        w.line("}")
    }

    private var usesArena: Bool { plan.totalBytes > dialect.stackLimitBytes }

    private mutating func declareBuffers() {
        guard !plan.capacities.isEmpty else { return }
        if let gpu = dialect.gpu {
            let mapping = schedule.launch!
            if mapping.usesGlobalScratch {
                w.line("float *blk_smem = blk_scratch + (long)\(gpu.blockIndex) * \(mapping.blockFloats);")
            } else {
                w.line(gpu.sharedArena)
            }
            var offset = 0
            for (k, c) in plan.capacities.enumerated() {
                w.line("float *\(dialect.restrictQualifier) B\(k) = blk_smem + \(offset);")
                offset += c
            }
            return
        }
        let aligned = dialect.fill(dialect.alignedArraySuffix, [("BYTES", "\(dialect.alignmentBytes)")])
        if usesArena {
            let bytes = "(size_t)\(plan.totalBytes)"
            w.line("/* \(plan.totalBytes) bytes of blocks: one allocation per thread, not the stack */")
            w.line("float *blk_arena = \(dialect.fill(dialect.allocateScratch, [("BYTES", bytes)]));")
            var offset = 0
            for (k, c) in plan.capacities.enumerated() {
                w.line("float *\(dialect.restrictQualifier) B\(k) = blk_arena + \(offset);")
                offset += c
            }
        } else {
            for (k, c) in plan.capacities.enumerated() { w.line("float B\(k)[\(c)] \(aligned);") }
        }
    }

    private mutating func releaseBuffers() {
        if usesArena && !plan.capacities.isEmpty { w.line(dialect.fill(dialect.free, [("PTR", "blk_arena")]) + ";") }
    }

    // MARK: Values

    /// The C pointer expression of a block value's base.
    func pointer(_ v: ValueID) -> String {
        switch analysis.layouts[v]!.base {
        case .scalar(let o): return "(&s\(o.number))"
        case .buffer(let o), .global(let o): return "v\(o.number)"
        }
    }

    /// The C expression of element `idx` (one index expression per axis) of a value.
    func element(_ v: ValueID, _ idx: [String]) -> String {
        let l = analysis.layouts[v]!
        if case .scalar(let o) = l.base, l.strides.allSatisfy({ $0 == 0 }) { return "s\(o.number)" }
        var terms: [String] = []
        for (k, s) in l.strides.enumerated() where s != 0 && k < idx.count {
            terms.append(s == 1 ? idx[k] : "\(idx[k]) * \(s)")
        }
        return pointer(v) + "[" + (terms.isEmpty ? "0" : terms.joined(separator: " + ")) + "]"
    }

    /// Records a value's extents: constants where static, else variables declared from `exprs`.
    mutating func defineExtents(_ v: ValueID, _ exprs: [String], mutable: Bool = false) {
        let l = analysis.layouts[v]!
        var out: [String] = []
        for (k, e) in exprs.enumerated() {
            // In a row-restricted iteration an aligned value's rows are those computed, from its
            // operands' extents (never the static block's).
            let rowsComputed = k == 0 && (rowWindow?.restriction.aligned.contains(v) ?? false)
            if !rowsComputed, k < l.staticExtents.count, let s = l.staticExtents[k] {
                out.append("\(s)")
            } else if Int(e) != nil && !mutable {
                out.append(e)
            } else {
                let name = "e\(v.number)_\(k)"
                w.line("\(mutable ? "" : "const ")\(dialect.indexType) \(name) = \(e);")
                // A variable a yield updates stands for itself only.
                extentExpressions[name] = mutable ? name : canonicalExtent(e)
                out.append(name)
            }
        }
        extents[v] = out
    }

    /// The expression an extent stands for: a constant variable's declared expression, followed
    /// through the variables it names.
    func canonicalExtent(_ e: String) -> String {
        var e = e
        while let d = extentExpressions[e], d != e { e = d }
        return e
    }

    /// `min` of two extent expressions, folded when both are constants.
    func minExtent(_ a: String, _ b: String) -> String {
        if let x = Int(a), let y = Int(b) { return "\(Swift.min(x, y))" }
        if a == b { return a }
        return "blk_imin(\(a), \(b))"
    }

    /// A C float literal.
    static func float(_ x: Float) -> String {
        if x.isNaN { return "NAN" }
        if x == .infinity { return "INFINITY" }
        if x == -.infinity { return "(-INFINITY)" }
        let s = "\(x)"
        return (x < 0 ? "(" : "") + s + (s.contains(".") || s.contains("e") ? "f" : ".0f") + (x < 0 ? ")" : "")
    }

    /// An index expression in C.
    func index(_ e: IndexExpr) -> String {
        switch e {
        case .constant(let c): return c < 0 ? "(\(c))" : "\(c)"
        case .variable(let v): return names.index(v)
        case .add(let a, let b):
            if case .constant(let c) = b, c < 0 { return "(\(index(a)) - \(-c))" }
            return "(\(index(a)) + \(index(b)))"
        case .mul(let a, let c): return "\(index(a)) * \(c < 0 ? "(\(c))" : "\(c)")"
        case .floorDiv(let a, let c):
            if c > 0 && IndexRange.of(a, ranges).lower >= 0 { return "(\(index(a)) / \(c))" }
            return "blk_floordiv(\(index(a)), \(c))"
        case .min(let a, let b): return "blk_imin(\(index(a)), \(index(b)))"
        case .max(let a, let b): return "blk_imax(\(index(a)), \(index(b)))"
        }
    }

    /// The loop nest over a block's valid elements: calls `body` with the index names inside
    /// the innermost loop (vectorised with the dialect's simd pragma).
    mutating func forEach(_ bounds: [String], _ body: (inout KernelEmitter, [String]) -> Void) {
        if let gpu = dialect.gpu {
            cooperativeForEach(bounds, gpu, body)
            return
        }
        let counters = Array(["r_", "c_"].prefix(bounds.count))
        for (k, v) in counters.enumerated() {
            if k == bounds.count - 1 { w.flushLeft(dialect.simdLoop) }
            open("for (\(dialect.indexType) \(v) = 0; \(v) < \(bounds[k]); \(v)++)")
        }
        body(&self, counters)
        for _ in counters { close() }
    }

    /// `forEach` on a GPU: the block's threads stride over the flattened elements.
    private mutating func cooperativeForEach(
        _ bounds: [String], _ gpu: GPUSpellings, _ body: (inout KernelEmitter, [String]) -> Void
    ) {
        let it = dialect.indexType
        if bounds.count == 2 {
            let count =
                Int(bounds[0]).flatMap { a in Int(bounds[1]).map { "\(a * $0)" } }
                ?? "\(bounds[0]) * \(bounds[1])"
            open(gpu.cooperativeLoop(count, indexType: it))
            w.line("const \(it) r_ = f_ / \(bounds[1]), c_ = f_ % \(bounds[1]);")
            body(&self, ["r_", "c_"])
        } else {
            open(gpu.cooperativeLoop(bounds.first ?? "1", indexType: it))
            w.line("const \(it) r_ = f_;")
            body(&self, Array(["r_"].prefix(bounds.count)))
        }
        close()
    }

    /// The text of an instruction for a comment.
    static func describe(_ inst: Instruction, _ program: Program) -> String {
        let results = inst.results.map(\.id.description).joined(separator: ", ")
        let lhs = results.isEmpty ? "" : results + " = "
        func access(_ t: TensorID, _ a: [AxisAccess]) -> String {
            program[t].name + "[" + a.map(\.description).joined(separator: ", ") + "]"
        }
        switch inst.op {
        case .load(let t, let a): return lhs + "load " + access(t, a)
        case .store(let v, let t, let a): return "store \(v) -> " + access(t, a)
        case .fill(let c): return lhs + "fill \(formatFloat(c))"
        case .index(let e, let axis): return lhs + "index \(e)" + (axis.map { " axis \($0)" } ?? "")
        case .unary(let o, let a): return lhs + "\(o.rawValue) \(a)"
        case .binary(let o, let a, let b): return lhs + "\(o.rawValue) \(a), \(b)"
        case .select(let c, let a, let b): return lhs + "select \(c), \(a), \(b)"
        case .gather(let t, let a, let index, let axis):
            var items = a.map(\.description)
            items.insert(index.description, at: Swift.max(0, Swift.min(axis, items.count)))
            return lhs + "gather " + program[t].name + "[" + items.joined(separator: ", ") + "]"
        case .broadcast(let a, let axis): return lhs + "broadcast \(a) axis \(axis)"
        case .concat(let a, let b, let axis): return lhs + "concat \(a), \(b) axis \(axis)"
        case .reduce(let o, let a, let axis): return lhs + "reduce_\(o.rawValue) \(a) axis \(axis)"
        case .scan(let o, let a, let axis, let reverse, let exclusive):
            return lhs + "scan_\(o.rawValue) \(a) axis \(axis)" + (reverse ? " reverse" : "")
                + (exclusive ? " exclusive" : "")
        case .dot(let a, let b, let ta, let tb, let precision):
            return lhs + "dot \(a), \(b)" + (ta ? " transpose_a" : "") + (tb ? " transpose_b" : "")
                + (precision == .f32 ? "" : " \(precision)")
        case .transpose(let a): return lhs + "transpose \(a)"
        case .mask(let a, let r, let c, let p, let fill):
            return lhs + "mask \(a) at (\(r), \(c)) if \(p) else \(formatFloat(fill))"
        case .loop(let l):
            let iter = zip(l.carried, l.initial).map { "\($0.id) = \($1)" }.joined(separator: ", ")
            return lhs + "for \(l.variable) in \(l.lower) ..< \(l.upper) iter(\(iter))"
        case .yield(let vs): return "yield " + vs.map(\.description).joined(separator: ", ")
        }
    }
}
