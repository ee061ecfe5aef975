import BlockIR
import Schedule

extension FusionRule {
    /// R16 — skipping the blocks a mask given as data removes entirely.
    ///
    /// Precondition: a store-free top-level loop `for k in lo ..< hi` without a guard holds a
    /// `select c, x, y` whose condition's backward slice (the instructions computing `c`, before
    /// the loop or in its body) holds only loads of tensors the kernel does not store, fills,
    /// positions and elementwise, broadcast, reduction or mask ops — no carried value, loop
    /// result or gather — reads `k`, and besides `k` only grid variables, every access inside its
    /// tensor for `k` in `0 ..< max hi`; and, were `c` 0 everywhere, every carried value would
    /// come out of the iteration unchanged (R9's abstract evaluation: `select(0, s, -inf) = -inf`,
    /// then `max(m, -inf) = m`, `exp(-inf) = 0`, …).
    ///
    /// ```
    /// kernel kc grid(b < 8, i < 16) {
    ///   for k in 0 ..< 16 iter(…) { %c = load M[0, i * 64 +: 64, k * 64 +: 64]; %s = select %c, %x, %f … }
    /// }
    /// ```
    /// →
    /// ```
    /// tensor M_any: bool[16,16] @global temp
    /// tensor M_all: bool[16,16] @global temp
    /// tensor M_range: i32[16,3] @global temp
    /// tensor M_next: i32[16,16] @global temp
    /// kernel kc_M_summary grid(i < 16) {
    ///   %n, %f, %l, %c = for k in 0 ..< 16 iter(%n0 = 16, %f0 = 16, %l0 = 0, %c0 = 0) {   // block 15 - k
    ///     %0 = load M[0, i * 64 +: 64, (15 - k) * 64 +: 64]; %any = reduce_max (reduce_max %0)
    ///     store %any -> M_any[i, 15 - k]; store not(reduce_max(reduce_max(%0 == 0))) -> M_all[i, 15 - k]
    ///     store %n0 -> M_next[i, 15 - k]
    ///     yield %any ? 15 - k : %n0, min(%f0, %any ? 15 - k : 16), max(%l0, %any ? 16 - k : 0), %c0 + %any
    ///   }
    ///   store %f -> M_range[i, 0]; store %l -> M_range[i, 1]; store 2 * %c <= %l - %f -> M_range[i, 2]
    /// }
    /// kernel kc grid(b < 8, i < 16) {
    ///   for k in 0 ..< 16 within M_range[i, 0] ..< M_range[i, 1] next M_next[i, k] when M_range[i, 2]
    ///       if M_any[i, k] full M_all[i, k] true(%c) iter(…) { … }
    /// }
    /// ```
    /// One summary kernel, one pass over each row's blocks from the last to the first: the any
    /// bit the iteration computes is the one it carries into the range and the links (no round
    /// trip through global memory). Its loop runs over the consumer loop's own bounds when they
    /// name only the summary's grid variables (R9's band of a sliding window or of
    /// `same_segment`'s `max_len`), else over `0 ..< max hi`; the bits it does not write are
    /// never read.
    ///
    /// Where `c` is one element of a `bool` tensor broadcast over the block (a block mask read
    /// at the block's point, `uniformElement`), that element is the any and the all bit: the
    /// guard and the full element read it, no bits are computed, and the summary's pass reads
    /// the element instead (`kc_B_range`).
    ///
    /// Exact: the summary runs the slice at the same grid point and block on the same inputs,
    /// so `M_any[i, k]` is 0 exactly when the iteration's `c` is 0 at every valid element
    /// (`reduce_max` ignores elements past the extent, as the select does; a condition that is
    /// not already 0 or 1 is compared with 0 first), and such an iteration changes no carried
    /// value; the iterations before the first block whose bit is 1 and after the last are such
    /// iterations, so `within` skips them without reading their bits, and so are those between a
    /// block and its link (`M_next[i, k]`: the next block whose bit is 1), which the loop jumps
    /// over where the row's kept blocks fill at most half its range (`M_range[i, 2]`, measured
    /// at run time). `M_all[i, k]` is 1 exactly
    /// when `c` is non-zero at every valid element, so there `select c, x, f` is `x` over the
    /// extent of its other operands (`Loop.bodyWhereTrue`); the all bit is only recorded when
    /// some select on `c` has a block operand and the condition's block is proved to cover the
    /// selects' operands at every iteration (`conditionCoversOperands`). A mask broadcast over
    /// heads is read once per (row block, key block), never the scores. The rule adds a kernel,
    /// so the driver runs it after every other rule is stable (Docs/Fusion.md).
    public static let dataMaskSkipping = FusionRule(
        id: "R16", name: "data-mask-skipping",
        summary:
            "skip the loop iterations whose block of a select's condition is all false and the element test where it is all true, by a block summary kernel"
    ) { program, _ in
        for (index, kernel) in program.kernels.enumerated() {
            guard
                let found = guardLoop(kernel.body, kernel: kernel, program: program, constants: kernel.fillConstants())
            else {
                continue
            }
            return summarize(program, kernelIndex: index, found)
        }
        return nil
    }

