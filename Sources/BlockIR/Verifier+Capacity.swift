extension Verifier {
    /// The peak number of bytes of `local`-tier values live at once in one kernel instance.
    ///
    /// Instructions are numbered in program order (a loop's header, its body, then a point for
    /// its results). A value is live from its definition to its last use; an instruction's
    /// operands and results are live together. Loop-carried values are live through the whole
    /// body, and a value defined outside a loop and used inside it stays live through the loop.
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
        /// Its size in bytes (saturating).
        var bytes: Int { Verifier.safeByteCount(type) }
        /// Whether it lives in the local tier (the only tier counted).
        var isLocal: Bool { type.tier == .local }
    }

    /// The live ranges, in order of definition.
    var intervals: [Interval] = []
    /// What happens at each program point (`%5`, `store %1`, `for k`).
    var labels: [String] = []
    private var index: [ValueID: Int] = [:]

    /// Computes the live ranges of a kernel's values.
    init(_ kernel: Kernel) {
        _ = walk(kernel.body)
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
        intervals.append(Interval(id: value.id, type: value.type, first: point, last: point))
    }

    private mutating func use(_ id: ValueID, at point: Int) {
        guard let k = index[id] else { return }
        intervals[k].last = Swift.max(intervals[k].last, point)
    }

    /// Numbers a body's instructions; returns the values it uses (nested bodies included).
    private mutating func walk(_ body: [Instruction]) -> [ValueID] {
        var used: [ValueID] = []
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
                let lastBody = Swift.max(labels.count - 1, header + 1)
                for k in carriedStart..<(carriedStart + loop.carried.count) {
                    intervals[k].last = Swift.max(intervals[k].last, lastBody)
                }
                for v in inner {
                    if let k = index[v], intervals[k].first <= header {
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
                for v in inst.op.operands { use(v, at: point) }
                used += inst.op.operands
                for r in inst.results { define(r, at: point) }
            }
        }
        return used
    }
}
