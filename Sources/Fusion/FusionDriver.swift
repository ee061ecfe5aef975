import BlockIR

/// Options of a fusion run.
public struct FusionOptions: Sendable {
    /// Apply only the rule with this name (or catalogue ID); `nil` applies all.
    public var onlyRule: String?
    /// The most rule applications before the driver stops.
    public var maxSteps: Int
    /// The plan's recompute budget.
    public var recomputeBudget: Double

    /// Default options: every rule, at most 5000 steps.
    public init(onlyRule: String? = nil, maxSteps: Int = 5000, recomputeBudget: Double = 0.25) {
        self.onlyRule = onlyRule
        self.maxSteps = maxSteps
        self.recomputeBudget = recomputeBudget
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
        .deadCode, .simplify, .commonSubexpressions, .hoist, .scaleMotion, .linearity, .momentExpansion, .loopFusion,
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
        let plan = FusionPlan(recomputeBudget: options.recomputeBudget)
        let active = options.onlyRule.map { name in rules.filter { $0.name == name || $0.id == name } } ?? rules
        var current = program
        var trace: [TraceEntry] = []
        var hitCap = false
        search: while true {
            for rule in active {
                guard let application = rule.apply(current, plan: plan) else { continue }
                guard trace.count < options.maxSteps else {
                    hitCap = true
                    break search
                }
                let before = summary(current)
                current = application.program.removingUnusedTensors()
                let entry = TraceEntry(
                    step: trace.count + 1, ruleID: rule.id, rule: rule.name, place: application.place,
                    detail: application.detail, summary: before + " → " + summary(current))
                trace.append(entry)
                observe?(current, entry)
                continue search
            }
            break
        }
        return FusionResult(program: current, trace: trace, decisions: plan.decisions, hitStepCap: hitCap)
    }

    static func summary(_ p: Program) -> String {
        let temps = p.tensors.filter { $0.role == .temp && $0.viewOf == nil }.count
        return "\(p.kernels.count) kernels, \(temps) temps"
    }
}