    /// What R16 found: the loop (at this position of the kernel's body), the select's condition
    /// and the instructions that compute it (its backward slice, in program order: those before
    /// the loop, then those in its body), the grid variables they name and the range of `k`.
    struct DataMaskMatch {
        var position: Int
        var loop: Loop
        var condition: ValueID
        /// The slice's instructions before the loop (they read no counter).
        var prelude: [Instruction]
        /// The slice's instructions in the loop's body.
        var slice: [Instruction]
        var variables: [GridAxis]
        var trips: Int
        /// Where the condition is one element of a `bool` tensor broadcast over the block (a
        /// block mask read at the block's point: every element of the block the same), that
        /// element: it is the block's any bit and its all bit at once.
        var element: LoopCondition?
    }

    private static func guardLoop(
        _ body: [Instruction], kernel: Kernel, program: Program, constants: [ValueID: Float]
    ) -> DataMaskMatch? {
        let stored = Set(kernel.body.storedTensors.map(program.storage(of:)))
        for (position, inst) in body.enumerated() {
            guard case .loop(let loop) = inst.op, loop.condition == nil, loop.body.isStoreFree else { continue }
            var ranges: [IndexVar: IndexRange] = [:]
            for axis in kernel.grid { ranges[axis.variable] = IndexRange(lower: 0, upper: axis.extent - 1) }
            let lower = IndexRange.of(loop.lower, ranges)
            let upper = IndexRange.of(loop.upper, ranges)
            guard lower.lower >= 0, upper.upper >= 1, upper.upper <= 1 << 20 else { continue }
            ranges[loop.variable] = IndexRange(lower: 0, upper: upper.upper - 1)
            // Where each value the slice may read is defined: before the loop, or in its body.
            var definitions: [ValueID: (instruction: Instruction, order: Int)] = [:]
            let before = Array(body[..<position])
            for (n, b) in body[..<position].enumerated() where b.results.count == 1 {
                definitions[b.results[0].id] = (b, n)
            }
            for (n, b) in loop.body.enumerated() where b.results.count == 1 {
                definitions[b.results[0].id] = (b, position + n)
            }
            for candidate in loop.body {
                guard case .select(let c, _, _) = candidate.op,
                    let slice = conditionSlice(c, definitions, stored: stored, program: program, ranges: ranges),
                    slice.contains(where: { readsVariable($0.op, loop.variable) }),
                    loop.isUnchangedWhenMasked(constants: constants, mask: nil, zeros: [c])
                else { continue }
                let names = Set(slice.flatMap { indexVariables($0.op) })
                return DataMaskMatch(
                    position: position, loop: loop, condition: c,
                    prelude: slice.filter { inst in before.contains { $0 == inst } },
                    slice: slice.filter { inst in !before.contains { $0 == inst } },
                    variables: kernel.grid.filter { names.contains($0.variable) }, trips: upper.upper,
                    element: uniformElement(c, slice, program))
            }
        }
        return nil
    }

