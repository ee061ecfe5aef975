extension Verifier {
    /// The register-tier error of a kernel whose `reg` values live at once exceed the target's
    /// `registerCapacityBytes` (its registers per kernel instance), naming the largest of them.
    ///
    /// A simple peak, separate from the local tier's storage model: every `reg` value occupies its
    /// full size from its definition to its last use; a value used inside a loop stays live
    /// through the loop, and carried values through their loop.
    static func registerError(_ kernel: Kernel, target: TargetDescription) -> String? {
        let ranges = RegisterRanges(kernel)
        guard let (peak, point) = ranges.peak(), peak > target.registerCapacityBytes else { return nil }
        let live = ranges.values.filter { $0.first <= point && point <= $0.last }
            .sorted { (safeByteCount($0.value.type), $1.value.id) > (safeByteCount($1.value.type), $0.value.id) }
        let shown = live.prefix(4).map { "\($0.value.id) \($0.value.type)" }
        let more = live.count > shown.count ? ", and \(live.count - shown.count) more" : ""
        return "reg tier needs \(peak) bytes but \(target.name) has \(target.registerCapacityBytes); live: "
            + shown.joined(separator: ", ") + more + "; keep blocks in the local tier (@local)"
    }
}

/// The live ranges of a kernel's `reg`-tier values over its instructions numbered in program
/// order (a loop's header, its body, then a point for its results).
private struct RegisterRanges {
    /// A `reg` value and the program points where it is live (inclusive).
    struct Range {
        var value: Value
        var first: Int
        var last: Int
    }

    /// The ranges, in order of definition.
    var values: [Range] = []
    private var index: [ValueID: Int] = [:]
    private var point = 0

    init(_ kernel: Kernel) { visit(kernel.body) }

    private mutating func define(_ value: Value, at p: Int) {
        guard value.type.tier == .reg, index[value.id] == nil else { return }
        index[value.id] = values.count
        values.append(Range(value: value, first: p, last: p))
    }

    private mutating func use(_ id: ValueID, at p: Int) {
        guard let k = index[id] else { return }
        values[k].last = Swift.max(values[k].last, p)
    }

    private mutating func visit(_ body: [Instruction]) {
        for inst in body {
            let here = point
            point += 1
            for v in inst.op.operands { use(v, at: here) }
            guard case .loop(let loop) = inst.op else {
                for r in inst.results { define(r, at: here) }
                continue
            }
            for c in loop.carried { define(c, at: here) }
            visit(loop.body)
            let end = point
            point += 1
            // Values from before the loop that its body reads stay live through every iteration.
            for k in values.indices where values[k].first < here && values[k].last > here {
                values[k].last = Swift.max(values[k].last, end)
            }
            for c in loop.carried { use(c.id, at: end) }
            for r in inst.results { define(r, at: end) }
        }
    }

    /// The peak bytes live at once and the first point where they are.
    func peak() -> (bytes: Int, point: Int)? {
        guard !values.isEmpty else { return nil }
        var delta = Array(repeating: 0, count: point + 2)
        for r in values {
            let bytes = Verifier.safeByteCount(r.value.type)
            delta[r.first] = Verifier.saturatingSum(delta[r.first], bytes)
            delta[r.last + 1] = Verifier.saturatingSum(delta[r.last + 1], -bytes)
        }
        var best = (bytes: 0, point: 0)
        var live = 0
        for p in 0..<point {
            live = Verifier.saturatingSum(live, delta[p])
            if live > best.bytes { best = (live, p) }
        }
        return best
    }
}

extension Verifier {
    /// The sum, saturating at `Int`'s limits.
    static func saturatingSum(_ a: Int, _ b: Int) -> Int {
        let (s, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? Int.max : Int.min) : s
    }
}
