extension Verifier {
    /// The peak number of bytes of `local`-tier values live at once in one kernel instance.
    ///
    /// Instructions are numbered in program order (a loop's header, its body, then a point for
    /// its results). A value is live from its definition to its last use; an instruction's
    /// operands and results are live together. Loop-carried values are live through the whole
    /// body, and a value defined outside a loop and used inside it stays live through the loop.
    ///
    /// The storage model is the code generators': a `fill` is a splat and a `broadcast` or
    /// `transpose` a view of its operand (no storage; using the view keeps the operand live); a
    /// `dot` read only by one `add` of the same shape in its body accumulates into that add
    /// (no storage; its operands are read at the add); and an elementwise result may overwrite
    /// an operand of the same size that dies at it, or the carried value it is yielded for
    /// when that is last read there.
    public static func localPeakBytes(_ kernel: Kernel) -> Int {
        let liveness = Liveness(kernel)
        return liveness.peak().bytes
    }

    /// The capacity error for a kernel whose local-tier peak exceeds the target's capacity.
    static func capacityError(_ kernel: Kernel, target: TargetDescription) -> String? {
        let liveness = Liveness(kernel)
        let (peak, position) = liveness.peak()
        guard peak > target.localCapacityBytes else { return nil }
        let live = liveness.intervals.filter { $0.isLocal && $0.first <= position && position <= $0.last }
            .sorted { ($0.bytes, $1.id) > ($1.bytes, $0.id) }
        let shown = live.prefix(4).map { "\($0.id) \($0.type)" }
        let more = live.count > shown.count ? ", and \(live.count - shown.count) more" : ""
        let at = position < liveness.labels.count ? liveness.labels[position] : "?"
        return "local tier needs \(peak) bytes at \(at) but \(target.name) has \(target.localCapacityBytes); "
            + "live: " + shown.joined(separator: ", ") + more
    }
}

/// Live ranges of the values of one kernel over its numbered program points.
struct Liveness {
    /// A value's live range, in program points (inclusive).
    struct Interval {
        /// The value.
        var id: ValueID
        /// Its type.
        var type: BlockType
        /// The program point that defines it.
        var first: Int
        /// The last program point where it is live.
        var last: Int
        /// The last program point that reads it (`last` also covers loops it must outlive).
        var lastRead: Int
        /// Whether it has storage of its own (not a splat, a view or an accumulated dot).
        var owns = true
        /// Its size in bytes (saturating).
        var bytes: Int { Verifier.safeByteCount(type) }
        /// Whether it occupies the local tier (the only tier counted).
        var isLocal: Bool { owns && type.tier == .local }
    }

    /// An elementwise result that may take over the storage of one of `candidates`.
    private struct InPlace {
        var point: Int
        var result: ValueID
        var candidates: [ValueID]
    }

    /// The live ranges, in order of definition.
    var intervals: [Interval] = []
    /// What happens at each program point (`%5`, `store %1`, `for k`).
    var labels: [String] = []
    private var index: [ValueID: Int] = [:]
    private var useCounts: [ValueID: Int] = [:]
    /// The value whose storage a view (broadcast, transpose) reads.
    private var baseOf: [ValueID: ValueID] = [:]
    private var dotOperands: [ValueID: [ValueID]] = [:]
    private var inPlace: [InPlace] = []
    /// The value yielded for each carried value.
    private var yieldedFor: [ValueID: ValueID] = [:]

    /// Computes the live ranges of a kernel's values.
    init(_ kernel: Kernel) {
        kernel.walk { inst in
            for v in inst.op.operands { useCounts[v, default: 0] += 1 }
        }
        _ = walk(kernel.body)
        for r in inPlace {
            guard let k = index[r.result] else { continue }
            // An operand that dies here, or a carried value last read here that the result
            // replaces at the yield: its storage is free for the result from this point on.
            let dying = r.candidates.first { c in
                guard let o = index[c], intervals[o].isLocal, intervals[o].bytes == intervals[k].bytes else {
                    return false
                }
                return intervals[o].last == r.point || (yieldedFor[c] == r.result && intervals[o].lastRead == r.point)
            }
            if let c = dying, let o = index[c] {
                intervals[k].first = r.point + 1
                intervals[o].last = r.point
            }
        }
    }

    /// The peak bytes and the first program point where it is reached.
    func peak() -> (bytes: Int, position: Int) {
        guard !labels.isEmpty else { return (0, 0) }
        var delta = Array(repeating: 0, count: labels.count + 1)
        for v in intervals where v.isLocal {
            let b = v.bytes
            let first = Swift.max(0, Swift.min(v.first, labels.count))
            let end = Swift.max(first, Swift.min(v.last + 1, labels.count))
            delta[first] = Self.add(delta[first], b)
            delta[end] = Self.add(delta[end], -b)
        }
        var best = 0
        var bestPosition = 0
        var running = 0
        for p in 0..<labels.count {
            running = Self.add(running, delta[p])
            if running > best {
                best = running
                bestPosition = p
            }
        }
        return (best, bestPosition)
    }

