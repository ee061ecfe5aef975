import BlockIR
import Foundation
import Schedule

/// Options of a fusion run.
public struct FusionOptions: Sendable {
    /// Apply only the rule with this name (or catalogue ID); `nil` applies all.
    public var onlyRule: String?
    /// The most rule applications before the driver stops; `nil` scales with the program
    /// (100 per kernel, at least 5000).
    public var maxSteps: Int?
    /// The plan's recompute budget.
    public var recomputeBudget: Double
    /// The target whose capacities bound the plan (re-blocking must fit its local tier).
    public var target: TargetDescription
    /// The cores a kernel's grid should fill (R15 splits reductions of smaller grids); `nil`:
    /// `Fusion.defaultCores(for:)`. Tests and goldens pin it, so output does not depend on the
    /// machine.
    public var cores: Int?

    /// Default options: every rule, a step cap that scales with the program.
    public init(
        onlyRule: String? = nil, maxSteps: Int? = nil, recomputeBudget: Double = 0.25,
        target: TargetDescription = .cpu, cores: Int? = nil
    ) {
        self.onlyRule = onlyRule
        self.maxSteps = maxSteps
        self.recomputeBudget = recomputeBudget
        self.target = target
        self.cores = cores
    }
}

/// The fusion pass: rules applied to a fixed point in priority order.
///
/// After every application the driver starts again from the first rule, so cheap clean-ups
/// (dead code, common subexpressions, hoisting) always run before the next structural rewrite.
/// The priority order is the order of `Fusion.rules`; see Docs/Fusion.md for why.
public enum Fusion {
    /// The rules in priority order.
    public static let rules: [FusionRule] = [
        .deadCode, .simplify, .commonSubexpressions, .hoist, .scaleMotion, .linearity, .distribution, .momentExpansion,
        .loopFusion,
        .streaming, .maskSkipping, .scanCarry, .loadSplitting, .copyForwarding, .inlineProducer, .reblocking,
        .siblingFusion,
        .dataMaskSkipping,
        .splitReduction,
    ]

    /// The rules that run once the others have reached their fixed point: R18 merges sibling
    /// kernels (only those that stay kernels of their own once every producer has been inlined
    /// into its consumers: merged earlier, siblings that R1 would inline into a common consumer,
    /// such as an RMSNorm's statistics and a gated product's halves, would be widened for
    /// nothing), R16 adds a block-summary kernel, R15 a merge kernel (kernels the worklist of the
    /// others does not allow). Each application is one step, until none applies.
    static let finalRules: Set<String> = [
        FusionRule.siblingFusion.id, FusionRule.dataMaskSkipping.id, FusionRule.splitReduction.id,
    ]