    /// The instructions computing `c` (before the loop or in its body), in program order; nil
    /// when it reads a carried value, a loop's result, a gather, or a tensor the kernel stores, or
    /// addresses an element outside a tensor for some `k` in the summary's range.
    private static func conditionSlice(
        _ c: ValueID, _ definitions: [ValueID: (instruction: Instruction, order: Int)], stored: Set<TensorID>,
        program: Program, ranges: [IndexVar: IndexRange]
    ) -> [Instruction]? {
        var chosen: [Int: Instruction] = [:]
        var pending = [c]
        while let v = pending.popLast() {
            guard let (inst, order) = definitions[v] else { return nil }
            guard chosen[order] == nil else { continue }
            switch inst.op {
            case .load(let t, let access):
                guard !stored.contains(program.storage(of: t)), inside(access, program[t].shape, ranges) else {
                    return nil
                }
            case .gather, .loop, .store, .yield: return nil
            case .fill, .index, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .mask:
                break
            }
            chosen[order] = inst
            pending += inst.op.operands
        }
        return chosen.keys.sorted().map { chosen[$0]! }
    }

    /// The element of a `bool` tensor that `c` broadcasts over its block, when `c` is such a
    /// broadcast: a chain of `broadcast`s from a rank-0 load at point indices (what lowering's
    /// `block_broadcast` gives when the block lies inside one block of the mask). Every element of
    /// the block is then that element's 0 or 1, so it is the block's any and all bit.
    static func uniformElement(_ c: ValueID, _ slice: [Instruction], _ program: Program) -> LoopCondition? {
        var v = c
        while let inst = slice.first(where: { $0.defines(v) }) {
            switch inst.op {
            case .broadcast(let x, _): v = x
            case .load(let t, let access):
                guard program[t].elementType == .bool, inst.result?.type.rank == 0 else { return nil }
                var indices: [IndexExpr] = []
                for a in access {
                    guard case .point(let e) = a else { return nil }
                    indices.append(e)
                }
                return LoopCondition(tensor: t, indices: indices)
            default: return nil
            }
        }
        return nil
    }

    /// The index variables an op's index expressions read.
    private static func indexVariables(_ op: Op) -> [IndexVar] {
        switch op {
        case .load(_, let access): return access.flatMap(\.variables)
        case .index(let e, _): return e.variables
        case .mask(_, let r, let c, _, _): return r.variables + c.variables
        case .store, .fill, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .gather,
            .loop, .yield:
            return []
        }
    }

    private static func readsVariable(_ op: Op, _ v: IndexVar) -> Bool { indexVariables(op).contains(v) }

    /// Whether every element the access addresses lies inside the tensor over the ranges.
    private static func inside(_ access: [AxisAccess], _ shape: [Int], _ ranges: [IndexVar: IndexRange]) -> Bool {
        for (axis, a) in access.enumerated() {
            switch a {
            case .point(let e):
                let r = IndexRange.of(e, ranges)
                guard r.lower >= 0, r.upper < shape[axis] else { return false }
            case .slice(let start, _):
                let r = IndexRange.of(start, ranges)
                guard r.lower >= 0, r.upper < shape[axis] else { return false }
            }
        }
        return true
    }

