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
        .streaming, .maskSkipping, .inlineProducer, .reblocking,
    ]

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
        let active = options.onlyRule.map { name in rules.filter { $0.name == name || $0.id == name } } ?? rules
        var current = program
        var trace: [TraceEntry] = []
        var hitCap = false
        // Kernels no rule applies to, by name. A rule looks at one kernel and its neighbours (the
        // kernels sharing a tensor with it), so after a step only the rewritten kernel and its
        // neighbours need another look: the work stays near-linear in the program's size.
        var stable: Set<String> = []
        // Which input kernels' work each kernel performs (grows as R1 inlines producers).
        var from: [String: [String]] = Dictionary(uniqueKeysWithValues: program.kernels.map { ($0.name, [$0.name]) })
        let order = Dictionary(uniqueKeysWithValues: program.kernels.enumerated().map { ($1.name, $0) })
        for kernel in current.kernels { _ = plan.access(kernel, current) }
        var examinations = 0
        // Records a step: the trace entry, shown to `observe`.
        func record(_ rule: FusionRule, _ application: RuleApplication, before: Program) {
            let entry = TraceEntry(
                step: trace.count + 1, ruleID: rule.id, rule: rule.name, place: application.place,
                detail: application.detail, summary: summary(before) + " → " + summary(current))
            trace.append(entry)
            observe?(current, entry)
        }
        search: while let focus = current.kernels.firstIndex(where: { !stable.contains($0.name) }) {
            plan.focus = focus
            examinations += 1
            for rule in active {
                guard let application = rule.apply(current, plan: plan) else { continue }
                guard trace.count < (options.maxSteps ?? max(5000, 100 * program.kernels.count)) else {
                    hitCap = true
                    break search
                }
                let before = current
                current = application.program
                for name in application.absorbed {
                    let merged = (from[application.place] ?? []) + (from[name] ?? [])
                    from[application.place] = Array(Set(merged)).sorted { (order[$0] ?? 0) < (order[$1] ?? 0) }
                }
                let name = before.kernels[focus].name
                let old = neighbours(of: name, before, plan)
                plan.invalidate(name)
                for n in old + neighbours(of: name, current, plan) { stable.remove(n) }
                record(rule, application, before: before)
                continue search
            }
            stable.insert(current.kernels[focus].name)
        }
        plan.focus = nil
        current = current.removingUnusedTensors()
        if ProcessInfo.processInfo.environment["BLOCKC_FUSION_STATS"] != nil {
            FileHandle.standardError.write(
                Data("fusion: \(examinations) kernel examinations, \(trace.count) steps\n".utf8))
        }
        let candidates = current.kernels.map { (kernel: $0.name, from: from[$0.name] ?? [$0.name]) }
        return FusionResult(
            program: current, trace: trace, decisions: plan.decisions, hitStepCap: hitCap, candidates: candidates)
    }

    /// The kernel and every kernel sharing a tensor's storage with it.
    static func neighbours(of name: String, _ p: Program, _ plan: FusionPlan) -> [String] {
        guard let kernel = p.kernels.first(where: { $0.name == name }) else { return [] }
        let mine = plan.access(kernel, p)
        var out: Set<String> = [name]
        for t in mine.loads.union(mine.stores) {
            out.formUnion(plan.readers(of: t))
            out.formUnion(plan.writers(of: t))
        }
        return out.sorted()
    }

    static func summary(_ p: Program) -> String {
        "\(p.kernels.count) kernel\(p.kernels.count == 1 ? "" : "s")"
    }
}