    /// The cores a grid should fill when no count is given: `BLOCKC_CORES` when set to a positive
    /// number; else a GPU target's multiprocessors; else `OMP_NUM_THREADS` when set, else the
    /// processors this process may use.
    public static func defaultCores(for target: TargetDescription) -> Int {
        let environment = ProcessInfo.processInfo.environment
        if let text = environment["BLOCKC_CORES"], let n = Int(text), n > 0 { return n }
        if let cores = target.cores { return cores }
        if let text = environment["OMP_NUM_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// The rule with a name or catalogue ID.
    public static func rule(named name: String) -> FusionRule? {
        rules.first { $0.name == name || $0.id == name }
    }

    /// Fuses a program. `observe` sees the program after every step (differential tests use it).
    ///
    /// A round runs the rules to their fixed point, then the final rules (R18, R16, R15) until none
    /// applies. While the last step of a round is a final rule's (it added kernels), another round
    /// runs, so a merge kernel R15 added can fuse into its readers and a reader that became
    /// splittable is split; R1 never inlines the chunks back into a kernel with fewer instances
    /// than the cores (`FusionPlan.allowsSerializing`). The result is a fixed point of a round:
    /// fusing it again changes nothing.
    public static func fuse(
        _ program: Program, options: FusionOptions = FusionOptions(),
        observe: ((Program, TraceEntry) -> Void)? = nil
    ) -> FusionResult {
        let selected = options.onlyRule.map { name in rules.filter { $0.name == name || $0.id == name } } ?? rules
        var result = fixedPoint(program, options: options, selected: selected, stepOffset: 0, observe: observe)
        guard selected.contains(where: { !finalRules.contains($0.id) }) else { return result }
        let order = Dictionary(uniqueKeysWithValues: program.kernels.enumerated().map { ($1.name, $0) })
        var rounds = 1
        // Another round while the last one's final rules added kernels (at most `maximumRounds`).
        while !result.hitStepCap, rounds < maximumRounds,
            result.trace.last.map({ finalRules.contains($0.ruleID) }) == true
        {
            rounds += 1
            let next = fixedPoint(
                result.program, options: options, selected: selected, stepOffset: result.trace.count, observe: observe)
            let earlier = Dictionary(result.candidates.map { ($0.kernel, $0.from) }) { a, _ in a }
            result.program = next.program
            result.hitStepCap = next.hitStepCap
            result.trace += next.trace
            result.decisions += next.decisions.filter { !result.decisions.contains($0) }
            result.candidates = next.candidates.map { candidate in
                let names = Set(candidate.from.flatMap { earlier[$0] ?? [$0] })
                return (candidate.kernel, names.sorted { (order[$0] ?? 0, $0) < (order[$1] ?? 0, $1) })
            }
            result.statistics.examinations += next.statistics.examinations
            result.statistics.steps = result.trace.count
            result.statistics.kernelsCopied += next.statistics.kernelsCopied
            result.statistics.neighboursVisited += next.statistics.neighboursVisited
            result.statistics.producersVisited += next.statistics.producersVisited
            result.statistics.localRewritesSkipped += next.statistics.localRewritesSkipped
            result.statistics.capacityRefusals += next.statistics.capacityRefusals
        }
        return result
    }

    /// The most rounds of (rules to their fixed point, then the final rules) one fusion runs.
    static let maximumRounds = 8

    /// The rules `selected` to their fixed point, then the final rules among them.
    private static func fixedPoint(
        _ program: Program, options: FusionOptions, selected: [FusionRule], stepOffset: Int,
        observe: ((Program, TraceEntry) -> Void)?
    ) -> FusionResult {
        let plan = FusionPlan(recomputeBudget: options.recomputeBudget, target: options.target, cores: options.cores)
        let active = selected.filter { !finalRules.contains($0.id) }
        var current = program
        var trace: [TraceEntry] = []
        var hitCap = false
        var statistics = FusionStatistics()
        // Which input kernels' work each kernel performs (grows as R1 inlines producers).
        var from: [String: [String]] = Dictionary(uniqueKeysWithValues: program.kernels.map { ($0.name, [$0.name]) })
        // Rules rewrite or remove kernels but never add or reorder them, so a kernel's position
        // in the input program (its rank) orders the kernels of every later program too.
        let order = Dictionary(uniqueKeysWithValues: program.kernels.enumerated().map { ($1.name, $0) })
        var worklist = KernelWorklist(count: program.kernels.count)
        for kernel in current.kernels { _ = plan.access(kernel, current) }
        // Records a step: the trace entry, shown to `observe`.
        func record(_ rule: FusionRule, _ application: RuleApplication, kernelsBefore: Int) {
            let entry = TraceEntry(
                step: stepOffset + trace.count + 1, ruleID: rule.id, rule: rule.name, place: application.place,
                detail: application.detail, summary: summary(kernelsBefore) + " → " + summary(current.kernels.count))
            trace.append(entry)
            observe?(current, entry)
        }
        // Legality common to every rule: what a step makes fits the local tier (the lowered
        // program does); a step that would overflow it is not taken, and `explain` says so.
        func overflows(_ rule: FusionRule, _ application: RuleApplication) -> Bool {
            guard let overflow = overflow(of: application, in: current, target: options.target) else { return false }
            plan.note(
                "\(rule.id) \(rule.name) not applied to \(application.place): \(overflow.kernel) would need "
                    + "\(overflow.bytes) bytes of local tier, more than \(options.target.name)'s "
                    + "\(options.target.localCapacityBytes)")
            return true
        }
        // Makes a step's change in place, counting the kernels copied when the program's kernel
        // list could not be changed in place.
        func applyChange(_ application: RuleApplication, counted: Bool = true) {
            let buffer = current.kernels.withUnsafeBufferPointer { $0.baseAddress }
            application.apply(to: &current)
            if counted && current.kernels.withUnsafeBufferPointer({ $0.baseAddress }) != buffer {
                statistics.kernelsCopied += current.kernels.count
            }
        }
        // The driver looks at one kernel at a time: the first, in program order, that no rule
        // applies to yet. A rule looks at one kernel and its neighbours (the kernels sharing a
        // tensor with it), so after a step only the rewritten kernel and its neighbours need
        // another look: the work per step stays independent of the program's size.
        // With BLOCKC_FUSION_STATS set, the time each rule takes (per rule, in `active` order).
        let profiling = ProcessInfo.processInfo.environment["BLOCKC_FUSION_STATS"] != nil
        var ruleTime = [Duration](repeating: .zero, count: active.count)
        search: while let rank = worklist.first {
            let focus = worklist.position(of: rank)
            let kernel = current.kernels[focus]
            plan.focus = focus
            statistics.examinations += 1
            for (r, rule) in active.enumerated() {
                let start = profiling ? ContinuousClock.now : nil
                let match = rule.apply(current, plan: plan)
                if let start { ruleTime[r] += ContinuousClock.now - start }
                guard let application = match else { continue }
                guard trace.count < (options.maxSteps ?? max(5000, 100 * program.kernels.count)) else {
                    hitCap = true
                    break search
                }
                if overflows(rule, application) { continue }
                let kernelsBefore = current.kernels.count
                let old = neighbours(of: kernel, current, plan)
                var removed: Int?
                switch application.change {
                case .remove(let index), .merge(_, _, removing: let index): removed = order[current.kernels[index].name]
                case .replace, .program: break
                }
                applyChange(application)
                for name in application.absorbed {
                    let merged = (from[application.place] ?? []) + (from[name] ?? [])
                    from[application.place] = Array(Set(merged)).sorted { (order[$0] ?? 0) < (order[$1] ?? 0) }
                }
                plan.invalidate(kernel.name)
                switch application.change {
                case .replace: break
                case .remove, .merge: removed.map { worklist.delete($0) }
                case .program: worklist.rebuild(present: current.kernels.compactMap { order[$0.name] })
                }
                var new: [String] = []
                if worklist.contains(rank) {
                    new = neighbours(of: current.kernels[worklist.position(of: rank)], current, plan)
                }
                for name in old + new {
                    if let r = order[name], worklist.contains(r) { worklist.insert(r) }
                }
                statistics.neighboursVisited += old.count + new.count
                record(rule, application, kernelsBefore: kernelsBefore)
                continue search
            }
            worklist.remove(rank)
        }
        plan.focus = nil
        // The final rules: each application is one step; a kernel they add does the work of the
        // kernel it came from.
        let cap = options.maxSteps ?? max(5000, 100 * program.kernels.count)
        final: for rule in selected where finalRules.contains(rule.id) && !hitCap {
            while let application = rule.apply(current, plan: plan) {
                guard trace.count < cap else {
                    hitCap = true
                    break final
                }
                if overflows(rule, application) { break }
                let kernelsBefore = current.kernels.count
                applyChange(application, counted: false)
                plan.invalidate(application.place)
                // A kernel merged into `place` (R18) is gone: forget its accesses, and `place`
                // now does its work too.
                for name in application.absorbed {
                    plan.invalidate(name)
                    let merged = (from[application.place] ?? [application.place]) + (from[name] ?? [name])
                    from[application.place] = Array(Set(merged)).sorted { (order[$0] ?? 0) < (order[$1] ?? 0) }
                }
                for kernel in current.kernels where from[kernel.name] == nil {
                    from[kernel.name] = from[application.place] ?? [application.place]
                }
                record(rule, application, kernelsBefore: kernelsBefore)
            }
        }
        current = current.removingUnusedTensors()
        statistics.steps = trace.count
        statistics.producersVisited = plan.producersVisited
        statistics.localRewritesSkipped = plan.localRewritesSkipped
        statistics.capacityRefusals = plan.capacityRefusals
        if profiling {
            var report = "fusion: \(statistics.examinations) kernel examinations, \(trace.count) steps\n"
            for (r, rule) in active.enumerated() {
                let (s, a) = ruleTime[r].components
                let ms = Double(s) * 1e3 + Double(a) / 1e15
                report += "  \(rule.id) \(rule.name): \(String(format: "%.1f", ms)) ms\n"
            }
            FileHandle.standardError.write(Data(report.utf8))
        }
        let candidates = current.kernels.map { (kernel: $0.name, from: from[$0.name] ?? [$0.name]) }
        return FusionResult(
            program: current, trace: trace, decisions: plan.decisions, hitStepCap: hitCap, candidates: candidates,
            statistics: statistics)
    }

    /// The first kernel a step would make that does not fit the target's local tier, with its
    /// bytes; nil when every changed kernel fits (a removal changes none).
    static func overflow(
        of application: RuleApplication, in p: Program, target: TargetDescription
    ) -> (kernel: String, bytes: Int)? {
        let capacity = target.localCapacityBytes
        switch application.change {
        case .remove:
            return nil
        case .replace(_, let kernel), .merge(_, let kernel, _):
            if LocalStorage.fits(kernel, in: p, capacity: capacity, target: target) { return nil }
            return (kernel.name, LocalStorage.bytes(kernel, in: p, target: target))
        case .program(let q):
            for kernel in q.kernels where !LocalStorage.fits(kernel, in: q, capacity: capacity, target: target) {
                return (kernel.name, LocalStorage.bytes(kernel, in: q, target: target))
            }
            return nil
        }
    }

    /// The kernel and every kernel sharing a tensor's storage with it, sorted.
    static func neighbours(of kernel: Kernel, _ p: Program, _ plan: FusionPlan) -> [String] {
        let mine = plan.access(kernel, p)
        // Gathered with repeats and sorted once (no set of names to hash).
        var out = [kernel.name]
        for t in mine.loads {
            out += plan.readers(of: t)
            out += plan.writers(of: t)
        }
        for t in mine.stores where !mine.loads.contains(t) {
            out += plan.readers(of: t)
            out += plan.writers(of: t)
        }
        out.sort()
        var unique: [String] = []
        unique.reserveCapacity(out.count)
        for name in out where name != unique.last { unique.append(name) }
        return unique
    }

    static func summary(_ kernels: Int) -> String {
        "\(kernels) kernel\(kernels == 1 ? "" : "s")"
    }
}
