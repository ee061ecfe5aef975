import BlockIR
import Foundation

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

    /// Default options: every rule, a step cap that scales with the program.
    public init(
        onlyRule: String? = nil, maxSteps: Int? = nil, recomputeBudget: Double = 0.25,
        target: TargetDescription = .cpu
    ) {
        self.onlyRule = onlyRule
        self.maxSteps = maxSteps
        self.recomputeBudget = recomputeBudget
        self.target = target
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
        .streaming, .maskSkipping, .scanCarry, .loadSplitting, .inlineProducer, .reblocking, .dataMaskSkipping,
    ]

    /// The rules that add kernels (R15 adds a block-summary kernel). The driver's worklist knows
    /// the kernels of the input program only, so these run after every other rule is stable, on
    /// the fused program: each application is one step, until none applies.
    static let lateRuleIDs: Set<String> = ["R15"]

    /// The rule with a name or catalogue ID.
    public static func rule(named name: String) -> FusionRule? {
        rules.first { $0.name == name || $0.id == name }
    }

    /// Fuses a program. `observe` sees the program after every step (differential tests use it).
    public static func fuse(
        _ program: Program, options: FusionOptions = FusionOptions(),
        observe: ((Program, TraceEntry) -> Void)? = nil
    ) -> FusionResult {
        let plan = FusionPlan(recomputeBudget: options.recomputeBudget, target: options.target)
        let selected = options.onlyRule.map { name in rules.filter { $0.name == name || $0.id == name } } ?? rules
        let active = selected.filter { !lateRuleIDs.contains($0.id) }
        let late = selected.filter { lateRuleIDs.contains($0.id) }
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
                step: trace.count + 1, ruleID: rule.id, rule: rule.name, place: application.place,
                detail: application.detail, summary: summary(kernelsBefore) + " → " + summary(current.kernels.count))
            trace.append(entry)
            observe?(current, entry)
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
                let kernelsBefore = current.kernels.count
                let old = neighbours(of: kernel, current, plan)
                var removed: Int?
                if case .remove(let index) = application.change { removed = order[current.kernels[index].name] }
                applyChange(application)
                for name in application.absorbed {
                    let merged = (from[application.place] ?? []) + (from[name] ?? [])
                    from[application.place] = Array(Set(merged)).sorted { (order[$0] ?? 0) < (order[$1] ?? 0) }
                }
                plan.invalidate(kernel.name)
                switch application.change {
                case .replace: break
                case .remove: removed.map { worklist.delete($0) }
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
        // The late rules, on the program every other rule left stable.
        let cap = options.maxSteps ?? max(5000, 100 * program.kernels.count)
        late: for rule in late {
            while let application = rule.apply(current, plan: plan) {
                guard trace.count < cap else {
                    hitCap = true
                    break late
                }
                let kernelsBefore = current.kernels.count
                applyChange(application, counted: false)
                plan.invalidate(application.place)
                record(rule, application, kernelsBefore: kernelsBefore)
            }
        }
        current = current.removingUnusedTensors()
        statistics.steps = trace.count
        statistics.producersVisited = plan.producersVisited
        statistics.localRewritesSkipped = plan.localRewritesSkipped
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