    /// The program with the summary tensor, its kernel before the consumer, and the guard.
    private static func summarize(_ program: Program, kernelIndex: Int, _ m: DataMaskMatch) -> RuleApplication {
        var out = program
        let consumer = program.kernels[kernelIndex]
        let taken = Set(program.tensors.map(\.name))
        // Named after the tensor the condition reads in the loop (the mask), else the kernel.
        let read = m.slice.lazy.compactMap { inst -> TensorID? in
            if case .load(let t, let a) = inst.op, a.contains(where: { $0.variables.contains(m.loop.variable) }) {
                return t
            }
            return nil
        }.first
        let base = read.map { program[$0].name } ?? consumer.name
        var names = taken
        func fresh(_ stem: String) -> String {
            var name = stem
            var n = 1
            while names.contains(name) {
                n += 1
                name = stem + "\(n)"
            }
            names.insert(name)
            return name
        }
        let summaryShape = m.variables.map(\.extent) + [m.trips]
        // The guard's tensor: the mask's own element where the condition is one (no bits to
        // compute), else a new any-bit tensor the summary fills.
        let name = m.element == nil ? fresh(base + "_any") : nil
        let summary = TensorID(out.tensors.count)
        if let name {
            out.tensors.append(GlobalTensor(name: name, shape: summaryShape, role: .temp, elementType: .bool))
        }
        // The loop with a guard, and, where its body has a select on the condition whose result
        // takes its extent from a block operand, the full bit that lets it skip the element test.
        let indices = (m.variables.map(\.variable) + [m.loop.variable]).map { IndexExpr.variable($0) }
        let anyElement = m.element ?? LoopCondition(tensor: summary, indices: indices)
        var loop = m.loop
        loop.condition = anyElement
        var allName: String?
        var trial = loop
        trial.full = LoopFullBlocks(element: anyElement, trueValues: [m.condition])
        let chosen = trial.bodyWhereTrue().chosen
        if !chosen.isEmpty,
            conditionCoversOperands(
                chosen, loop: m.loop, before: Array(consumer.body[..<m.position]), program: program)
        {
            if let element = m.element {
                // The element is the all bit too: a block is kept whole or not at all.
                allName = program[element.tensor].name
                loop.full = LoopFullBlocks(element: element, trueValues: [m.condition])
            } else {
                let n = fresh(base + "_all")
                allName = n
                let all = TensorID(out.tensors.count)
                out.tensors.append(GlobalTensor(name: n, shape: summaryShape, role: .temp, elementType: .bool))
                loop.full = LoopFullBlocks(
                    element: LoopCondition(tensor: all, indices: indices), trueValues: [m.condition])
            }
        }
        // Each row's first kept block, the end of its last, and whether to follow the links
        // (i32 [rows…, 3]): the loop runs only between the first two (`within`), the guard still
        // skipping the others inside; and the links (i32 [rows…, K]: after block k, the next kept
        // block), followed where the third is set (`next … when …`).
        let rangeName = fresh(base + "_range")
        let range = TensorID(out.tensors.count)
        out.tensors.append(
            GlobalTensor(name: rangeName, shape: m.variables.map(\.extent) + [3], role: .temp, elementType: .i32))
        let nextName = fresh(base + "_next")
        let next = TensorID(out.tensors.count)
        out.tensors.append(GlobalTensor(name: nextName, shape: summaryShape, role: .temp, elementType: .i32))
        let rows = m.variables.map { IndexExpr.variable($0.variable) }
        loop.bounds = LoopBounds(
            lower: LoopCondition(tensor: range, indices: rows + [.constant(0)]),
            upper: LoopCondition(tensor: range, indices: rows + [.constant(1)]))
        loop.links = LoopLinks(
            next: LoopCondition(tensor: next, indices: indices),
            mode: LoopCondition(tensor: range, indices: rows + [.constant(2)]))
        let scalar = BlockType([], .reg)
        let kernelNames = Set(program.kernels.map(\.name))
        func kernelName(_ stem: String) -> String {
            // A computed condition names its tables after the consumer: no second copy of it.
            var n = stem.hasPrefix(consumer.name + "_") ? stem : consumer.name + "_" + stem
            while kernelNames.contains(n) { n += "_" }
            return n
        }
        // The blocks the consumer's loop can visit: its own bounds when they name only the
        // summary's grid variables (a band of a sliding window or of a bounded segment length:
        // the summary then does work proportional to the band, not to every pair of blocks),
        // else every block. The bits outside are never written and never read.
        let named = Set(m.variables.map(\.variable))
        let bounded = (m.loop.lower.variables + m.loop.upper.variables).allSatisfy { named.contains($0) }
        let lowest = bounded ? m.loop.lower : .constant(0)
        let highest = bounded ? m.loop.upper : .constant(m.trips)
        // One kernel: one instance per row of blocks, one pass over the blocks the loop can read,
        // from the last to the first. Where the condition is not the mask's own element, each
        // iteration first recomputes the condition's block as the consumer computes it (what it
        // computes before the loop, before this loop too), reduces it to one element (is any
        // element true? is every one?) and stores the bits; then, from that any bit (the
        // mask's element where it is the bit), it stores block k's link (the next kept block,
        // carried from the iteration before: block k + 1) and carries the first kept block, the
        // end of the last and the number kept. The bits never make a round trip through global
        // memory within the kernel. A row with no kept block gets the empty range K ..< 0. The
        // links are followed where the kept blocks fill at most half the range (a measured
        // density of 1/2 or less: the guard would skip at least as many).
        var b: BodyBuilder
        if m.element == nil {
            let ids = (m.prelude + m.slice).flatMap(\.results).map(\.id.number)
            b = BodyBuilder(firstNumber: (ids.max() ?? 0) + 1)
            b.instructions = m.prelude
        } else {
            b = BodyBuilder()
        }
        let trips = Float(m.trips)
        let none = b.emit(.fill(trips), scalar)
        let zero = b.emit(.fill(0), scalar)
        let one = b.emit(.fill(1), scalar)
        let counter = m.loop.variable
        // Block (lowest + highest − 1 − counter): the loop's range from its last block down.
        let backwards = IndexExpr.add(
            .add(lowest, highest), .add(.constant(-1), .mul(.variable(counter), -1))
        ).simplified()
        let here = [counter: backwards]
        let at = (rows + [backwards]).map { AxisAccess.point($0.simplified()) }
        let ends = b.loop(
            counter, from: lowest, to: highest, carrying: [none, none, zero, zero],
            types: [scalar, scalar, scalar, scalar]
        ) { b, carried in
            let any: ValueID
            if let bit = m.element {
                any = b.emit(
                    .load(bit.tensor, bit.indices.map { .point($0.substituting(here).simplified()) }), scalar)
            } else {
                // The bits of block (lowest + highest − 1 − counter): the slice at that block.
                let slice = m.slice.substitutingIndices(here)
                guard let blockType = slice.last?.results.first?.type else {
                    preconditionFailure("an empty condition slice")
                }
                b.instructions += slice
                var truth = m.condition
                if !producesTruth(slice.last!.op, program) {
                    // A condition is true where it is non-zero (NaN included): make it 0 or 1 first.
                    truth = b.emit(.binary(.ne, truth, zero), blockType)
                }
                // all = not any(not truth): the reductions are maxima only (past the extent
                // ignored; an empty block's maximum is -inf, so its any bit is 0 and it is never full).
                func anyOf(_ x: ValueID, _ b: inout BodyBuilder) -> ValueID {
                    var type = blockType
                    var block = x
                    while !type.shape.isEmpty {
                        type.shape.removeLast()
                        type = BlockType(type.shape, type.shape.isEmpty ? .reg : .local)
                        block = b.emit(.reduce(.max, block, axis: type.shape.count), type)
                    }
                    return block
                }
                any = anyOf(truth, &b)
                b.emit(.store(any, summary, at))
                if let f = loop.full {
                    let anyFalse = anyOf(b.emit(.binary(.eq, truth, zero), blockType), &b)
                    let all = b.emit(.binary(.eq, anyFalse, zero), scalar)
                    b.emit(.store(all, f.element.tensor, at))
                }
            }
            b.emit(.store(carried[0], next, at))
            let k = b.emit(.index(backwards, axis: nil), scalar)
            let after = b.emit(.index(IndexExpr.add(backwards, .constant(1)).simplified(), axis: nil), scalar)
            let nextKept = b.emit(.select(any, k, carried[0]), scalar)
            let first = b.emit(.binary(.min, carried[1], b.emit(.select(any, k, none), scalar)), scalar)
            let last = b.emit(.binary(.max, carried[2], b.emit(.select(any, after, zero), scalar)), scalar)
            let count = b.emit(.binary(.add, carried[3], b.emit(.select(any, one, zero), scalar)), scalar)
            return [nextKept, first, last, count]
        }
        let span = b.emit(.binary(.sub, ends[2], ends[1]), scalar)
        let follow = b.emit(.binary(.le, b.emit(.binary(.add, ends[3], ends[3]), scalar), span), scalar)
        b.emit(.store(ends[1], range, (rows + [.constant(0)]).map { .point($0) }))
        b.emit(.store(ends[2], range, (rows + [.constant(1)]).map { .point($0) }))
        b.emit(.store(follow, range, (rows + [.constant(2)]).map { .point($0) }))
        let linksKernel = kernelName(m.element == nil ? base + "_summary" : rangeName)
        let summaryKernel = Kernel(name: linksKernel, grid: m.variables, body: b.instructions).renumbered()
        var guarded = consumer
        guarded.body[m.position].op = .loop(loop)
        out.kernels[kernelIndex] = guarded
        out.kernels.insert(summaryKernel, at: kernelIndex)
        let links =
            "; where a row's kept blocks fill at most half its range, it follows their compacted list "
            + "(\(nextName), links to the next kept block) instead, chosen per row at run time by \(linksKernel)"
        let what = read.map { "block of \(program[$0].name)" } ?? "condition block"
        if let element = m.element {
            let mask = program[element.tensor].name
            return RuleApplication(
                program: out, place: consumer.name,
                detail:
                    "loop \(m.loop.variable) now runs from the first to the last block of its row whose element of "
                    + "\(mask) is set, skips the others"
                    + (allName == nil ? "" : " and runs the kept ones without the element test")
                    + " (each block lies inside one element of \(mask), its any and all bit: no summary over "
                    + "elements; \(rangeName) computed from \(mask) by \(linksKernel))" + links)
        }
        return RuleApplication(
            program: out, place: consumer.name,
            detail:
                "loop \(m.loop.variable) now runs from the first to the last block of its row whose \(what) is "
                + "not all false, skips the others"
                + (allName == nil ? " " : ", and runs without the element test where it is all true ")
                + "(summary \(([name!] + (allName.map { [$0] } ?? []) + [rangeName, nextName]).joined(separator: ", ")) "
                + "computed by \(linksKernel) in one pass over each row's blocks from the last to the first"
                + (bounded && (m.loop.lower != .constant(0) || m.loop.upper != .constant(m.trips))
                    ? ", over the loop's own bounds" : "")
                + ")" + links
        )
    }

