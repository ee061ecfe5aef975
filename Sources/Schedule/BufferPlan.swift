import BlockIR

/// Which thread-private buffer holds each block value of a kernel.
///
/// Every value that owns storage gets a *virtual buffer*; an elementwise op (a `select` too) whose operand dies
/// at it writes into the operand's virtual buffer (in place), a loop's carried value takes over
/// its initial value's buffer when that dies at the loop, and loop results share their carried
/// value's buffer. Virtual buffers are then packed into physical ones by a linear scan over
/// their live ranges (program points; a value used inside a loop stays live to the loop's end).
package struct BufferPlan {
    /// The physical buffer of each buffer-owning value.
    package var bufferOf: [ValueID: Int] = [:]
    /// The scratch buffer of each dot whose right operand is packed.
    package var packBufferOf: [ValueID: Int] = [:]
    /// The staging buffer of a carried value whose yielded value lives in another carried
    /// value's buffer.
    package var stagingOf: [ValueID: Int] = [:]
    /// Result values written in place over an operand.
    package var inPlace: Set<ValueID> = []
    /// The capacity of each physical buffer, in floats (a multiple of 16).
    package var capacities: [Int] = []

    /// The total bytes of all physical buffers.
    package var totalBytes: Int { capacities.reduce(0, +) * 4 }

    private struct Virtual {
        var start: Int
        var end: Int
        var floats: Int
    }

    private let analysis: KernelAnalysis
    private var loopEnds: [Int] = []
    private var lastUse: [ValueID: Int] = [:]
    private var defDepth: [ValueID: Int] = [:]
    private var virtuals: [Virtual] = []
    private var virtualOf: [ValueID: Int] = [:]
    private var counter = 0
    private var loopOrdinal = 0

    /// The dots whose right operand is read from a copy packed once per call (`KernelSchedule`'s
    /// prepacks, f32): they pack nothing themselves, so they get no scratch buffer.
    private let packedOnce: Set<ValueID>

    /// Plans the buffers of an analysed kernel; `packedOnce` lists the f32 dots whose right operand
    /// is packed once per call (no scratch buffer of their own).
    package init(_ analysis: KernelAnalysis, packedOnce: Set<ValueID> = []) {
        self.analysis = analysis
        self.packedOnce = packedOnce
        numberLoops(analysis.kernel.body)
        counter = 0
        loopOrdinal = 0
        liveness(analysis.kernel.body, stack: [])
        counter = 0
        loopOrdinal = 0
        scan(analysis.kernel.body, carried: [])
        assignPhysical()
    }

    // MARK: Program points

    private mutating func numberLoops(_ body: [Instruction]) {
        for inst in body {
            counter += 1
            if case .loop(let loop) = inst.op {
                let ordinal = loopEnds.count
                loopEnds.append(0)
                numberLoops(loop.body)
                counter += 1
                loopEnds[ordinal] = counter
            }
        }
    }

    /// The values an instruction reads at its point (a fused dot's operands are read by its add).
    private func reads(_ inst: Instruction) -> [ValueID] {
        if let r = inst.result, analysis.fusedDots.contains(r.id) { return [] }
        var out = inst.op.operands
        if let r = inst.result, let d = analysis.fusedDotOfAdd[r.id],
            case .dot(let a, let b, _, _, _)? = analysis.dots[d]
        {
            out.removeAll { $0 == d }
            out += [a, b]
        }
        return out
    }

    private mutating func use(_ v: ValueID, at point: Int, stack: [Int]) {
        var p = point
        let depth = defDepth[v] ?? 0
        if depth < stack.count { p = Swift.max(p, loopEnds[stack[depth]]) }
        lastUse[v] = Swift.max(lastUse[v] ?? p, p)
    }

    private mutating func define(_ v: ValueID, at point: Int, depth: Int) {
        defDepth[v] = depth
        lastUse[v] = Swift.max(lastUse[v] ?? point, point)
    }

    private mutating func liveness(_ body: [Instruction], stack: [Int]) {
        for inst in body {
            counter += 1
            let p = counter
            for v in reads(inst) { use(v, at: p, stack: stack) }
            if case .loop(let loop) = inst.op {
                let ordinal = loopOrdinal
                loopOrdinal += 1
                for c in loop.carried { define(c.id, at: p, depth: stack.count + 1) }
                liveness(loop.body, stack: stack + [ordinal])
                counter += 1
                for r in inst.results { define(r.id, at: counter, depth: stack.count) }
            } else {
                for r in inst.results { define(r.id, at: p, depth: stack.count) }
            }
        }
    }

    // MARK: Virtual buffers

    private func owner(_ v: ValueID) -> ValueID? {
        guard let l = analysis.layouts[v], case .buffer(let o) = l.base else { return nil }
        return o
    }

    private mutating func newVirtual(_ v: ValueID, start: Int, floats: Int) {
        virtualOf[v] = virtuals.count
        virtuals.append(Virtual(start: start, end: Swift.max(start, lastUse[v] ?? start), floats: floats))
    }

    /// Extends the live range of the buffer a value reads.
    private mutating func extend(_ v: ValueID) {
        guard let o = owner(v), let vb = virtualOf[o] else { return }
        virtuals[vb].end = Swift.max(virtuals[vb].end, lastUse[v] ?? 0)
    }

    /// The floats a value's own buffer holds: its elements, but one per position along an axis
    /// its layout repeats (stride 0).
    private func floats(_ v: ValueID) -> Int {
        if let l = analysis.layouts[v], case .buffer(let o) = l.base, o == v, l.strides.contains(0) {
            return zip(l.shape, l.strides).reduce(1) { $0 * ($1.1 == 0 ? 1 : $1.0) }
        }
        return analysis.types[v]?.elementCount ?? 0
    }

    /// Whether `result` may be written over `candidate` at point `p`, given the other values
    /// read there.
    private func canReuse(_ candidate: ValueID, for result: ValueID, at p: Int, others: [ValueID]) -> Bool {
        guard let lc = analysis.layouts[candidate], lc.ownsRowMajorBuffer, let o = owner(candidate),
            let vb = virtualOf[o], virtuals[vb].end == p,
            let lr = analysis.layouts[result], lr.ownsRowMajorBuffer, lr.shape == lc.shape
        else { return false }
        for x in others where x != candidate {
            if let ox = owner(x), virtualOf[ox] == vb { return false }
        }
        return true
    }

    private mutating func scan(_ body: [Instruction], carried: [Value]) {
        for inst in body {
            counter += 1
            let p = counter
            let read = reads(inst)
            switch inst.op {
            case .loop(let loop):
                for (k, c) in loop.carried.enumerated() where !c.type.shape.isEmpty {
                    let x = loop.initial[k]
                    let duplicate = loop.initial.enumerated().contains { $0.offset != k && $0.element == x }
                    if !duplicate, canReuse(x, for: c.id, at: p, others: []), let o = owner(x),
                        let vb = virtualOf[o]
                    {
                        virtualOf[c.id] = vb
                        inPlace.insert(c.id)
                    } else {
                        newVirtual(c.id, start: p, floats: floats(c.id))
                    }
                    extend(c.id)
                }
                scan(loop.body, carried: loop.carried)
                counter += 1
                for (k, c) in loop.carried.enumerated() where !c.type.shape.isEmpty {
                    if let vb = virtualOf[c.id] { virtuals[vb].end = Swift.max(virtuals[vb].end, counter) }
                    if k < inst.results.count { extend(inst.results[k].id) }
                }
            case .yield(let ys):
                planYield(ys, carried: carried, at: p)
            case .unary, .binary, .mask, .select:
                guard let r = inst.result, owner(r.id) == r.id else { break }
                let candidates: [ValueID]
                switch inst.op {
                case .unary(_, let a), .mask(let a, _, _, _, _): candidates = [a]
                case .select(_, let a, let b): candidates = [a, b]
                case .binary(_, let a, let b):
                    candidates = analysis.fusedDotOfAdd[r.id].map { d in [a, b].filter { $0 != d } } ?? [a, b]
                case .load, .store, .fill, .index, .gather, .broadcast, .reduce, .scan, .dot, .transpose,
                    .concat, .loop,
                    .yield:
                    candidates = []
                }
                if let c = candidates.first(where: { canReuse($0, for: r.id, at: p, others: read) }),
                    let o = owner(c), let vb = virtualOf[o]
                {
                    virtualOf[r.id] = vb
                    inPlace.insert(r.id)
                } else {
                    newVirtual(r.id, start: p, floats: floats(r.id))
                }
                extend(r.id)
                if let d = analysis.fusedDotOfAdd[r.id], analysis.needsPacking(d), !packedOnce.contains(d) {
                    packBufferOf[d] = scratch(at: p, floats: analysis.packedCount(d))
                }
            case .dot:
                guard let r = inst.result, !analysis.fusedDots.contains(r.id) else { break }
                newVirtual(r.id, start: p, floats: floats(r.id))
                if analysis.needsPacking(r.id), !packedOnce.contains(r.id) {
                    packBufferOf[r.id] = scratch(at: p, floats: analysis.packedCount(r.id))
                }
            case .load, .reduce, .scan, .index(_, axis: .some), .concat, .gather:
                guard let r = inst.result, owner(r.id) == r.id else { break }
                newVirtual(r.id, start: p, floats: floats(r.id))
            case .store, .fill, .index, .broadcast, .transpose:
                for r in inst.results { extend(r.id) }
            }
        }
    }

    /// Whether a yielded value already sits in its carried value's buffer, row-major.
    package func yieldsInPlace(_ y: ValueID, into c: ValueID) -> Bool {
        guard let l = analysis.layouts[y], l.ownsRowMajorBuffer, let o = owner(y) else { return false }
        return virtualOf[o] != nil && virtualOf[o] == virtualOf[c]
    }

    /// Stages every yielded value that sits in some carried value's buffer and must move: the
    /// copies into the carried buffers could otherwise overwrite it first (a swap).
    private mutating func planYield(_ ys: [ValueID], carried: [Value], at p: Int) {
        let carriedVirtuals = Set(carried.compactMap { virtualOf[$0.id] })
        for (k, y) in ys.enumerated() where k < carried.count && !carried[k].type.shape.isEmpty {
            let c = carried[k].id
            guard !yieldsInPlace(y, into: c), let o = owner(y), let vb = virtualOf[o], carriedVirtuals.contains(vb)
            else { continue }
            stagingOf[c] = scratch(at: p, floats: floats(c))
        }
    }

    /// A scratch buffer live only at one point.
    private mutating func scratch(at p: Int, floats: Int) -> Int {
        let index = virtuals.count
        virtuals.append(Virtual(start: p, end: p, floats: floats))
        return -1 - index
    }

    // MARK: Physical buffers

    private mutating func assignPhysical() {
        let order = virtuals.indices.sorted { (virtuals[$0].start, $0) < (virtuals[$1].start, $1) }
        var physicalOf = Array(repeating: -1, count: virtuals.count)
        var busyUntil: [Int] = []
        for vb in order {
            let v = virtuals[vb]
            let need = (v.floats + 15) / 16 * 16
            let free = busyUntil.indices.filter { busyUntil[$0] < v.start }
            let fitting = free.filter { capacities[$0] >= need }.min { (capacities[$0], $0) < (capacities[$1], $1) }
            let chosen: Int
            if let f = fitting {
                chosen = f
            } else if let f = free.max(by: { (capacities[$0], -$0) < (capacities[$1], -$1) }) {
                chosen = f
                capacities[f] = need
            } else {
                chosen = capacities.count
                capacities.append(need)
                busyUntil.append(0)
            }
            busyUntil[chosen] = v.end
            physicalOf[vb] = chosen
        }
        for (v, vb) in virtualOf { bufferOf[v] = physicalOf[vb] }
        for (d, s) in packBufferOf { packBufferOf[d] = physicalOf[-1 - s] }
        for (c, s) in stagingOf { stagingOf[c] = physicalOf[-1 - s] }
    }
}