    private static func add(_ a: Int, _ b: Int) -> Int {
        let (s, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? Int.max : Int.min) : s
    }

    private mutating func newPoint(_ label: String) -> Int {
        labels.append(label)
        return labels.count - 1
    }

    private mutating func define(_ value: Value, at point: Int) {
        index[value.id] = intervals.count
        intervals.append(Interval(id: value.id, type: value.type, first: point, last: point, lastRead: point))
    }

    private func base(_ id: ValueID) -> ValueID { baseOf[id] ?? id }

    private mutating func use(_ id: ValueID, at point: Int) {
        guard let k = index[base(id)] else { return }
        intervals[k].last = Swift.max(intervals[k].last, point)
        intervals[k].lastRead = Swift.max(intervals[k].lastRead, point)
    }

    /// Numbers a body's instructions; returns the values it uses (nested bodies included).
    private mutating func walk(_ body: [Instruction]) -> [ValueID] {
        var used: [ValueID] = []
        var dotsHere: Set<ValueID> = []
        for inst in body {
            let name = inst.results.first?.id.description
            switch inst.op {
            case .loop(let loop):
                let header = newPoint((name.map { "\($0) = " } ?? "") + "for " + loop.variable.name)
                for v in loop.initial { use(v, at: header) }
                used += loop.initial
                let carriedStart = intervals.count
                for c in loop.carried { define(c, at: header + 1) }
                let inner = walk(loop.body)
                if case .yield(let ys)? = loop.body.last?.op {
                    for (c, y) in zip(loop.carried, ys) { yieldedFor[c.id] = y }
                }
                let lastBody = Swift.max(labels.count - 1, header + 1)
                for k in carriedStart..<(carriedStart + loop.carried.count) {
                    intervals[k].last = Swift.max(intervals[k].last, lastBody)
                }
                for v in inner {
                    if let k = index[base(v)], intervals[k].first <= header {
                        intervals[k].last = Swift.max(intervals[k].last, lastBody)
                    }
                }
                used += inner
                let end = newPoint(name ?? "end of for \(loop.variable.name)")
                for r in inst.results { define(r, at: end) }
            case .store(let v, _, _):
                let point = newPoint("store \(v)")
                use(v, at: point)
                used.append(v)
            case .yield(let values):
                let point = newPoint("yield")
                for v in values { use(v, at: point) }
                used += values
            case .load, .fill, .unary, .binary, .broadcast, .reduce, .dot, .transpose, .mask:
                let point = newPoint(name ?? inst.op.mnemonic)
                var operands = inst.op.operands
                var candidates = operands
                if case .binary(.add, let x, let y) = inst.op, let r = inst.result, r.type.rank == 2,
                    let d = [y, x].first(where: {
                        isAccumulatedDot($0, into: r, dotsHere: dotsHere, other: x == $0 ? y : x)
                    }),
                    let k = index[d]
                {
                    intervals[k].owns = false
                    operands.removeAll { $0 == d }
                    candidates = operands
                    operands += dotOperands[d] ?? []
                }
                for v in operands { use(v, at: point) }
                used += operands.map(base)
                for r in inst.results { define(r, at: point) }
                switch inst.op {
                case .fill:
                    for r in inst.results { intervals[index[r.id]!].owns = false }
                case .broadcast(let a, _), .transpose(let a):
                    for r in inst.results {
                        intervals[index[r.id]!].owns = false
                        baseOf[r.id] = base(a)
                    }
                case .dot(let a, let b, _, _):
                    for r in inst.results {
                        dotOperands[r.id] = [a, b]
                        dotsHere.insert(r.id)
                    }
                case .unary, .binary, .mask:
                    if let r = inst.result {
                        inPlace.append(InPlace(point: point, result: r.id, candidates: candidates))
                    }
                case .load, .reduce, .store, .yield, .loop: break
                }
            }
        }
        return used
    }

    /// Whether `d` is a dot of this body read only by this add, whose other operand has the
    /// add's shape: the dot then accumulates into the add's storage.
    private func isAccumulatedDot(_ d: ValueID, into r: Value, dotsHere: Set<ValueID>, other: ValueID) -> Bool {
        guard d != other, dotsHere.contains(d), useCounts[d] == 1, let o = index[other] else { return false }
        return intervals[o].type.shape == r.type.shape
    }
}