    /// One bound on a block axis's extent: a slice from `start` of a tensor axis of `size`
    /// elements has `clamp(size − start, 0, n)` valid elements.
    private struct Clip: Hashable {
        var start: IndexExpr
        var size: Int
    }

    /// Whether, at every iteration, the condition's block of each chosen select has at least the
    /// valid elements of the select's block operands: then dropping the condition from the select
    /// (the all-bit path, `Loop.bodyWhereTrue`) changes no valid element. Lowered programs always
    /// pass (the mask is broadcastable to what it selects); a hand-written program may not, and
    /// then R16 records no all bit.
    ///
    /// Each block value's extent along an axis is the minimum over the clips of the slices it
    /// comes from (loads; elementwise ops take the minimum of their operands', broadcasts add a
    /// full axis, reductions drop one, dot and transpose move them); fills and positions are
    /// full. The condition covers the operands when, axis by axis, each of its clips is matched by
    /// a clip of the select's block operands with the same start and at most its size: then the
    /// operands' minimum is at most each of the condition's clips, so at most their minimum. A value the analysis cannot follow (a gather, a scan, a loop's result, a carried
    /// value) fails the check.
    private static func conditionCoversOperands(
        _ chosen: Set<ValueID>, loop: Loop, before: [Instruction], program: Program
    ) -> Bool {
        var clips: [ValueID: [Set<Clip>]] = [:]
        for inst in before + loop.body {
            guard let r = inst.result else { continue }
            let rank = r.type.shape.count
            func of(_ v: ValueID) -> [Set<Clip>]? {
                if let c = clips[v] { return c }
                return nil
            }
            // The clips of elementwise operands: a rank-0 operand adds none.
            func merged(_ operands: [ValueID]) -> [Set<Clip>]? {
                var out = Array(repeating: Set<Clip>(), count: rank)
                for v in operands {
                    guard let c = of(v) else { return nil }
                    if c.isEmpty { continue }
                    guard c.count == rank else { return nil }
                    for axis in 0..<rank { out[axis].formUnion(c[axis]) }
                }
                return out
            }
            var result: [Set<Clip>]?
            switch inst.op {
            case .load(let t, let access):
                var axes: [Set<Clip>] = []
                for (axis, a) in access.enumerated() {
                    if case .slice(let start, _) = a { axes.append([Clip(start: start, size: program[t].shape[axis])]) }
                }
                result = axes.count == rank ? axes : nil
            case .fill, .index:
                result = Array(repeating: [], count: rank)
            case .unary(_, let a): result = merged([a])
            case .binary(_, let a, let b): result = merged([a, b])
            case .select(let c, let a, let b): result = merged([c, a, b])
            case .mask(let a, _, _, _, _): result = merged([a])
            case .broadcast(let a, let axis):
                if var c = of(a), axis <= c.count, c.count + 1 == rank {
                    c.insert([], at: axis)
                    result = c
                }
            case .reduce(_, let a, let axis):
                if var c = of(a), axis < c.count, c.count == rank + 1 {
                    c.remove(at: axis)
                    result = c
                }
            case .transpose(let a):
                if let c = of(a), c.count == 2 { result = [c[1], c[0]] }
            case .dot(let a, let b, let ta, let tb, _):
                if let x = of(a), let y = of(b), x.count == 2, y.count == 2 {
                    result = [ta ? x[1] : x[0], tb ? y[0] : y[1]]
                }
            case .scan, .concat, .gather, .loop, .store, .yield:
                result = nil
            }
            if let result { clips[r.id] = result }
        }
        for inst in loop.body {
            guard let r = inst.result, chosen.contains(r.id), case .select(let c, let a, let b) = inst.op else {
                continue
            }
            guard let condition = clips[c] else { return false }
            if condition.isEmpty { continue }  // a rank-0 condition has no extent to lose
            let shape = r.type.shape
            var operands = Array(repeating: Set<Clip>(), count: shape.count)
            for v in [a, b] {
                guard let x = clips[v] else { return false }
                guard !x.isEmpty else { continue }
                guard x.count == shape.count else { return false }
                for axis in 0..<shape.count { operands[axis].formUnion(x[axis]) }
            }
            guard condition.count == shape.count else { return false }
            for axis in 0..<shape.count {
                for clip in condition[axis]
                where !operands[axis].contains(where: { $0.start == clip.start && $0.size <= clip.size }) {
                    return false
                }
            }
        }
        return true
    }

    /// Whether an op's result is 0 or 1 everywhere: a comparison, a logical op, a bool load.
    private static func producesTruth(_ op: Op, _ program: Program) -> Bool {
        switch op {
        case .load(let t, _): return program[t].elementType == .bool
        case .binary(let o, _, _):
            switch o {
            case .lt, .le, .gt, .ge, .eq, .ne, .logicalAnd, .logicalOr: return true
            case .add, .sub, .mul, .div, .max, .min, .pow: return false
            }
        case .store, .fill, .index, .unary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .mask,
            .gather, .loop, .yield:
            return false
        }
    }
}
